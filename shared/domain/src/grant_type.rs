//! The grant types and client-authentication methods this server implements, and what each
//! implies: one table that the token route, discovery, registration validation and the CLI all
//! read. A new grant is one variant here, one module in `service/`, and one line in
//! `shared::service::token_endpoint`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An enum and its `ALL`, every variant in declaration order, made from the one declaration:
/// a new variant cannot be left out of `ALL` (discovery, parsing and the tables iterate it).
macro_rules! enum_with_all {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident),* $(,)? }) => {
        $(#[$meta])*
        $vis enum $name {
            $($(#[$vmeta])* $variant),*
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
        }
    };
}

enum_with_all! {
    /// A grant type (RFC 6749 §4, RFC 8693), in the order discovery lists them.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum GrantType {
        AuthorizationCode,
        ClientCredentials,
        RefreshToken,
        /// RFC 8693: an agent exchanges a user's token for one that says it acts for the user.
        TokenExchange,
        /// RFC 7523 §2.1: an assertion from an identity provider the tenant trusts, for a user
        /// linked to its subject (federation).
        JwtBearer,
        /// RFC 6749 §4.3, deprecated (RFC 9700 §2.4): only where the tenant opts in, never
        /// advertised.
        Password,
        /// RFC 8628: a device without a browser polls while its user approves on another one.
        DeviceCode,
    }
}

/// Who registers a client, from the least trusted to the most: what a client may hold depends
/// on it ([`GrantType::least_registrant`]), at registration and again at every use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Registrant {
    /// Anyone at all: open DCR without an initial access token, or a client metadata document
    /// met by naming its URL. Such a client holds only grants under which a user consents at
    /// this server to every token.
    Anonymous,
    /// DCR with an initial access token the tenant admin or operator handed out.
    InitialAccessToken,
    /// The tenant admin: the admin API and the console.
    TenantAdmin,
    /// The operator: the `bulwark` CLI (and the server's own console client).
    Operator,
}

impl Registrant {
    /// Whether the client described itself (DCR, a metadata document): then it is held to what
    /// strangers may have (no restricted scopes, no admin-only grants).
    pub const fn is_stranger(self) -> bool {
        match self {
            Registrant::Anonymous | Registrant::InitialAccessToken => true,
            Registrant::TenantAdmin | Registrant::Operator => false,
        }
    }
}

/// Everything this server decides about one grant type: one row of [`GrantType::rules`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrantRules {
    /// The `grant_type` value on the wire (and in audit details).
    pub name: &'static str,
    /// Only an authenticated (confidential) client may use it.
    pub needs_confidential_client: bool,
    /// Discovery lists it (the deprecated password grant is never advertised).
    pub advertised: bool,
    /// A client registered for it may also hold refresh tokens.
    pub issues_refresh_tokens: bool,
    /// Every token of it stands on a user's consent given at this server's consent page: the
    /// only grants an anonymous registration may hold.
    pub consented_by_user_here: bool,
    /// The least trusted registrant that may give a client this grant.
    pub least_registrant: Registrant,
    /// Its tokens speak for a user (`sub` is a user), not for the client itself.
    pub acts_for_user: bool,
}

