//! `start`: spawn the shim that creates, starts and supervises a container.

use super::{proc, Runtime, RuntimeError};
use crate::store::RuntimeHandle;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};

/// A container that runs.
#[derive(Debug)]
pub struct Started {
    /// Host pid of the container's process.
    pub pid: i32,
    /// How to find the shim again.
    pub handle: RuntimeHandle,
    /// The shim, while it is our child (to reap it).
    pub child: tokio::process::Child,
}

impl Runtime {
    /// Starts container `name` from its bundle; returns once its process runs.
    pub async fn start(&self, uid: &str, name: &str) -> Result<Started, RuntimeError> {
        let bundle = self.paths.bundle(uid, name);
        let shim_log = bundle.join("shim.log");
        let log = std::fs::File::create(&shim_log).map_err(|e| RuntimeError::Io {
            path: shim_log.clone(),
            source: e,
        })?;
        let mut child = tokio::process::Command::new(&self.exe)
            .args(["shim", "run"])
            .arg(&bundle)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| RuntimeError::Io {
                path: self.exe.clone(),
                source: e,
            })?;
        let shim_pid = child.id().unwrap_or(0) as i32;
        let shim_start = proc::start_time(shim_pid).unwrap_or(0);
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped");
        BufReader::new(stdout).read_line(&mut line).await.map_err(|e| RuntimeError::Io {
            path: bundle.clone(),
            source: e,
        })?;
        let line = line.trim();
        if let Some(pid) = line.strip_prefix("ok ").and_then(|p| p.parse().ok()) {
            return Ok(Started {
                pid,
                handle: RuntimeHandle {
                    container: name.into(),
                    shim_pid,
                    shim_start,
                },
                child,
            });
        }
        let _ = child.wait().await;
        let detail = std::fs::read_to_string(&shim_log).unwrap_or_default();
        let message = line.strip_prefix("error ").unwrap_or(line);
        let message = if message.is_empty() {
            detail.lines().last().unwrap_or("exited without a word").to_string()
        } else {
            message.to_string()
        };
        Err(RuntimeError::Shim(message))
    }
}
