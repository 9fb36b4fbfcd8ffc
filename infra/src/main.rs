//! `bulwark`: run every endpoint locally and provision tenants, clients and keys.

mod cli;
mod commands;
mod serve;
mod token;

use clap::Parser;

/// `bulwark serve` answers many requests at once on a multi-threaded runtime; each token request
/// makes a few dozen small allocations on whichever worker runs it. glibc's allocator spent
/// about 10% of the server's CPU there (perf, `client_credentials` at 16 connections);
/// mimalloc's thread-local free lists (in its hardened `secure` mode) make the same server
/// about 15% faster (ARCHITECTURE "The local server"). The Lambda functions, one request at a
/// time, keep the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(commands::run(args))
}
