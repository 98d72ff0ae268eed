//! `EmbeddedStore`: the conformance suite, reopening, limits.
#![cfg(feature = "embedded")]

use std::path::PathBuf;
use std::sync::Arc;

use sagaflow::store::embedded::{MAX_KEY_SIZE, MAX_VALUE_SIZE};
use sagaflow::store::{Expect, Store, Write, conformance};
use sagaflow::{EmbeddedStore, StoreError};

/// A fresh directory under the system's temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "sagaflow-test-{name}-{}-{nanos}",
            std::process::id()
        ));
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn embedded_store_conforms() {
    let dir = TempDir::new("conform");
    conformance::run(Arc::new(EmbeddedStore::open(&dir.0).unwrap())).await;
}

/// As the runtime uses it: its writes grouped into `put_batch` calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_store_conforms_under_group_commit() {
    let dir = TempDir::new("conform-grouped");
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&dir.0).unwrap());
    assert!(store.batches_writes());
    conformance::run(Arc::new(sagaflow::store::GroupCommit::new(store))).await;
    // The last handle gone, the directory is free again at once.
    EmbeddedStore::open(&dir.0).expect("reopens");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_store_conforms_on_many_threads() {
    let dir = TempDir::new("conform-mt");
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&dir.0).unwrap());
    // Twice on one store: the second run meets the first one's leftovers.
    conformance::run(store.clone()).await;
    conformance::run(store).await;
}

#[tokio::test]
async fn reopen_sees_every_acknowledged_write() {
    let dir = TempDir::new("reopen");
    let mut versions = Vec::new();
    {
        let store = EmbeddedStore::open(&dir.0).unwrap();
        for i in 0..100 {
            let v = store
                .put(
                    &format!("k/{i:03}"),
                    format!("value {i}").into_bytes(),
                    Expect::Absent,
                )
                .await
                .unwrap();
            versions.push(v);
        }
        let v = store
            .put("k/000", b"changed".to_vec(), Expect::Version(versions[0]))
            .await
            .unwrap();
        versions[0] = v;
        store
            .delete("k/099", Expect::Version(versions[99]))
            .await
            .unwrap();
        // A clone keeps the store open after the original is dropped.
        let clone = store.clone();
        drop(store);
        clone
            .put("k/100", b"from the clone".to_vec(), Expect::Absent)
            .await
            .unwrap();
    }
    let store = EmbeddedStore::open(&dir.0).unwrap();
    let page = store.scan("k/", None, 1000).await.unwrap();
    assert_eq!(page.entries.len(), 100);
    assert_eq!(store.get("k/000").await.unwrap().unwrap().value, b"changed");
    assert_eq!(
        store.get("k/000").await.unwrap().unwrap().version,
        versions[0]
    );
    for (i, &version) in versions.iter().enumerate().take(99).skip(1) {
        let got = store.get(&format!("k/{i:03}")).await.unwrap().unwrap();
        assert_eq!(
            (got.value, got.version),
            (format!("value {i}").into_bytes(), version)
        );
    }
    assert_eq!(store.get("k/099").await.unwrap(), None);
    assert_eq!(
        store.get("k/100").await.unwrap().unwrap().value,
        b"from the clone"
    );
    // The version counter survived: a re-created key gets a greater version
    // than any handed out before the restart.
    let max = store.get("k/100").await.unwrap().unwrap().version;
    let v = store
        .put("k/099", b"again".to_vec(), Expect::Absent)
        .await
        .unwrap();
    assert!(
        v > max && versions.iter().all(|old| v > *old),
        "{v} after {max}"
    );
}

#[tokio::test]
async fn a_directory_opens_once() {
    let dir = TempDir::new("locked");
    let store = EmbeddedStore::open(&dir.0).unwrap();
    let err = EmbeddedStore::open(&dir.0).unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    drop(store);
    EmbeddedStore::open(&dir.0).expect("reopens once closed");
}

