//! Memory under clients that stop reading (issue `hardening`, finding 2), on the
//! real binary: 40 clients ask for a 32 MiB image and never read. The front-end's
//! resident memory must stay within 256 MiB of what it was idle, the clients must
//! be dropped within 60 s, and memory must come back down once they are gone.
//!
//! The figures are printed (run with `--nocapture` to see them).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http::StatusCode;
use memring::net::client::{ClientSettings, HttpClient};
use memring::net::TokioConnector;

const STALLED_CLIENTS: usize = 40;
const IMAGE_BYTES: usize = 32 * 1024 * 1024 - 4096;
const MIB: u64 = 1024 * 1024;

/// The resident memory of process `pid`, in bytes (Linux).
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("procfs");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("a VmRSS line");
    kib * 1024
}

/// Kills the child when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn clients_that_stop_reading_hold_bounded_memory_and_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_memring"))
        .args(["up", "--frontend-port", "0", "--manager-port", "0"])
        .args(["--node-port-base", "0", "--data-dir"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("memring starts");
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let running = Running(child);
    let pid = running.0.id();
    let mut lines = stderr.lines();
    let frontend = loop {
        let line = lines.next().expect("a log line").unwrap();
        if line.contains("memring is up") {
            break common::log_field(&line, "frontend").unwrap().to_owned();
        }
    };
    // Keep draining the log so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let image: Vec<u8> = {
        let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
        bytes.resize(IMAGE_BYTES, 7);
        bytes
    };
    runtime.block_on(async {
        let client = HttpClient::new(
            std::sync::Arc::new(TokioConnector),
            ClientSettings {
                timeout_ms: 60_000,
                ..ClientSettings::default()
            },
        );
        let api = common::Api {
            client,
            frontend: frontend.clone(),
            manager: String::new(),
        };
        assert!(api.wait_healthy().await, "the front-end became ready");
        api.upload_ok("big", &image).await;
        // Read twice: the second read is a cache hit.
        for _ in 0..2 {
            let reply = api.image("big").await;
            assert_eq!(reply.status, StatusCode::OK);
            assert_eq!(reply.body.len(), IMAGE_BYTES);
        }
    });
    drop(runtime);
    std::thread::sleep(Duration::from_secs(1));
    let idle = rss_bytes(pid);

    // 40 clients ask for the image and never read.
    let started = Instant::now();
    let mut sockets: Vec<TcpStream> = (0..STALLED_CLIENTS)
        .map(|_| {
            let mut socket = TcpStream::connect(&frontend).unwrap();
            socket
                .write_all(b"GET /images/big HTTP/1.1\r\nHost: memring\r\n\r\n")
                .unwrap();
            socket
        })
        .collect();
    let mut peak = idle;
    while started.elapsed() < Duration::from_secs(25) {
        peak = peak.max(rss_bytes(pid));
        std::thread::sleep(Duration::from_millis(200));
    }

    // Every client has been dropped by now: reading what the kernel buffered ends
    // in end-of-file or a reset, not in a wait.
    let mut answered = 0;
    for socket in &mut sockets {
        socket
            .set_read_timeout(Some(Duration::from_secs(40)))
            .unwrap();
        let mut head = [0u8; 12];
        let mut total = 0usize;
        let mut buf = vec![0u8; 1 << 20];
        let ended = loop {
            match socket.read(&mut buf) {
                Ok(0) => break true,
                Ok(n) => {
                    if total == 0 && n >= 12 {
                        head.copy_from_slice(&buf[..12]);
                    }
                    total += n;
                }
                Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => break true,
                Err(error) => panic!("a stalled client was not dropped: {error}"),
            }
        };
        assert!(ended);
        if head.starts_with(b"HTTP/1.1 200") {
            answered += 1;
            assert!(total < IMAGE_BYTES, "a stalled client got the whole image");
        }
    }
    let dropped_after = started.elapsed();
    drop(sockets);
    std::thread::sleep(Duration::from_secs(5));
    let after = rss_bytes(pid);
    eprintln!(
        "memory: idle {} MiB, peak with {STALLED_CLIENTS} stalled clients {} MiB (+{} MiB), \
         after they left {} MiB; {answered} got the image's first bytes, all dropped within {} s",
        idle / MIB,
        peak / MIB,
        peak.saturating_sub(idle) / MIB,
        after / MIB,
        dropped_after.as_secs()
    );
    assert!(
        peak.saturating_sub(idle) <= 256 * MIB,
        "peak {} MiB over idle",
        peak.saturating_sub(idle) / MIB
    );
    assert!(dropped_after <= Duration::from_secs(60));
    assert!(
        after.saturating_sub(idle) <= 256 * MIB,
        "after {} MiB over idle",
        after.saturating_sub(idle) / MIB
    );
    assert!(answered >= 1, "some clients were being answered");
}
