//! The storage contract: the behaviour every [`BlobStore`] and [`KeyIndex`] must
//! show, as async checks that panic with a clear message. The real stores, the
//! in-memory ones and the simulation's fakes all run the same checks, so they
//! cannot drift apart.
//!
//! Each check wants empty storage and leaves it empty, so the checks can run one
//! after another on the same stores ([`all`]). A key index may have handed out
//! versions before; the checks only ask that later versions be larger.

use std::collections::BTreeSet;

use bytes::Bytes;
use futures::future::join_all;

use super::{BlobStore, IndexRow, KeyIndex, StorageError, StorageResult};

/// Concurrent calls in the racing checks.
const RACERS: usize = 8;

/// Names that [`super::validate_object_name`] refuses; every call must refuse them.
const BAD_NAMES: [&str; 7] = ["", "../x", "/abs", "a//b", "a/../b", "a b", "a/."];

fn ok<T>(what: &str, result: StorageResult<T>) -> T {
    result.unwrap_or_else(|error| panic!("storage contract: {what}: unexpected error: {error}"))
}

fn sorted(names: &[&str]) -> Vec<String> {
    let set: BTreeSet<String> = names.iter().map(|n| (*n).to_owned()).collect();
    set.into_iter().collect()
}

/// Runs every check: [`blob_store`], [`key_index`], then [`sweep`].
pub async fn all(store: &dyn BlobStore, index: &dyn KeyIndex) {
    blob_store(store).await;
    key_index(index).await;
    sweep(store, index).await;
}

