//! `shoal image import FILE | pull REF | ls | rm REF`

use super::Ctx;
use crate::api::wire::{ImageInfo, Reply, Request};
use crate::runtime::image::progress::PullEvent;
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
    /// Pull an image from its registry into the node asked (`--server`),
    /// with a progress bar per layer and a total on a terminal.
    Pull {
        /// Image reference.
        reference: String,
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
    println!("{:<50} {:<20} {:>10}  NODES", "IMAGE", "DIGEST", "SIZE");
    for i in images {
        let short = i.digest.trim_start_matches("sha256:").get(..12).unwrap_or("");
        println!(
            "{:<50} {:<20} {:>10}  {}",
            i.reference,
            format!("sha256:{short}"),
            format!("{:.1}MB", i.size as f64 / 1e6),
            if i.nodes.is_empty() { "-".to_string() } else { i.nodes.join(",") }
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
        Cmd::Pull { reference } => return pull(ctx, reference).await,
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

/// The bars of a pull: one per layer and a total; hidden when stderr is
/// not a terminal.
struct Bars {
    multi: indicatif::MultiProgress,
    total: indicatif::ProgressBar,
    layers: Vec<(String, indicatif::ProgressBar)>,
}

impl Bars {
    fn new() -> Bars {
        let multi = indicatif::MultiProgress::new();
        let total = multi.add(indicatif::ProgressBar::new(0));
        total.set_style(style("total"));
        Bars {
            multi,
            total,
            layers: Vec::new(),
        }
    }

    fn event(&mut self, e: &PullEvent) {
        match e {
            PullEvent::Layers(list) => {
                for (digest, size) in list {
                    let bar = self.multi.insert_before(&self.total, indicatif::ProgressBar::new(*size));
                    bar.set_style(style(&digest.trim_start_matches("sha256:")[..12.min(digest.len())]));
                    self.layers.push((digest.clone(), bar));
                }
                self.total.set_length(list.iter().map(|(_, s)| s).sum());
            }
            PullEvent::Bytes { digest, done } => {
                for (_, bar) in self.layers.iter().filter(|(d, _)| d == digest) {
                    bar.set_position(*done);
                    if bar.length().is_some_and(|l| *done >= l) {
                        bar.finish();
                    }
                }
                self.total.set_position(self.layers.iter().map(|(_, b)| b.position()).sum());
            }
        }
    }
}

fn style(name: &str) -> indicatif::ProgressStyle {
    indicatif::ProgressStyle::with_template(&format!(
        "{name:<12} [{{bar:30}}] {{bytes:>10}}/{{total_bytes:<10}} {{bytes_per_sec}}"
    ))
    .expect("valid template")
    .progress_chars("=> ")
}

async fn pull(ctx: &Ctx, reference: String) -> Result<i32> {
    let (_, cfg) = ctx.credentials()?;
    let (_endpoint, conn) = crate::transport::quic::connect(&cfg, ctx.server).await?;
    let (mut send, mut recv) = conn.open_bi().await?;
    write_frame(
        &mut send,
        &Frame::json(&Request::ImagePull {
            reference: reference.clone(),
        }),
    )
    .await?;
    let _ = send.finish();
    let mut bars = Bars::new();
    let started = std::time::Instant::now();
    let reply: Reply = loop {
        match read_frame(&mut recv).await?.ok_or_else(|| anyhow!("no answer"))? {
            Frame::Data(b) => bars.event(&serde_json::from_slice(&b)?),
            f @ Frame::Json(_) => break f.decode()?,
            other => bail!("unexpected frame {other:?}"),
        }
    };
    conn.close(0u32.into(), b"done");
    bars.total.finish();
    match reply {
        Reply::Images { images } => {
            for i in images {
                println!(
                    "pulled {} ({}, {:.1}MB in {:.1}s)",
                    i.reference,
                    i.digest,
                    i.size as f64 / 1e6,
                    started.elapsed().as_secs_f64()
                );
            }
            Ok(0)
        }
        Reply::Error { message } => bail!(message),
        other => bail!("unexpected answer {other:?}"),
    }
}
