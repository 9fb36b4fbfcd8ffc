//! Validating RFC 7591 client metadata: [`validate_metadata`], one validator per field, and the
//! rules for what a redirect URI and a displayed text may be.

use super::*;

/// Why client metadata was refused: the field at fault and a reason fit to show the registrant.
/// `http` maps it to RFC 7591 §3.2.2 (`invalid_redirect_uri` / `invalid_client_metadata`) or to
/// an RFC 9457 problem naming the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataError {
    pub kind: MetadataErrorKind,
    /// The metadata field at fault; `None` when the document as a whole is (not a JSON object).
    pub field: Option<&'static str>,
    pub reason: String,
}

/// The two registration errors RFC 7591 §3.2.2 tells apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetadataErrorKind {
    InvalidRedirectUri,
    InvalidClientMetadata,
}

impl MetadataError {
    pub fn invalid(field: Option<&'static str>, reason: impl Into<String>) -> Self {
        Self {
            kind: MetadataErrorKind::InvalidClientMetadata,
            field,
            reason: reason.into(),
        }
    }
    pub fn redirect_uri(field: Option<&'static str>, reason: impl Into<String>) -> Self {
        Self {
            kind: MetadataErrorKind::InvalidRedirectUri,
            field,
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for MetadataError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for MetadataError {}

/// Validate RFC 7591 client metadata against what this server supports and the tenant's scope
/// catalog, for a client registered by `registrant`: the grants it may hold
/// ([`GrantType::registrable_by`]), restricted scopes for admin-made clients only,
/// [`ADMIN_SCOPE`] for the operator's. Unknown fields are ignored (RFC 7591 §2); server-managed
/// fields are refused.
pub fn validate_metadata(
    input: &Value,
    tenant: &Tenant,
    registrant: Registrant,
    key_hosts: KeyHosts,
) -> Result<ClientMetadata, MetadataError> {
    validate(input, tenant, registrant, key_hosts, None)
}

/// [`validate_metadata`] for a change to a registered client whose metadata is `old`: a
/// `federated_credential` left as it was is not judged again against the tenant's trusted
/// issuers (authentication checks that trust at every use), so the client can still be
/// changed — disabled, narrowed — after its issuer stopped being trusted; a credential set or
/// changed must name an issuer trusted for workloads now.
pub fn validate_metadata_change(
    input: &Value,
    tenant: &Tenant,
    registrant: Registrant,
    key_hosts: KeyHosts,
    old: &ClientMetadata,
) -> Result<ClientMetadata, MetadataError> {
    validate(
        input,
        tenant,
        registrant,
        key_hosts,
        old.federated_credential.as_ref(),
    )
}

fn validate(
    input: &Value,
    tenant: &Tenant,
    registrant: Registrant,
    key_hosts: KeyHosts,
    kept: Option<&crate::workload::FederatedCredential>,
) -> Result<ClientMetadata, MetadataError> {
    let obj = input
        .as_object()
        .ok_or_else(|| MetadataError::invalid(None, "the body must be a JSON object"))?;

    let redirect_uris = string_list(obj, "redirect_uris", MAX_REDIRECT_URIS)?;
    for uri in &redirect_uris {
        validate_redirect_uri(uri).map_err(|why| MetadataError::redirect_uri(Some("redirect_uris"), why))?;
    }

    let grant_types = grant_types(obj, tenant, registrant)?;
    let uses_code = grant_types.contains(&GrantType::AuthorizationCode);
    let response_types = response_types(obj, uses_code)?;
    if uses_code && redirect_uris.is_empty() {
        return Err(MetadataError::redirect_uri(
            Some("redirect_uris"),
            "authorization_code needs at least one redirect_uri",
        ));
    }
    let method = auth_method(obj)?;
    if !method.registrable_by(registrant) {
        return Err(MetadataError::invalid(
            Some("token_endpoint_auth_method"),
            format!(
                "token_endpoint_auth_method {} is for clients the tenant admin creates",
                method.as_str()
            ),
        ));
    }
    let federated_credential = federated_credential(obj, method, tenant, kept)?;
    if !method.is_confidential()
        && let Some(g) = grant_types.iter().find(|g| g.needs_confidential_client())
    {
        return Err(MetadataError::invalid(
            Some("grant_types"),
            format!(
                "a public client (token_endpoint_auth_method none) cannot use {}",
                g.as_str()
            ),
        ));
    }

    let scopes = scope(obj, tenant, registrant, &grant_types)?;

    let client_name = text(obj, "client_name", MAX_NAME)?;
    let client_uri = web_uri(obj, "client_uri")?;
    let logo_uri = web_uri(obj, "logo_uri")?;
    let tos_uri = web_uri(obj, "tos_uri")?;
    let policy_uri = web_uri(obj, "policy_uri")?;
    let contacts = contacts(obj)?;
    let software_id = text(obj, "software_id", MAX_NAME)?;
    let software_version = text(obj, "software_version", 64)?;
    no_server_fields(obj)?;
    let (jwks, jwks_uri) = keys(obj, method, key_hosts)?;

    let application_type = application_type(obj)?;
    let dpop_bound_access_tokens = flag(obj, "dpop_bound_access_tokens")?;
    let require_pushed_authorization_requests = flag(obj, "require_pushed_authorization_requests")?;

    Ok(ClientMetadata {
        application_type,
        dpop_bound_access_tokens,
        require_pushed_authorization_requests,
        redirect_uris,
        grant_types,
        response_types,
        token_endpoint_auth_method: method,
        client_name,
        client_uri,
        logo_uri,
        tos_uri,
        policy_uri,
        scope: scopes.to_scope_string(),
        contacts,
        software_id,
        software_version,
        jwks,
        jwks_uri,
        federated_credential,
    })
}

/// `federated_credential`: the workload identity of a `federated` client (required for one,
/// refused for any other), its issuer one the tenant trusts for workloads — unless it is the
/// client's credential as `kept` (unchanged by this change).
fn federated_credential(
    obj: &Map<String, Value>,
    method: ClientAuthMethod,
    tenant: &Tenant,
    kept: Option<&crate::workload::FederatedCredential>,
) -> Result<Option<crate::workload::FederatedCredential>, MetadataError> {
    const FIELD: Option<&str> = Some("federated_credential");
    let given = obj.get("federated_credential").filter(|v| !v.is_null());
    match (method, given) {
        (ClientAuthMethod::Federated, Some(v)) => {
            let c = crate::workload::read_federated_credential(v)
                .map_err(|why| MetadataError::invalid(FIELD, why))?;
            if kept != Some(&c) && !tenant.trusted_issuer(&c.issuer).is_some_and(|t| t.workload) {
                return Err(MetadataError::invalid(
                    FIELD,
                    format!(
                        "federated_credential issuer {} is not trusted by this tenant for workloads (issuer add --workload)",
                        printable(&c.issuer)
                    ),
                ));
            }
            Ok(Some(c))
        }
        (ClientAuthMethod::Federated, None) => Err(MetadataError::invalid(
            FIELD,
            "a federated client needs federated_credential: the workload issuer and subjects",
        )),
        (
            ClientAuthMethod::ClientSecretBasic
            | ClientAuthMethod::ClientSecretPost
            | ClientAuthMethod::PrivateKeyJwt
            | ClientAuthMethod::None,
            Some(_),
        ) => Err(MetadataError::invalid(
            FIELD,
            "federated_credential is for federated clients",
        )),
        (
            ClientAuthMethod::ClientSecretBasic
            | ClientAuthMethod::ClientSecretPost
            | ClientAuthMethod::PrivateKeyJwt
            | ClientAuthMethod::None,
            None,
        ) => Ok(None),
    }
}

/// A redirect URI is an absolute https URL, or http on a loopback host (RFC 8252 §7.3), with no
/// fragment, no userinfo and no wildcard (RFC 9700 §2.1), written exactly as the WHATWG URL
/// parser serialises it (see [`canonical_url`]).
pub fn validate_redirect_uri(uri: &str) -> Result<(), String> {
    if uri.len() > MAX_URI {
        return Err("redirect_uri is too long".into());
    }
    if uri.contains('*') {
        return Err("redirect_uri must not contain wildcards".into());
    }
    if uri.contains('#') {
        return Err("redirect_uri must not contain a fragment".into());
    }
    let url = canonical_url(uri).map_err(|why| format!("redirect_uri {why}"))?;
    match url.scheme() {
        "https" => {}
        "http" if crate::net::is_loopback_host(&url) => {}
        "http" => return Err("http redirect_uris are allowed only on loopback hosts".into()),
        _ => return Err("redirect_uri must use https (or http on a loopback host)".into()),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("redirect_uri must have a host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("redirect_uri must not contain userinfo".into());
    }
    Ok(())
}

/// Parse an absolute URL and insist that it is written the way the WHATWG URL parser (which
/// browsers use) serialises it, so that what we store, show and compare is what a browser will
/// visit: `https://evil.example\@good.example/` (a browser goes to evil.example),
/// `https:evil.example`, upper-case schemes or hosts, `..` segments, a trailing dot, and
/// non-ASCII (Unicode look-alike) hosts, which must be given in punycode, are all refused. The
/// one difference allowed is an empty path written without its `/` (`https://a.example`).
pub fn canonical_url(s: &str) -> Result<Url, String> {
    if !s.is_ascii() {
        return Err("must be ASCII (give an internationalised host in punycode, xn--...)".into());
    }
    if s.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err("must not contain spaces or control characters".into());
    }
    let url = Url::parse(s).map_err(|_| "must be an absolute URL".to_string())?;
    let serialised = url.as_str();
    let bare_origin = url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none()
        && serialised.strip_suffix('/') == Some(s);
    if serialised != s && !bare_origin {
        return Err(format!(
            "must be written in its normal form: {}",
            printable(serialised)
        ));
    }
    if url.host_str().is_some_and(|h| h.ends_with('.')) {
        return Err("must not have a trailing dot in its host".into());
    }
    Ok(url)
}

/// Characters that change how text around them is displayed without being visible themselves,
/// or that display as nothing: bidirectional overrides and isolates (U+202E makes `gpj.exe`
/// read `exe.jpg`), zero-width characters and the other Unicode format (Cf) characters, line
/// and paragraph separators, and blank look-alikes (Braille blank, Hangul fillers, the object
/// replacement character).
pub fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{2028}'..='\u{2029}'
            | '\u{2800}'
            | '\u{FFFC}'
            | '\u{1D159}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{0600}'..='\u{0605}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// Combining marks (the common blocks): stacked without limit they smear over neighbouring text.
pub(crate) fn is_combining_mark(c: char) -> bool {
    matches!(
        c,
        '\u{0300}'..='\u{036F}'
            | '\u{0483}'..='\u{0489}'
            | '\u{0591}'..='\u{05BD}'
            | '\u{0610}'..='\u{061A}'
            | '\u{064B}'..='\u{065F}'
            | '\u{0E31}'
            | '\u{0E34}'..='\u{0E3A}'
            | '\u{0E47}'..='\u{0E4E}'
            | '\u{1AB0}'..='\u{1AFF}'
            | '\u{1DC0}'..='\u{1DFF}'
            | '\u{20D0}'..='\u{20FF}'
            | '\u{FE20}'..='\u{FE2F}'
    )
}

/// Most combining marks one character may carry (Vietnamese and Thai need two).
pub(crate) const MAX_COMBINING: usize = 2;

/// Whether `s` is fit to be shown to people: no control characters, no invisible or blank
/// format characters, and no pile of combining marks on one character.
pub fn is_displayable(s: &str) -> bool {
    let mut run = 0;
    for c in s.chars() {
        if c.is_control() || is_invisible_format(c) {
            return false;
        }
        run = if is_combining_mark(c) { run + 1 } else { 0 };
        if run > MAX_COMBINING {
            return false;
        }
    }
    true
}

/// `scope`: scopes in the tenant's catalog; a restricted one only for an admin-made client;
/// [`ADMIN_SCOPE`] only from the operator, for a client_credentials-only client.
fn scope(
    obj: &Map<String, Value>,
    tenant: &Tenant,
    registrant: Registrant,
    grant_types: &[GrantType],
) -> Result<ScopeSet, MetadataError> {
    let scope = match obj.get("scope") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(MetadataError::invalid(
                Some("scope"),
                "scope must be a space-separated string",
            ));
        }
    };
    let scopes = ScopeSet::parse(&scope).map_err(|why| MetadataError::invalid(Some("scope"), why))?;
    if scopes.contains(ADMIN_SCOPE) {
        if registrant != Registrant::Operator {
            return Err(MetadataError::invalid(
                Some("scope"),
                format!("scope {ADMIN_SCOPE} is reserved for clients the operator creates"),
            ));
        }
        if grant_types != [GrantType::ClientCredentials] {
            return Err(MetadataError::invalid(
                Some("scope"),
                format!("scope {ADMIN_SCOPE} is for confidential client_credentials clients only"),
            ));
        }
    }
    let unknown: Vec<&str> = scopes
        .iter()
        .filter(|s| *s != ADMIN_SCOPE && !tenant.scopes.contains_key(*s))
        .collect();
    if !unknown.is_empty() {
        return Err(MetadataError::invalid(
            Some("scope"),
            format!(
                "scope not in the tenant's catalog: {}",
                unknown.iter().map(|s| printable(s)).collect::<Vec<_>>().join(" ")
            ),
        ));
    }
    if registrant.is_stranger() {
        let restricted: Vec<&str> = scopes
            .iter()
            .filter(|s| tenant.restricted_scopes.contains(*s))
            .collect();
        if !restricted.is_empty() {
            return Err(MetadataError::invalid(
                Some("scope"),
                format!(
                    "scope reserved for clients the tenant admin creates: {}",
                    restricted.join(" ")
                ),
            ));
        }
    }
    Ok(scopes)
}

/// `contacts`: e-mail addresses fit to be shown.
fn contacts(obj: &Map<String, Value>) -> Result<Vec<String>, MetadataError> {
    let contacts = string_list(obj, "contacts", MAX_CONTACTS)?;
    for c in &contacts {
        if c.len() > 254 || !c.contains('@') || !is_displayable(c) || c.chars().any(char::is_whitespace) {
            return Err(MetadataError::invalid(
                Some("contacts"),
                "contacts must be email addresses",
            ));
        }
    }
    Ok(contacts)
}

/// Fields only the server sets, and software statements (not supported), are refused.
fn no_server_fields(obj: &Map<String, Value>) -> Result<(), MetadataError> {
    for forbidden in [
        "first_party",
        "agent_of",
        "resource_server_for",
        "client_secret_expires_at",
        "client_id_issued_at",
    ] {
        if obj.contains_key(forbidden) {
            return Err(MetadataError::invalid(
                Some(forbidden),
                format!("{forbidden} is set by the server"),
            ));
        }
    }
    if obj.contains_key("software_statement") {
        return Err(MetadataError::invalid(
            Some("software_statement"),
            "software_statement is not supported",
        ));
    }
    Ok(())
}

/// `jwks` / `jwks_uri`: public signing keys ([`check_public_jwks`]) or a URL the fetcher may
/// reach, exactly one of them for a `private_key_jwt` client and neither for any other.
fn keys(
    obj: &Map<String, Value>,
    method: ClientAuthMethod,
    key_hosts: KeyHosts,
) -> Result<(Option<Value>, Option<String>), MetadataError> {
    let jwks = match obj.get("jwks") {
        None | Some(Value::Null) => None,
        Some(v) => {
            check_public_jwks(v)
                .map_err(|why| MetadataError::invalid(Some("jwks"), format!("jwks: {why}")))?;
            if serde_json::to_vec(v).map_or(true, |b| b.len() > 16 * 1024) {
                return Err(MetadataError::invalid(Some("jwks"), "jwks is too large"));
            }
            Some(v.clone())
        }
    };
    let jwks_uri = match obj.get("jwks_uri") {
        None | Some(Value::Null) => None,
        Some(Value::String(u)) => {
            // The fetcher's own rule for what it may reach: a private, link-local, CGNAT,
            // unspecified or unique-local address, a local name, or loopback where the
            // issuer's fetcher would not go, is refused now rather than at the first fetch.
            crate::net::check_key_url(u, key_hosts)
                .map_err(|why| MetadataError::invalid(Some("jwks_uri"), format!("jwks_uri {why}")))?;
            Some(u.clone())
        }
        Some(_) => {
            return Err(MetadataError::invalid(
                Some("jwks_uri"),
                "jwks_uri must be a string",
            ));
        }
    };
    match (method, &jwks, &jwks_uri) {
        (ClientAuthMethod::PrivateKeyJwt, Some(_), Some(_)) => {
            return Err(MetadataError::invalid(
                Some("jwks"),
                "give jwks or jwks_uri, not both",
            ));
        }
        (ClientAuthMethod::PrivateKeyJwt, None, None) => {
            return Err(MetadataError::invalid(
                Some("jwks"),
                "private_key_jwt needs the client's keys: jwks or jwks_uri",
            ));
        }
        (ClientAuthMethod::PrivateKeyJwt, _, _) | (_, None, None) => {}
        _ => {
            return Err(MetadataError::invalid(
                Some("jwks"),
                "jwks and jwks_uri are for private_key_jwt clients",
            ));
        }
    }
    Ok((jwks, jwks_uri))
}

/// `application_type` (OpenID Connect Registration): `web` or `native`.
/// A boolean member (absent or null: false).
fn flag(obj: &Map<String, Value>, name: &'static str) -> Result<bool, MetadataError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(MetadataError::invalid(
            Some(name),
            format!("{name} is true or false"),
        )),
    }
}

