//! Each subcommand: open the data directory, call a `shared::service` function, print.

use serde_json::{Value, json};
use shared::domain::id::ClientId;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use shared::clock::{Clock, OffsetClock, SystemClock};
use shared::config::{Config, Signing};
use shared::domain::cimd::CimdPolicy;
use shared::domain::tenant::{DcrPolicy, TenantId};
use shared::keys::kms::KmsKeyWrapper;
use shared::keys::local::LocalSigner;
use shared::keys::{KeySet, Signer, SignerError};
use shared::metrics::Metrics;
use shared::service::App;
use shared::service::tenants::{self, AdminError};
use shared::service::{clients, users};
use shared::store::dynamodb::{DynamoStore, TableNames};
use shared::store::embedded::EmbeddedStore;
use shared::store::metered::Metered;
use shared::store::repo::Repo;
use shared::store::{Kv, StoreError};

use crate::cli::*;

/// The default issuer of CLI output when neither `--issuer` nor `BULWARK_ISSUER` is given.
pub const DEFAULT_ISSUER: &str = "http://127.0.0.1:8080";

/// A failed command: what to tell the operator.
pub struct Failure(pub String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}

/// The clock: the wall clock, shifted by `BULWARK_CLOCK_OFFSET_SECS` when set (tests use it to
/// see expiry without waiting).
pub fn clock() -> Result<Arc<dyn Clock>, Failure> {
    match std::env::var("BULWARK_CLOCK_OFFSET_SECS") {
        Ok(v) => {
            let secs: i64 = v
                .trim()
                .parse()
                .map_err(|_| Failure("BULWARK_CLOCK_OFFSET_SECS must be an integer".into()))?;
            Ok(Arc::new(OffsetClock(secs)))
        }
        Err(_) => Ok(Arc::new(SystemClock)),
    }
}

/// What `keys rotate` rotates: the data directory's key file, or a stack's wrapped key ring.
pub enum Keys {
    Local(Arc<LocalSigner>),
    Wrapped {
        repo: Repo,
        wrapper: KmsKeyWrapper,
        stack: String,
        retention: i64,
    },
    /// A stack with no way to rotate from here (kms mode, or no wrapping key given).
    None,
}

/// The app over the chosen backend. With `embedded`: the SQLite store and local key of the data
/// directory. With `dynamodb`: the stack's tables and its signer (`--signing-mode`): KMS keys
/// (`kms`), or the wrapped key ring (`kms-wrapped`); neither configured: a signer that refuses
/// (provisioning never signs).
pub async fn open(g: &Global, issuer: &str, clock: Arc<dyn Clock>) -> Result<(Arc<App>, Keys), Failure> {
    open_with(g, Config::new(issuer)?, clock, None).await
}