impl GrantType {
    /// The grant table: one exhaustive match, one row per grant, so that a new variant makes
    /// the compiler ask every question (no property defaults to an answer).
    ///
    /// Anonymous registrations get only what a user consents to here; a machine client needs
    /// at least an initial access token; acting for users (token exchange) or for a federation
    /// (JWT bearer) is the tenant admin's to decide. The password grant is further subject to
    /// the tenant's opt-in.
    pub const fn rules(self) -> GrantRules {
        match self {
            GrantType::AuthorizationCode => GrantRules {
                name: "authorization_code",
                needs_confidential_client: false,
                advertised: true,
                issues_refresh_tokens: true,
                consented_by_user_here: true,
                least_registrant: Registrant::Anonymous,
                acts_for_user: true,
            },
            GrantType::ClientCredentials => GrantRules {
                name: "client_credentials",
                needs_confidential_client: true,
                advertised: true,
                issues_refresh_tokens: false,
                consented_by_user_here: false,
                least_registrant: Registrant::InitialAccessToken,
                acts_for_user: false,
            },
            GrantType::RefreshToken => GrantRules {
                name: "refresh_token",
                needs_confidential_client: false,
                advertised: true,
                issues_refresh_tokens: false,
                consented_by_user_here: true,
                least_registrant: Registrant::Anonymous,
                acts_for_user: true,
            },
            GrantType::TokenExchange => GrantRules {
                name: "urn:ietf:params:oauth:grant-type:token-exchange",
                needs_confidential_client: true,
                advertised: true,
                issues_refresh_tokens: false,
                consented_by_user_here: false,
                least_registrant: Registrant::TenantAdmin,
                acts_for_user: true,
            },
            GrantType::Password => GrantRules {
                name: "password",
                needs_confidential_client: true,
                advertised: false,
                issues_refresh_tokens: true,
                consented_by_user_here: false,
                least_registrant: Registrant::InitialAccessToken,
                acts_for_user: true,
            },
            GrantType::DeviceCode => GrantRules {
                name: "urn:ietf:params:oauth:grant-type:device_code",
                needs_confidential_client: false,
                advertised: true,
                issues_refresh_tokens: true,
                consented_by_user_here: true,
                // Not anonymous: a device client has no redirect URI to anchor its name, so an
                // open registration would be any name on our own confirmation page (RFC 8628
                // §5.4 remote phishing).
                least_registrant: Registrant::InitialAccessToken,
                acts_for_user: true,
            },
            GrantType::JwtBearer => GrantRules {
                name: "urn:ietf:params:oauth:grant-type:jwt-bearer",
                needs_confidential_client: true,
                advertised: true,
                issues_refresh_tokens: false,
                consented_by_user_here: false,
                least_registrant: Registrant::TenantAdmin,
                acts_for_user: true,
            },
        }
    }

    pub const fn as_str(self) -> &'static str {
        self.rules().name
    }

    pub fn parse(s: &str) -> Option<GrantType> {
        Self::ALL.iter().copied().find(|g| g.as_str() == s)
    }

    /// Whether the grant needs an authenticated (confidential) client.
    pub const fn needs_confidential_client(self) -> bool {
        self.rules().needs_confidential_client
    }

    /// Whether discovery advertises it.
    pub const fn advertised(self) -> bool {
        self.rules().advertised
    }

    /// Whether a client registered for it may also hold refresh tokens.
    pub const fn issues_refresh_tokens(self) -> bool {
        self.rules().issues_refresh_tokens
    }

    /// Whether every token of this grant stands on a user's consent given at this server (the
    /// authorization endpoint's consent page): the only grants an anonymous registration may
    /// hold. A machine grant (client credentials), an assertion from elsewhere (JWT bearer), a
    /// user's password handed to the client, or acting for users (token exchange) does not.
    pub const fn consented_by_user_here(self) -> bool {
        self.rules().consented_by_user_here
    }

    /// The least trusted registrant that may give a client this grant.
    pub const fn least_registrant(self) -> Registrant {
        self.rules().least_registrant
    }

    /// Whether its tokens speak for a user.
    pub const fn acts_for_user(self) -> bool {
        self.rules().acts_for_user
    }

    /// Whether `registrant` may give a client this grant (the tenant's password opt-in aside).
    pub fn registrable_by(self, registrant: Registrant) -> bool {
        registrant >= self.least_registrant()
            && (registrant > Registrant::Anonymous || self.consented_by_user_here())
    }

    /// The grant types discovery lists.
    pub fn advertised_names() -> Vec<&'static str> {
        Self::ALL
            .iter()
            .filter(|g| g.advertised())
            .map(|g| g.as_str())
            .collect()
    }
}

impl Serialize for GrantType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for GrantType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        GrantType::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown grant type {s}")))
    }
}

impl Serialize for ClientAuthMethod {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ClientAuthMethod {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ClientAuthMethod::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown client authentication method {s}")))
    }
}

/// One row of [`ClientAuthMethod::rules`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthMethodRules {
    /// The `token_endpoint_auth_method` value on the wire.
    pub name: &'static str,
    /// It proves the client's identity.
    pub confidential: bool,
    /// It proves it with a shared secret the client got at registration.
    pub uses_secret: bool,
    /// Discovery lists it (and a registration error names it among the supported ones).
    pub advertised: bool,
    /// The least trusted registrant that may give a client this method.
    pub least_registrant: Registrant,
}

