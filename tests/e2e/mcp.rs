//! The official MCP Python SDK (`mcp`, in `.venv-mcp`) against a tenant's own issuer: an
//! `MCPServer` that is an RFC 9728 protected resource checking tokens by introspection, and the
//! SDK's `OAuthClientProvider` that discovers it and the tenant's issuer, registers itself by
//! open DCR, gets through the login and consent pages (a headless form-filler, no browser) and
//! calls a tool with a token whose `aud` is the MCP server. tests/mcp/proof.py does the Python
//! side; here the tenant, user, resources and clients are set up with the CLI and the result is
//! checked. A second run has no registration at all: the SDK is known by the URL of its Client
//! ID Metadata Document, which proof.py serves over https (a throwaway CA from
//! tests/mcp/certs.py, trusted by the server through `SSL_CERT_FILE`) and the server fetches.
//! Both backends.

use serde_json::Value;

use crate::flow::*;
use crate::support::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A client-credentials token from `issuer`'s token endpoint for `resource`; panics unless 200.
async fn cc_token(issuer: &str, c: &TestClient, scope: &str, resource: &str) -> String {
    let r = post_form(
        &format!("{issuer}/oauth2/token"),
        Some((&c.id, &c.secret)),
        &[
            ("grant_type", "client_credentials"),
            ("scope", scope),
            ("resource", resource),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "token for {resource}: {}", r.body);
    r.body["access_token"].as_str().unwrap().to_string()
}

/// How the SDK's client becomes a client of the tenant.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Identity {
    /// Open dynamic client registration.
    Registers,
    /// A Client ID Metadata Document at `https://localhost:PORT/client.json`: the tenant's
    /// registration is closed and it accepts documents on `localhost` only.
    MetadataDocument,
}

#[tokio::test]
#[cfg_attr(
    not(feature = "test-services"),
    ignore = "needs the MCP Python SDK in .venv-mcp: run `bash infra/test.sh` (it installs it and enables feature test-services)"
)]
async fn the_mcp_python_sdk_discovers_registers_logs_in_and_calls_a_tool_on_a_protected_mcp_server() {
    let (_server, data, tenant, v) = run_proof(Identity::Registers).await;

    // The SDK registered itself as a public client of this tenant (open DCR).
    let client_id = v["client_id"].as_str().expect("client_id");
    let list = data.cli(&["client", "list", "--tenant", &tenant]);
    let registered = list["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["client_id"] == client_id)
        .unwrap_or_else(|| panic!("{client_id} not in {list}"));
    assert_eq!(registered["token_endpoint_auth_method"], "none", "{registered}");
    assert_eq!(registered["origin"], "dcr", "{registered}");
    assert_eq!(v["consent_heading"], "Allow MCP SDK proof access?", "{v}");
}

#[tokio::test]
#[cfg_attr(
    not(feature = "test-services"),
    ignore = "needs the MCP Python SDK in .venv-mcp: run `bash infra/test.sh` (it installs it and enables feature test-services)"
)]
async fn the_mcp_python_sdk_is_known_by_its_client_id_metadata_document_where_registration_is_closed() {
    let (_server, data, tenant, v) = run_proof(Identity::MetadataDocument).await;

    // The SDK's client_id is the URL of the document proof.py served over https, on localhost.
    let url = v["document_url"].as_str().expect("document_url");
    let port = url
        .strip_prefix("https://localhost:")
        .and_then(|r| r.strip_suffix("/client.json"))
        .unwrap_or_else(|| panic!("document URL {url}"));
    assert!(port.parse::<u16>().is_ok(), "{url}");
    assert_eq!(v["client_id"], url, "{v}");
    // The user was asked about the document's host, not only the name it claims.
    assert_eq!(v["consent_heading"], "Allow localhost access?", "{v}");
    // Fetched once, by the server (then kept in the store: the token request and the tool
    // calls did not fetch it again).
    let fetches = v["document_fetches"].as_array().expect("document_fetches");
    assert_eq!(fetches.len(), 1, "{v}");
    assert_eq!(fetches[0]["path"], "/client.json", "{v}");
    assert_eq!(fetches[0]["user_agent"], "bulwark", "{v}");

    // The tenant's apps: the MCP server's own, and the document's URL as a metadata-document
    // client. Nothing was registered.
    let list = data.cli(&["client", "list", "--tenant", &tenant]);
    let clients = list["clients"].as_array().unwrap();
    assert_eq!(clients.len(), 2, "{list}");
    let doc = clients
        .iter()
        .find(|c| c["client_id"] == url)
        .unwrap_or_else(|| panic!("{url} not in {list}"));
    assert_eq!(doc["origin"], "cimd", "{doc}");
    assert_eq!(doc["client_name"], "MCP SDK proof", "{doc}");
    assert_eq!(doc["token_endpoint_auth_method"], "none", "{doc}");
    assert!(
        clients.iter().all(|c| c["origin"] != "dcr"),
        "a client was registered: {list}"
    );
}