fn application_type(obj: &Map<String, Value>) -> Result<Option<String>, MetadataError> {
    Ok(match obj.get("application_type") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) if t == "web" || t == "native" => Some(t.clone()),
        Some(_) => {
            return Err(MetadataError::invalid(
                Some("application_type"),
                "application_type is web or native",
            ));
        }
    })
}

/// `grant_types`: known grants (default `authorization_code`), each one `registrant` may give
/// ([`GrantType::registrable_by`]) and the tenant allows; `refresh_token` only beside a grant
/// that issues refresh tokens. Sorted by name, without duplicates.
pub(super) fn grant_types(
    obj: &Map<String, Value>,
    tenant: &Tenant,
    registrant: Registrant,
) -> Result<Vec<GrantType>, MetadataError> {
    let names = match obj.get("grant_types") {
        None | Some(Value::Null) => vec![GrantType::AuthorizationCode.as_str().to_string()],
        Some(_) => string_list(obj, "grant_types", 10)?,
    };
    if names.is_empty() {
        return Err(MetadataError::invalid(
            Some("grant_types"),
            "grant_types must not be empty",
        ));
    }
    let mut grants = Vec::with_capacity(names.len());
    for g in &names {
        let Some(grant) = GrantType::parse(g) else {
            return Err(MetadataError::invalid(
                Some("grant_types"),
                format!(
                    "grant type {} is not supported; supported: {}",
                    printable(g),
                    GrantType::advertised_names().join(" ")
                ),
            ));
        };
        if !grant.registrable_by(registrant) {
            return Err(MetadataError::invalid(
                Some("grant_types"),
                match grant.least_registrant() {
                    Registrant::InitialAccessToken => format!(
                        "grant type {} needs an initial access token: a registration without one may use only authorization_code and refresh_token, under which users consent here to a client anchored by its redirect URI",
                        grant.as_str()
                    ),
                    Registrant::Anonymous | Registrant::TenantAdmin | Registrant::Operator => format!(
                        "grant type {} is for clients the tenant admin creates",
                        grant.as_str()
                    ),
                },
            ));
        }
        if grant == GrantType::Password && !tenant.password_grant {
            return Err(MetadataError::invalid(
                Some("grant_types"),
                format!(
                    "grant type {} is not allowed by this tenant's policy",
                    grant.as_str()
                ),
            ));
        }
        if !grants.contains(&grant) {
            grants.push(grant);
        }
    }
    grants.sort_by_key(|g| g.as_str());
    if grants.contains(&GrantType::RefreshToken) && !grants.iter().any(|g| g.issues_refresh_tokens()) {
        return Err(MetadataError::invalid(
            Some("grant_types"),
            "refresh_token goes with authorization_code",
        ));
    }
    Ok(grants)
}

