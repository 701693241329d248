//! `shoal bench-apply` (hidden): commit throughput and latency of `apply`
//! without a process per write. One QUIC connection, `--concurrency` tasks
//! each sending `Request::Apply` of a uniquely named pod no node matches (it
//! stays Pending: no container starts) on its own stream; every request's
//! latency is recorded from opening the stream to the decoded reply.
//! Used by `bench/raft.sh`.

use super::{request_on, Ctx};
use crate::api::wire::{PodRef, Reply, Request};
use crate::transport::quic;
use anyhow::{bail, Result};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub(super) struct Args {
    /// Number of applies.
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// Requests in flight at once (streams on the one connection).
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Pod name prefix (default: `bench-PID-SECONDS`).
    #[arg(long)]
    prefix: Option<String>,
    /// Applies before the measured ones, not counted (connection and caches warm).
    #[arg(long, default_value_t = 0)]
    warmup: usize,
    /// Afterwards delete the pods again (same concurrency) and print a second line for the deletes.
    #[arg(long)]
    delete: bool,
}

/// What one run measured.
struct Run {
    latencies: Vec<Duration>,
    errors: usize,
    first_error: Option<String>,
    elapsed: Duration,
}

pub(super) async fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    if a.count == 0 || a.concurrency == 0 {
        bail!("--count and --concurrency must be at least 1");
    }
    let (_, cfg) = ctx.credentials()?;
    let (_endpoint, conn) = quic::connect(&cfg, ctx.server).await?;
    let prefix = a.prefix.clone().unwrap_or_else(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        format!("bench-{}-{secs}", std::process::id())
    });
    let ns = ctx.namespace.clone();
    let apply = {
        let prefix = prefix.clone();
        let ns = ns.clone();
        move |i: usize| {
            Request::Apply {
            manifest: format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: {prefix}-{i}, namespace: {ns}}}\nspec:\n  nodeSelector: {{nonexistent: x}}\n  containers: [{{name: c, image: localhost/busybox, command: [sleep, \"3600\"]}}]\n"
            ),
        }
        }
    };
    let apply = Arc::new(apply);
    let total = a.warmup + a.count;
    if a.warmup > 0 {
        let (f, w) = (apply.clone(), a.warmup);
        let r = drive(&conn, w, a.concurrency, move |i| (*f)(i), |r| matches!(r, Reply::Applied { .. })).await;
        if r.errors > 0 {
            report("warmup", w, a.concurrency, &r);
        }
    }
    let (f, w) = (apply.clone(), a.warmup);
    let r = drive(
        &conn,
        a.count,
        a.concurrency,
        move |i| (*f)(w + i),
        |r| matches!(r, Reply::Applied { .. }),
    )
    .await;
    report("apply", a.count, a.concurrency, &r);
    let mut failed = r.errors > 0;
    if a.delete {
        let delete = move |i: usize| {
            Request::DeletePod(PodRef {
                namespace: ns.clone(),
                name: format!("{prefix}-{i}"),
            })
        };
        let r = drive(&conn, total, a.concurrency, delete, |r| !matches!(r, Reply::Error { .. })).await;
        report("delete", total, a.concurrency, &r);
        failed |= r.errors > 0;
    }
    conn.close(0u32.into(), b"done");
    Ok(if failed { 1 } else { 0 })
}

/// Sends `make(0..count)` over `concurrency` tasks sharing `conn`.
async fn drive<F, P>(conn: &quinn::Connection, count: usize, concurrency: usize, make: F, ok: P) -> Run
where
    F: Fn(usize) -> Request + Send + Sync + 'static,
    P: Fn(&Reply) -> bool + Send + Sync + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let make = Arc::new(make);
    let ok = Arc::new(ok);
    let first_error = Arc::new(Mutex::new(None::<String>));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency.min(count) {
        let (conn, next, make, ok, first_error) = (conn.clone(), next.clone(), make.clone(), ok.clone(), first_error.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let req = make(i);
                let t = Instant::now();
                let reply = request_on(&conn, &req).await;
                let d = t.elapsed();
                let err = match reply {
                    Ok(r) if ok(&r) => None,
                    Ok(Reply::Error { message }) => Some(message),
                    Ok(r) => Some(format!("unexpected reply {r:?}")),
                    Err(e) => Some(format!("{e:#}")),
                };
                match err {
                    None => lat.push(d),
                    Some(m) => {
                        errors += 1;
                        first_error.lock().expect("not poisoned").get_or_insert(m);
                    }
                }
            }
            (lat, errors)
        }));
    }
    let mut run = Run {
        latencies: Vec::with_capacity(count),
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
    };
    for t in tasks {
        match t.await {
            Ok((lat, errors)) => {
                run.latencies.extend(lat);
                run.errors += errors;
            }
            Err(e) => {
                run.errors += 1;
                first_error.lock().expect("not poisoned").get_or_insert(e.to_string());
            }
        }
    }
    run.elapsed = start.elapsed();
    run.first_error = first_error.lock().expect("not poisoned").take();
    run
}

/// One line of `key=value` pairs (what `bench/raft.sh` parses).
fn report(what: &str, count: usize, concurrency: usize, r: &Run) {
    let mut l = r.latencies.clone();
    l.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let q = |p: f64| -> f64 {
        if l.is_empty() {
            return f64::NAN;
        }
        // nearest rank
        let k = ((p * l.len() as f64).ceil() as usize).clamp(1, l.len()) - 1;
        ms(l[k])
    };
    let secs = r.elapsed.as_secs_f64();
    let mean = if l.is_empty() {
        f64::NAN
    } else {
        l.iter().map(|d| ms(*d)).sum::<f64>() / l.len() as f64
    };
    println!(
        "op={what} count={count} concurrency={concurrency} ok={} errors={} secs={secs:.3} per_sec={:.1} p50_ms={:.3} p90_ms={:.3} p99_ms={:.3} max_ms={:.3} mean_ms={mean:.3}",
        l.len(),
        r.errors,
        l.len() as f64 / secs,
        q(0.50),
        q(0.90),
        q(0.99),
        l.last().map(|d| ms(*d)).unwrap_or(f64::NAN),
    );
    if let Some(e) = &r.first_error {
        eprintln!("{what}: first error: {e}");
    }
}