/// Set up the tenant, start the server, run tests/mcp/proof.py and check what every run must
/// show; the running server, its data directory (for the CLI), the tenant, and proof.py's
/// report.
async fn run_proof(identity: Identity) -> (Server, DataDir, String, Value) {
    let data = DataDir::new();
    let port = free_port();
    let mcp_url = format!("http://127.0.0.1:{port}/mcp");
    let other_aud = "https://files.example/api";

    // The tenant: open DCR (an MCP client registers itself) or, for a metadata document,
    // closed DCR and documents on localhost accepted; the MCP server's scope, the MCP server
    // as an RFC 8707 resource, user alice, and the MCP server's own confidential client (for
    // introspection; it also mints a token for another audience below).
    let tenant = format!("t{}", unique().replace('-', ""));
    match identity {
        Identity::Registers => {
            data.cli(&["tenant", "create", &tenant, "--dcr", "open"]);
        }
        Identity::MetadataDocument => {
            data.cli(&["tenant", "create", &tenant, "--dcr", "closed"]);
            let p = data.cli(&["tenant", "set-policy", &tenant, "--cimd", "localhost"]);
            assert_eq!(p["cimd"], serde_json::json!(["localhost"]), "{p}");
        }
    }
    data.cli(&[
        "scope",
        "add",
        "--tenant",
        &tenant,
        "mcp:tools",
        "Use the MCP server's tools",
    ]);
    data.cli(&["resource", "add", "--tenant", &tenant, &mcp_url]);
    data.cli(&["resource", "add", "--tenant", &tenant, other_aud]);
    let sub = user(&data, &tenant, "alice");
    // The MCP server's client: the resource server for its URL (it may introspect the users'
    // tokens for it), and a client-credentials client of its own.
    let rs = TestClient::from_registration(&data.cli(&[
        "client",
        "create",
        "--tenant",
        &tenant,
        "--name",
        "MCP server",
        "--scope",
        "mcp:tools",
        "--resource-server-for",
        &mcp_url,
    ]));

    // Another tenant that names the same MCP server as one of its resources.
    let other = format!("u{}", unique().replace('-', ""));
    data.cli(&["tenant", "create", &other]);
    data.cli(&[
        "scope",
        "add",
        "--tenant",
        &other,
        "mcp:tools",
        "Use the MCP server's tools",
    ]);
    data.cli(&["resource", "add", "--tenant", &other, &mcp_url]);
    let other_client = data.client(&other, "mcp:tools", "client_secret_basic");

    // The document host's certificate, from a throwaway CA the server trusts (and only it:
    // SSL_CERT_FILE replaces the system roots). Made before the server starts, which reads its
    // roots once.
    let certs = data.path().join("certs");
    let mut server_env = Vec::new();
    let mut proof_args = Vec::new();
    let mut proof_env = Vec::new();
    if identity == Identity::MetadataDocument {
        let made = std::process::Command::new(repo().join(".venv-mcp/bin/python"))
            .arg(repo().join("tests/mcp/certs.py"))
            .arg(&certs)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run .venv-mcp/bin/python (bash infra/venv.sh installs it)");
        assert!(
            made.status.success(),
            "certs.py: {}",
            String::from_utf8_lossy(&made.stderr)
        );
        let file = |name: &str| certs.join(name).to_str().expect("UTF-8 path").to_string();
        server_env.push(("SSL_CERT_FILE", file("ca.pem")));
        proof_args.push("--cimd");
        proof_env.push(("MCP_CIMD_CERT", file("localhost.pem")));
        proof_env.push(("MCP_CIMD_KEY", file("localhost.key")));
    }
    let server_env: Vec<(&str, &str)> = server_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = Server::start_with(&data, &[], &server_env);
    let issuer = format!("{}/t/{tenant}", server.base);
    let other_issuer = format!("{}/t/{other}", server.base);
    let other_aud_token = cc_token(&issuer, &rs, "mcp:tools", other_aud).await;
    assert_eq!(jwt_part(&other_aud_token, 1)["aud"], other_aud);
    let other_tenant_token = cc_token(&other_issuer, &other_client, "mcp:tools", &mcp_url).await;
    assert_eq!(jwt_part(&other_tenant_token, 1)["aud"], mcp_url.as_str());

    // proof.py bounds its own run (a deadline on the server's start and on the flow).
    let started = std::time::Instant::now();
    let out = std::process::Command::new(repo().join(".venv-mcp/bin/python"))
        .arg(repo().join("tests/mcp/proof.py"))
        .args(&proof_args)
        .envs(proof_env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("BULWARK_TENANT_ISSUER", &issuer)
        .env("BULWARK_TENANT", &tenant)
        .env("MCP_PORT", port.to_string())
        .env("MCP_RS_CLIENT_ID", &rs.id)
        .env("MCP_RS_CLIENT_SECRET", &rs.secret)
        .env("MCP_USERNAME", "alice")
        .env("MCP_PASSWORD", PASSWORD)
        .env("MCP_OTHER_AUD_TOKEN", &other_aud_token)
        .env("MCP_OTHER_TENANT_TOKEN", &other_tenant_token)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run .venv-mcp/bin/python (bash infra/venv.sh installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "proof.py failed ({}): {stdout}\n{stderr}\nserver log: {}",
        out.status,
        std::fs::read_to_string(&server.log).unwrap_or_default()
    );
    let v: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("one JSON line ({e}): {stdout}\n{stderr}"));
    eprintln!("proof.py ({:.1} s): {v}", started.elapsed().as_secs_f64());
    assert_eq!(v["ok"], true, "{v}");
    // The tool answered alice's subject, from a token for the MCP server, of this tenant's issuer.
    assert_eq!(v["sub"], sub.as_str(), "{v}");
    assert_eq!(v["aud"], mcp_url.as_str(), "{v}");
    assert_eq!(v["iss"], issuer.as_str(), "{v}");
    assert_eq!(v["tools"], serde_json::json!(["whoami"]), "{v}");
    assert_eq!(v["pages"], serde_json::json!(["login", "consent"]), "{v}");
    assert!(
        v["scope"]
            .as_str()
            .unwrap_or_default()
            .split(' ')
            .any(|s| s == "mcp:tools"),
        "{v}"
    );
    for k in ["other_audience", "other_tenant"] {
        assert_eq!(v["refused"][k]["status"], 401, "{k}: {v}");
    }
    (server, data, tenant, v)
}