/// `response_types`: `code` exactly when the client uses the authorization code grant.
pub(super) fn response_types(
    obj: &Map<String, Value>,
    uses_code: bool,
) -> Result<Vec<String>, MetadataError> {
    let response_types = match obj.get("response_types") {
        None | Some(Value::Null) => {
            if uses_code {
                vec!["code".to_string()]
            } else {
                vec![]
            }
        }
        Some(_) => dedup(string_list(obj, "response_types", 5)?),
    };
    for r in &response_types {
        if r != "code" {
            return Err(MetadataError::invalid(
                Some("response_types"),
                format!("response type {} is not supported", printable(r)),
            ));
        }
    }
    if uses_code != response_types.iter().any(|r| r == "code") {
        return Err(MetadataError::invalid(
            Some("response_types"),
            "response_types and grant_types disagree (code goes with authorization_code)",
        ));
    }
    Ok(response_types)
}

/// `token_endpoint_auth_method`: one this server implements (default `client_secret_basic`).
pub(super) fn auth_method(obj: &Map<String, Value>) -> Result<ClientAuthMethod, MetadataError> {
    let name = match obj.get("token_endpoint_auth_method") {
        None | Some(Value::Null) => return Ok(ClientAuthMethod::ClientSecretBasic),
        Some(Value::String(m)) => m,
        Some(_) => {
            return Err(MetadataError::invalid(
                Some("token_endpoint_auth_method"),
                "token_endpoint_auth_method must be a string",
            ));
        }
    };
    ClientAuthMethod::parse(name).ok_or_else(|| {
        MetadataError::invalid(
            Some("token_endpoint_auth_method"),
            format!(
                "token_endpoint_auth_method {} is not supported; supported: {}",
                printable(name),
                ClientAuthMethod::names().join(" ")
            ),
        )
    })
}