#[tokio::test]
async fn limits() {
    let dir = TempDir::new("limits");
    let store = EmbeddedStore::open(&dir.0).unwrap();
    let err = store
        .put("big", vec![0; MAX_VALUE_SIZE + 1], Expect::Any)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::TooLarge { size, limit } if size == MAX_VALUE_SIZE + 1 && limit == MAX_VALUE_SIZE),
        "{err:?}"
    );
    assert_eq!(store.get("big").await.unwrap(), None);
    store
        .put("big", vec![7; MAX_VALUE_SIZE], Expect::Absent)
        .await
        .expect("the limit itself fits");
    assert_eq!(
        store.get("big").await.unwrap().unwrap().value.len(),
        MAX_VALUE_SIZE
    );

    let long = "k".repeat(MAX_KEY_SIZE + 1);
    let err = store
        .put(&long, b"x".to_vec(), Expect::Any)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Backend(_)) && err.to_string().contains("key limit"),
        "{err}"
    );
    assert_eq!(store.get(&long).await.unwrap(), None);
    store.delete(&long, Expect::Any).await.unwrap();
    assert!(matches!(
        store.delete(&long, Expect::Version(1)).await,
        Err(StoreError::Conflict)
    ));
    assert!(
        store
            .scan(&long, None, 10)
            .await
            .unwrap()
            .entries
            .is_empty()
    );
    // An `after` longer than any key still means "strictly after it".
    let page = store
        .scan("", Some(&"a".repeat(MAX_KEY_SIZE + 1)), 10)
        .await
        .unwrap();
    assert_eq!(
        page.entries
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>(),
        ["big"]
    );

    let longest = "k".repeat(MAX_KEY_SIZE);
    let v = store
        .put(&longest, b"x".to_vec(), Expect::Absent)
        .await
        .unwrap();
    assert_eq!(store.get(&longest).await.unwrap().unwrap().version, v);
}

/// A batch with a write the store refuses: that write alone fails, with its
/// own error, and the others are written and answered in their places.
#[tokio::test]
async fn a_refused_write_in_a_batch_fails_alone() {
    let dir = TempDir::new("batch-limits");
    let store = EmbeddedStore::open(&dir.0).unwrap();
    let write = |key: &str, value: Vec<u8>| Write {
        key: key.to_owned(),
        value,
        expect: Expect::Absent,
    };
    let results = store
        .put_batch(vec![
            write("first", b"1".to_vec()),
            write("big", vec![0; MAX_VALUE_SIZE + 1]),
            write(&"k".repeat(MAX_KEY_SIZE + 1), b"x".to_vec()),
            write("last", b"3".to_vec()),
        ])
        .await;
    assert_eq!(results.len(), 4, "{results:?}");
    assert!(
        matches!(results[1], Err(StoreError::TooLarge { size, .. }) if size == MAX_VALUE_SIZE + 1),
        "{results:?}"
    );
    assert!(
        matches!(results[2], Err(StoreError::Backend(_))),
        "{results:?}"
    );
    for (index, key, value) in [(0, "first", b"1"), (3, "last", b"3")] {
        let version = *results[index].as_ref().expect("an admitted write lands");
        let stored = store.get(key).await.unwrap().expect("written");
        assert_eq!(
            (stored.value.as_slice(), stored.version),
            (&value[..], version)
        );
    }
    assert_eq!(store.get("big").await.unwrap(), None);
}

/// Many writers at once: every write lands, each with its own version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_share_commits() {
    let dir = TempDir::new("group");
    let store = EmbeddedStore::open(&dir.0).unwrap();
    let mut tasks = Vec::new();
    for t in 0..200 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("w/{t:03}");
            let mut v = store.put(&key, vec![0; 300], Expect::Absent).await.unwrap();
            for i in 1..20u8 {
                v = store
                    .put(&key, vec![i; 300], Expect::Version(v))
                    .await
                    .unwrap();
            }
            v
        }));
    }
    let mut versions = Vec::new();
    for task in tasks {
        versions.push(task.await.unwrap());
    }
    versions.sort();
    versions.dedup();
    assert_eq!(versions.len(), 200);
    drop(store);
    let store = EmbeddedStore::open(&dir.0).unwrap();
    let page = store.scan("w/", None, 1000).await.unwrap();
    assert_eq!(page.entries.len(), 200);
    assert!(page.entries.iter().all(|(_, v)| v.value == vec![19; 300]));
}