enum_with_all! {
    /// How a client authenticates at the token, introspection and revocation endpoints.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum ClientAuthMethod {
        ClientSecretBasic,
        ClientSecretPost,
        /// A JWT signed with one of the client's registered keys (RFC 7523 §2.2): no secret.
        PrivateKeyJwt,
        /// A public client names itself with `client_id` and proves nothing (PKCE does the work).
        None,
        /// `federated`: the client sends its `client_id` and, as its RFC 7523 §2.2 client
        /// assertion, a token its workload platform issued (GitHub Actions, Kubernetes), from an
        /// issuer the tenant trusts for workloads, about a subject registered for the client
        /// (`client::FederatedCredential`, `domain::workload`). No secret, no keys of its own.
        Federated,
    }
}

impl ClientAuthMethod {
    /// The method table: its wire name, whether it proves the client's identity (introspection
    /// and machine grants are for these only), whether it does so with a shared secret (the
    /// client gets one at registration), whether discovery lists it, and who may register it.
    /// One exhaustive match.
    ///
    /// `federated` binds a client to an identity another party asserts (a workload platform's
    /// subject): only the tenant admin may make that binding, never a registration (DCR, a
    /// metadata document) nor the client itself (RFC 7592 is held to its registrant). It is a
    /// profile of RFC 7523 §2.2 (`private_key_jwt`'s assertion type), so discovery adds nothing.
    pub const fn rules(self) -> AuthMethodRules {
        use Registrant::{Anonymous, TenantAdmin};
        let (name, confidential, uses_secret, advertised, least_registrant) = match self {
            ClientAuthMethod::ClientSecretBasic => ("client_secret_basic", true, true, true, Anonymous),
            ClientAuthMethod::ClientSecretPost => ("client_secret_post", true, true, true, Anonymous),
            ClientAuthMethod::PrivateKeyJwt => ("private_key_jwt", true, false, true, Anonymous),
            ClientAuthMethod::None => ("none", false, false, true, Anonymous),
            ClientAuthMethod::Federated => ("federated", true, false, false, TenantAdmin),
        };
        AuthMethodRules {
            name,
            confidential,
            uses_secret,
            advertised,
            least_registrant,
        }
    }

    /// Whether `registrant` may give a client this method.
    pub fn registrable_by(self, registrant: Registrant) -> bool {
        registrant >= self.rules().least_registrant
    }

    pub const fn as_str(self) -> &'static str {
        self.rules().name
    }

    pub fn parse(s: &str) -> Option<ClientAuthMethod> {
        Self::ALL.iter().copied().find(|m| m.as_str() == s)
    }

    /// A method that proves the client's identity.
    pub const fn is_confidential(self) -> bool {
        self.rules().confidential
    }

    /// A method that proves it with a shared secret.
    pub const fn uses_secret(self) -> bool {
        self.rules().uses_secret
    }

    /// Every advertised method, for discovery.
    pub fn names() -> Vec<&'static str> {
        Self::ALL
            .iter()
            .filter(|m| m.rules().advertised)
            .map(|m| m.as_str())
            .collect()
    }

    /// The advertised confidential methods, for discovery.
    pub fn confidential_names() -> Vec<&'static str> {
        Self::ALL
            .iter()
            .filter(|m| m.rules().advertised && m.is_confidential())
            .map(|m| m.as_str())
            .collect()
    }
}

/// The `token_type` of an issued access token (RFC 6749 §7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum TokenType {
    Bearer,
    /// RFC 9449 §5: bound to the key of the request's DPoP proof.
    DPoP,
}

/// RFC 8693 §3 token type identifiers this server issues or accepts.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// A successful token response (RFC 6749 §5.1, RFC 8693 §2.2.1, OIDC Core §3.1.3.3).
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: TokenType,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<&'static str>,
}

impl TokenResponse {
    /// An access token and nothing else yet: a `DPoP` token if it is bound to a key (its
    /// claims carry `cnf.jkt`), else a bearer token.
    pub fn issued(
        access_token: String,
        expires_in: i64,
        scope: Option<String>,
        bound_to: Option<&crate::dpop::Jkt>,
    ) -> Self {
        let mut r = Self::bearer(access_token, expires_in, scope);
        if bound_to.is_some() {
            r.token_type = TokenType::DPoP;
        }
        r
    }