/// [`open`] with a config of the caller's (`serve`: its tenant-cache bound), and where it
/// counts what happens (`serve --metrics-addr`: every store and KMS call and the services'
/// events; `None`: nothing is counted, nothing is timed).
pub async fn open_with(
    g: &Global,
    config: Config,
    clock: Arc<dyn Clock>,
    metrics: Option<Arc<dyn Metrics>>,
) -> Result<(Arc<App>, Keys), Failure> {
    let metered = |store: Arc<dyn Kv>| -> Arc<dyn Kv> {
        match &metrics {
            Some(m) => Arc::new(Metered::new(store, m.clone())),
            None => store,
        }
    };
    let sink = metrics.clone().unwrap_or_else(shared::metrics::noop);
    if g.backend == "dynamodb" {
        let mode = g.signing_mode.clone().unwrap_or_else(|| {
            if g.wrapping_key_id.is_some() {
                "kms-wrapped".into()
            } else {
                "kms".into()
            }
        });
        let stack = g.stack.clone().or_else(|| {
            g.table_prefix
                .as_deref()
                .map(|p| p.strip_suffix('-').unwrap_or(p).to_string())
        });
        let lookup = |k: &str| match k {
            "BULWARK_TABLE_PREFIX" => g.table_prefix.clone(),
            "BULWARK_KMS_KEY_IDS" => Some(g.kms_key_ids.clone().unwrap_or_else(|| "-".into())),
            "BULWARK_SIGNING_MODE" => Some(mode.clone()),
            "BULWARK_STACK" => stack.clone(),
            "BULWARK_WRAPPING_KEY_ID" => g.wrapping_key_id.clone(),
            "BULWARK_PREVIOUS_KMS_KEY_IDS" => g.previous_kms_key_ids.clone(),
            _ => None,
        };
        let aws = Config::aws_from_lookup(lookup).map_err(|e| Failure(format!("--backend dynamodb: {e}")))?;
        let sdk = shared::aws::sdk_config(None, None).await;
        let store: Arc<dyn Kv> = metered(Arc::new(DynamoStore::new(
            shared::store::dynamodb::Client::new(&sdk),
            TableNames::with_prefix(&aws.table_prefix),
            clock.clone(),
        )));
        let retention = config.max_access_token_ttl;
        let (signer, keys): (Arc<dyn Signer>, Keys) = match &aws.signing {
            Signing::Kms { .. } if g.kms_key_ids.is_none() => (Arc::new(NoSigner), Keys::None),
            Signing::Kms { .. } => (
                shared::keys::aws_signer(
                    &aws.signing,
                    &sdk,
                    Arc::new(Repo::new(store.clone(), clock.clone())),
                    clock.clone(),
                    retention,
                    sink.clone(),
                )?,
                Keys::None,
            ),
            Signing::Wrapped {
                stack,
                wrapping_key_id,
                ..
            } => (
                shared::keys::aws_signer(
                    &aws.signing,
                    &sdk,
                    Arc::new(Repo::new(store.clone(), clock.clone())),
                    clock.clone(),
                    retention,
                    sink.clone(),
                )?,
                match wrapping_key_id {
                    Some(id) => Keys::Wrapped {
                        repo: Repo::new(store.clone(), clock.clone()),
                        wrapper: KmsKeyWrapper::new(shared::keys::kms::client_from(&sdk), id.clone()),
                        stack: stack.clone(),
                        retention,
                    },
                    None => Keys::None,
                },
            ),
        };
        return Ok((App::new_with_metrics(config, store, signer, clock, sink), keys));
    }
    let data_dir: &Path = &g.data_dir;
    // Opening may wait for another process's lock (up to the busy timeout): off the workers.
    let (file, store_clock) = (data_dir.join("bulwark.db"), clock.clone());
    let store = tokio::task::spawn_blocking(move || EmbeddedStore::open(&file, store_clock))
        .await
        .unwrap_or_else(|e| Err(StoreError::Unavailable(e.to_string())))
        .map_err(|e| Failure(format!("opening the store in {}: {e}", data_dir.display())))?;
    let signer = Arc::new(LocalSigner::open(
        data_dir,
        clock.clone(),
        config.max_access_token_ttl,
    )?);
    Ok((
        App::new_with_metrics(config, metered(Arc::new(store)), signer.clone(), clock, sink),
        Keys::Local(signer),
    ))
}

/// The signer of provisioning commands against AWS without KMS keys: provisioning never signs.
struct NoSigner;

#[async_trait::async_trait]
impl Signer for NoSigner {
    async fn sign_jwt(&self, _: &str, _: &[u8]) -> Result<String, SignerError> {
        Err(SignerError::Invalid(
            "no signing key configured (--kms-key-ids)".into(),
        ))
    }
    async fn public_keys(&self) -> Result<Arc<KeySet>, SignerError> {
        Err(SignerError::Invalid(
            "no signing key configured (--kms-key-ids)".into(),
        ))
    }
}

