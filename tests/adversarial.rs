//! The probe of issue `hardening`, replayed against a whole system started with
//! its tokens: each finding is tried as the attacker tried it, and the fixed
//! behaviour is asserted.

mod common;

use bytes::Bytes;
use common::{assert_error, image_bytes, json, settings, start, Api};
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use http::{Method, StatusCode};
use memring::auth::{Secrets, Token};
use memring::net::client::Reply;
use memring::wire::{headers, paths};

const CLUSTER: &str = "test-cluster-token-000001";
const ADMIN: &str = "test-admin-token-0000001";

fn secrets() -> Secrets {
    Secrets {
        cluster: Some(Token::new(CLUSTER).unwrap()),
        admin: Some(Token::new(ADMIN).unwrap()),
    }
}

async fn send(
    api: &Api,
    method: Method,
    addr: &str,
    path: &str,
    headers: &[(HeaderName, HeaderValue)],
    body: &[u8],
) -> Reply {
    api.client
        .send(method, addr, path, headers, Bytes::copy_from_slice(body))
        .await
        .expect("the call is answered")
}

/// Headers of a call.
type Headers = Vec<(HeaderName, HeaderValue)>;

fn json_type() -> (HeaderName, HeaderValue) {
    (CONTENT_TYPE, HeaderValue::from_static("application/json"))
}

fn bearer(token: &str) -> (HeaderName, HeaderValue) {
    (
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    )
}

fn cluster(token: &str) -> (HeaderName, HeaderValue) {
    (
        HeaderName::from_static(headers::CLUSTER_TOKEN),
        HeaderValue::from_str(token).unwrap(),
    )
}

