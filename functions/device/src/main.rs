//! The device authorization grant's endpoint and verification page (RFC 8628) as an AWS Lambda
//! function (API Gateway HTTP API); the grant itself is the token function's.

#[tokio::main]
async fn main() -> Result<(), shared::lambda::Error> {
    shared::lambda::run(shared::http::device::router).await
}
