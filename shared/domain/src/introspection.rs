//! Who may introspect which token (RFC 7662 §4: the server decides what it tells whom). A live
//! token is described only to a caller with one of these rights; to anyone else it is
//! `{"active": false}`, as if it did not exist.
//!
//! | token | may be introspected by |
//! |---|---|
//! | access token | the client it was issued to |
//! | an agent's delegated access token | also the app whose user grant it was exchanged from |
//! | access token for audience `A` | also a client the tenant admin made the resource server for `A` |
//! | refresh token | the client it was issued to, only |
//!
//! An anonymous registration (open DCR, a metadata document) is never a resource server, so it
//! learns about its own tokens only.

use super::client::Client;
use super::grant_type::Registrant;
use super::tenant::Tenant;

/// Why a caller may see a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Right {
    /// The token was issued to the caller.
    IssuedToCaller,
    /// A delegated token of the caller's agent, exchanged from a grant of the caller's users.
    AppOfItsAgent,
    /// The token is for an audience the caller serves ([`Client::resource_server_for`]).
    ServesItsAudience,
}

/// What introspection knows of a live token, for [`may_introspect`].
#[derive(Clone, Copy, Debug)]
pub enum Token<'a> {
    Access {
        client_id: &'a str,
        aud: &'a str,
        /// For a user token: the app its grant is for (a delegated token's differs from
        /// `client_id`, the agent).
        grant_app: Option<&'a str>,
    },
    Refresh {
        client_id: &'a str,
    },
}

/// Whether `caller` may be told about `token`, and why.
pub fn may_introspect(caller: &Client, token: Token<'_>) -> Option<Right> {
    match token {
        Token::Refresh { client_id } => (client_id == caller.client_id).then_some(Right::IssuedToCaller),
        Token::Access {
            client_id,
            aud,
            grant_app,
        } => {
            if client_id == caller.client_id {
                Some(Right::IssuedToCaller)
            } else if grant_app == Some(caller.client_id.as_str()) {
                Some(Right::AppOfItsAgent)
            } else if may_serve_resources(caller) && caller.resource_server_for.iter().any(|r| r == aud) {
                Some(Right::ServesItsAudience)
            } else {
                None
            }
        }
    }
}

/// Whether a client may be a resource server (introspect others' tokens for its audiences):
/// a confidential client that an initial access token, the tenant admin or the operator let in,
/// never an anonymous registration.
pub fn may_serve_resources(c: &Client) -> bool {
    c.registrant() > Registrant::Anonymous && c.metadata.auth_method().is_confidential()
}

/// The most resources one client may serve.
pub const MAX_SERVED: usize = 20;

