//! Request bodies and query strings, read into the very types the OpenAPI document shows
//! (`request_body = T`, `params(T)`), each `#[serde(deny_unknown_fields)]`: an unknown field, a
//! missing one or a value of the wrong type is a 400 problem whose `field` names it.
//!
//! Which field failed comes from where the deserializer was (`serde_path_to_error`), and a
//! missing field from the required fields the document lists: never from an error's text.

use std::collections::HashSet;
use std::fmt::Display;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::{Deserialize, DeserializeOwned, Deserializer};
use serde_json::Value;
use serde_path_to_error::{Path, Segment};
use utoipa::openapi::Required;
use utoipa::openapi::path::ParameterIn;
use utoipa::openapi::{RefOr, Schema};
use utoipa::{IntoParams, PartialSchema};

use super::Problem;
use crate::http::{body_bytes, content_type_is};
use crate::secret::Secret;

/// A JSON object body read into `T` (415 for another content type, 413 beyond the size limit,
/// 400 for what is not JSON, not an object, or not a `T`).
pub(super) struct BodyOf<T>(pub T);

impl<S, T> FromRequest<S> for BodyOf<T>
where
    S: Send + Sync,
    T: DeserializeOwned + PartialSchema,
{
    type Rejection = Problem;

    async fn from_request(req: Request, _: &S) -> Result<Self, Problem> {
        // PATCH bodies are JSON merge patches (RFC 7396), which clients may label as such.
        if !content_type_is(req.headers(), "application/json")
            && !content_type_is(req.headers(), "application/merge-patch+json")
        {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "the body must be application/json (or application/merge-patch+json)",
            ));
        }
        let (_, bytes) = body_bytes(req).await.map_err(|e| {
            if e.status == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too-large",
                    "the body is too large",
                )
            } else {
                Problem::invalid(e.description.to_string())
            }
        })?;
        let value = serde_json::from_slice::<Value>(&bytes)
            .map_err(|_| Problem::invalid("the body is not valid JSON"))?;
        from_json(value).map(BodyOf)
    }
}

/// Read a JSON object into `T`.
pub(super) fn from_json<T: DeserializeOwned + PartialSchema>(value: Value) -> Result<T, Problem> {
    let Value::Object(obj) = &value else {
        return Err(Problem::invalid("the body must be a JSON object"));
    };
    let missing = match T::schema() {
        RefOr::T(Schema::Object(o)) => o.required.into_iter().find(|f| !obj.contains_key(f)),
        RefOr::T(_) | RefOr::Ref(_) => None,
    };
    serde_path_to_error::deserialize(value).map_err(|e| refused(e.path(), e.inner(), missing))
}

/// The query string read into `T`; a parameter given twice is refused.
pub(super) struct QueryOf<T>(pub T);

impl<S, T> FromRequestParts<S> for QueryOf<T>
where
    S: Send + Sync,
    T: DeserializeOwned + IntoParams,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        from_query(parts.uri.query().unwrap_or("")).map(QueryOf)
    }
}

/// Read a query string into `T`.
pub(super) fn from_query<T: DeserializeOwned + IntoParams>(raw: &str) -> Result<T, Problem> {
    let mut seen = HashSet::new();
    for (k, _) in form_urlencoded::parse(raw.as_bytes()) {
        if !seen.insert(k.clone()) {
            return Err(Problem::invalid_field(&k, format!("{k} is repeated")));
        }
    }
    let missing = T::into_params(|| Some(ParameterIn::Query))
        .into_iter()
        .find(|p| matches!(p.required, Required::True) && !seen.contains(p.name.as_str()))
        .map(|p| p.name);
    let query = serde_urlencoded::Deserializer::new(form_urlencoded::parse(raw.as_bytes()));
    serde_path_to_error::deserialize(query).map_err(|e| refused(e.path(), e.inner(), missing))
}

/// The problem for input that is not a `T`: the field the deserializer was in; an error outside
/// every field is a required field missing (`missing`, the first the document requires).
fn refused(path: &Path, why: impl Display, missing: Option<String>) -> Problem {
    match path.iter().next() {
        Some(Segment::Map { key }) => Problem::invalid_field(key, format!("{path}: {why}")),
        Some(Segment::Seq { .. } | Segment::Enum { .. } | Segment::Unknown) | None => match missing {
            Some(f) => Problem::invalid_field(&f, format!("{f} is required")),
            None => Problem::invalid(why.to_string()),
        },
    }
}

// ---- field readers, for `#[serde(default, deserialize_with = "...")]` -----------------------------

/// A field of a JSON merge patch (RFC 7396): `None` when absent (unchanged), `Some(None)` for
/// `null` (cleared), `Some(Some(v))` for a value. The field is written `Option<Option<T>>` (the
/// document then shows it nullable) with `#[serde(default, deserialize_with = "patch")]`.
pub(super) type Patch<T> = Option<Option<T>>;

pub(super) fn patch<'de, D, T>(d: D) -> Result<Patch<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A field that may be left out but is never `null`.
pub(super) fn not_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// A list for which `null` means empty.
pub(super) fn null_is_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<Vec<T>>::deserialize(d).map(Option::unwrap_or_default)
}

/// A password, held as a [`Secret`] from the moment it is read.
pub(super) fn password<'de, D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
    String::deserialize(d).map(Secret::new)
}

/// A new password that may be left out but is never `null`.
pub(super) fn new_password<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    password(d).map(Some)
}
