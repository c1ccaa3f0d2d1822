//! `memring bench read`: starts the whole system in this process on free loopback
//! ports, uploads images, and measures reads through the front-end: the latency of
//! uncached and cached reads one at a time, and the throughput of cached reads
//! under concurrency.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use tokio::time::Instant;

use memring::net::client::{ClientSettings, HttpClient};
use memring::net::TokioConnector;
use memring::up::{start_up, UpSettings};
use memring::wire::change::Change;
use memring::wire::client::{FrontendClient, ManagerClient};
use memring::wire::headers;

/// What to measure.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchReadArgs {
    /// Distinct images uploaded.
    #[arg(long, default_value_t = 200)]
    pub images: usize,
    /// Size of each image, in KiB.
    #[arg(long, default_value_t = 100)]
    pub size_kib: usize,
    /// Concurrent readers in the throughput phase.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Length of the throughput phase, in seconds.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Nodes in the pool.
    #[arg(long, default_value_t = 2)]
    pub nodes: usize,
}

fn percentile_us(sorted_us: &[u64], fraction: f64) -> u64 {
    if sorted_us.is_empty() {
        return 0;
    }
    let rank = ((sorted_us.len() as f64 - 1.0) * fraction).round() as usize;
    sorted_us[rank]
}

async fn read_once(frontend: &FrontendClient, key: &str) -> Result<(u64, bool), String> {
    let started = Instant::now();
    let reply = frontend.image(key).await.map_err(|e| e.to_string())?;
    if reply.status != StatusCode::OK {
        return Err(format!("read of {key} answered {}", reply.status));
    }
    let hit = reply
        .headers
        .get(headers::CACHE_STATE)
        .is_some_and(|v| v == "hit");
    Ok((started.elapsed().as_micros() as u64, hit))
}

fn summary(name: &str, mut latencies_us: Vec<u64>) -> String {
    latencies_us.sort_unstable();
    format!(
        "{name}: n={} p50={}us p90={}us p99={}us max={}us",
        latencies_us.len(),
        percentile_us(&latencies_us, 0.5),
        percentile_us(&latencies_us, 0.9),
        percentile_us(&latencies_us, 0.99),
        latencies_us.last().copied().unwrap_or(0)
    )
}

/// Runs the read benchmark and returns its report.
pub async fn bench_read(args: BenchReadArgs) -> Result<String, String> {
    let dir = std::env::temp_dir().join(format!("memring-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut settings = UpSettings::new(dir.clone());
    settings.frontend_port = 0;
    settings.manager_port = 0;
    settings.node_ports = vec![0; args.nodes.clamp(1, memring::limits::POOL_NODES_MAX)];
    settings.cache.capacity = 1024.0;
    let up = start_up(settings).await?;
    let client = HttpClient::new(
        Arc::new(TokioConnector),
        ClientSettings {
            idle_per_host_max: args.concurrency.max(1),
            ..ClientSettings::default()
        },
    );
    let frontend = FrontendClient::new(client.clone(), up.frontend.addr.clone());
    let manager = ManagerClient::new(client.clone(), up.manager.addr.clone());
    tokio::time::timeout(Duration::from_secs(10), up.ready())
        .await
        .map_err(|_| "the front-end did not learn the pool".to_owned())?;
    for _ in 1..args.nodes.clamp(1, memring::limits::POOL_NODES_MAX) {
        manager
            .resize(Change::Increase)
            .await
            .map_err(|e| e.to_string())?;
    }

    let keys: Vec<String> = (0..args.images).map(|i| format!("bench-{i}")).collect();
    for (i, key) in keys.iter().enumerate() {
        // A PNG signature, then distinct bytes: the front-end takes raster images.
        let mut image: Vec<u8> = (0..args.size_kib * 1024).map(|b| (b + i) as u8).collect();
        let signature = b"\x89PNG\r\n\x1a\n";
        let head = signature.len().min(image.len());
        image[..head].copy_from_slice(&signature[..head]);
        frontend
            .upload(key, &image, Some("image/png"))
            .await
            .map_err(|e| format!("upload of {key}: {e}"))?;
    }

    // Uncached: every key read once, one at a time (each read also fills the cache).
    let mut uncached = Vec::new();
    for key in &keys {
        let (us, hit) = read_once(&frontend, key).await?;
        if !hit {
            uncached.push(us);
        }
    }
    // Let the background fills land, then read each key once more: all hits.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut cached = Vec::new();
    for _ in 0..3 {
        for key in &keys {
            let (us, hit) = read_once(&frontend, key).await?;
            if hit {
                cached.push(us);
            }
        }
    }

    // Throughput of cached reads.
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..args.concurrency.max(1))
        .map(|w| {
            let frontend = frontend.clone();
            let keys = keys.clone();
            tokio::spawn(async move {
                let (mut done, mut hits, mut errors) = (0u64, 0u64, 0u64);
                let mut i = w;
                while Instant::now() < deadline {
                    match read_once(&frontend, &keys[i % keys.len()]).await {
                        Ok((_, hit)) => {
                            done += 1;
                            hits += u64::from(hit);
                        }
                        Err(_) => errors += 1,
                    }
                    i += 7;
                }
                (done, hits, errors)
            })
        })
        .collect();
    let (mut done, mut hits, mut errors) = (0, 0, 0);
    for worker in workers {
        let (d, h, e) = worker.await.map_err(|e| e.to_string())?;
        done += d;
        hits += h;
        errors += e;
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    up.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(format!(
        "images={} size={}KiB nodes={}\n{}\n{}\nthroughput (cached, concurrency {}): {:.0} req/s over {:.1}s, {} reads, {} hits, {} errors\n",
        args.images,
        args.size_kib,
        args.nodes,
        summary("uncached read", uncached),
        summary("cached read", cached),
        args.concurrency,
        done as f64 / elapsed_s,
        elapsed_s,
        done,
        hits,
        errors
    ))
}
