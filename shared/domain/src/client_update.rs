//! The one rule for changing a registered client's metadata, whichever channel asks: the client
//! itself (RFC 7592), the tenant admin (admin API, console) or the operator (CLI). The new
//! metadata has already been validated as a registration by the client's own registrant
//! (`client::validate_metadata` with `Client::registrant`): an anonymous registration stays
//! within what anyone may register, whoever edits it.

use super::client::{ADMIN_SCOPE, Client, ClientMetadata, MetadataError};
use super::grant_type::{ClientAuthMethod, GrantType};

/// Who changes the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Changer {
    /// The client itself, with its registration access token (RFC 7592): it may keep or narrow
    /// its scopes and grants, never add to them, and a first-party client's redirect URIs are
    /// not its own to change.
    TheClient,
    /// The tenant admin or the operator.
    Admin,
}

/// What a change makes of the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changed {
    pub client: Client,
    /// A redirect URI was added: the client's consent epoch moved, so every consent given so
    /// far no longer counts (its users are asked again before a code goes to the new place).
    pub redirect_added: bool,
}

/// Apply `new` metadata to `old` at `now`, or say which field the change may not touch. For
/// every changer: no switch between public, secret and key-based authentication (a client
/// keeps the kind of credential it was registered with); an agent keeps the token exchange
/// grant; [`ADMIN_SCOPE`] is never added by a change (the operator creates such clients).
pub fn change_metadata(
    old: &Client,
    new: ClientMetadata,
    by: Changer,
    now: i64,
) -> Result<Changed, MetadataError> {
    let (was, is) = (&old.metadata, &new);
    let federated = |m: &ClientMetadata| m.auth_method() == ClientAuthMethod::Federated;
    if was.is_public() != is.is_public()
        || was.auth_method().uses_secret() != is.auth_method().uses_secret()
        || federated(was) != federated(is)
    {
        return Err(MetadataError::invalid(
            Some("token_endpoint_auth_method"),
            "a client cannot switch between public, secret, key-based (private_key_jwt) and federated authentication; register a new one",
        ));
    }
    if old.agent_of.is_some() && !is.allows_grant(GrantType::TokenExchange) {
        return Err(MetadataError::invalid(
            Some("grant_types"),
            "an agent must keep the token exchange grant",
        ));
    }
    if is.scopes().contains(ADMIN_SCOPE) && !was.scopes().contains(ADMIN_SCOPE) {
        return Err(MetadataError::invalid(
            Some("scope"),
            format!("{ADMIN_SCOPE} is given only by the operator"),
        ));
    }
    match by {
        Changer::TheClient => {
            let added_scopes = is.scopes().difference(&was.scopes());
            if !added_scopes.is_empty() {
                return Err(MetadataError::invalid(
                    Some("scope"),
                    format!(
                        "an update cannot add scopes ({}); register a new client or ask the tenant admin",
                        added_scopes.join(" ")
                    ),
                ));
            }
            let added_grants: Vec<&str> = is
                .grant_types
                .iter()
                .filter(|g| !was.grant_types.contains(g))
                .map(|g| g.as_str())
                .collect();
            if !added_grants.is_empty() {
                return Err(MetadataError::invalid(
                    Some("grant_types"),
                    format!(
                        "an update cannot add grant types ({}); register a new client or ask the tenant admin",
                        added_grants.join(" ")
                    ),
                ));
            }
            if old.first_party && is.redirect_uris != was.redirect_uris {
                return Err(MetadataError::invalid(
                    Some("redirect_uris"),
                    "a first-party client's redirect URIs can only be changed by the tenant admin",
                ));
            }
        }
        Changer::Admin => {}
    }
    let redirect_added = is.redirect_uris.iter().any(|r| !was.redirect_uris.contains(r));
    let mut client = old.clone();
    client.metadata = new;
    client.updated_at = now;
    if redirect_added {
        client.consent_epoch += 1;
    }
    Ok(Changed {
        client,
        redirect_added,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{KeyHosts, validate_metadata};
    use crate::grant_type::Registrant;
    use crate::tenant::{DcrPolicy, Tenant, TenantId};
    use serde_json::{Value, json};

    fn tenant() -> Tenant {
        let mut t = Tenant::new(TenantId::parse("acme").unwrap(), DcrPolicy::Token, None, 0);
        t.scopes.insert("api:read".into(), "Read".into());
        t.scopes.insert("api:write".into(), "Write".into());
        t
    }

    fn md(v: Value) -> ClientMetadata {
        validate_metadata(&v, &tenant(), Registrant::Operator, KeyHosts::LoopbackToo).unwrap()
    }

    fn client(m: ClientMetadata) -> Client {
        serde_json::from_value(json!({
            "client_id": "c1", "tenant": "acme", "metadata": m, "secret_expires_at": 0,
            "issued_at": 1, "updated_at": 1, "origin": "dcr",
        }))
        .unwrap()
    }

    fn code_client() -> Client {
        client(md(
            json!({"redirect_uris": ["https://a.example/cb"], "scope": "api:read",
            "grant_types": ["authorization_code", "refresh_token"]}),
        ))
    }

    fn field(r: Result<Changed, MetadataError>) -> Option<&'static str> {
        r.err().and_then(|e| e.field)
    }

    #[test]
    fn every_changer_keeps_the_kind_of_credential() {
        let old = code_client();
        for by in [Changer::TheClient, Changer::Admin] {
            let public = md(
                json!({"redirect_uris": ["https://a.example/cb"], "scope": "api:read",
                "token_endpoint_auth_method": "none"}),
            );
            assert_eq!(
                field(change_metadata(&old, public, by, 2)),
                Some("token_endpoint_auth_method")
            );
            let post = md(
                json!({"redirect_uris": ["https://a.example/cb"], "scope": "api:read",
                "grant_types": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_method": "client_secret_post"}),
            );
            assert!(
                change_metadata(&old, post, by, 2).is_ok(),
                "basic to post is the same family"
            );
        }
    }

    #[test]
    fn only_an_admin_adds_scopes_grants_or_a_first_party_redirect() {
        let mut old = code_client();
        let wider = md(
            json!({"redirect_uris": ["https://a.example/cb"], "scope": "api:read api:write",
            "grant_types": ["authorization_code", "refresh_token"]}),
        );
        assert_eq!(
            field(change_metadata(&old, wider.clone(), Changer::TheClient, 2)),
            Some("scope")
        );
        assert!(change_metadata(&old, wider, Changer::Admin, 2).is_ok());
        let more_grants = md(
            json!({"redirect_uris": ["https://a.example/cb"], "scope": "api:read",
            "grant_types": ["authorization_code", "refresh_token", "client_credentials"]}),
        );
        assert_eq!(
            field(change_metadata(&old, more_grants.clone(), Changer::TheClient, 2)),
            Some("grant_types")
        );
        assert!(change_metadata(&old, more_grants, Changer::Admin, 2).is_ok());
        old.first_party = true;
        let moved = md(
            json!({"redirect_uris": ["https://b.example/cb"], "scope": "api:read",
            "grant_types": ["authorization_code", "refresh_token"]}),
        );
        assert_eq!(
            field(change_metadata(&old, moved.clone(), Changer::TheClient, 2)),
            Some("redirect_uris")
        );
        let c = change_metadata(&old, moved, Changer::Admin, 2).unwrap();
        assert!(c.redirect_added);
        assert_eq!(
            c.client.consent_epoch,
            old.consent_epoch + 1,
            "a new place asks every user again"
        );
        assert_eq!(c.client.updated_at, 2);
    }

    #[test]
    fn agents_keep_token_exchange_and_nobody_adds_the_admin_scope() {
        let mut old = client(md(
            json!({"grant_types": ["urn:ietf:params:oauth:grant-type:token-exchange"],
            "scope": "api:read"}),
        ));
        old.agent_of = Some("app".into());
        let cc = md(json!({"grant_types": ["client_credentials"], "scope": "api:read"}));
        assert_eq!(
            field(change_metadata(&old, cc, Changer::Admin, 2)),
            Some("grant_types")
        );
        let machine = client(md(
            json!({"grant_types": ["client_credentials"], "scope": "api:read"}),
        ));
        let admin = md(json!({"grant_types": ["client_credentials"], "scope": "bulwark:admin"}));
        assert_eq!(
            field(change_metadata(&machine, admin, Changer::Admin, 2)),
            Some("scope")
        );
    }
}
