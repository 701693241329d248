//! `shoal token create|ls|rm`.

use super::{age, Ctx};
use crate::api::wire::{Reply, Request};
use crate::join::token::parse_ttl;
use anyhow::{anyhow, bail, Result};

#[derive(clap::Subcommand, Debug)]
pub(super) enum Cmd {
    /// Print a new join token.
    Create {
        /// Lifetime, e.g. 30m, 24h, 7d.
        #[arg(long, default_value = "24h")]
        ttl: String,
    },
    /// List join tokens (ids only; secrets are not stored).
    Ls,
    /// Remove a join token by id.
    Rm {
        /// Token id (the 6 characters after the CA hash).
        id: String,
    },
}

pub(super) async fn run(ctx: &Ctx, cmd: Cmd) -> Result<i32> {
    match cmd {
        Cmd::Create { ttl } => {
            let ttl = parse_ttl(&ttl).map_err(|e| anyhow!(e))?;
            match ctx.simple(&Request::TokenCreate { ttl_secs: ttl.as_secs() }).await? {
                Reply::Token { token, .. } => println!("{token}"),
                other => bail!("unexpected reply {other:?}"),
            }
        }
        Cmd::Ls => match ctx.simple(&Request::TokenList).await? {
            Reply::Tokens { tokens } => {
                println!("{:<8} {:<8} {:<10} {:<6} STATUS", "ID", "AGE", "EXPIRES", "USES");
                let now = crate::runtime::shim::now_ms();
                for t in tokens {
                    let status = match (t.removed_ms, now > t.expires_ms) {
                        (Some(_), _) => "removed",
                        (None, true) => "expired",
                        (None, false) => "valid",
                    };
                    let expires = if now > t.expires_ms {
                        "-".to_string()
                    } else {
                        format!("in {}", left(t.expires_ms - now))
                    };
                    println!("{:<8} {:<8} {:<10} {:<6} {status}", t.id, age(t.created_ms), expires, t.uses);
                }
            }
            other => bail!("unexpected reply {other:?}"),
        },
        Cmd::Rm { id } => match ctx.simple(&Request::TokenRemove { id }).await? {
            Reply::TokenRemoved { id } => println!("token {id} removed"),
            other => bail!("unexpected reply {other:?}"),
        },
    }
    Ok(0)
}

fn left(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}