/// Check a `resource_server_for` list for `c` in `tenant`: each one of the tenant's resources
/// (its default audience among them), at most [`MAX_SERVED`], and only on a client that
/// [`may_serve_resources`]. Returns the list deduplicated, in order.
pub fn check_resource_server_for(
    c: &Client,
    tenant: &Tenant,
    list: &[String],
) -> Result<Vec<String>, String> {
    if list.is_empty() {
        return Ok(Vec::new());
    }
    if !may_serve_resources(c) {
        return Err(
            "only a confidential client made by the tenant admin, the operator or with an initial access token can be a resource server"
                .into(),
        );
    }
    if list.len() > MAX_SERVED {
        return Err(format!("at most {MAX_SERVED} resources"));
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for r in list {
        if !tenant.resources.contains(r) {
            return Err(format!(
                "{} is not one of the tenant's resources",
                r.chars()
                    .filter(|c| c.is_ascii_graphic())
                    .take(100)
                    .collect::<String>()
            ));
        }
        if !out.contains(r) {
            out.push(r.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{ClientMetadata, Origin};
    use crate::grant_type::{ClientAuthMethod, GrantType};
    use crate::tenant::{DcrPolicy, TenantId};

    fn client(id: &str, origin: Origin, open: bool, method: &str, serves: &[&str]) -> Client {
        let md = ClientMetadata {
            redirect_uris: vec![],
            grant_types: vec![GrantType::ClientCredentials],
            response_types: vec![],
            token_endpoint_auth_method: ClientAuthMethod::parse(method).unwrap(),
            client_name: None,
            client_uri: None,
            logo_uri: None,
            tos_uri: None,
            policy_uri: None,
            scope: String::new(),
            contacts: vec![],
            software_id: None,
            software_version: None,
            jwks: None,
            jwks_uri: None,
            application_type: None,
            dpop_bound_access_tokens: false,
            require_pushed_authorization_requests: false,
            federated_credential: None,
        };
        let mut c = Client::new(id.into(), TenantId::parse("acme").unwrap(), md, origin, 0);
        c.open_registration = open;
        c.resource_server_for = serves.iter().map(|s| s.to_string()).collect();
        c
    }

    #[test]
    fn who_may_introspect_what() {
        use Right::*;
        let api = "https://api.acme.example";
        let rs = client("rs", Origin::Api, false, "client_secret_basic", &[api]);
        let app = client("app", Origin::Admin, false, "client_secret_basic", &[]);
        let anon = client("anon", Origin::Dcr, true, "private_key_jwt", &[api]);
        let iat = client("iat", Origin::Dcr, false, "private_key_jwt", &[api]);
        let access = |client_id, aud, grant_app| Token::Access {
            client_id,
            aud,
            grant_app,
        };
        let cases: &[(&Client, Token, Option<Right>)] = &[
            // Its own tokens, access or refresh: always.
            (&app, access("app", "urn:x", Some("app")), Some(IssuedToCaller)),
            (&anon, access("anon", api, None), Some(IssuedToCaller)),
            (&app, Token::Refresh { client_id: "app" }, Some(IssuedToCaller)),
            // Another client's: only as the resource server of its audience...
            (&rs, access("app", api, Some("app")), Some(ServesItsAudience)),
            (&rs, access("app", "https://other.example", Some("app")), None),
            (&app, access("other", api, Some("other")), None),
            (&iat, access("app", api, Some("app")), Some(ServesItsAudience)),
            // ...which an anonymous registration never is, whatever its record says.
            (&anon, access("app", api, Some("app")), None),
            // An app sees its agents' delegated tokens.
            (&app, access("agent", "urn:x", Some("app")), Some(AppOfItsAgent)),
            // Nobody else's refresh token, resource server or not.
            (&rs, Token::Refresh { client_id: "app" }, None),
            (&app, Token::Refresh { client_id: "rs" }, None),
        ];
        for (caller, token, want) in cases {
            assert_eq!(
                may_introspect(caller, *token),
                *want,
                "{} on {token:?}",
                caller.client_id
            );
        }
        // A public client is no resource server.
        let public = client("pub", Origin::Api, false, "none", &[api]);
        assert_eq!(may_introspect(&public, access("app", api, None)), None);
    }

    #[test]
    fn resource_server_lists_are_the_tenants_resources_on_vetted_confidential_clients() {
        let mut t = crate::tenant::Tenant::new(TenantId::parse("acme").unwrap(), DcrPolicy::Open, None, 0);
        t.resources.push("https://api.acme.example".into());
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let admin_made = client("rs", Origin::Api, false, "client_secret_basic", &[]);
        assert_eq!(
            check_resource_server_for(
                &admin_made,
                &t,
                &l(&[
                    "https://api.acme.example",
                    "urn:bulwark:tenant:acme",
                    "https://api.acme.example"
                ])
            ),
            Ok(l(&["https://api.acme.example", "urn:bulwark:tenant:acme"]))
        );
        assert!(check_resource_server_for(&admin_made, &t, &l(&["https://evil.example"])).is_err());
        assert!(
            check_resource_server_for(&admin_made, &t, &l(&["https://api.acme.example"; MAX_SERVED + 1]))
                .is_err()
        );
        for (c, ok) in [
            (client("a", Origin::Dcr, true, "private_key_jwt", &[]), false),
            (client("c", Origin::Cimd, true, "private_key_jwt", &[]), false),
            (client("p", Origin::Admin, false, "none", &[]), false),
            (client("i", Origin::Dcr, false, "private_key_jwt", &[]), true),
            (client("o", Origin::Admin, false, "private_key_jwt", &[]), true),
        ] {
            assert_eq!(
                check_resource_server_for(&c, &t, &l(&["https://api.acme.example"])).is_ok(),
                ok,
                "{}",
                c.client_id
            );
            // Clearing is always allowed.
            assert_eq!(check_resource_server_for(&c, &t, &[]), Ok(vec![]));
        }
    }
}