pub async fn run(cli: Cli) -> ExitCode {
    let json = cli.global.json;
    // A client of some authorization server: no store, no key, exit codes of its own.
    if let Command::Token(args) = &cli.command {
        return crate::token::run(args, cli.global.issuer.as_deref(), json).await;
    }
    match dispatch(cli).await {
        Ok(Some(v)) => {
            print(json, &v);
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(Failure(msg)) => {
            if json {
                out(&json!({"error": msg}).to_string());
            }
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn print(json: bool, v: &Value) {
    if json {
        out(&v.to_string());
    } else {
        out(&serde_json::to_string_pretty(v).unwrap_or_default());
    }
}

/// A line on standard output; a reader that went away (`| head`) is no reason to panic.
fn out(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

fn admin(e: AdminError) -> Failure {
    match e {
        AdminError::OAuth(o) => Failure(format!("{}: {}", o.code.as_str(), o.description)),
        other => Failure(other.to_string()),
    }
}

async fn dispatch(cli: Cli) -> Result<Option<Value>, Failure> {
    let g = cli.global;
    if let Command::Serve {
        addr,
        demo,
        limits,
        metrics,
        sweep_interval,
        tenant_cache_secs,
    } = cli.command
    {
        crate::serve::serve(
            &g,
            addr,
            demo,
            limits,
            metrics,
            sweep_interval,
            &tenant_cache_secs,
        )
        .await?;
        return Ok(None);
    }
    // `issuer add/remove --issuer` and `user link --issuer` name a trusted identity provider
    // with the flag that is also the global `--issuer` (clap gives both the one value): for
    // them, the server's issuer comes from BULWARK_ISSUER or the default only.
    let names_an_idp = matches!(
        &cli.command,
        Command::Issuer { .. }
            | Command::User {
                command: UserCommand::Link { .. }
            }
    );
    let issuer = if names_an_idp {
        std::env::var("BULWARK_ISSUER").ok()
    } else {
        g.issuer.clone()
    }
    .unwrap_or_else(|| DEFAULT_ISSUER.to_string());
    let (app, keys) = open(&g, &issuer, clock()?).await?;
    let out = match cli.command {
        Command::Serve { .. } | Command::Token(_) => unreachable!("handled above"),
        Command::Tenant { command } => match command {
            TenantCommand::Create { name, dcr, audience } => {
                let policy =
                    DcrPolicy::parse(&dcr).ok_or_else(|| Failure("--dcr is open, token or closed".into()))?;
                let t = tenants::create(&app, &name, policy, audience)
                    .await
                    .map_err(admin)?;
                tenants::describe(&t)
            }
            TenantCommand::SetLifetimes {
                name,
                access_token_ttl,
                refresh_idle,
                refresh_absolute,
                session,
            } => tenants::describe(
                &tenants::set_lifetimes(
                    &app,
                    &name,
                    &tenants::LifetimeChanges {
                        access_token: access_token_ttl,
                        refresh_idle,
                        refresh_absolute,
                        session,
                    },
                )
                .await
                .map_err(admin)?,
            ),
            TenantCommand::SetPolicy {
                name,
                password_grant,
                cimd,
                client_assertion_max_lifetime,
                dpop_nonce,
                par,
            } => {
                let mut t = tenants::get(&app, &name).await.map_err(admin)?;
                if let Some(p) = password_grant {
                    t = tenants::set_password_grant(&app, &name, p == "allow")
                        .await
                        .map_err(admin)?;
                }
                if let Some(c) = cimd {
                    let policy = match c.as_str() {
                        "deny" => CimdPolicy::Deny,
                        "allow" => CimdPolicy::Allow,
                        hosts => CimdPolicy::hosts(hosts.split(',').map(str::to_string))
                            .map_err(|e| Failure(format!("--cimd: {e}")))?,
                    };
                    let changes = shared::service::admin::PolicyChanges {
                        cimd: Some(policy),
                        ..Default::default()
                    };
                    t = shared::service::admin::patch_policy(&app, &name, None, changes, "cli")
                        .await
                        .map_err(admin)?
                        .value;
                }
                if let Some(p) = par {
                    let changes = shared::service::admin::PolicyChanges {
                        require_pushed_authorization_requests: Some(p == "required"),
                        ..Default::default()
                    };
                    t = shared::service::admin::patch_policy(&app, &name, None, changes, "cli")
                        .await
                        .map_err(admin)?
                        .value;
                }
                if let Some(l) = client_assertion_max_lifetime {
                    let value = match l.as_str() {
                        "default" => None,
                        n => Some(n.parse::<i64>().map_err(|_| {
                            Failure(
                                "--client-assertion-max-lifetime is a number of seconds or default".into(),
                            )
                        })?),
                    };
                    let changes = shared::service::admin::PolicyChanges {
                        client_assertion_max_lifetime: Some(value),
                        ..Default::default()
                    };
                    t = shared::service::admin::patch_policy(&app, &name, None, changes, "cli")
                        .await
                        .map_err(admin)?
                        .value;
                }
                if let Some(n) = dpop_nonce {
                    let changes = shared::service::admin::PolicyChanges {
                        dpop_nonce_required: Some(n == "required"),
                        ..Default::default()
                    };
                    t = shared::service::admin::patch_policy(&app, &name, None, changes, "cli")
                        .await
                        .map_err(admin)?
                        .value;
                }
                tenants::describe(&t)
            }
            TenantCommand::Show { name } => {
                tenants::describe(&tenants::get(&app, &name).await.map_err(admin)?)
            }
        },
        Command::Scope { command } => tenants::describe(
            &match command {
                ScopeCommand::Add {
                    tenant,
                    name,
                    description,
                    restricted,
                } => tenants::add_scope(&app, &tenant, &name, &description, restricted.then_some(true)).await,
                ScopeCommand::SetRestricted {
                    tenant,
                    name,
                    restricted,
                } => tenants::set_restricted(&app, &tenant, &name, restricted).await,
            }
            .map_err(admin)?,
        ),
        Command::Resource {
            command:
                ResourceCommand::Add {
                    tenant,
                    resource,
                    name,
                },
        } => tenants::describe(
            &tenants::add_resource(&app, &tenant, &resource, name.as_deref(), "cli")
                .await
                .map_err(admin)?,
        ),
        Command::Issuer { command } => match command {
            IssuerCommand::Add {
                tenant,
                issuer,
                jwks_file,
                jwks_uri,
                id_jag,
                idp_tenant,
                workload,
                single_use,
            } => {
                let jwks = match jwks_file {
                    Some(f) => {
                        let text = std::fs::read_to_string(&f)
                            .map_err(|e| Failure(format!("cannot read {}: {e}", f.display())))?;
                        Some(
                            serde_json::from_str::<Value>(&text)
                                .map_err(|e| Failure(format!("{} is not JSON: {e}", f.display())))?,
                        )
                    }
                    None => None,
                };
                tenants::describe_issuers(
                    &tenants::add_issuer(
                        &app,
                        &tenant,
                        shared::domain::tenant::TrustedIssuer {
                            issuer: issuer.clone(),
                            jwks,
                            jwks_uri,
                            id_jag,
                            idp_tenant,
                            workload,
                            single_use,
                        },
                        "cli",
                    )
                    .await
                    .map_err(admin)?,
                )
            }
            IssuerCommand::List { tenant } => {
                tenants::describe_issuers(&tenants::get(&app, &tenant).await.map_err(admin)?)
            }
            IssuerCommand::Remove { tenant, issuer } => tenants::describe_issuers(
                &tenants::remove_issuer(&app, &tenant, &issuer, "cli")
                    .await
                    .map_err(admin)?,
            ),
        },
        Command::Iat {
            command:
                IatCommand::Create {
                    tenant,
                    expires_in,
                    max_uses,
                },
        } => {
            let (secret, iat) = tenants::create_iat(&app, &tenant, expires_in, max_uses)
                .await
                .map_err(admin)?;
            json!({
                "initial_access_token": secret.expose(),
                "tenant": iat.tenant.as_str(),
                "expires_at": iat.expires_at,
                "max_uses": iat.max_uses,
            })
        }
        Command::Client { command } => client(&app, command).await?,
        Command::User { command } => user(&app, command).await?,
        Command::Keys {
            command: KeysCommand::Rotate,
        } => {
            let r = match &keys {
                Keys::Local(signer) => signer.rotate()?,
                Keys::Wrapped {
                    repo,
                    wrapper,
                    stack,
                    retention,
                } => shared::keys::wrapped::rotate(repo, wrapper, stack, *retention, repo.now()).await?,
                Keys::None => {
                    return Err(Failure(
                        "with --backend dynamodb: for SigningMode=kms-wrapped give --wrapping-key-id \
                         (the stack's WrappingKeyArn output); for SigningMode=kms, rotate by creating a \
                         KMS key and redeploying with ActiveSigningKeyArn=<new key> \
                         PreviousSigningKeyArn=<old key>"
                            .into(),
                    ));
                }
            };
            json!({"active_kid": r.active_kid, "published_kids": r.published_kids})
        }
        Command::Audit {
            command:
                AuditCommand::List {
                    tenant,
                    kind,
                    subject,
                    since,
                    until,
                    newest_first,
                },
        } => {
            tenants::get(&app, &tenant).await.map_err(admin)?;
            let filter = shared::service::admin::AuditFilter {
                kind,
                subject,
                since,
                until,
            };
            let mut events = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let (page, next) =
                    shared::service::admin::audit(&app, &tenant, &filter, cursor.as_deref(), 200)
                        .await
                        .map_err(admin)?;
                events.extend(page);
                match next {
                    Some(n) => cursor = Some(n),
                    None => break,
                }
            }
            if !newest_first {
                events.reverse();
            }
            json!({"events": events})
        }
        Command::Group { command } => group(&app, command).await?,
        Command::Migrate { dry_run } => migrate(&app, dry_run).await?,
    };
    Ok(Some(out))
}

async fn client(app: &App, command: ClientCommand) -> Result<Value, Failure> {
    match command {
        ClientCommand::Create {
            tenant,
            name,
            grant_types,
            scope,
            redirect_uris,
            auth_method,
            first_party,
            agent_of,
            jwks_file,
            jwks_uri,
            federated_issuer,
            federated_subjects,
            federated_audience,
            resource_server_for,
            dpop_bound,
            require_par,
        } => {
            let mut metadata = json!({
                "client_name": name,
                "grant_types": grant_types,
                "scope": scope,
                "redirect_uris": redirect_uris,
                "token_endpoint_auth_method": auth_method,
            });
            if dpop_bound {
                metadata["dpop_bound_access_tokens"] = json!(true);
            }
            if require_par {
                metadata["require_pushed_authorization_requests"] = json!(true);
            }
            if let Some(f) = jwks_file {
                let text = std::fs::read_to_string(&f)
                    .map_err(|e| Failure(format!("cannot read {}: {e}", f.display())))?;
                let v: Value = serde_json::from_str(&text)
                    .map_err(|e| Failure(format!("{} is not JSON: {e}", f.display())))?;
                metadata["jwks"] = v;
            }
            if let Some(u) = jwks_uri {
                metadata["jwks_uri"] = json!(u);
            }
            if let Some(issuer) = federated_issuer {
                metadata["federated_credential"] =
                    json!({"issuer": issuer, "subjects": federated_subjects, "audience": federated_audience});
            }
            let reg = clients::create_by_admin(
                app,
                &tenant,
                &metadata,
                clients::AdminFields {
                    first_party,
                    agent_of: agent_of.as_deref(),
                    user_policy: None,
                    resource_server_for,
                },
            )
            .await
            .map_err(|e| admin(e.into()))?;
            Ok(clients::registration_response(
                app,
                &reg.client,
                reg.secret.as_ref(),
                reg.registration_token.as_ref(),
            ))
        }
        ClientCommand::List { tenant } => {
            tenants::get(app, &tenant).await.map_err(admin)?;
            let mut out = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let (page, next) = app.repo.clients_of(&tenant, cursor.as_deref(), 100).await?;
                out.extend(page.iter().map(clients::describe));
                match next {
                    Some(n) => cursor = Some(n),
                    None => break,
                }
            }
            Ok(json!({"clients": out}))
        }
        ClientCommand::Sweep { tenant } => {
            if let Some(t) = &tenant {
                tenants::get(app, t).await.map_err(admin)?;
            }
            // Everything due, however many runs of the per-partition bound that takes.
            let mut expired = Vec::new();
            loop {
                let r = shared::service::sweep::expire_open_registrations(
                    app,
                    tenant.as_deref(),
                    shared::service::sweep::DEFAULT_MAX_PER_SHARD,
                    "cli",
                )
                .await
                .map_err(|e| admin(e.into()))?;
                expired.extend(r.expired);
                if !r.more {
                    break;
                }
            }
            Ok(json!({"expired": expired}))
        }
        ClientCommand::Delete { tenant, client_id } => {
            // `client_any_in`: a metadata-document client (a URL id) is found only with its tenant.
            let current = app
                .repo
                .client_any_in(&tenant, &client_id)
                .await?
                .ok_or_else(|| Failure(format!("client {client_id} not found in tenant {tenant}")))?;
            clients::delete(app, current, "cli")
                .await
                .map_err(|e| admin(e.into()))?;
            Ok(json!({"deleted": client_id}))
        }
        ClientCommand::SetResourceServer {
            tenant,
            client_id,
            resources,
        } => {
            let c = shared::service::admin::patch_client(
                app,
                &tenant,
                &ClientId::from(client_id),
                None,
                &json!({ "resource_server_for": resources }),
                "cli",
            )
            .await
            .map_err(admin)?;
            Ok(clients::describe(&c.value))
        }
        ClientCommand::RotateSecret {
            tenant,
            client_id,
            grace_seconds,
        } => {
            let (secret, c) = shared::service::admin::rotate_secret(
                app,
                &tenant,
                &ClientId::from(client_id),
                grace_seconds,
                "cli",
                true,
            )
            .await
            .map_err(admin)?;
            Ok(json!({
                "client_id": c.client_id,
                "client_secret": secret.expose(),
                "previous_secret_expires_at": (c.previous_secret_until > 0).then_some(c.previous_secret_until),
            }))
        }
    }
}

async fn user(app: &App, command: UserCommand) -> Result<Value, Failure> {
    match command {
        UserCommand::SetPassword {
            tenant,
            username,
            password_stdin: _,
            sign_out_everywhere,
        } => {
            let password = read_password()?;
            let sign_out = users::SignOut::everywhere_if(sign_out_everywhere);
            users::set_password(app, &tenant, &username, &password, sign_out)
                .await
                .map_err(admin)?;
            Ok(json!({
                "tenant": tenant,
                "username": username,
                "password_set": true,
                "signed_out_everywhere": sign_out_everywhere,
            }))
        }
        UserCommand::Create {
            tenant,
            username,
            password_stdin: _,
            email,
            name,
            admin: is_admin,
        } => {
            let password = read_password()?;
            let u = users::create(
                app,
                users::NewUser {
                    tenant: &tenant,
                    username: &username,
                    password: &password,
                    email: email.as_deref(),
                    name: name.as_deref(),
                    admin: is_admin,
                },
            )
            .await
            .map_err(admin)?;
            Ok(
                json!({"sub": u.sub, "tenant": tenant, "username": u.username, "email": u.email, "name": u.name, "active": u.active, "admin": u.admin}),
            )
        }
        UserCommand::Link {
            tenant,
            username,
            issuer,
            subject,
        } => {
            let l = users::link(app, &tenant, &username, &issuer, &subject)
                .await
                .map_err(admin)?;
            Ok(json!({"tenant": l.tenant, "sub": l.sub, "issuer": l.issuer, "subject": l.subject}))
        }
        UserCommand::Deactivate { tenant, username } => {
            let u = users::deactivate(app, &tenant, &username).await.map_err(admin)?;
            Ok(json!({"sub": u.sub, "tenant": tenant, "username": u.username, "active": u.active}))
        }
    }
}

/// One line of stdin, without its line ending.
fn read_password() -> Result<shared::secret::Secret, Failure> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| Failure(format!("could not read the password from stdin: {e}")))?;
    Ok(shared::secret::Secret::new(line.trim_end_matches(['\r', '\n'])))
}

async fn group(app: &App, command: GroupCommand) -> Result<Value, Failure> {
    use shared::service::admin as svc;
    let sub_of = |tenant: TenantId, username: String| async move {
        let name = shared::domain::user::normalize_username(&username).map_err(Failure)?;
        app.repo
            .user_by_name(&tenant, &name)
            .await?
            .map(|u| u.value.sub)
            .ok_or_else(|| Failure(format!("user {name} not found in tenant {tenant}")))
    };
    match command {
        GroupCommand::Create { tenant, name } => {
            tenants::get(app, &tenant).await.map_err(admin)?;
            let g = svc::create_group(app, &tenant, &name, "cli")
                .await
                .map_err(admin)?;
            Ok(json!({"group_id": g.id, "name": g.name}))
        }
        GroupCommand::List { tenant } => {
            tenants::get(app, &tenant).await.map_err(admin)?;
            let mut out = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let (page, next) = svc::list_groups(app, &tenant, cursor.as_deref(), 100)
                    .await
                    .map_err(admin)?;
                out.extend(page.iter().map(|g| json!({"group_id": g.id, "name": g.name})));
                match next {
                    Some(n) => cursor = Some(n),
                    None => break,
                }
            }
            Ok(json!({"groups": out}))
        }
        GroupCommand::Add {
            tenant,
            group_id,
            username,
        } => {
            let sub = sub_of(tenant.clone(), username).await?;
            svc::add_member(app, &tenant, &group_id, &sub, "cli")
                .await
                .map_err(admin)?;
            Ok(json!({"group_id": group_id, "added": sub}))
        }
        GroupCommand::Remove {
            tenant,
            group_id,
            username,
        } => {
            let sub = sub_of(tenant.clone(), username).await?;
            svc::remove_member(app, &tenant, &group_id, &sub, "cli")
                .await
                .map_err(admin)?;
            Ok(json!({"group_id": group_id, "removed": sub}))
        }
        GroupCommand::Delete { tenant, group_id } => {
            svc::delete_group(app, &tenant, &group_id, "cli")
                .await
                .map_err(admin)?;
            Ok(json!({"deleted": group_id}))
        }
    }
}

/// `bulwark migrate`: the pending steps of `store::schema::MIGRATIONS`, then the stamp.
async fn migrate(app: &App, dry_run: bool) -> Result<Value, Failure> {
    use shared::store::schema::{CURRENT_SCHEMA, MIGRATIONS, migrate};
    let r = migrate(&app.repo, MIGRATIONS, CURRENT_SCHEMA, dry_run).await?;
    Ok(json!({
        "from": r.from,
        "to": r.to,
        "current": CURRENT_SCHEMA,
        "steps": r.steps,
        "stamped": r.stamped,
        "dry_run": r.dry_run,
    }))
}