    /// A bearer access token and nothing else yet.
    pub fn bearer(access_token: String, expires_in: i64, scope: Option<String>) -> Self {
        Self {
            access_token,
            token_type: TokenType::Bearer,
            expires_in,
            scope,
            refresh_token: None,
            id_token: None,
            issued_token_type: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknowns_are_refused() {
        for g in GrantType::ALL {
            assert_eq!(GrantType::parse(g.as_str()), Some(*g));
        }
        for m in ClientAuthMethod::ALL {
            assert_eq!(ClientAuthMethod::parse(m.as_str()), Some(*m));
        }
        assert!(!GrantType::Password.advertised());
        assert!(!GrantType::advertised_names().contains(&"password"));
        for bad in [
            "",
            "implicit",
            "AUTHORIZATION_CODE",
            "urn:ietf:params:oauth:grant-type:saml2-bearer",
        ] {
            assert_eq!(GrantType::parse(bad), None, "{bad}");
        }
        assert_eq!(ClientAuthMethod::parse("client_secret_jwt"), None);
        assert_eq!(
            ClientAuthMethod::confidential_names(),
            ["client_secret_basic", "client_secret_post", "private_key_jwt"]
        );
        assert!(
            !ClientAuthMethod::names().contains(&"federated"),
            "discovery adds nothing"
        );
    }

    /// Who may give a client each authentication method: `federated` (a workload identity
    /// another party asserts) only the tenant admin and the operator.
    #[test]
    fn who_may_register_each_auth_method() {
        use ClientAuthMethod::*;
        use Registrant::*;
        let table: &[(ClientAuthMethod, [bool; 4])] = &[
            //                   Anonymous, IAT, TenantAdmin, Operator
            (ClientSecretBasic, [true, true, true, true]),
            (ClientSecretPost, [true, true, true, true]),
            (PrivateKeyJwt, [true, true, true, true]),
            (None, [true, true, true, true]),
            (Federated, [false, false, true, true]),
        ];
        assert_eq!(table.len(), ClientAuthMethod::ALL.len());
        for (m, row) in table {
            for (r, want) in [Anonymous, InitialAccessToken, TenantAdmin, Operator]
                .iter()
                .zip(row)
            {
                assert_eq!(m.registrable_by(*r), *want, "{m:?} by {r:?}");
            }
        }
    }

    /// Who may give a client each grant: an anonymous registration only what a user consents to
    /// here; machine grants need an initial access token; acting for users or a federation, the
    /// tenant admin. Every grant, every registrant.
    #[test]
    fn who_may_register_each_grant() {
        use GrantType::*;
        use Registrant::*;
        let table: &[(GrantType, [bool; 4])] = &[
            //                   Anonymous, IAT, TenantAdmin, Operator
            (AuthorizationCode, [true, true, true, true]),
            (RefreshToken, [true, true, true, true]),
            (ClientCredentials, [false, true, true, true]),
            (Password, [false, true, true, true]),
            (TokenExchange, [false, false, true, true]),
            (JwtBearer, [false, false, true, true]),
            (DeviceCode, [false, true, true, true]),
        ];
        assert_eq!(table.len(), GrantType::ALL.len(), "every grant is in the table");
        for (g, expected) in table {
            for (r, want) in [Anonymous, InitialAccessToken, TenantAdmin, Operator]
                .iter()
                .zip(expected)
            {
                assert_eq!(g.registrable_by(*r), *want, "{g:?} by {r:?}");
            }
            // Nothing an anonymous client may hold issues a token without a user's consent here
            // (the converse does not hold: the device grant is consented here, but no redirect
            // URI anchors its client's name, so it needs an initial access token).
            if g.registrable_by(Anonymous) {
                assert!(g.consented_by_user_here(), "{g:?}");
            }
        }
        assert!(Anonymous.is_stranger() && InitialAccessToken.is_stranger());
        assert!(!TenantAdmin.is_stranger() && !Operator.is_stranger());
    }

    #[test]
    fn the_response_serialises_as_the_rfcs_say() {
        let mut r = TokenResponse::bearer("t".into(), 60, None);
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"access_token": "t", "token_type": "Bearer", "expires_in": 60})
        );
        r.issued_token_type = Some(ACCESS_TOKEN_TYPE);
        r.scope = Some("a b".into());
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["issued_token_type"], ACCESS_TOKEN_TYPE);
        assert_eq!(v["scope"], "a b");
        assert!(v.get("refresh_token").is_none());
    }
}
