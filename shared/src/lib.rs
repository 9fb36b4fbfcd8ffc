//! Bulwark's library crate: everything the Lambda functions and the `bulwark` CLI share.
//!
//! - [`domain`]: the OAuth rules, sans IO.
//! - [`store`] and [`keys`]: the ports (storage, signing) and their adapters.
//! - [`service`]: the rules applied through the ports.
//! - [`http`]: one axum router per endpoint.

#[cfg(feature = "aws")]
pub mod aws;
pub mod clock;
pub mod config;
pub use ::domain;
pub mod error;
pub mod fetch;
pub mod http;
pub mod keys;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod logging;
pub mod metrics;
pub mod secret;
pub mod service;
pub mod store;

pub use error::{ErrorCode, OAuthError};
