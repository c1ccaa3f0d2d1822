//! The storage contract on the simulation's fakes, and their storage faults: a
//! small turmoil world with the fake S3 and RDS hosts and one client host that
//! talks to them through `RemoteBlobStore` / `RemoteKeyIndex`, as the front-end
//! does.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, StatusCode};
use memring::net::server::{serve, ServerSettings};
use memring::storage::memory::{MemoryBlobStore, MemoryKeyIndex};
use memring::storage::{contract, BlobStore, IndexRow, KeyIndex, StorageError, StorageResult};
use memring_sim::fakes::{
    rds_router, s3_router, RemoteBlobStore, RemoteKeyIndex, StorageFaults, RDS_PORT,
    RDS_THROTTLED_BODY, REPLY_LOST_BODY, S3_PORT, STORAGE_TIMEOUT_MS,
};
use memring_sim::seam::TurmoilListener;
use memring_sim::world::sim_client;
use tokio_util::sync::CancellationToken;

/// Longest simulated run of one test.
const SIM_DURATION_S: u64 = 600;

/// What the client host gets: the remote stores, the stores behind the fakes
/// (to see what really happened) and the two fault controllers.
struct Storage {
    blobs: RemoteBlobStore,
    index: RemoteKeyIndex,
    behind_s3: Arc<MemoryBlobStore>,
    behind_rds: Arc<MemoryKeyIndex>,
    s3_faults: StorageFaults,
    rds_faults: StorageFaults,
}

/// Runs `test` on a client host of a world with only "s3" and "rds".
fn simulate<F, Fut>(seed: u64, test: F)
where
    F: FnOnce(Storage) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let mut builder = turmoil::Builder::new();
    builder
        .rng_seed(seed)
        .enable_random_order()
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(4))
        .simulation_duration(Duration::from_secs(SIM_DURATION_S))
        .tcp_capacity(4096);
    let mut sim = builder.build();

    let behind_s3 = Arc::new(MemoryBlobStore::default());
    let s3_faults = StorageFaults::default();
    let (blobs, faults) = (behind_s3.clone(), s3_faults.clone());
    sim.host("s3", move || {
        let router = s3_router(blobs.clone(), faults.clone(), seed);
        async move {
            let listener = TurmoilListener::bind(S3_PORT).await?;
            let settings = ServerSettings::default();
            serve(
                Box::new(listener),
                router,
                settings,
                CancellationToken::new(),
            )
            .await;
            Ok(())
        }
    });
    let behind_rds = Arc::new(MemoryKeyIndex::default());
    let rds_faults = StorageFaults::default();
    let (index, faults) = (behind_rds.clone(), rds_faults.clone());
    sim.host("rds", move || {
        let router = rds_router(index.clone(), faults.clone(), seed);
        async move {
            let listener = TurmoilListener::bind(RDS_PORT).await?;
            let settings = ServerSettings::default();
            serve(
                Box::new(listener),
                router,
                settings,
                CancellationToken::new(),
            )
            .await;
            Ok(())
        }
    });

    // The clients are made on the client host, whose runtime they use.
    let make = move || {
        let client = sim_client(STORAGE_TIMEOUT_MS);
        Storage {
            blobs: RemoteBlobStore {
                client: client.clone(),
                addr: format!("s3:{S3_PORT}"),
            },
            index: RemoteKeyIndex {
                client,
                addr: format!("rds:{RDS_PORT}"),
            },
            behind_s3,
            behind_rds,
            s3_faults,
            rds_faults,
        }
    };
    sim.client("tester", async move {
        test(make()).await;
        Ok(())
    });
    sim.run().expect("the simulation runs to its end");
}

/// Everything stored behind the fakes.
async fn contents(storage: &Storage) -> (Vec<(String, Bytes)>, Vec<IndexRow>) {
    let mut blobs = Vec::new();
    for name in storage.behind_s3.list().await.unwrap() {
        let bytes = storage.behind_s3.get(&name).await.unwrap().unwrap();
        blobs.push((name, bytes));
    }
    let mut rows = Vec::new();
    for key in storage.behind_rds.list().await.unwrap() {
        rows.push(storage.behind_rds.get(&key).await.unwrap().unwrap());
    }
    (blobs, rows)
}

fn assert_unavailable<T: std::fmt::Debug>(what: &str, result: StorageResult<T>) {
    assert!(
        matches!(result, Err(StorageError::Unavailable(_))),
        "{what}: expected Unavailable, got {result:?}"
    );
}

fn now_ms() -> u128 {
    turmoil::sim_elapsed()
        .expect("inside the simulation")
        .as_millis()
}

