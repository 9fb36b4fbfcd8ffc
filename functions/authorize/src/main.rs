//! The `authorize` endpoint as an AWS Lambda function (API Gateway HTTP API).

#[tokio::main]
async fn main() -> Result<(), shared::lambda::Error> {
    shared::lambda::run(shared::http::authorize::router).await
}
