//! `shoal image import FILE | ls | rm REF`

use super::Ctx;
use crate::api::wire::{ImageInfo, Reply, Request};
use crate::transport::framing::{read_frame, write_frame, Frame};
use anyhow::{anyhow, bail, Context, Result};
use tokio::io::AsyncReadExt;

#[derive(clap::Subcommand, Debug)]
pub(super) enum Cmd {
    /// Import an OCI image-layout archive or a `docker save` tar.
    Import {
        /// The archive.
        file: std::path::PathBuf,
    },
    /// List images.
    Ls,
    /// Remove an image.
    Rm {
        /// Image reference.
        reference: String,
    },
}

fn print(images: &[ImageInfo]) {
    println!("{:<50} {:<20} {:>10}", "IMAGE", "DIGEST", "SIZE");
    for i in images {
        let short = i.digest.trim_start_matches("sha256:").get(..12).unwrap_or("");
        println!(
            "{:<50} {:<20} {:>10}",
            i.reference,
            format!("sha256:{short}"),
            format!("{:.1}MB", i.size as f64 / 1e6)
        );
    }
}

pub(super) async fn run(ctx: &Ctx, c: Cmd) -> Result<i32> {
    match c {
        Cmd::Ls => {
            if let Reply::Images { images } = ctx.simple(&Request::ImageList).await? {
                print(&images);
            }
        }
        Cmd::Rm { reference } => {
            if let Reply::Images { images } = ctx.simple(&Request::ImageRemove { reference }).await? {
                for i in images {
                    println!("removed {}", i.reference);
                }
            }
        }
        Cmd::Import { file } => {
            let mut f = tokio::fs::File::open(&file)
                .await
                .with_context(|| format!("opening {}", file.display()))?;
            let size = f.metadata().await?.len();
            let (_, cfg) = ctx.credentials()?;
            let (_endpoint, conn) = crate::transport::quic::connect(&cfg, ctx.server).await?;
            let (mut send, mut recv) = conn.open_bi().await?;
            write_frame(&mut send, &Frame::json(&Request::ImageImport { size })).await?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = f.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                write_frame(&mut send, &Frame::Data(buf[..n].to_vec())).await?;
            }
            let _ = send.finish();
            let reply: Reply = read_frame(&mut recv).await?.ok_or_else(|| anyhow!("no answer"))?.decode()?;
            conn.close(0u32.into(), b"done");
            match reply {
                Reply::Images { images } => {
                    for i in images {
                        println!("imported {} ({})", i.reference, i.digest);
                    }
                }
                Reply::Error { message } => bail!(message),
                other => bail!("unexpected answer {other:?}"),
            }
        }
    }
    Ok(0)
}