/// The blob store's contract: create-only puts that keep the first bytes, exact
/// bytes back, `None` for a missing object, idempotent deletes, a sorted and
/// complete list, one winner among racing puts of a name, bad names refused.
pub async fn blob_store(store: &dyn BlobStore) {
    assert_eq!(
        ok("list", store.list().await),
        Vec::<String>::new(),
        "storage contract: the blob-store checks start on an empty store"
    );

    // Create-only: a taken name is refused and keeps its first bytes.
    ok(
        "put images/b/2",
        store.put("images/b/2", "two".into()).await,
    );
    ok(
        "put images/a/1",
        store.put("images/a/1", "one".into()).await,
    );
    match store.put("images/a/1", "again".into()).await {
        Err(StorageError::AlreadyExists(_)) => {}
        other => panic!(
            "storage contract: a second put of a taken name must give AlreadyExists, got {other:?}"
        ),
    }
    assert_eq!(
        ok("get images/a/1", store.get("images/a/1").await).as_deref(),
        Some(&b"one"[..]),
        "storage contract: a refused put must leave the first bytes"
    );

    // Bytes come back exactly, the empty object and every byte value included.
    let binary = Bytes::from((0..=255u8).rev().collect::<Vec<u8>>());
    ok("put empty", store.put("images/empty", Bytes::new()).await);
    ok(
        "put binary",
        store.put("images/binary", binary.clone()).await,
    );
    assert_eq!(
        ok("get empty", store.get("images/empty").await),
        Some(Bytes::new()),
        "storage contract: an empty object is an object, not a missing one"
    );
    assert_eq!(
        ok("get binary", store.get("images/binary").await),
        Some(binary),
        "storage contract: bytes must come back exactly"
    );

    // Missing objects, a prefix of other names included, are None.
    for missing in ["images/none", "images/a", "images"] {
        assert_eq!(
            ok("get missing", store.get(missing).await),
            None,
            "storage contract: get of the missing object {missing:?} must be None"
        );
    }

    // The list is complete and sorted by bytes, whatever the order of the puts.
    for name in ["z", "images/a/10", "images/a/2", "images/a-b", "images/a.c"] {
        ok("put", store.put(name, Bytes::from(name.to_owned())).await);
    }
    let mut expected = sorted(&[
        "z",
        "images/a/10",
        "images/a/2",
        "images/a-b",
        "images/a.c",
        "images/a/1",
        "images/b/2",
        "images/empty",
        "images/binary",
    ]);
    assert_eq!(
        ok("list", store.list().await),
        expected,
        "storage contract: list must give every object name, sorted"
    );

    // Deletes are idempotent; a deleted name can be taken again.
    ok("delete images/a/1", store.delete("images/a/1").await);
    ok("delete images/a/1 again", store.delete("images/a/1").await);
    ok("delete a missing name", store.delete("images/never").await);
    expected.retain(|name| name != "images/a/1");
    assert_eq!(
        ok("list", store.list().await),
        expected,
        "storage contract: a deleted object must leave the list, and only it"
    );
    assert_eq!(
        ok("get deleted", store.get("images/a/1").await),
        None,
        "storage contract: a deleted object must be gone"
    );
    ok(
        "put a deleted name again",
        store.put("images/a/1", "new".into()).await,
    );
    assert_eq!(
        ok("get images/a/1", store.get("images/a/1").await).as_deref(),
        Some(&b"new"[..]),
        "storage contract: a deleted name takes new bytes"
    );

    // Racing puts of one name: exactly one wins, and its bytes are kept whole.
    let racers: Vec<Bytes> = (0..RACERS)
        .map(|i| Bytes::from(vec![i as u8; 4096]))
        .collect();
    let results = join_all(
        racers
            .iter()
            .map(|bytes| store.put("images/race", bytes.clone())),
    )
    .await;
    let mut winners = Vec::new();
    for (i, result) in results.into_iter().enumerate() {
        match result {
            Ok(()) => winners.push(i),
            Err(StorageError::AlreadyExists(_)) => {}
            Err(error) => panic!("storage contract: racing put {i}: unexpected error: {error}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "storage contract: exactly one of {RACERS} racing puts of a name must win, won: {winners:?}"
    );
    assert_eq!(
        ok("get race", store.get("images/race").await),
        Some(racers[winners[0]].clone()),
        "storage contract: the winner's bytes must be kept whole"
    );

    // Bad names are refused by every call.
    for bad in BAD_NAMES {
        assert!(
            matches!(
                store.put(bad, Bytes::new()).await,
                Err(StorageError::BadName(_))
            ),
            "storage contract: put of the bad name {bad:?} must give BadName"
        );
        assert!(
            matches!(store.get(bad).await, Err(StorageError::BadName(_))),
            "storage contract: get of the bad name {bad:?} must give BadName"
        );
        assert!(
            matches!(store.delete(bad).await, Err(StorageError::BadName(_))),
            "storage contract: delete of the bad name {bad:?} must give BadName"
        );
    }

    // Leave the store empty.
    for name in ok("list", store.list().await) {
        ok("delete", store.delete(&name).await);
    }
    assert_eq!(
        ok("list", store.list().await),
        Vec::<String>::new(),
        "storage contract: deleting every listed name must empty the store"
    );
}

fn row(key: &str, object: &str, mime: &str, version: u64) -> IndexRow {
    IndexRow {
        key: key.to_owned(),
        object: object.to_owned(),
        mime: mime.to_owned(),
        version,
    }
}

/// The key index's contract: upserts return the previous object and a version
/// larger than any before (across `delete_all` too), a re-upsert of the same row
/// after a lost answer succeeds and names that row as the previous one, racing
/// upserts of a key form one chain, the list is sorted and complete, and
/// `delete_all` returns every row sorted by key and leaves none.
pub async fn key_index(index: &dyn KeyIndex) {
    assert_eq!(
        ok("list", index.list().await),
        Vec::<String>::new(),
        "storage contract: the key-index checks start on an empty index"
    );

    // Upserts return the previous object and a growing version.
    let first = ok("upsert k o1", index.upsert("k", "o1", "image/png").await);
    assert_eq!(
        first.previous_object, None,
        "storage contract: the first upsert of a key has no previous object"
    );
    let second = ok("upsert k o2", index.upsert("k", "o2", "image/gif").await);
    assert!(
        second.version > first.version,
        "storage contract: versions must grow across upserts ({} then {})",
        first.version,
        second.version
    );
    assert_eq!(
        second.previous_object.as_deref(),
        Some("o1"),
        "storage contract: an upsert returns the object it replaced"
    );
    assert_eq!(
        ok("get k", index.get("k").await),
        Some(row("k", "o2", "image/gif", second.version)),
        "storage contract: get returns the last upserted row with its version"
    );
    assert_eq!(
        ok("get missing", index.get("missing").await),
        None,
        "storage contract: get of a missing key must be None"
    );

    // A row committed but its answer lost: the caller upserts the same row again.
    // That must succeed with a higher version and name the same object as the
    // previous one, so that the caller never deletes its own blob.
    let retry = ok("re-upsert k o2", index.upsert("k", "o2", "image/gif").await);
    assert!(
        retry.version > second.version,
        "storage contract: a re-upsert of the same row must get a higher version ({} then {})",
        second.version,
        retry.version
    );
    assert_eq!(
        retry.previous_object.as_deref(),
        Some("o2"),
        "storage contract: a re-upsert of the same row must name that same object as the previous one"
    );
    assert_eq!(
        ok("get k", index.get("k").await),
        Some(row("k", "o2", "image/gif", retry.version)),
        "storage contract: a re-upsert leaves the row with the new version"
    );
    let mut version_max = retry.version;

    // The list is complete and sorted by bytes (upper case first, then UTF-8).
    let keys = ["b", "a", "Z", "é", "a/b", "..", "日本", "a.b"];
    for (i, key) in keys.iter().enumerate() {
        let done = ok(
            "upsert",
            index.upsert(key, &format!("obj-{i}"), "image/jpeg").await,
        );
        assert!(
            done.version > version_max,
            "storage contract: versions must grow across upserts of different keys"
        );
        version_max = done.version;
    }
    let mut all_keys = keys.to_vec();
    all_keys.push("k");
    assert_eq!(
        ok("list", index.list().await),
        sorted(&all_keys),
        "storage contract: list must give every key, sorted"
    );

    // Racing upserts of one key form one chain: distinct versions, each naming
    // as previous the object of the one just below it.
    let objects: Vec<String> = (0..RACERS).map(|i| format!("race-{i}")).collect();
    let results = join_all(
        objects
            .iter()
            .map(|object| index.upsert("race", object, "image/png")),
    )
    .await;
    let mut chain: Vec<(u64, &str, Option<String>)> = results
        .into_iter()
        .zip(&objects)
        .map(|(result, object)| {
            let done = ok("racing upsert", result);
            (done.version, object.as_str(), done.previous_object)
        })
        .collect();
    chain.sort_by_key(|link| link.0);
    let mut previous: Option<&str> = None;
    for (version, object, previous_object) in &chain {
        assert!(
            *version > version_max,
            "storage contract: racing upserts must get distinct, growing versions: {chain:?}"
        );
        assert_eq!(
            previous_object.as_deref(),
            previous,
            "storage contract: racing upserts must form one chain: {chain:?}"
        );
        version_max = *version;
        previous = Some(object);
    }
    let (last_version, last_object, _) = chain.last().cloned().expect("racers ran");
    assert_eq!(
        ok("get race", index.get("race").await),
        Some(row("race", last_object, "image/png", last_version)),
        "storage contract: the racing upsert with the highest version must win"
    );

    // delete_all returns every row, sorted by key, and leaves none.
    let mut expected = Vec::new();
    for key in ok("list", index.list().await) {
        expected.push(ok("get", index.get(&key).await).expect("a listed key has a row"));
    }
    assert_eq!(
        ok("delete_all", index.delete_all().await),
        expected,
        "storage contract: delete_all must return every row, sorted by key"
    );
    assert_eq!(
        ok("list", index.list().await),
        Vec::<String>::new(),
        "storage contract: delete_all must leave no key"
    );
    assert_eq!(
        ok("get k", index.get("k").await),
        None,
        "storage contract: delete_all must leave no row"
    );
    assert_eq!(
        ok("delete_all again", index.delete_all().await),
        Vec::<IndexRow>::new(),
        "storage contract: delete_all of an empty index returns nothing"
    );

    // The version counter survives delete_all.
    let after = ok(
        "upsert after delete_all",
        index.upsert("k", "o9", "image/png").await,
    );
    assert!(
        after.version > version_max,
        "storage contract: versions must keep growing after delete_all ({version_max} then {})",
        after.version
    );
    assert_eq!(
        after.previous_object, None,
        "storage contract: after delete_all a key has no previous object"
    );
    assert_eq!(
        ok("delete_all", index.delete_all().await),
        vec![row("k", "o9", "image/png", after.version)],
        "storage contract: delete_all returns the rows upserted since"
    );
}

/// Sweeping orphans, as `clear/data` and a crashed upload need it: blobs that no
/// row names (an upload whose commit failed, a replaced blob whose delete never
/// ran) are listed and can be deleted; rows' blobs survive a sweep that deletes
/// only unreferenced names; after `delete_all` the returned rows name every blob
/// left to delete.
pub async fn sweep(store: &dyn BlobStore, index: &dyn KeyIndex) {
    assert_eq!(
        ok("list blobs", store.list().await),
        Vec::<String>::new(),
        "storage contract: the sweep checks start on an empty store"
    );
    assert_eq!(
        ok("list keys", index.list().await),
        Vec::<String>::new(),
        "storage contract: the sweep checks start on an empty index"
    );
    for name in [
        "images/k1-old",
        "images/k1-new",
        "images/k2",
        "images/orphan",
    ] {
        ok("put", store.put(name, Bytes::from(name.to_owned())).await);
    }
    ok(
        "upsert k1",
        index.upsert("k1", "images/k1-old", "image/png").await,
    );
    let replaced = ok(
        "upsert k1",
        index.upsert("k1", "images/k1-new", "image/png").await,
    );
    assert_eq!(replaced.previous_object.as_deref(), Some("images/k1-old"));
    ok(
        "upsert k2",
        index.upsert("k2", "images/k2", "image/png").await,
    );

    // Orphans are listed.
    let listed = ok("list blobs", store.list().await);
    for orphan in ["images/k1-old", "images/orphan"] {
        assert!(
            listed.iter().any(|name| name == orphan),
            "storage contract: the orphan {orphan:?} must be listed: {listed:?}"
        );
    }

    // Sweep: delete every listed name that no row names.
    let mut referenced = BTreeSet::new();
    for key in ok("list keys", index.list().await) {
        let row = ok("get", index.get(&key).await).expect("a listed key has a row");
        referenced.insert(row.object);
    }
    for name in listed {
        if !referenced.contains(&name) {
            ok("delete orphan", store.delete(&name).await);
        }
    }
    assert_eq!(
        ok("list blobs", store.list().await),
        ["images/k1-new", "images/k2"],
        "storage contract: a sweep leaves exactly the referenced blobs"
    );
    for name in &referenced {
        assert_eq!(
            ok("get referenced", store.get(name).await).as_deref(),
            Some(name.as_bytes()),
            "storage contract: a referenced blob must survive a sweep whole"
        );
    }

    // clear/data: the rows delete_all returns name the blobs to delete.
    let rows = ok("delete_all", index.delete_all().await);
    let named: BTreeSet<String> = rows.into_iter().map(|row| row.object).collect();
    assert_eq!(
        named, referenced,
        "storage contract: delete_all must return the rows naming every referenced blob"
    );
    for name in &named {
        ok("delete", store.delete(name).await);
    }
    assert_eq!(
        ok("list blobs", store.list().await),
        Vec::<String>::new(),
        "storage contract: nothing is left after clear/data"
    );
}
