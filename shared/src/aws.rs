//! Building AWS SDK configuration once per process (per Lambda cold start).

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use std::time::Duration;

pub use aws_config::SdkConfig;

/// The SDK's HTTPS client: smithy's hyper client on rustls with `ring`, the process's one crypto
/// stack (the SDK's default client would link AWS-LC for this alone; ARCHITECTURE "Small, fast
/// functions"). The system's root certificates, loaded on the first connection.
fn https_client() -> impl aws_smithy_runtime_api::client::http::HttpClient + 'static {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

fn retry() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(3)
}

fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(3))
        .operation_timeout(Duration::from_secs(8))
        .build()
}

/// The SDK config of a Lambda function, from what Lambda puts in the environment and nothing
/// else: region (`AWS_REGION`), credentials (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`: the execution role's), and, for local emulators, `AWS_ENDPOINT_URL` and
/// `AWS_ENDPOINT_URL_<SERVICE>`; the same retries, timeouts and HTTPS client as [`sdk_config`].
/// No profile files, IMDS, ECS, SSO or STS providers: a function never uses them, and leaving
/// them out keeps their code (STS's client among it) out of every function binary and their
/// lookups out of the cold start (ARCHITECTURE "Small, fast functions").
pub fn lambda_sdk_config(env: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> SdkConfig {
    use aws_config::environment::EnvironmentVariableCredentialsProvider;
    use aws_credential_types::provider::SharedCredentialsProvider;
    let region = env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION"));
    let endpoint = env("AWS_ENDPOINT_URL").filter(|e| !e.is_empty());
    let mut b = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(region.map(aws_config::Region::new))
        .credentials_provider(SharedCredentialsProvider::new(
            EnvironmentVariableCredentialsProvider::new(),
        ))
        .http_client(https_client())
        .retry_config(retry())
        .timeout_config(timeouts())
        .sleep_impl(aws_smithy_async::rt::sleep::TokioSleep::new())
        .time_source(aws_smithy_async::time::SystemTimeSource::new())
        .service_config(ServiceEndpoints(Box::new(env)));
    b.set_endpoint_url(endpoint);
    b.build()
}

/// An environment: the value of a variable.
type Lookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// `AWS_ENDPOINT_URL_<SERVICE>` (`..._DYNAMODB`, `..._KMS`), as the default loader reads it.
struct ServiceEndpoints(Lookup);

impl std::fmt::Debug for ServiceEndpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceEndpoints")
    }
}

impl aws_types::service_config::LoadServiceConfig for ServiceEndpoints {
    fn load_config(&self, key: aws_types::service_config::ServiceConfigKey<'_>) -> Option<String> {
        let service = key.service_id().to_ascii_uppercase().replace(' ', "_");
        (self.0)(&format!("{}_{service}", key.env())).filter(|v| !v.is_empty())
    }
}

/// SDK config with bounded retries (3 attempts, exponential backoff) and timeouts, so a
/// struggling backend turns into a quick 503 rather than a hung request. With `endpoint` (a
/// local emulator such as moto) and no credentials in the environment, dummy static
/// credentials are used; against AWS the default provider chain applies.
pub async fn sdk_config(endpoint: Option<&str>, region: Option<&str>) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .retry_config(retry())
        .timeout_config(timeouts());
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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_types::service_config::ServiceConfigKey;

    #[test]
    fn a_lambda_config_reads_region_and_endpoints_from_the_environment_only() {
        let env = |k: &str| match k {
            "AWS_REGION" => Some("eu-west-1".to_string()),
            "AWS_ENDPOINT_URL" => Some("http://127.0.0.1:1".to_string()),
            "AWS_ENDPOINT_URL_KMS" => Some("http://127.0.0.1:2".to_string()),
            _ => None,
        };
        let sdk = lambda_sdk_config(env);
        assert_eq!(sdk.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert_eq!(sdk.endpoint_url(), Some("http://127.0.0.1:1"));
        let key = |service| {
            ServiceConfigKey::builder()
                .service_id(service)
                .env("AWS_ENDPOINT_URL")
                .profile("endpoint_url")
                .build()
                .unwrap()
        };
        let services = sdk.service_config().unwrap();
        assert_eq!(
            services.load_config(key("KMS")).as_deref(),
            Some("http://127.0.0.1:2")
        );
        assert_eq!(services.load_config(key("DynamoDB")), None);
        assert!(sdk.credentials_provider().is_some() && sdk.http_client().is_some());

        let bare = lambda_sdk_config(|_| None);
        assert_eq!(bare.endpoint_url(), None);
        assert!(bare.region().is_none());
    }
}
