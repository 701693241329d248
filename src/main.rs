//! The `shoal` binary: agent, client and shim in one.

use clap::Parser;

fn main() {
    // Shims log only errors by default: libcontainer is chatty at info.
    let shim = std::env::args().nth(1).as_deref() == Some("shim");
    let default = if shim { "error" } else { "info" };
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("SHOAL_LOG").unwrap_or_else(|_| default.into());
    // hickory's server logs every DNS query at info; only its warnings,
    // unless SHOAL_LOG names it.
    if !std::env::var("SHOAL_LOG").unwrap_or_default().contains("hickory") {
        filter = filter.add_directive("hickory_server=warn".parse().expect("a valid directive"));
    }
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
