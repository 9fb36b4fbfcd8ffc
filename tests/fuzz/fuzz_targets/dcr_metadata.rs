//! `client::validate_metadata` on JSON documents (other input is skipped), for every registrant
//! from an anonymous registration to the operator. When a document is accepted: every redirect
//! URI passes `validate_redirect_uri`; the result, written back as JSON and validated again, is
//! accepted and unchanged (validation is idempotent); what a less trusted registrant may
//! register a more trusted one may too; and an anonymous registration holds no grant that
//! issues a token without a user's consent here.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use shared::domain::client::{ClientMetadata, KeyHosts, validate_metadata, validate_redirect_uri};
use shared::domain::grant_type::Registrant;
use shared::domain::tenant::{DcrPolicy, Tenant, TenantId};
use shared::domain::client::MetadataError;

/// The one call of the function under test, so that a change of its signature is made here.
fn validate(input: &Value, tenant: &Tenant, registrant: Registrant) -> Result<ClientMetadata, MetadataError> {
    validate_metadata(input, tenant, registrant, KeyHosts::LoopbackToo)
}

/// Every registrant, from the least trusted to the most.
const REGISTRANTS: [Registrant; 4] = [
    Registrant::Anonymous,
    Registrant::InitialAccessToken,
    Registrant::TenantAdmin,
    Registrant::Operator,
];

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
    let results: Vec<_> = REGISTRANTS.iter().map(|r| check(&input, tenant, *r)).collect();
    for (i, less) in results.iter().enumerate() {
        if let Ok(m) = less {
            for more in &results[i + 1..] {
                assert_eq!(more.as_ref().ok(), Some(m), "a more trusted registrant may register what {:?} may", REGISTRANTS[i]);
            }
        }
    }
    if let Ok(m) = &results[0] {
        for g in &m.grant_types {
            assert!(g.consented_by_user_here(), "an anonymous registration holds {g:?}");
        }
    }
});

fn check(input: &Value, tenant: &Tenant, origin: Registrant) -> Result<ClientMetadata, MetadataError> {
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
