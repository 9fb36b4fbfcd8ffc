//! The services' error: an OAuth error code (RFC 6749, 6750, 7009, 7591, 8707) with its
//! description and the status the RFCs give it, decided by the services (which know whether a
//! grant is invalid or a client unauthenticated). A backend failure becomes
//! `temporarily_unavailable`; internals never reach the description. How it goes on the wire —
//! RFC 6749 §5.2 JSON, an RFC 9457 problem on the admin API, an error page — is `http`'s
//! (`http::oauth_error`, `http::admin::Problem`, `http::browser::failure_page`).

use http::StatusCode;
use std::borrow::Cow;

use crate::keys::SignerError;
use crate::store::StoreError;

/// The `error` codes we answer with (RFC 6749, 6750, 7009, 7591, 8707).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    InvalidTarget,
    InvalidToken,
    InsufficientScope,
    AccessDenied,
    UnsupportedTokenType,
    InvalidRedirectUri,
    InvalidClientMetadata,
    /// RFC 9449 §5, §7.1: a DPoP proof is missing, invalid or replayed.
    InvalidDpopProof,
    /// RFC 9449 §8: the DPoP proof must carry the nonce sent in `DPoP-Nonce`.
    UseDpopNonce,
    /// An authorization request's codes (RFC 6749 §4.1.2.1, OpenID Connect Core §3.1.2.6), as
    /// the pushed authorization request endpoint answers them (RFC 9126 §2.3).
    UnsupportedResponseType,
    RequestNotSupported,
    /// RFC 8628 §3.5: the device code's user has not decided yet.
    AuthorizationPending,
    /// RFC 8628 §3.5: poll less often (the interval grew by 5 seconds).
    SlowDown,
    /// RFC 8628 §3.5: the device code expired.
    ExpiredToken,
    NotFound,
    MethodNotAllowed,
    TemporarilyUnavailable,
    ServerError,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::UnsupportedTokenType => "unsupported_token_type",
            ErrorCode::InvalidRedirectUri => "invalid_redirect_uri",
            ErrorCode::InvalidClientMetadata => "invalid_client_metadata",
            ErrorCode::InvalidDpopProof => "invalid_dpop_proof",
            ErrorCode::UseDpopNonce => "use_dpop_nonce",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::RequestNotSupported => "request_not_supported",
            ErrorCode::AuthorizationPending => "authorization_pending",
            ErrorCode::SlowDown => "slow_down",
            ErrorCode::ExpiredToken => "expired_token",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::ServerError => "server_error",
        }
    }

    fn default_status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidClient | ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
            ErrorCode::AccessDenied | ErrorCode::InsufficientScope => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// An OAuth error response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: Cow<'static, str>,
    pub status: StatusCode,
    /// `WWW-Authenticate` challenge, for 401s.
    pub challenge: Option<&'static str>,
    /// The request field at fault, where the rule that refused it knows (client metadata): the
    /// admin API names it in its problem details; RFC 6749 responses do not carry it.
    pub field: Option<&'static str>,
    /// A server nonce for the client's next DPoP proof (RFC 9449 §8): the `DPoP-Nonce` header.
    pub dpop_nonce: Option<String>,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        let challenge = match code {
            ErrorCode::InvalidClient => Some("Basic realm=\"bulwark\""),
            ErrorCode::InvalidToken => Some("Bearer realm=\"bulwark\", error=\"invalid_token\""),
            ErrorCode::InsufficientScope => {
                Some("Bearer realm=\"bulwark\", error=\"insufficient_scope\", scope=\"openid\"")
            }
            _ => None,
        };
        Self {
            code,
            description: description.into(),
            status: code.default_status(),
            challenge,
            field: None,
            dpop_nonce: None,
        }
    }
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn invalid_request(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, d)
    }
    pub fn invalid_client(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidClient, d)
    }
    pub fn invalid_scope(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidScope, d)
    }
    pub fn invalid_client_metadata(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidClientMetadata, d)
    }
    pub fn invalid_redirect_uri(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRedirectUri, d)
    }
    pub fn invalid_dpop_proof(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidDpopProof, d)
    }
    /// At a protected resource (RFC 9449 §7.1): a 401 with a `DPoP` challenge naming the
    /// error (`invalid_token` or `invalid_dpop_proof`) and the algorithms we accept.
    pub fn dpop_challenge(mut self) -> Self {
        self.challenge = Some(match self.code {
            ErrorCode::InvalidDpopProof => {
                "DPoP realm=\"bulwark\", error=\"invalid_dpop_proof\", algs=\"ES256 RS256 PS256 EdDSA\""
            }
            // Valid, but not enough: a 403 as with a bearer token, in the scheme it came in.
            ErrorCode::InsufficientScope => {
                return self.with_challenge(
                    "DPoP realm=\"bulwark\", error=\"insufficient_scope\", scope=\"openid\", algs=\"ES256 RS256 PS256 EdDSA\"",
                );
            }
            _ => "DPoP realm=\"bulwark\", error=\"invalid_token\", algs=\"ES256 RS256 PS256 EdDSA\"",
        });
        self.status = StatusCode::UNAUTHORIZED;
        self
    }

    fn with_challenge(mut self, challenge: &'static str) -> Self {
        self.challenge = Some(challenge);
        self
    }
    pub fn invalid_token(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidToken, d)
    }
    pub fn unavailable() -> Self {
        Self::new(
            ErrorCode::TemporarilyUnavailable,
            "the service is temporarily unavailable; try again",
        )
    }
    pub fn server_error() -> Self {
        Self::new(
            ErrorCode::ServerError,
            "the server could not complete the request",
        )
    }
    pub fn too_large() -> Self {
        Self::invalid_request("request body too large").with_status(StatusCode::PAYLOAD_TOO_LARGE)
    }
    /// 429 with `Retry-After` (a rate limit of at most a minute's window).
    pub fn too_many_requests(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::TemporarilyUnavailable, d).with_status(StatusCode::TOO_MANY_REQUESTS)
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)
    }
}

impl std::error::Error for OAuthError {}

impl From<crate::domain::client::MetadataError> for OAuthError {
    fn from(e: crate::domain::client::MetadataError) -> Self {
        use crate::domain::client::MetadataErrorKind;
        let code = match e.kind {
            MetadataErrorKind::InvalidRedirectUri => ErrorCode::InvalidRedirectUri,
            MetadataErrorKind::InvalidClientMetadata => ErrorCode::InvalidClientMetadata,
        };
        let mut out = Self::new(code, e.reason);
        out.field = e.field;
        out
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(detail) => {
                tracing::error!(error = %detail, "store unavailable");
                OAuthError::unavailable()
            }
            other => {
                tracing::error!(error = %other, "unexpected store result");
                OAuthError::server_error()
            }
        }
    }
}

impl From<SignerError> for OAuthError {
    fn from(e: SignerError) -> Self {
        tracing::error!(error = %e, "signer failed");
        match e {
            SignerError::Unavailable(_) => OAuthError::unavailable(),
            SignerError::Invalid(_) => OAuthError::server_error(),
        }
    }
}