#[test]
fn the_fakes_keep_the_storage_contract() {
    simulate(1, |storage| async move {
        contract::all(&storage.blobs, &storage.index).await;
        // Once more: the checks left the fakes empty.
        contract::all(&storage.blobs, &storage.index).await;
    });
}

#[test]
fn the_fakes_keep_the_contract_while_slow() {
    let extra_ms_max = STORAGE_TIMEOUT_MS - 300;
    simulate(2, move |storage| async move {
        storage.s3_faults.set_slow(extra_ms_max);
        storage.rds_faults.set_slow(extra_ms_max);
        contract::all(&storage.blobs, &storage.index).await;

        storage
            .blobs
            .put("images/slow", Bytes::from_static(b"slow"))
            .await
            .unwrap();
        let mut latencies_ms = Vec::new();
        for _ in 0..100 {
            let start_ms = now_ms();
            let bytes = storage.blobs.get("images/slow").await;
            assert_eq!(bytes.unwrap().as_deref(), Some(&b"slow"[..]));
            latencies_ms.push(now_ms() - start_ms);
        }
        latencies_ms.sort_unstable();
        let (median, max) = (latencies_ms[50], latencies_ms[99]);
        assert!(
            max < u128::from(STORAGE_TIMEOUT_MS),
            "within the client's timeout: {max} ms"
        );
        assert!(
            max >= u128::from(extra_ms_max / 2),
            "slow calls happen: the slowest took {max} ms"
        );
        assert!(
            median < u128::from(extra_ms_max / 4),
            "mostly small: median {median} ms"
        );

        storage.s3_faults.heal();
        let start_ms = now_ms();
        storage.blobs.get("images/slow").await.unwrap();
        assert!(now_ms() - start_ms < 100, "healed calls are fast again");
    });
}

#[test]
fn a_write_whose_reply_is_lost_is_carried_out() {
    simulate(3, |storage| async move {
        storage.rds_faults.set_lost_reply_per_mille(1_000);
        storage.s3_faults.set_lost_reply_per_mille(1_000);

        // S3: the put fails but the object is there; retrying the name is refused.
        let put = storage
            .blobs
            .put("images/o1", Bytes::from_static(b"one"))
            .await;
        assert_unavailable("put with its reply lost", put);
        assert_eq!(
            storage.blobs.get("images/o1").await.unwrap().as_deref(),
            Some(&b"one"[..]),
            "reads are not writes: the put's object is visible"
        );
        storage.s3_faults.heal();
        assert!(matches!(
            storage
                .blobs
                .put("images/o1", Bytes::from_static(b"again"))
                .await,
            Err(StorageError::AlreadyExists(_))
        ));

        // RDS: the upsert fails, but a later get shows the row.
        let upsert = storage.index.upsert("k", "images/o1", "image/png").await;
        assert_unavailable("upsert with its reply lost", upsert);
        let row = storage
            .index
            .get("k")
            .await
            .unwrap()
            .expect("the row landed");
        assert_eq!((row.key.as_str(), row.object.as_str()), ("k", "images/o1"));

        // The caller re-upserts the same row: it names that same object as the
        // previous one, so the caller knows not to delete its own blob.
        storage.rds_faults.heal();
        let retry = storage
            .index
            .upsert("k", "images/o1", "image/png")
            .await
            .unwrap();
        assert!(retry.version > row.version);
        assert_eq!(retry.previous_object.as_deref(), Some("images/o1"));

        // Deletes and delete_all are carried out too.
        storage.s3_faults.set_lost_reply_per_mille(1_000);
        storage.rds_faults.set_lost_reply_per_mille(1_000);
        assert_unavailable("delete with its reply lost", {
            storage.blobs.delete("images/o1").await
        });
        assert_eq!(storage.blobs.get("images/o1").await.unwrap(), None);
        assert_unavailable("delete_all with its reply lost", {
            storage.index.delete_all().await
        });
        assert_eq!(storage.index.list().await.unwrap(), Vec::<String>::new());
        assert_eq!(contents(&storage).await, (Vec::new(), Vec::new()));
    });
}

