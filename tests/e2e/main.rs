//! End-to-end tests: each starts `bulwark serve` as a real process on a free 127.0.0.1 port
//! (a fresh data directory each), drives it over HTTP and through the CLI, and stops it by PID.

// Tests: a failed unwrap is a failed test (Cargo.toml denies these outside tests).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod account;
mod admin;
mod authcode;
mod chromium;
mod cimd;
mod cli;
mod console;
mod device;
mod discovery_jwks;
mod dpop;
mod exchange;
mod federation;
mod flow;
mod introspect_revoke;
mod isolation;
mod keyless;
mod lambda;
mod logs;
mod mcp;
mod metrics;
mod migrate;
mod outage;
mod par;
mod password;
mod register;
mod review2;
mod robustness;
mod rp_library;
mod security;
mod sign_out;
mod support;
mod template;
mod tenant_issuer;
mod token;
mod token_cli;
mod workload;