pub(super) fn string_list(
    obj: &Map<String, Value>,
    key: &'static str,
    max: usize,
) -> Result<Vec<String>, MetadataError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(items)) => {
            if items.len() > max {
                return Err(MetadataError::invalid(
                    Some(key),
                    format!("{key} has more than {max} entries"),
                ));
            }
            items
                .iter()
                .map(|v| match v {
                    Value::String(s) if !s.is_empty() && s.len() <= MAX_URI => Ok(s.clone()),
                    _ => Err(MetadataError::invalid(
                        Some(key),
                        format!("{key} must be an array of strings"),
                    )),
                })
                .collect()
        }
        Some(_) => Err(MetadataError::invalid(
            Some(key),
            format!("{key} must be an array of strings"),
        )),
    }
}

pub(super) fn text(
    obj: &Map<String, Value>,
    key: &'static str,
    max: usize,
) -> Result<Option<String>, MetadataError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let s = s.trim();
            if s.is_empty() || s.chars().count() > max || !is_displayable(s) {
                Err(MetadataError::invalid(
                    Some(key),
                    format!("{key} must be 1 to {max} printable characters"),
                ))
            } else {
                Ok(Some(s.to_string()))
            }
        }
        Some(_) => Err(MetadataError::invalid(
            Some(key),
            format!("{key} must be a string"),
        )),
    }
}

/// A URI shown to users (client_uri, logo_uri, ...): https only, in normal form (see
/// [`canonical_url`]), no userinfo or fragment.
pub(super) fn web_uri(obj: &Map<String, Value>, key: &'static str) -> Result<Option<String>, MetadataError> {
    let Some(s) = text(obj, key, MAX_URI)? else {
        return Ok(None);
    };
    let url = canonical_url(&s).map_err(|why| MetadataError::invalid(Some(key), format!("{key} {why}")))?;
    if url.scheme() != "https"
        || url.host_str().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.fragment().is_some()
    {
        return Err(MetadataError::invalid(
            Some(key),
            format!("{key} must be an https URL without userinfo or fragment"),
        ));
    }
    Ok(Some(s))
}

pub(super) fn dedup(v: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(v.len());
    for s in v {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

pub(super) fn printable(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_graphic()).take(60).collect()
}
