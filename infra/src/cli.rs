//! The command line, in one place.

use clap::{Args, Parser, Subcommand};
use shared::domain::tenant::TenantId;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "bulwark",
    version,
    about = "Bulwark OAuth 2.0 / OpenID Connect server: local server and operator CLI"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Data directory of the embedded store and the local signing key.
    #[arg(long, global = true, env = "BULWARK_DATA_DIR", default_value = "./.bulwark")]
    pub data_dir: PathBuf,
    /// Print one JSON object on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Issuer URL (default: the server's own address; for the CLI, http://127.0.0.1:8080; for
    /// `token`, the authorization server to ask: required).
    #[arg(long, global = true, env = "BULWARK_ISSUER")]
    pub issuer: Option<String>,
    /// Where state lives: the embedded store in --data-dir, or a deployed stack's DynamoDB
    /// tables (with --table-prefix; region, credentials and AWS_ENDPOINT_URL from the usual AWS
    /// environment).
    #[arg(long, global = true, env = "BULWARK_BACKEND", default_value = "embedded", value_parser = ["embedded", "dynamodb"])]
    pub backend: String,
    /// DynamoDB table-name prefix: the stack name and a dash (`<stack>-clients`, ...).
    #[arg(long, global = true, env = "BULWARK_TABLE_PREFIX")]
    pub table_prefix: Option<String>,
    /// KMS key ids (comma-separated, signing key first); needed to serve with --backend dynamodb
    /// and --signing-mode kms.
    #[arg(long, global = true, env = "BULWARK_KMS_KEY_IDS")]
    pub kms_key_ids: Option<String>,
    /// With --backend dynamodb: how the stack signs (its `SigningMode`): `kms` (KMS `Sign` per
    /// token, --kms-key-ids) or `kms-wrapped` (a key in the `keys` table, wrapped under
    /// --wrapping-key-id). Default: kms-wrapped when --wrapping-key-id is given, else kms.
    #[arg(long, global = true, env = "BULWARK_SIGNING_MODE", value_parser = ["kms", "kms-wrapped"])]
    pub signing_mode: Option<String>,
    /// kms-wrapped: the stack's symmetric KMS key (its `WrappingKeyArn` output); needed to sign
    /// and to rotate.
    #[arg(long, global = true, env = "BULWARK_WRAPPING_KEY_ID")]
    pub wrapping_key_id: Option<String>,
    /// kms-wrapped: the stack name bound into each wrapped key's encryption context. Default:
    /// the table prefix without its trailing dash.
    #[arg(long, global = true, env = "BULWARK_STACK")]
    pub stack: Option<String>,
    /// kms-wrapped, after a switch from kms: the former KMS signing keys (comma-separated; the
    /// stack's `PreviousSigningKeyArn`), published until their tokens have expired.
    #[arg(long, global = true, env = "BULWARK_PREVIOUS_KMS_KEY_IDS")]
    pub previous_kms_key_ids: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve every endpoint on one port, with the embedded store and the local key.
    Serve {
        /// Address to listen on (loopback only unless you know what you are doing).
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// Create tenant `demo` and a client, and print a curl line that gets a token.
        #[arg(long)]
        demo: bool,
        #[command(flatten)]
        limits: ServeLimits,
        #[command(flatten)]
        metrics: ServeMetrics,
        /// Seconds between sweeps of unused open registrations (clients anyone registered
        /// without an initial access token, unused for 30 days, are deleted); the first runs
        /// one interval after the start. 0: never (then `bulwark client sweep` does it).
        #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(0..=604_800))]
        sweep_interval: u64,
        /// How long the token path may use a tenant's cached config, seconds (0..=60; 0: read it
        /// on every request). A policy changed through this server's admin API or console applies
        /// at once; one changed by another process (the CLI) within this many seconds.
        #[arg(long, env = "BULWARK_TENANT_CACHE_SECS", default_value = "60")]
        tenant_cache_secs: String,
    },
    /// Tenants.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// The tenant's scope catalog.
    Scope {
        #[command(subcommand)]
        command: ScopeCommand,
    },
    /// RFC 8707 resources (token audiences) a tenant serves.
    Resource {
        #[command(subcommand)]
        command: ResourceCommand,
    },
    /// External identity providers a tenant trusts (the JWT bearer grant, RFC 7523).
    Issuer {
        #[command(subcommand)]
        command: IssuerCommand,
    },
    /// Initial access tokens for dynamic client registration.
    Iat {
        #[command(subcommand)]
        command: IatCommand,
    },
    /// Clients (Connected Apps).
    Client {
        #[command(subcommand)]
        command: ClientCommand,
    },
    /// End users of a tenant.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Groups of users (for apps' user policies).
    Group {
        #[command(subcommand)]
        command: GroupCommand,
    },
    /// Signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Audit events.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Get an access token from an authorization server (any standard one, not only this):
    /// read its discovery document, authenticate as the client, print the access token.
    #[command(long_about = TOKEN_ABOUT, after_help = TOKEN_EXIT_CODES)]
    Token(TokenArgs),
    /// Bring the store's layout to this release's schema version (run after every upgrade;
    /// safe to re-run, and resumable after a crash). See docs/operations.md.
    Migrate {
        /// Say which steps would run, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

const TOKEN_ABOUT: &str = "Get an access token from an authorization server (any standard one, not \
only Bulwark): read the issuer's RFC 8414 / OpenID discovery document (its `issuer` must equal \
--issuer), then ask its token endpoint for a client_credentials token, or with --device run the \
device authorization grant (RFC 8628) for a public client. Prints the access token on stdout \
(the whole token response with --json). The client authenticates with exactly one of \
--client-secret-env, --private-key-file or --federated-token-file/--federated-token-env; secrets \
are never taken from the command line and never printed. https only, except http to loopback; \
no redirects are followed.";

const TOKEN_EXIT_CODES: &str = "Exit codes:
  0  a token was printed
  2  usage: a bad or missing option, two credentials, an unset or empty environment variable, \
an unreadable or unusable key or token file, an --issuer that is not https (or loopback http)
  3  discovery or network: the issuer or an endpoint unreachable, timed out, redirecting or \
not https; no discovery document, or one that names another issuer or lacks an endpoint; an \
answer that is neither a token nor an OAuth error
  4  the authorization server refused (its `error` and `error_description` on stderr), or the \
device flow was denied or expired
  1  anything else";

/// `bulwark token`.
#[derive(Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("credential").multiple(false).args(["client_secret_env", "private_key_file", "federated_token_file", "federated_token_env"])))]
pub struct TokenArgs {
    /// The client's id at the authorization server.
    #[arg(long)]
    pub client_id: String,
    /// Space-separated scopes to ask for.
    #[arg(long)]
    pub scope: Option<String>,
    /// An RFC 8707 resource indicator, the token's audience (repeat for several).
    #[arg(long = "resource", value_name = "URI")]
    pub resources: Vec<String>,
    /// client_secret_basic / client_secret_post: the environment variable that holds the
    /// client secret.
    #[arg(long, value_name = "VAR")]
    pub client_secret_env: Option<String>,
    /// How to send the secret: `client_secret_basic` or `client_secret_post`. Default: basic,
    /// unless the issuer's `token_endpoint_auth_methods_supported` lists only post.
    #[arg(long, requires = "client_secret_env", value_parser = ["client_secret_basic", "client_secret_post"])]
    pub auth_method: Option<String>,
    /// private_key_jwt: the client's private key, a PEM file (EC P-256 signs ES256, RSA RS256;
    /// PKCS#8, SEC1 or PKCS#1).
    #[arg(long, value_name = "PEM")]
    pub private_key_file: Option<std::path::PathBuf>,
    /// The `kid` of the key in the client's registered JWK Set.
    #[arg(long, requires = "private_key_file")]
    pub kid: Option<String>,
    /// The assertion's `aud`: `issuer` (RFC 7523 as updated, typ client-authentication+jwt) or
    /// `token-endpoint` (untyped, as servers that predate the update expect).
    #[arg(long, requires = "private_key_file", default_value = "issuer", value_parser = ["issuer", "token-endpoint"])]
    pub assertion_audience: String,
    /// A JWT from the client's workload identity (a file, reread on every run: such tokens
    /// rotate), sent as its client assertion (RFC 7523 jwt-bearer).
    #[arg(long, value_name = "FILE")]
    pub federated_token_file: Option<std::path::PathBuf>,
    /// As --federated-token-file, from an environment variable.
    #[arg(long, value_name = "VAR")]
    pub federated_token_env: Option<String>,
    /// The device authorization grant (RFC 8628): print where to sign in and the code on
    /// stderr, wait for the user, print the token. For a public client, no credential needed.
    #[arg(long)]
    pub device: bool,
}

/// Where `bulwark serve` shows its counters.
#[derive(Args, Debug, Clone)]
pub struct ServeMetrics {
    /// Serve the counters (tokens issued and refused per grant, authentication and login
    /// failures, refresh reuse, store latency, ...) at `GET /metrics` in Prometheus text format
    /// on this separate address (keep it on loopback or a private network). Off by default.
    #[arg(long)]
    pub metrics_addr: Option<SocketAddr>,
    /// Label the tenant-bearing counters with the tenant too (`on`/`off`).
    #[arg(long, env = "BULWARK_METRICS_PER_TENANT", default_value = "off", value_parser = ["on", "off"])]
    pub metrics_per_tenant: String,
}

/// How `bulwark serve` protects itself from slow or greedy clients.
#[derive(Args, Debug, Clone, Copy)]
pub struct ServeLimits {
    /// Seconds a client has to send a request's headers (also how long an idle keep-alive
    /// connection is kept); slower connections are closed.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub header_timeout: u64,
    /// Seconds a request may take in all, body included; beyond it the answer is 408.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub request_timeout: u64,
    /// Connections served at once; further ones wait in the listen queue until one ends.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub max_connections: u64,
}

#[derive(Subcommand, Debug)]
pub enum TenantCommand {
    /// Create a tenant; its scope catalog starts with openid profile email offline_access agent:act.
    Create {
        name: String,
        /// Who may use dynamic client registration.
        #[arg(long, default_value = "token", value_parser = ["open", "token", "closed"])]
        dcr: String,
        /// Default token audience (default urn:bulwark:tenant:NAME).
        #[arg(long)]
        audience: Option<String>,
    },
    /// Show a tenant's configuration.
    Show { name: String },
    /// Set the tenant's token and session lifetimes (seconds; omitted ones stay as they are).
    SetLifetimes {
        name: TenantId,
        #[arg(long)]
        access_token_ttl: Option<i64>,
        /// A refresh token unused this long expires (default 30 days).
        #[arg(long)]
        refresh_idle: Option<i64>,
        /// A refresh-token family ends this long after the login (default 90 days).
        #[arg(long)]
        refresh_absolute: Option<i64>,
        /// Browser sessions last this long (default 12 hours).
        #[arg(long)]
        session: Option<i64>,
    },
    /// Set the tenant's policy.
    SetPolicy {
        name: TenantId,
        /// The deprecated password grant (RFC 6749 §4.3; RFC 9700 says not to use it): `deny`
        /// (the default) refuses it at the token endpoint and at registration.
        #[arg(long, value_parser = ["allow", "deny"])]
        password_grant: Option<String>,
        /// Client ID Metadata Documents (a client id that is an https URL, accepted at the
        /// tenant's own issuer only): `deny` (the default), `allow` (any host), or a
        /// comma-separated list of the hosts whose documents are accepted.
        #[arg(long)]
        cimd: Option<String>,
        /// How far ahead (seconds, 60 to 3600) a private_key_jwt client assertion's `exp` may
        /// be; `default` for an hour (what common client libraries sign).
        #[arg(long, value_name = "SECONDS|default")]
        client_assertion_max_lifetime: Option<String>,
        /// DPoP server nonces (RFC 9449 §8): `required` makes every proof at the token endpoint
        /// carry a nonce this server issued; `off` (the default) does not.
        #[arg(long, value_parser = ["required", "off"])]
        dpop_nonce: Option<String>,
        /// Pushed authorization requests (RFC 9126): `required` refuses every plain
        /// authorization request of the tenant's clients; `optional` (the default) takes both.
        #[arg(long, value_parser = ["required", "optional"])]
        par: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ScopeCommand {
    /// Add a scope (or change its description).
    Add {
        #[arg(long)]
        tenant: TenantId,
        name: String,
        description: String,
        /// Only clients the operator or a tenant admin creates may hold it (never DCR).
        #[arg(long)]
        restricted: bool,
    },
    /// Restrict a catalog scope to operator/admin-made clients (true), or open it to DCR (false).
    SetRestricted {
        #[arg(long)]
        tenant: TenantId,
        name: String,
        #[arg(action = clap::ArgAction::Set, value_parser = clap::value_parser!(bool))]
        restricted: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ResourceCommand {
    /// Allow a resource indicator as a token audience (again with a name: sets its name).
    Add {
        #[arg(long)]
        tenant: TenantId,
        resource: String,
        /// The name the consent page shows for it, next to its URI (e.g. "Acme Files").
        name: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum IssuerCommand {
    /// Trust an identity provider's signed assertions (for users linked to its subjects), or a
    /// workload platform's tokens (--workload).
    Add {
        #[arg(long)]
        tenant: TenantId,
        /// Its issuer identifier (the `iss` of its assertions).
        #[arg(long)]
        issuer: String,
        /// Its public keys, a JWK Set file.
        #[arg(long, conflicts_with = "jwks_uri")]
        jwks_file: Option<std::path::PathBuf>,
        /// Where it publishes them (https).
        #[arg(long)]
        jwks_uri: Option<String>,
        /// Its assertions are ID-JAGs (Identity Assertion JWT Authorization Grants, typ
        /// oauth-id-jag+jwt, each naming the client that may present it); only those, and no
        /// plain assertion, are then taken from it.
        #[arg(long)]
        id_jag: bool,
        /// With --id-jag, for a provider that serves many tenants of its own under one issuer:
        /// take only ID-JAGs whose `tenant` claim is this one (without it, the claim is ignored).
        #[arg(long, requires = "id_jag")]
        idp_tenant: Option<String>,
        /// A workload platform (GitHub Actions, Kubernetes): its tokens authenticate clients
        /// created with `--auth-method federated`, and it is trusted for nothing else. By
        /// default a token may authenticate again until it expires (a pod rereads its token).
        #[arg(long, conflicts_with = "id_jag")]
        workload: bool,
        /// With --workload, for a platform that mints a token per request (GitHub Actions):
        /// each token (its `jti`) is good once.
        #[arg(long, requires = "workload")]
        single_use: bool,
    },
    /// List the trusted issuers.
    List {
        #[arg(long)]
        tenant: TenantId,
    },
    /// Stop trusting an issuer.
    Remove {
        #[arg(long)]
        tenant: TenantId,
        #[arg(long)]
        issuer: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum IatCommand {
    /// Issue an initial access token (shown once).
    Create {
        #[arg(long)]
        tenant: TenantId,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 86_400)]
        expires_in: i64,
        /// How many registrations it allows (0 = unlimited).
        #[arg(long, default_value_t = 1)]
        max_uses: u32,
    },
}

#[derive(Subcommand, Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "parsed once per run; `create` takes many flags"
)]
pub enum ClientCommand {
    /// Register a client; prints the RFC 7591 response (the secret is shown once).
    Create {
        #[arg(long)]
        tenant: TenantId,
        #[arg(long)]
        name: String,
        /// Repeat for several.
        #[arg(long = "grant-type", default_value = "client_credentials")]
        grant_types: Vec<String>,
        /// Space-separated scopes the client may request.
        #[arg(long, default_value = "")]
        scope: String,
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// `none` registers a public client (no secret; PKCE only); `private_key_jwt` a client
        /// that signs JWT assertions with its own keys (give --jwks-file or --jwks-uri; no secret);
        /// `federated` one that sends its workload platform's token (give --federated-issuer and
        /// --federated-subject; no secret).
        #[arg(long, default_value = "client_secret_basic")]
        auth_method: String,
        /// The client's public keys (a JWK Set file) for private_key_jwt.
        #[arg(long, conflicts_with = "jwks_uri")]
        jwks_file: Option<std::path::PathBuf>,
        /// Where the client publishes its public keys (https) for private_key_jwt.
        #[arg(long)]
        jwks_uri: Option<String>,
        /// For `--auth-method federated`: the workload issuer (trusted with `issuer add
        /// --workload`) whose tokens authenticate this client instead of a secret.
        #[arg(long, value_name = "URL")]
        federated_issuer: Option<String>,
        /// With --federated-issuer: a token's `sub` that authenticates it, matched exactly
        /// (e.g. `repo:ORG/REPO:ref:refs/heads/main`); repeat for several.
        #[arg(long = "federated-subject", value_name = "SUB", requires = "federated_issuer")]
        federated_subjects: Vec<String>,
        /// With --federated-issuer: the `aud` its tokens must carry (default: the tenant's
        /// issuer URL).
        #[arg(long, value_name = "AUD", requires = "federated_issuer")]
        federated_audience: Option<String>,
        /// A first-party app: its users are not asked for consent (never settable through DCR).
        #[arg(long)]
        first_party: bool,
        /// Make this client an agent of the app APP_CLIENT_ID (same tenant): with the
        /// token-exchange grant it may act for that app's users who allow agents (agent:act).
        #[arg(long, value_name = "APP_CLIENT_ID")]
        agent_of: Option<String>,
        /// Make it the resource server for this tenant resource (repeat for several): it may
        /// introspect other clients' access tokens for that audience.
        #[arg(long = "resource-server-for", value_name = "RESOURCE_URI")]
        resource_server_for: Vec<String>,
        /// The client always sends DPoP proofs (RFC 9449 `dpop_bound_access_tokens`): a token
        /// request without one is refused, so its access tokens are always bound to its key.
        #[arg(long)]
        dpop_bound: bool,
        /// The client sends its authorization requests only by the pushed authorization request
        /// endpoint (RFC 9126 `require_pushed_authorization_requests`).
        #[arg(long)]
        require_par: bool,
    },
    /// Set which of the tenant's resources a client is the resource server for (none: it may
    /// introspect only its own tokens).
    SetResourceServer {
        #[arg(long)]
        tenant: TenantId,
        client_id: String,
        /// Repeat for several; give none to clear.
        #[arg(long = "resource", value_name = "RESOURCE_URI")]
        resources: Vec<String>,
    },
    /// List a tenant's clients.
    List {
        #[arg(long)]
        tenant: TenantId,
    },
    /// Delete the clients that anyone registered (open DCR, no initial access token) and that
    /// got no token for 30 days, as a delete would (audit event `client.expired`). On AWS the
    /// sweeper function does this daily; `bulwark serve` hourly.
    Sweep {
        /// Only this tenant's (default: every tenant's).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Delete a client: its secret stops working and its tokens introspect inactive.
    Delete {
        #[arg(long)]
        tenant: TenantId,
        client_id: String,
    },
    /// Issue a new client secret (shown once); the previous one keeps working for the grace
    /// period (default a day, at most 7 days, 0 = it stops now).
    RotateSecret {
        #[arg(long)]
        tenant: TenantId,
        client_id: String,
        #[arg(long, default_value_t = 86_400)]
        grace_seconds: i64,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input (argon2id at rest).
    Create {
        #[arg(long)]
        tenant: TenantId,
        #[arg(long)]
        username: String,
        /// Read the password from stdin (one line). Required: passwords never go on the command line.
        #[arg(long, required = true)]
        password_stdin: bool,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// Give the user the tenant-admin role.
        #[arg(long)]
        admin: bool,
    },
    /// Set a user's password, read from standard input; their sessions end.
    SetPassword {
        #[arg(long)]
        tenant: TenantId,
        #[arg(long)]
        username: String,
        /// Read the password from stdin (one line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Sign them out everywhere: also end every grant (refresh tokens, the access tokens
        /// issued from them, agents' delegated tokens), as after a suspected compromise.
        #[arg(long)]
        sign_out_everywhere: bool,
    },
    /// Link a user to their subject at a trusted identity provider (JWT bearer grant).
    Link {
        #[arg(long)]
        tenant: TenantId,
        #[arg(long)]
        username: String,
        #[arg(long)]
        issuer: String,
        #[arg(long)]
        subject: String,
    },
    /// Deactivate a user: no more logins; their sessions and grants end now.
    Deactivate {
        #[arg(long)]
        tenant: TenantId,
        #[arg(long)]
        username: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Make a new signing key active; the previous one stays published until its tokens expire.
    /// Embedded: the data directory's key file. DynamoDB (`SigningMode=kms-wrapped`): a new key
    /// wrapped under --wrapping-key-id into the stack's `keys` table; running functions pick it
    /// up within a minute.
    Rotate,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// List a tenant's audit events, oldest first (`--newest-first` the other way).
    List {
        #[arg(long)]
        tenant: TenantId,
        /// An event kind (`client.created`) or a family (`client`).
        #[arg(long)]
        kind: Option<String>,
        /// What the events were done to (a client id, user id, ...).
        #[arg(long)]
        subject: Option<String>,
        /// Unix seconds, inclusive.
        #[arg(long)]
        since: Option<i64>,
        /// Unix seconds, inclusive.
        #[arg(long)]
        until: Option<i64>,
        #[arg(long)]
        newest_first: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// Create a group; prints its id.
    Create {
        #[arg(long)]
        tenant: TenantId,
        name: String,
    },
    /// List a tenant's groups.
    List {
        #[arg(long)]
        tenant: TenantId,
    },
    /// Put a user in a group.
    Add {
        #[arg(long)]
        tenant: TenantId,
        group_id: String,
        #[arg(long)]
        username: String,
    },
    /// Take a user out of a group (apps that admitted them only through it stop working for them).
    Remove {
        #[arg(long)]
        tenant: TenantId,
        group_id: String,
        #[arg(long)]
        username: String,
    },
    /// Delete a group and its memberships.
    Delete {
        #[arg(long)]
        tenant: TenantId,
        group_id: String,
    },
}
