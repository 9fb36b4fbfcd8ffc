//! The tenant admin API (`/admin/v1/...`) as an AWS Lambda function (API Gateway HTTP API).

#[tokio::main]
async fn main() -> Result<(), shared::lambda::Error> {
    shared::lambda::run(shared::http::admin::router).await
}
