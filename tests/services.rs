//! The services over real loopback TCP: the documented flows, resizes 1..8..1,
//! re-uploads, bad input, restart durability and a node killed mid-run.

mod common;

use std::collections::BTreeMap;

use base64::Engine;
use bytes::Bytes;
use common::{assert_error, image_bytes, json, start, Api};
use http::{Method, StatusCode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_flows() {
    let dir = tempfile::tempdir().unwrap();
    let up = start(common::settings(dir.path())).await;
    let api = Api::new(&up);

    api.upload_ok("cat", b"\x89PNG\r\n\x1a\ncat").await;
    api.upload_ok("dog", b"GIF89a-dog").await;
    // The mime type comes from the part; without one it is sniffed.
    let reply = api
        .upload(Some("gif"), Some((b"GIF89a-sniffed", None)))
        .await;
    assert_eq!(reply.status, StatusCode::OK);

    // "application/octet-stream" says nothing either: sniffed too.
    let reply = api
        .upload(
            Some("blob"),
            Some((b"\x89PNG\r\n\x1a\nblob", Some("application/octet-stream"))),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(api.image("blob").await.headers["content-type"], "image/png");

    let reply = api.post_json(&api.frontend, "/api/list_keys", "").await;
    assert_eq!(
        json(&reply)["keys"],
        serde_json::json!(["blob", "cat", "dog", "gif"])
    );

    let reply = api
        .call(
            Method::POST,
            &api.frontend,
            "/api/key/gif",
            Bytes::new(),
            None,
        )
        .await;
    let body = json(&reply);
    assert_eq!(body["success"], "true");
    let expected = format!(
        "data:image/gif;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(b"GIF89a-sniffed")
    );
    assert_eq!(body["content"], expected);

    // Raw bytes: the first read misses, a later one hits the owning node.
    let first = api.image("cat").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(&first.body[..], b"\x89PNG\r\n\x1a\ncat");
    assert_eq!(first.headers["content-type"], "image/png");
    assert!(first.headers.contains_key("etag"));
    // That a filled node then serves hits is timing: the simulation checks it in
    // virtual time (`check_recovery` and `check_client_hits` in chaos).
    let again = api.image("cat").await;
    assert_eq!(&again.body[..], &first.body[..]);

    // A notify of a pool the manager does not hold is refused: the front-end
    // follows the manager.
    let nodes: Vec<String> = up.node_addrs()[..3].to_vec();
    let notify = serde_json::json!({"node_ip": nodes, "mode": "manual", "change": "increase"});
    assert_error(
        &api.post_json(&api.frontend, "/api/notify", &notify.to_string())
            .await,
        StatusCode::CONFLICT,
    );
    assert_eq!(up.frontend.state.routing().unwrap().pool.len(), 1);
    // Picked through the manager, the pool is taken, and the front-end routes by it.
    let pick = serde_json::json!({ "node_ip_list": nodes });
    let reply = api
        .post_json(
            &api.manager,
            "/api/manager/pool_node_list",
            &pick.to_string(),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(up.frontend.state.routing().unwrap().pool.len(), 3);
    for key in ["cat", "dog", "gif"] {
        assert_eq!(api.image(key).await.status, StatusCode::OK);
    }

    let reply = api
        .call(
            Method::DELETE,
            &api.frontend,
            "/api/clear/cache",
            Bytes::new(),
            None,
        )
        .await;
    assert_eq!(json(&reply)["success"], "true");
    assert_eq!(api.image("dog").await.headers["x-memring-cache"], "miss");

    let reply = api
        .call(
            Method::DELETE,
            &api.frontend,
            "/api/clear/data",
            Bytes::new(),
            None,
        )
        .await;
    assert_eq!(json(&reply)["success"], "true");
    let reply = api.post_json(&api.frontend, "/api/list_keys", "").await;
    assert_eq!(json(&reply)["keys"], serde_json::json!([]));
    assert_error(&api.image("cat").await, StatusCode::NOT_FOUND);
    up.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resizes_one_to_eight_to_one_keep_every_image() {
    let dir = tempfile::tempdir().unwrap();
    let up = start(common::settings(dir.path())).await;
    let api = Api::new(&up);
    let keys: Vec<String> = (0..40).map(|i| format!("img-{i}")).collect();
    let mut expected = BTreeMap::new();
    for key in &keys {
        let bytes = image_bytes(key, 1);
        api.upload_ok(key, &bytes).await;
        expected.insert(key.clone(), bytes);
    }
    let check_all = |step: String| {
        let api = api.clone();
        let expected = expected.clone();
        async move {
            for (key, bytes) in &expected {
                // Twice: the second read may come from the cache.
                for _ in 0..2 {
                    let reply = api.image(key).await;
                    assert_eq!(reply.status, StatusCode::OK, "{step}: {key}");
                    assert_eq!(&reply.body[..], &bytes[..], "{step}: {key}");
                }
            }
        }
    };
    check_all("start".into()).await;
    for size in 2..=8 {
        let reply = api.resize("increase").await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        assert_eq!(json(&reply)["content"]["size"], size);
        check_all(format!("grown to {size}")).await;
    }
    assert_error(&api.resize("increase").await, StatusCode::BAD_REQUEST);
    let reply = api.manager_get("/api/manager/poolsize").await;
    assert_eq!(json(&reply)["content"]["size"], 8);
    for size in (1..=7).rev() {
        let reply = api.resize("decrease").await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(json(&reply)["content"]["size"], size);
        check_all(format!("shrunk to {size}")).await;
    }
    assert_error(&api.resize("decrease").await, StatusCode::BAD_REQUEST);
    // The front-end routes by the manager's pool.
    let pool = up.frontend.state.routing().unwrap();
    assert_eq!(pool.pool.len(), 1);
    up.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_upload_is_never_followed_by_the_old_image() {
    let dir = tempfile::tempdir().unwrap();
    let up = start(common::settings(dir.path())).await;
    let api = Api::new(&up);
    for size in 2..=3 {
        assert_eq!(
            api.resize("increase").await.status,
            StatusCode::OK,
            "{size}"
        );
    }
    for generation in 1..=25u32 {
        let bytes = image_bytes("hot", generation);
        api.upload_ok("hot", &bytes).await;
        for _ in 0..4 {
            let reply = api.image("hot").await;
            assert_eq!(reply.status, StatusCode::OK);
            assert_eq!(&reply.body[..], &bytes[..], "generation {generation}");
        }
    }
    up.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_the_documented_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = common::settings(dir.path());
    settings.upload_max_bytes = 4096;
    let up = start(settings).await;
    let api = Api::new(&up);
    let png: &[u8] = b"\x89PNG\r\n\x1a\nbytes";

    for key in ["", "has space", &"k".repeat(49)] {
        assert_error(
            &api.upload(Some(key), Some((png, None))).await,
            StatusCode::BAD_REQUEST,
        );
    }
    assert_error(
        &api.upload(None, Some((png, None))).await,
        StatusCode::BAD_REQUEST,
    );
    assert_error(
        &api.upload(Some("nofile"), None).await,
        StatusCode::BAD_REQUEST,
    );
    assert_error(
        &api.upload(Some("empty"), Some((b"", None))).await,
        StatusCode::BAD_REQUEST,
    );
    let big = vec![7u8; 5000];
    assert_error(
        &api.upload(Some("big"), Some((&big, None))).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    );
    let reply = api
        .call(
            Method::POST,
            &api.frontend,
            "/api/upload",
            Bytes::from_static(b"{}"),
            Some("application/json"),
        )
        .await;
    assert_error(&reply, StatusCode::BAD_REQUEST);

    assert_error(&api.image("unknown").await, StatusCode::NOT_FOUND);
    let reply = api
        .call(
            Method::POST,
            &api.frontend,
            "/api/key/unknown",
            Bytes::new(),
            None,
        )
        .await;
    assert_error(&reply, StatusCode::NOT_FOUND);

    for body in [
        "{not json",
        "{\"node_ip\": []}",
        "{\"node_ip\":[\"a b\"],\"mode\":\"manual\",\"change\":\"increase\"}",
        "{\"node_ip\":[\"A\"],\"mode\":\"sideways\",\"change\":\"increase\"}",
    ] {
        assert_error(
            &api.post_json(&api.frontend, "/api/notify", body).await,
            StatusCode::BAD_REQUEST,
        );
    }
    for body in ["{\"change\":\"sideways\"}", "{bad", "{}"] {
        assert_error(
            &api.post_json(&api.manager, "/api/manager/poolsize/manual", body)
                .await,
            StatusCode::BAD_REQUEST,
        );
    }
    for body in [
        "{\"max_miss_rate_threshold\":0.4,\"min_miss_rate_threshold\":0.6,\"expand_ratio\":2,\"shrink_ratio\":0.5}",
        "{\"max_miss_rate_threshold\":0.6,\"min_miss_rate_threshold\":0.4,\"expand_ratio\":1,\"shrink_ratio\":0.5}",
        "{\"max_miss_rate_threshold\":0.6,\"min_miss_rate_threshold\":0.4,\"expand_ratio\":2,\"shrink_ratio\":1.5}",
    ] {
        assert_error(&api.post_json(&api.manager, "/api/manager/poolsize/automatic", body).await, StatusCode::BAD_REQUEST);
    }
    assert_error(
        &api.post_json(
            &api.manager,
            "/api/manager/cache/config",
            "{\"capacity\":-1,\"policy\":\"lru\"}",
        )
        .await,
        StatusCode::BAD_REQUEST,
    );
    assert_error(
        &api.post_json(
            &api.manager,
            "/api/manager/cache/config",
            "{\"capacity\":8,\"policy\":\"fifo\"}",
        )
        .await,
        StatusCode::BAD_REQUEST,
    );
    assert_error(
        &api.call(
            Method::GET,
            &api.frontend,
            "/api/nothing",
            Bytes::new(),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
    );

    // Nothing was stored by any of it, and `../../etc/passwd` is just a key.
    let reply = api.post_json(&api.frontend, "/api/list_keys", "").await;
    assert_eq!(json(&reply)["keys"], serde_json::json!([]));
    api.upload_ok("../../etc/passwd", png).await;
    assert_eq!(&api.image("../../etc/passwd").await.body[..], png);
    up.stop().await;
}

/// A multipart upload body built by hand, so that its parts can be malformed.
fn raw_form(parts: &[(&str, &[u8])]) -> (Bytes, String) {
    let boundary = "memring-test-boundary";
    let mut body = Vec::new();
    for (name, value) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let filename = if *name == "file" {
            "; filename=\"a.png\""
        } else {
            ""
        };
        body.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"{name}\"{filename}\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (
        Bytes::from(body),
        format!("multipart/form-data; boundary={boundary}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_is_refused_not_mangled() {
    let dir = tempfile::tempdir().unwrap();
    let settings = common::settings(dir.path());
    let upload_max_bytes = settings.upload_max_bytes;
    let up = start(settings).await;
    let api = Api::new(&up);
    let png: &[u8] = b"\x89PNG\r\n\x1a\nbytes";
    let send_form = |parts: Vec<(&'static str, Vec<u8>)>| {
        let api = &api;
        async move {
            let borrowed: Vec<(&str, &[u8])> =
                parts.iter().map(|(n, v)| (*n, v.as_slice())).collect();
            let (body, content_type) = raw_form(&borrowed);
            api.call(
                Method::POST,
                &api.frontend,
                "/api/upload",
                body,
                Some(&content_type),
            )
            .await
        }
    };
    // A key that is not UTF-8 is refused, not repaired into U+FFFD.
    let reply = send_form(vec![("key", b"k\xff".to_vec()), ("file", png.to_vec())]).await;
    assert_error(&reply, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&reply.body).contains("UTF-8"));
    // Two keys or two files: refused, rather than the last one winning.
    let reply = send_form(vec![
        ("key", b"one".to_vec()),
        ("key", b"two".to_vec()),
        ("file", png.to_vec()),
    ])
    .await;
    assert_error(&reply, StatusCode::BAD_REQUEST);
    let reply = send_form(vec![
        ("key", b"one".to_vec()),
        ("file", png.to_vec()),
        ("file", png.to_vec()),
    ])
    .await;
    assert_error(&reply, StatusCode::BAD_REQUEST);
    // A huge key is refused without being echoed back whole.
    let reply = send_form(vec![("key", vec![b'k'; 1 << 20]), ("file", png.to_vec())]).await;
    assert_error(&reply, StatusCode::BAD_REQUEST);
    assert!(reply.body.len() < 1024, "{} bytes echoed", reply.body.len());
    let long_key = "k".repeat(4_000);
    let reply = api.image(&long_key).await;
    assert_error(&reply, StatusCode::BAD_REQUEST);
    assert!(reply.body.len() < 1024, "{} bytes echoed", reply.body.len());
    // A path that does not decode to UTF-8 gets the envelope, on both roles.
    for addr in [api.frontend.clone(), up.node_addrs()[0].clone()] {
        let path = if addr == api.frontend {
            "/images/%ff%fe"
        } else {
            "/api/cache/item/%ff%fe"
        };
        let reply = api.call(Method::GET, &addr, path, Bytes::new(), None).await;
        assert_error(&reply, StatusCode::BAD_REQUEST);
    }
    // A node's body limit answers in the envelope too: one byte over it (an
    // upload's limit plus 1 KiB).
    // Only the head is sent: a client still sending a body the server has
    // refused may see the connection reset before it reads the answer.
    let node = up.node_addrs()[0].clone();
    let head = format!(
        "PUT /api/cache/item/big HTTP/1.1\r\nHost: memring\r\nContent-Type: image/png\r\n\
         Content-Length: {}\r\n\r\n",
        upload_max_bytes + 1024 + 1
    );
    let answer = common::raw_exchange(&node, head.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let body = &answer[answer.find("\r\n\r\n").expect("a full head") + 4..];
    let body: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
    assert_eq!(body["success"], "false");
    assert_eq!(body["error"]["code"], 413);
    // None of it stored anything.
    let reply = api.post_json(&api.frontend, "/api/list_keys", "").await;
    assert_eq!(json(&reply)["keys"], serde_json::json!([]));
    // Stored content is served under its type, never sniffed, and sandboxed.
    api.upload_ok("safe", png).await;
    let encoded_path = format!("/api/key/{}", common::encode("safe"));
    for reply in [
        api.image("safe").await,
        api.image("unknown").await,
        api.call(
            Method::GET,
            &api.frontend,
            &encoded_path,
            Bytes::new(),
            None,
        )
        .await,
    ] {
        assert_eq!(reply.headers["x-content-type-options"], "nosniff");
        let policy = reply.headers["content-security-policy"].to_str().unwrap();
        assert!(policy.contains("default-src 'none'") && policy.contains("sandbox"));
    }
    up.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let up = start(common::settings(dir.path())).await;
    let api = Api::new(&up);
    for i in 0..10 {
        api.upload_ok(&format!("k{i}"), &image_bytes("k", i)).await;
    }
    api.upload_ok("k3", &image_bytes("k3", 99)).await;
    up.stop().await;

    let up = start(common::settings(dir.path())).await;
    let api = Api::new(&up);
    let reply = api.post_json(&api.frontend, "/api/list_keys", "").await;
    assert_eq!(json(&reply)["keys"].as_array().unwrap().len(), 10);
    for i in 0..10 {
        let expected = if i == 3 {
            image_bytes("k3", 99)
        } else {
            image_bytes("k", i)
        };
        let reply = api.image(&format!("k{i}")).await;
        assert_eq!(&reply.body[..], &expected[..], "k{i}");
    }
    // A later upload gets a newer version than any before the restart.
    api.upload_ok("k3", &image_bytes("k3", 100)).await;
    assert_eq!(&api.image("k3").await.body[..], &image_bytes("k3", 100)[..]);
    up.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_falls_back_to_storage() {
    let dir = tempfile::tempdir().unwrap();
    let mut up = start(common::settings(dir.path())).await;
    let api = Api::new(&up);
    assert_eq!(api.resize("increase").await.status, StatusCode::OK);
    let keys: Vec<String> = (0..20).map(|i| format!("key{i}")).collect();
    for key in &keys {
        api.upload_ok(key, &image_bytes(key, 1)).await;
        assert_eq!(api.image(key).await.status, StatusCode::OK);
    }
    up.kill_node(0).await;
    for key in &keys {
        let reply = api.image(key).await;
        assert_eq!(reply.status, StatusCode::OK, "{key}");
        assert_eq!(&reply.body[..], &image_bytes(key, 1)[..]);
    }
    // Uploads still succeed; the dead node is bypassed until it is back and cleared.
    api.upload_ok("key0", &image_bytes("key0", 2)).await;
    assert_eq!(
        &api.image("key0").await.body[..],
        &image_bytes("key0", 2)[..]
    );
    up.restart_node(0).await.unwrap();
    for _ in 0..3 {
        assert_eq!(
            &api.image("key0").await.body[..],
            &image_bytes("key0", 2)[..]
        );
    }
    up.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_reports_stats_and_config() {
    let dir = tempfile::tempdir().unwrap();
    let up = start(common::settings(dir.path())).await;
    let api = Api::new(&up);
    api.upload_ok("s", b"\x89PNG\r\n\x1a\nstats").await;
    for _ in 0..5 {
        api.image("s").await;
    }
    let reply = api
        .post_json(
            &api.manager,
            "/api/manager/cache/config",
            "{\"capacity\":16,\"policy\":\"rr\"}",
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let node = up.node(0).unwrap();
    let reply = api
        .call(
            Method::GET,
            &node.addr,
            "/api/cache/config",
            Bytes::new(),
            None,
        )
        .await;
    assert_eq!(json(&reply)["content"]["policy"], "rr");
    assert_eq!(json(&reply)["content"]["capacity"], 16.0);
    // A node that joins later gets the configuration too.
    assert_eq!(api.resize("increase").await.status, StatusCode::OK);
    let node = up.node(1).unwrap();
    let reply = api
        .call(
            Method::GET,
            &node.addr,
            "/api/cache/config",
            Bytes::new(),
            None,
        )
        .await;
    assert_eq!(json(&reply)["content"]["policy"], "rr");

    // The statistics' shape is checked here; that the GETs reach the totals is
    // timing (a collector round), checked in virtual time by the simulation's
    // `check_stats` (chaos, resize-under-load).
    let body = json(&api.manager_get("/api/manager/aggregate_stats").await);
    assert_eq!(body["success"], "true");
    for series in [
        "hit_rate",
        "miss_rate",
        "number_of_items_in_cache",
        "total_size_of_items_in_cache",
        "number_of_requests_served_per_minute",
    ] {
        assert!(body["content"][series].is_array(), "{series}");
    }
    let reply = api.manager_get("/api/manager/poolsize/config").await;
    assert_eq!(json(&reply)["content"]["resize_pool_option"], "manual");
    let reply = api.post_json(&api.manager, "/api/manager/poolsize/automatic",
        "{\"max_miss_rate_threshold\":0.7,\"min_miss_rate_threshold\":0.3,\"expand_ratio\":2,\"shrink_ratio\":0.5}").await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = api.manager_get("/api/manager/poolsize/config").await;
    assert_eq!(json(&reply)["content"]["resize_pool_option"], "automatic");
    assert_eq!(
        json(&reply)["content"]["resize_pool_parameters"]["max_miss_rate_threshold"],
        0.7
    );
    // The clear calls go through the front-end.
    let reply = api
        .call(
            Method::DELETE,
            &api.manager,
            "/api/manager/data/clear",
            Bytes::new(),
            None,
        )
        .await;
    assert_eq!(json(&reply)["success"], "true");
    assert_error(&api.image("s").await, StatusCode::NOT_FOUND);
    up.stop().await;
}

// A dead node's ejection and its rejoining are timing (three failed health
// checks a second apart): the simulation's `node-death` scenario checks them in
// virtual time, with bounds.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manager_owns_the_assignment_and_old_epochs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = common::settings(dir.path());
    settings.strategy = memring::Strategy::Minimal;
    let up = start(settings).await;
    let api = Api::new(&up);
    let mut last_epoch = 0;
    for change in ["increase", "increase", "increase", "decrease"] {
        assert_eq!(api.resize(change).await.status, StatusCode::OK);
        let listing = json(&api.manager_get("/api/manager/pool_node_list").await);
        let epoch = listing["content"]["epoch"].as_u64().unwrap();
        assert!(epoch > last_epoch);
        last_epoch = epoch;
        let routing = up.frontend.state.routing().unwrap();
        assert_eq!(routing.epoch, epoch);
        let owners: Vec<String> = routing
            .mapping
            .owners()
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(serde_json::json!(owners), listing["content"]["assignment"]);
    }
    // A notify from an older epoch is refused and changes nothing.
    let pool: Vec<String> = up.node_addrs()[..1].to_vec();
    let stale = serde_json::json!({"node_ip": pool, "mode": "manual", "change": "decrease", "epoch": last_epoch - 1});
    assert_error(
        &api.post_json(&api.frontend, "/api/notify", &stale.to_string())
            .await,
        StatusCode::CONFLICT,
    );
    assert_eq!(up.frontend.state.routing().unwrap().pool.len(), 3);
    up.stop().await;
}
