//! Building AWS SDK configuration once per process (per Lambda cold start).

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use std::time::Duration;

pub use aws_config::SdkConfig;

/// SDK config with bounded retries (3 attempts, exponential backoff) and timeouts, so a
/// struggling backend turns into a quick 503 rather than a hung request. With `endpoint` (a
/// local emulator such as moto) and no credentials in the environment, dummy static
/// credentials are used; against AWS the default provider chain applies.
pub async fn sdk_config(endpoint: Option<&str>, region: Option<&str>) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(3))
                .operation_timeout(Duration::from_secs(8))
                .build(),
        );
    if let Some(r) = region {
        loader = loader.region(aws_config::Region::new(r.to_string()));
    }
    if let Some(e) = endpoint {
        loader = loader.endpoint_url(e);
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            loader = loader.credentials_provider(aws_credential_types::Credentials::from_keys(
                "testing", "testing", None,
            ));
        }
    }
    loader.load().await
}
