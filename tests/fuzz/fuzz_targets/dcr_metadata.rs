//! `client::validate_metadata` on JSON documents (other input is skipped), for a DCR and for an
//! admin registration. When a document is accepted: every redirect URI passes
//! `validate_redirect_uri`; the result, written back as JSON and validated again, is accepted
//! and unchanged (validation is idempotent); and what a DCR registration may register an admin
//! may too.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use shared::domain::client::{ClientMetadata, Origin, validate_metadata, validate_redirect_uri};
use shared::domain::tenant::{DcrPolicy, Tenant, TenantId};
use shared::error::OAuthError;

/// The one call of the function under test, so that a change of its signature is made here.
fn validate(input: &Value, tenant: &Tenant, origin: Origin) -> Result<ClientMetadata, OAuthError> {
    validate_metadata(input, tenant, origin)
}

/// A tenant with the seed scopes, two API scopes and one restricted (admin-only) scope.
static TENANT: LazyLock<Tenant> = LazyLock::new(|| {
    let mut t = Tenant::new(
        TenantId::parse("acme").expect("tenant id"),
        DcrPolicy::Open,
        None,
        0,
    );
    t.scopes.insert("api:read".into(), "Read".into());
    t.scopes.insert("api:write".into(), "Write".into());
    t.scopes.insert("api:admin".into(), "Administer".into());
    t.restricted_scopes.insert("api:admin".into());
    t
});

fuzz_target!(|data: &[u8]| {
    let Ok(input) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let tenant = &*TENANT;
    let dcr = check(&input, tenant, Origin::Dcr);
    let admin = check(&input, tenant, Origin::Admin);
    if let Ok(m) = &dcr {
        assert_eq!(admin.as_ref().ok(), Some(m), "an admin may register what DCR may");
    }
});

fn check(input: &Value, tenant: &Tenant, origin: Origin) -> Result<ClientMetadata, OAuthError> {
    let m = validate(input, tenant, origin)?;
    for uri in &m.redirect_uris {
        assert_eq!(
            validate_redirect_uri(uri),
            Ok(()),
            "accepted redirect URI {uri:?}"
        );
    }
    let again = validate(&Value::Object(m.to_json()), tenant, origin)
        .unwrap_or_else(|e| panic!("its own output refused ({origin:?}): {e:?}\n{m:?}"));
    assert_eq!(again, m, "validating twice changed the metadata ({origin:?})");
    Ok(m)
}
