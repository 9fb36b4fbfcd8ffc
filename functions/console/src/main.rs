//! The Connected Apps console (`/console...`) as an AWS Lambda function (API Gateway HTTP API).

#[tokio::main]
async fn main() -> Result<(), shared::lambda::Error> {
    shared::lambda::run(shared::http::console::router).await
}
