//! `memring up` as a newcomer runs it: the real binary on free ports, driven over
//! HTTP, its log read from stderr, stopped with SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{json, log_field};
use memring::net::client::{ClientSettings, HttpClient};
use memring::net::TokioConnector;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memring_up_serves_logs_the_rebalance_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_memring"))
        .args([
            "up",
            "--frontend-port",
            "0",
            "--manager-port",
            "0",
            "--node-port-base",
            "0",
            "--data-dir",
        ])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("memring starts");
    let stderr = child.stderr.take().unwrap();
    let (lines_in, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if lines_in.send(line).is_err() {
                break;
            }
        }
    });
    let next_line = |what: &str| {
        lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no log line while waiting for {what}"))
    };
    let (frontend, manager) = loop {
        let line = next_line("start-up");
        if line.contains("memring is up") {
            break (
                log_field(&line, "frontend").unwrap().to_owned(),
                log_field(&line, "manager").unwrap().to_owned(),
            );
        }
    };
    let client = HttpClient::new(
        std::sync::Arc::new(TokioConnector),
        ClientSettings::default(),
    );
    let api = common::Api {
        client,
        frontend: frontend.clone(),
        manager: manager.clone(),
    };
    assert!(api.wait_healthy().await, "the front-end became ready");
    api.upload_ok("k1", b"\x89PNG\r\n\x1a\none").await;
    assert_eq!(&api.image("k1").await.body[..], b"\x89PNG\r\n\x1a\none");
    let reply = api.resize("increase").await;
    assert_eq!(json(&reply)["content"]["size"], 2);
    let mut seen_balance = false;
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(5)) {
        if line.contains("Balance result: [") {
            seen_balance = true;
            break;
        }
    }
    assert!(seen_balance, "the rebalance is logged");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut exited = None;
    for _ in 0..200 {
        if let Some(status) = child.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = exited.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("memring did not stop within 10 s of SIGTERM")
    });
    assert!(status.success(), "clean exit after SIGTERM: {status}");
    // The upload is on disk for the next start.
    assert!(dir.path().join("index.sqlite").is_file());
}
