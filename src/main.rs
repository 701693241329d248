//! The `shoal` binary: agent, client and shim in one.

use clap::Parser;

fn main() {
    // Shims log only errors by default: libcontainer is chatty at info.
    let shim = std::env::args().nth(1).as_deref() == Some("shim");
    let default = if shim { "error" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SHOAL_LOG").unwrap_or_else(|_| default.into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let cli = shoal::cli::Cli::parse();
    match cli.run() {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}
