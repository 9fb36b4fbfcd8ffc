//! The scheduled sweep as an AWS Lambda function (EventBridge, daily): clients registered by
//! anyone and unused for 30 days are deleted.

#[tokio::main]
async fn main() -> Result<(), shared::lambda::Error> {
    shared::lambda::run_sweeper().await
}