/// Increments racing on a few counters while other keys are created,
/// updated and deleted over and over: with writes decided against batches
/// still being committed, no update is lost and no version goes backwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_writes_under_load_stay_consistent() {
    const COUNTERS: usize = 4;
    const INCREMENTERS: usize = 48;
    const EACH: u64 = 25;
    let dir = TempDir::new("mixed");
    let store = EmbeddedStore::open(&dir.0).unwrap();
    for c in 0..COUNTERS {
        store
            .put(
                &format!("counter/{c}"),
                0u64.to_be_bytes().to_vec(),
                Expect::Absent,
            )
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for t in 0..INCREMENTERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("counter/{}", t % COUNTERS);
            let mut done = 0;
            while done < EACH {
                let current = store.get(&key).await.unwrap().unwrap();
                let n = u64::from_be_bytes(current.value.as_slice().try_into().unwrap());
                match store
                    .put(
                        &key,
                        (n + 1).to_be_bytes().to_vec(),
                        Expect::Version(current.version),
                    )
                    .await
                {
                    Ok(v) => {
                        assert!(v > current.version);
                        done += 1;
                    }
                    Err(StoreError::Conflict) => tokio::task::yield_now().await,
                    Err(e) => panic!("{e:?}"),
                }
            }
        }));
    }
    for t in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("cycle/{t}");
            let mut last = 0;
            for round in 0..20u8 {
                let v1 = store.put(&key, vec![round], Expect::Absent).await.unwrap();
                let v2 = store
                    .put(&key, vec![round, 1], Expect::Version(v1))
                    .await
                    .unwrap();
                assert!(last < v1 && v1 < v2, "{last} {v1} {v2}");
                // Conflicts decided against the write just made.
                assert!(matches!(
                    store.put(&key, vec![], Expect::Version(v1)).await,
                    Err(StoreError::Conflict)
                ));
                assert!(matches!(
                    store.delete(&key, Expect::Absent).await,
                    Err(StoreError::Conflict)
                ));
                store.delete(&key, Expect::Version(v2)).await.unwrap();
                assert_eq!(store.get(&key).await.unwrap(), None);
                last = v2;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut total = 0;
    for c in 0..COUNTERS {
        let value = store
            .get(&format!("counter/{c}"))
            .await
            .unwrap()
            .unwrap()
            .value;
        total += u64::from_be_bytes(value.as_slice().try_into().unwrap());
    }
    assert_eq!(total, INCREMENTERS as u64 * EACH);
    assert!(
        store
            .scan("cycle/", None, 100)
            .await
            .unwrap()
            .entries
            .is_empty()
    );
}

/// The due index is answered from memory: scans see exactly the live hints
/// (written, batched, deleted, refused), in order and page by page, and a
/// reopened store sees what was committed before it closed.
#[tokio::test]
async fn due_index_scans_see_the_live_hints_and_survive_a_reopen() {
    let dir = TempDir::new("due-index");
    let key = |n: u32| format!("due/{:020}/id-{n}", u64::from(n) * 10);
    {
        let store = EmbeddedStore::open(&dir.0).unwrap();
        for n in 0..600 {
            store
                .put(&key(n), format!("id-{n}").into_bytes(), Expect::Any)
                .await
                .unwrap();
        }
        // Every other one deleted, some of them by a batch's neighbours.
        for n in (0..600).step_by(2) {
            store.delete(&key(n), Expect::Any).await.unwrap();
        }
        let refused = store
            .put_batch(vec![
                Write {
                    key: key(1),
                    value: b"refused".to_vec(),
                    expect: Expect::Absent,
                },
                Write {
                    key: key(1000),
                    value: b"id-1000".to_vec(),
                    expect: Expect::Absent,
                },
            ])
            .await;
        assert!(matches!(refused[0], Err(StoreError::Conflict)));
        assert!(refused[1].is_ok());
        // A key beside the index is not part of it.
        store
            .put("duet", b"not a hint".to_vec(), Expect::Any)
            .await
            .unwrap();
    }
    let store = EmbeddedStore::open(&dir.0).unwrap();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.scan("due/", after.as_deref(), 128).await.unwrap();
        for (key, value) in &page.entries {
            let got = store.get(key).await.unwrap().expect("a scanned key reads");
            assert_eq!(&got, value, "a scan returns the stored value and version");
            seen.push(key.clone());
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let mut expected: Vec<String> = (1..600).step_by(2).map(key).collect();
    expected.push(key(1000));
    assert_eq!(seen, expected);
    // A narrower prefix within the index: exactly its live keys, in order.
    let prefix = &key(1)[..24];
    let narrow = store.scan(prefix, None, 1000).await.unwrap();
    let narrow: Vec<&String> = narrow.entries.iter().map(|(k, _)| k).collect();
    let within: Vec<&String> = expected.iter().filter(|k| k.starts_with(prefix)).collect();
    assert!(!within.is_empty(), "the prefix {prefix} selects some hints");
    assert_eq!(narrow, within);
}
