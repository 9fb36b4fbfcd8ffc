//! The official MCP Python SDK (`mcp`, in `.venv-mcp`) against a tenant's own issuer: an
//! `MCPServer` that is an RFC 9728 protected resource checking tokens by introspection, and the
//! SDK's `OAuthClientProvider` that discovers it and the tenant's issuer, registers itself by
//! open DCR, gets through the login and consent pages (a headless form-filler, no browser) and
//! calls a tool with a token whose `aud` is the MCP server. tests/mcp/proof.py does the Python
//! side; here the tenant, user, resources and clients are set up with the CLI and the result is
//! checked. Both backends.

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

#[tokio::test]
#[cfg_attr(
    not(feature = "test-services"),
    ignore = "needs the MCP Python SDK in .venv-mcp: run `bash infra/test.sh` (it installs it and enables feature test-services)"
)]
async fn the_mcp_python_sdk_discovers_registers_logs_in_and_calls_a_tool_on_a_protected_mcp_server() {
    let data = DataDir::new();
    let port = free_port();
    let mcp_url = format!("http://127.0.0.1:{port}/mcp");
    let other_aud = "https://files.example/api";

    // The tenant: open DCR (an MCP client registers itself), the MCP server's scope, the MCP
    // server as an RFC 8707 resource, user alice, and the MCP server's own confidential client
    // (for introspection; it also mints a token for another audience below).
    let tenant = format!("t{}", unique().replace('-', ""));
    data.cli(&["tenant", "create", &tenant, "--dcr", "open"]);
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
    let rs = data.client(&tenant, "mcp:tools", "client_secret_basic");

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

    let server = Server::start(&data);
    let issuer = format!("{}/t/{tenant}", server.issuer);
    let other_issuer = format!("{}/t/{other}", server.issuer);
    let other_aud_token = cc_token(&issuer, &rs, "mcp:tools", other_aud).await;
    assert_eq!(jwt_part(&other_aud_token, 1)["aud"], other_aud);
    let other_tenant_token = cc_token(&other_issuer, &other_client, "mcp:tools", &mcp_url).await;
    assert_eq!(jwt_part(&other_tenant_token, 1)["aud"], mcp_url.as_str());

    // proof.py bounds its own run (a deadline on the server's start and on the flow).
    let out = std::process::Command::new(repo().join(".venv-mcp/bin/python"))
        .arg(repo().join("tests/mcp/proof.py"))
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
    eprintln!("proof.py: {v}");
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
}
