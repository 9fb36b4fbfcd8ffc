//! The `par` endpoint (RFC 9126 pushed authorization requests) as an AWS Lambda function (API
//! Gateway HTTP API).

#[tokio::main]
async fn main() -> Result<(), shared::lambda::Error> {
    shared::lambda::run(shared::http::par::router).await
}