#[test]
fn lost_replies_are_answered_500_with_their_body() {
    simulate(4, |storage| async move {
        storage.rds_faults.set_lost_reply_per_mille(1_000);
        let client = sim_client(STORAGE_TIMEOUT_MS);
        let body = Bytes::from_static(br#"{"key":"k","object":"o","mime":"image/png"}"#);
        let reply = client
            .send(
                Method::POST,
                &format!("rds:{RDS_PORT}"),
                "/upsert",
                &[(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                body,
            )
            .await
            .unwrap();
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(reply.body, REPLY_LOST_BODY);
        assert_eq!(storage.behind_rds.list().await.unwrap(), ["k"]);
    });
}

#[test]
fn injected_errors_change_nothing() {
    simulate(5, |storage| async move {
        storage
            .blobs
            .put("images/kept", Bytes::from_static(b"kept"))
            .await
            .unwrap();
        let before_upsert = storage
            .index
            .upsert("k", "images/kept", "image/png")
            .await
            .unwrap();
        let before = contents(&storage).await;

        storage.s3_faults.set_error_per_mille(1_000);
        storage.rds_faults.set_error_per_mille(1_000);
        let (blobs, index) = (&storage.blobs, &storage.index);
        let new = Bytes::from_static(b"new");
        assert_unavailable("put", blobs.put("images/new", new).await);
        assert_unavailable("get", blobs.get("images/kept").await);
        assert_unavailable("delete", blobs.delete("images/kept").await);
        assert_unavailable("list", blobs.list().await);
        assert_unavailable("upsert", index.upsert("k", "images/new", "image/gif").await);
        assert_unavailable(
            "upsert",
            index.upsert("k2", "images/new", "image/gif").await,
        );
        assert_unavailable("get", index.get("k").await);
        assert_unavailable("list", index.list().await);
        assert_unavailable("delete_all", index.delete_all().await);
        assert_eq!(contents(&storage).await, before, "nothing changed");

        storage.s3_faults.heal();
        storage.rds_faults.heal();
        let after = index.upsert("k", "images/kept", "image/png").await.unwrap();
        assert_eq!(
            after.version,
            before_upsert.version + 1,
            "refused upserts took no version"
        );
    });
}

#[test]
fn throttling_answers_503_and_changes_nothing() {
    simulate(6, |storage| async move {
        storage
            .blobs
            .put("images/kept", Bytes::from_static(b"kept"))
            .await
            .unwrap();
        storage
            .index
            .upsert("k", "images/kept", "image/png")
            .await
            .unwrap();
        let before = contents(&storage).await;

        storage.s3_faults.set_throttled(true);
        storage.rds_faults.set_throttled(true);
        let client = sim_client(STORAGE_TIMEOUT_MS);
        let s3 = client
            .send(
                Method::PUT,
                &format!("s3:{S3_PORT}"),
                "/objects/images/new",
                &[],
                Bytes::from_static(b"new"),
            )
            .await
            .unwrap();
        assert_eq!(s3.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            s3.body.starts_with(b"SlowDown"),
            "S3 says SlowDown: {:?}",
            s3.body
        );
        let rds = client
            .send(
                Method::POST,
                &format!("rds:{RDS_PORT}"),
                "/delete_all",
                &[],
                Bytes::new(),
            )
            .await
            .unwrap();
        assert_eq!(rds.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(rds.body, RDS_THROTTLED_BODY);

        let (blobs, index) = (&storage.blobs, &storage.index);
        let new = Bytes::from_static(b"new");
        assert_unavailable("put", blobs.put("images/new", new).await);
        assert_unavailable("delete", blobs.delete("images/kept").await);
        assert_unavailable("get", blobs.get("images/kept").await);
        assert_unavailable("upsert", index.upsert("k", "images/new", "image/gif").await);
        assert_unavailable("delete_all", index.delete_all().await);
        assert_unavailable("get", index.get("k").await);
        assert_eq!(contents(&storage).await, before, "nothing changed");

        storage.s3_faults.set_throttled(false);
        storage.rds_faults.heal();
        assert_eq!(
            blobs.get("images/kept").await.unwrap().as_deref(),
            Some(&b"kept"[..])
        );
        assert_eq!(index.list().await.unwrap(), ["k"]);
    });
}

/// Which of 200 reads fail at 300 per mille, for a seed.
fn failures_at_300_per_mille(seed: u64) -> Vec<bool> {
    let failed = Rc::new(RefCell::new(Vec::new()));
    let record = failed.clone();
    simulate(seed, move |storage| async move {
        storage
            .blobs
            .put("images/a", Bytes::from_static(b"a"))
            .await
            .unwrap();
        storage.s3_faults.set_error_per_mille(300);
        for _ in 0..200 {
            let result = storage.blobs.get("images/a").await;
            match result {
                Ok(Some(_)) => record.borrow_mut().push(false),
                Err(StorageError::Unavailable(_)) => record.borrow_mut().push(true),
                other => panic!("unexpected {other:?}"),
            }
        }
    });
    let failed = failed.borrow().clone();
    failed
}

#[test]
fn error_rates_are_per_mille_and_a_seed_reproduces_them() {
    let first = failures_at_300_per_mille(7);
    let count = first.iter().filter(|f| **f).count();
    assert!((30..=90).contains(&count), "{count} of 200 failed");
    assert_eq!(first, failures_at_300_per_mille(7));
    assert_ne!(first, failures_at_300_per_mille(8));
}