/// Findings 1 and 3: nobody without the cluster token can reroute the pool or
/// touch a cache node, and administrative calls need the admin token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_and_admin_calls_need_their_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(dir.path());
    settings.secrets = secrets();
    let up = start(settings).await;
    let api = Api::new(&up);
    let png = image_bytes("cat", 1);
    api.upload_ok("cat", &png).await;
    assert_eq!(api.image("cat").await.body, png);
    let node = up.node_addrs()[0].clone();
    let frontend = up.frontend.addr.clone();
    let manager = up.manager.addr.clone();
    let wrong_cluster = cluster("not-the-cluster-token-01");

    // Finding 1: a rogue notify naming the attacker's address, with and without
    // a (wrong) token, is refused, and the pool is untouched.
    let pool_before = json(
        &api.call(Method::GET, &frontend, "/api/pool", Bytes::new(), None)
            .await,
    );
    let rogue = br#"{"node_ip":["127.0.0.1:26001"],"mode":"manual","change":"increase","epoch":18446744073709551615}"#;
    for headers in [
        vec![json_type()],
        vec![json_type(), wrong_cluster.clone()],
        vec![json_type(), bearer(ADMIN)],
    ] {
        let reply = send(
            &api,
            Method::POST,
            &frontend,
            "/api/notify",
            &headers,
            rogue,
        )
        .await;
        assert_error(&reply, StatusCode::UNAUTHORIZED);
    }
    let pool_after = json(
        &api.call(Method::GET, &frontend, "/api/pool", Bytes::new(), None)
            .await,
    );
    assert_eq!(pool_before["pool"], pool_after["pool"]);
    assert_eq!(pool_before["epoch"], pool_after["epoch"]);
    // Even with the cluster token, an epoch the manager could never move past is
    // refused.
    let headers = [json_type(), cluster(CLUSTER)];
    let reply = send(
        &api,
        Method::POST,
        &frontend,
        "/api/notify",
        &headers,
        rogue,
    )
    .await;
    assert_error(&reply, StatusCode::BAD_REQUEST);
    // With the cluster token and an epoch it could take, or none (the documented
    // payload), a pool that is not the manager's is refused: the front-end takes
    // pools from the manager only.
    for body in [
        br#"{"node_ip":["127.0.0.1:26001"],"mode":"manual","change":"increase","epoch":9007199254740992}"#
            .as_slice(),
        br#"{"node_ip":["127.0.0.1:26001"],"mode":"manual","change":"increase"}"#.as_slice(),
    ] {
        let reply = send(&api, Method::POST, &frontend, "/api/notify", &headers, body).await;
        assert_error(&reply, StatusCode::CONFLICT);
    }
    let pool_after = json(
        &api.call(Method::GET, &frontend, "/api/pool", Bytes::new(), None)
            .await,
    );
    assert_eq!(pool_before["pool"], pool_after["pool"]);
    assert_eq!(pool_before["epoch"], pool_after["epoch"]);
    assert_eq!(api.image("cat").await.body, png);
    // The manager's own pool, told again, is taken (it changes nothing).
    let managers = format!(
        r#"{{"node_ip":{},"mode":"manual","change":"increase"}}"#,
        pool_before["pool"]
    );
    let reply = send(
        &api,
        Method::POST,
        &frontend,
        "/api/notify",
        &headers,
        managers.as_bytes(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);

    // Finding 3: every node endpoint but /healthz needs the cluster token.
    let item = "/api/cache/item/ghost";
    let forged = [
        (
            HeaderName::from_static(headers::VERSION),
            HeaderValue::from(u64::MAX),
        ),
        (CONTENT_TYPE, HeaderValue::from_static("text/html")),
    ];
    let attacks: Vec<(Method, String, Headers, &[u8])> = vec![
        (
            Method::PUT,
            item.to_owned(),
            forged.to_vec(),
            b"<script>1</script>",
        ),
        (
            Method::DELETE,
            format!("/api/cache/item/cat?version={}", u64::MAX),
            vec![],
            b"",
        ),
        (
            Method::POST,
            "/api/cache/config".to_owned(),
            vec![json_type()],
            br#"{"capacity":0,"policy":"lru"}"#,
        ),
        (Method::DELETE, "/api/cache/clear".to_owned(), vec![], b""),
        (
            Method::POST,
            paths::MOVE_KEYS.to_owned(),
            vec![json_type()],
            b"{}",
        ),
        (Method::GET, "/api/cache/item/cat".to_owned(), vec![], b""),
        (Method::GET, "/api/cache/keys".to_owned(), vec![], b""),
    ];
    for (method, path, headers, body) in &attacks {
        for extra in [None, Some(wrong_cluster.clone()), Some(bearer(ADMIN))] {
            let mut headers = headers.clone();
            headers.extend(extra);
            let reply = send(&api, method.clone(), &node, path, &headers, body).await;
            assert_error(&reply, StatusCode::UNAUTHORIZED);
        }
    }
    let health = send(&api, Method::GET, &node, "/healthz", &[], b"").await;
    assert_eq!(health.status, StatusCode::OK);
    // With the cluster token the node answers (a put without a fence is refused).
    let mut headers = forged.to_vec();
    headers.push(cluster(CLUSTER));
    let reply = send(&api, Method::PUT, &node, item, &headers, b"x").await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    headers.push((
        HeaderName::from_static(headers::FENCE),
        HeaderValue::from_static("1.0.0"),
    ));
    let reply = send(&api, Method::PUT, &node, item, &headers, b"x").await;
    assert_eq!(
        reply.status,
        StatusCode::CONFLICT,
        "a forged fence is refused"
    );
    // Nothing planted: the unknown key is still unknown, the known one intact.
    assert_error(&api.image("ghost").await, StatusCode::NOT_FOUND);
    assert_eq!(api.image("cat").await.body, png);

    // Administrative calls: refused without the admin token, taken with it.
    let pick = format!(r#"{{"node_ip_list":["{node}"]}}"#);
    let admin_calls: [(Method, &str, &str, &[u8]); 6] = [
        (Method::DELETE, frontend.as_str(), "/api/clear/cache", b""),
        (
            Method::POST,
            manager.as_str(),
            "/api/manager/pool_node_list",
            pick.as_bytes(),
        ),
        (
            Method::POST,
            manager.as_str(),
            "/api/manager/poolsize/manual",
            br#"{"change":"increase"}"#,
        ),
        (
            Method::POST,
            manager.as_str(),
            "/api/manager/poolsize/automatic",
            br#"{"max_miss_rate":0.8,"min_miss_rate":0.2,"expand_ratio":2.0,"shrink_ratio":0.5}"#,
        ),
        (
            Method::POST,
            manager.as_str(),
            "/api/manager/cache/config",
            br#"{"capacity":16,"policy":"lru"}"#,
        ),
        (
            Method::DELETE,
            manager.as_str(),
            "/api/manager/cache/clear",
            b"",
        ),
    ];
    for (method, addr, path, body) in admin_calls {
        for headers in [
            vec![json_type()],
            vec![json_type(), bearer("not-the-admin-token-01")],
        ] {
            let reply = send(&api, method.clone(), addr, path, &headers, body).await;
            assert_error(&reply, StatusCode::UNAUTHORIZED);
        }
    }
    let reply = send(&api, Method::DELETE, &frontend, "/api/clear/data", &[], b"").await;
    assert_error(&reply, StatusCode::UNAUTHORIZED);
    assert_eq!(
        api.image("cat").await.body,
        png,
        "a refused clear erased nothing"
    );
    let hand_over = send(
        &api,
        Method::POST,
        &manager,
        "/api/manager/move_keys_done",
        &[json_type(), bearer(ADMIN)],
        b"{}",
    )
    .await;
    assert_error(&hand_over, StatusCode::UNAUTHORIZED);

    // With the admin token: a resize and a clear go through.
    let reply = send(
        &api,
        Method::POST,
        &manager,
        "/api/manager/poolsize/manual",
        &[json_type(), bearer(ADMIN)],
        br#"{"change":"increase"}"#,
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let reply = send(
        &api,
        Method::DELETE,
        &frontend,
        "/api/clear/data",
        &[bearer(ADMIN)],
        b"",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_error(&api.image("cat").await, StatusCode::NOT_FOUND);
    // The manager refuses a capacity of 0 even from the administrator.
    let reply = send(
        &api,
        Method::POST,
        &manager,
        "/api/manager/cache/config",
        &[json_type(), bearer(ADMIN)],
        br#"{"capacity":0,"policy":"lru"}"#,
    )
    .await;
    assert_error(&reply, StatusCode::BAD_REQUEST);
    // Reading stays open.
    let reply = api.manager_get("/api/manager/pool_node_list").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        json(&reply)["content"]["node_ip_list"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    // The administrator picks the nodes through the manager, and the front-end
    // follows: the only way to name a pool.
    let reply = send(
        &api,
        Method::POST,
        &manager,
        "/api/manager/pool_node_list",
        &[json_type(), bearer(ADMIN)],
        pick.as_bytes(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let pool = json(
        &api.call(Method::GET, &frontend, "/api/pool", Bytes::new(), None)
            .await,
    );
    assert_eq!(pool["pool"], serde_json::json!([node]));
    // A node that is not one of the manager's slots cannot be picked.
    let reply = send(
        &api,
        Method::POST,
        &manager,
        "/api/manager/pool_node_list",
        &[json_type(), bearer(ADMIN)],
        br#"{"node_ip_list":["127.0.0.1:26001"]}"#,
    )
    .await;
    assert_error(&reply, StatusCode::BAD_REQUEST);
    up.stop().await;
}

/// Finding 4: only raster images are stored by default; what is stored under
/// `--allow-any-type` is served as a download, and every answer is sandboxed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_that_are_not_raster_images_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let up = start(settings(dir.path())).await;
    let api = Api::new(&up);
    let html: &[u8] = b"<html><script>alert(document.cookie)</script></html>";
    let svg: &[u8] = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>";
    let script: &[u8] = b"alert(1)";
    for (bytes, declared) in [
        (html, Some("text/html")),
        (html, Some("image/png")),
        (svg, Some("image/svg+xml")),
        (svg, None),
        (script, Some("application/javascript")),
    ] {
        let reply = api.upload(Some("bad"), Some((bytes, declared))).await;
        assert_error(&reply, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    assert_error(&api.image("bad").await, StatusCode::NOT_FOUND);
    // A PNG that claims to be HTML is stored as what its bytes are.
    let mut polyglot = b"\x89PNG\r\n\x1a\n".to_vec();
    polyglot.extend_from_slice(html);
    let reply = api
        .upload(Some("poly"), Some((&polyglot, Some("text/html"))))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let served = api.image("poly").await;
    assert_eq!(served.headers[CONTENT_TYPE], "image/png");
    assert_eq!(served.headers["x-content-type-options"], "nosniff");
    assert!(served.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("sandbox"));
    assert!(!served.headers.contains_key("content-disposition"));
    up.stop().await;

    // With --allow-any-type the HTML is stored, and offered only as a download.
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(dir.path());
    settings.allow_any_type = true;
    let up = start(settings).await;
    let api = Api::new(&up);
    let reply = api
        .upload(Some("page"), Some((html, Some("text/html"))))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let served = api.image("page").await;
    assert_eq!(served.body, html);
    assert_eq!(served.headers[CONTENT_TYPE], "text/html");
    assert_eq!(served.headers["content-disposition"], "attachment");
    assert_eq!(served.headers["x-content-type-options"], "nosniff");
    up.stop().await;
}

/// Finding 5: a body that trickles in is cut at its deadline with 408, and the
/// connection is closed; the server goes on serving others meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_bodies_are_cut_at_their_deadline() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(dir.path());
    settings.server.body_pace = memring::net::guard::BodyPace {
        grace_ms: 1_000,
        rate_bytes_per_s: 1_024,
    };
    let up = start(settings).await;
    let api = Api::new(&up);
    let frontend = up.frontend.addr.clone();
    let mut tricklers = Vec::new();
    for _ in 0..20 {
        let frontend = frontend.clone();
        tricklers.push(tokio::spawn(async move {
            let mut socket = tokio::net::TcpStream::connect(&frontend).await.unwrap();
            let head = "POST /api/upload HTTP/1.1\r\nHost: memring\r\n\
                        Content-Type: multipart/form-data; boundary=XyZ\r\n\
                        Content-Length: 5000\r\n\r\n--XyZ\r\n";
            socket.write_all(head.as_bytes()).await.unwrap();
            let started = tokio::time::Instant::now();
            // One byte every 100 ms: steady, but far too slow.
            let mut answer = Vec::new();
            for _ in 0..100 {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                if socket.write_all(b"x").await.is_err() {
                    break;
                }
                let mut buf = [0u8; 512];
                if let Ok(Ok(n)) =
                    tokio::time::timeout(std::time::Duration::from_millis(1), socket.read(&mut buf))
                        .await
                {
                    answer.extend_from_slice(&buf[..n]);
                    // The whole envelope, or the end of the connection.
                    if n == 0 || answer.ends_with(b"}}") {
                        break;
                    }
                }
            }
            (
                String::from_utf8_lossy(&answer).into_owned(),
                started.elapsed(),
            )
        }));
    }
    // Others are served meanwhile.
    api.upload_ok("cat", &image_bytes("cat", 1)).await;
    for trickler in tricklers {
        let (answer, waited) = trickler.await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
        assert!(answer.contains("\"code\":408"), "{answer:?}");
        assert!(waited < std::time::Duration::from_secs(3), "{waited:?}");
    }
    up.stop().await;
}

/// Finding 3 (move orders): a move order that names another port does not make
/// the node call that port (it calls back the manager it was configured with),
/// and one that names a destination outside the cluster's slots is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_sends_keys_and_calls_back_only_within_its_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(dir.path());
    settings.secrets = secrets();
    let up = start(settings).await;
    let api = Api::new(&up);
    let decoy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let decoy_port = decoy.local_addr().unwrap().port();
    let order = format!("{{\"port\":{decoy_port},\"dest\":{{}}}}");
    let reply = send(
        &api,
        Method::POST,
        &up.node_addrs()[0].clone(),
        paths::MOVE_KEYS,
        &[json_type(), cluster(CLUSTER)],
        order.as_bytes(),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    // The node answers after its callback: had it called the decoy, the
    // connection would be waiting now.
    let called = tokio::time::timeout(std::time::Duration::from_millis(300), decoy.accept()).await;
    assert!(called.is_err(), "the node called the port the order named");

    // Nor does it hand a key to a destination outside the cluster's slots.
    api.upload_ok("cat", &image_bytes("cat", 1)).await;
    assert_eq!(api.image("cat").await.body, image_bytes("cat", 1));
    let order = format!("{{\"port\":-1,\"dest\":{{\"127.0.0.1:{decoy_port}\":[\"cat\"]}}}}");
    for node in up.node_addrs().to_vec() {
        let reply = send(
            &api,
            Method::POST,
            &node,
            paths::MOVE_KEYS,
            &[json_type(), cluster(CLUSTER)],
            order.as_bytes(),
        )
        .await;
        assert_error(&reply, StatusCode::BAD_REQUEST);
    }
    let called = tokio::time::timeout(std::time::Duration::from_millis(300), decoy.accept()).await;
    assert!(called.is_err(), "a key was sent outside the cluster");
    assert_eq!(api.image("cat").await.body, image_bytes("cat", 1));
    up.stop().await;
}

/// Finding 2: a large cache hit streams from its node to the client, so a client
/// that stops reading holds about a megabyte of the response budget, not the
/// whole image; a miss (read whole from storage, for the fill) holds all of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_hits_stream_and_take_a_small_share_of_the_budget() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Larger than what loopback socket buffers absorb, so a client that stops
    // reading does hold its answer up.
    const IMAGE_BYTES: usize = 24 * 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(dir.path());
    settings.response_budget_bytes = 34 * 1024 * 1024;
    let up = start(settings).await;
    let api = Api::new(&up);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend((0..IMAGE_BYTES - 8).map(|i| (i % 251) as u8));
    api.upload_ok("big", &png).await;
    // The first read misses and fills the node; wait for a hit.
    let mut hit = false;
    for _ in 0..100 {
        let reply = api.image("big").await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(reply.body == png, "the image read back is the one uploaded");
        if reply.headers["x-memring-cache"] == "hit" {
            hit = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(hit, "the image became a cache hit");

    // Four clients ask for it and stop reading after the head. Read whole, each
    // would hold 24 MiB and the second would get 503; streamed, each holds 1 MiB.
    let mut stalled = Vec::new();
    for _ in 0..4 {
        let mut socket = tokio::net::TcpStream::connect(&api.frontend).await.unwrap();
        socket
            .write_all(b"GET /images/big HTTP/1.1\r\nHost: memring\r\n\r\n")
            .await
            .unwrap();
        let mut head = [0u8; 12];
        socket.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 200", "a stalled hit is still answered");
        stalled.push(socket);
    }
    // Meanwhile a client that reads gets the whole image, as a hit.
    let reply = api.image("big").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["x-memring-cache"], "hit");
    assert!(reply.body == png, "the streamed hit is the image");
    // The budget still holds: 30 MiB are left, and a base64 answer, which reads
    // the image whole and needs a third more for its text, would hold 32 MiB.
    let reply = api
        .call(
            Method::POST,
            &api.frontend,
            "/api/key/big",
            Bytes::new(),
            None,
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "the budget is spent"
    );
    // Once the stalled clients leave, their shares come back.
    drop(stalled);
    let mut served = false;
    for _ in 0..100 {
        let reply = api
            .call(
                Method::POST,
                &api.frontend,
                "/api/key/big",
                Bytes::new(),
                None,
            )
            .await;
        if reply.status == StatusCode::OK {
            served = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(served, "the budget came back after the clients left");
    up.stop().await;
}
