//! The store conformance suite: one set of checks every [`Store`] must pass.
//!
//! A backend — ours or a third party's — proves it keeps the [`Store`]
//! contract with one call from a test:
//!
//! ```
//! use std::sync::Arc;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let store = Arc::new(sagaflow::MemoryStore::new());
//! sagaflow::store::conformance::run(store).await;
//! # }
//! ```
//!
//! # Failure mode
//!
//! This is a test helper: every check **panics** on the first property the
//! store violates, with a message naming the store, the check and what was
//! expected, e.g. `store conformance [embedded] put_version: a stale version
//! must fail with Conflict, got Ok(7)`. A store error where none is expected
//! panics too, with the error.
//!
//! # Shared servers
//!
//! Every key the suite touches lies under one prefix: [`run`] generates a
//! unique one (`sagaflow-conformance/{pid}-{time}-{n}/`), [`run_with_prefix`]
//! takes yours. Keys outside it are never read by a check's assertions nor
//! written, so the suite can run against a shared, non-empty PostgreSQL,
//! Redis or etcd. On success, [`run_with_prefix`] deletes the keys it wrote.
//!
//! # Checks
//!
//! Each check is a public function, so a backend that cannot yet pass them
//! all can run the ones it does; each takes the prefix to work under and
//! uses its own sub-prefix of it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Expect, ScanPage, Store, Versioned, WAKE_PREFIX, Write};
use crate::error::StoreError;

/// The size of the large value [`large_and_empty_values`] round-trips: 1 MiB.
pub const LARGE_VALUE_SIZE: usize = 1 << 20;

/// How many tasks race in [`concurrent_cas`].
pub const RACERS: usize = 16;

/// Runs every check under a fresh, unique prefix; panics on the first
/// violation (see the [module docs](self)).
///
/// Takes an `Arc` because the concurrency checks share the store between
/// tokio tasks; pass `Arc<dyn Store>` or `Arc<YourStore>`. Must be called
/// inside a tokio runtime (either flavor).
pub async fn run<S: Store + ?Sized>(store: Arc<S>) {
    run_with_prefix(store, &unique_prefix()).await;
}

/// Runs every check with keys under `prefix` only, then deletes what it
/// wrote. `prefix` should be unique to this run (end it with `/`): the
/// checks assume nothing else writes under it.
pub async fn run_with_prefix<S: Store + ?Sized>(store: Arc<S>, prefix: &str) {
    let s: &S = &store;
    assert!(
        !s.name().is_empty(),
        "store conformance: Store::name() must not be empty"
    );
    get_absent(s, prefix).await;
    put_absent(s, prefix).await;
    put_version(s, prefix).await;
    put_any(s, prefix).await;
    delete_expectations(s, prefix).await;
    versions_never_reused(s, prefix).await;
    odd_keys(s, prefix).await;
    large_and_empty_values(s, prefix).await;
    scan_prefix_and_order(s, prefix).await;
    scan_pagination(s, prefix).await;
    concurrent_cas(store.clone(), prefix).await;
    concurrent_create(store.clone(), prefix).await;
    concurrent_increments(store.clone(), prefix).await;
    put_batch_results(s, prefix).await;
    concurrent_batches(store.clone(), prefix).await;
    cleanup(s, prefix).await;
}

/// The server address in the environment variable `variable`, for a test
/// against a real server: `None` after printing why the test is skipped
/// (`how_to_run` says how to run it). Under `CI=true` an unset variable
/// panics instead: CI must run such tests for real, never skip them.
///
/// ```no_run
/// # fn demo() {
/// let Some(url) = sagaflow::store::conformance::server_from_env(
///     "MY_STORE_URL",
///     "start the server and set MY_STORE_URL",
/// ) else {
///     return;
/// };
/// # let _ = url;
/// # }
/// ```
pub fn server_from_env(variable: &str, how_to_run: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(value) if !value.trim().is_empty() => Some(value),
        _ => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!(
                    "{variable} is not set, but CI=true: CI must run this test against a real \
                     server ({how_to_run})"
                );
            }
            println!("skipped: {variable} is not set ({how_to_run})");
            None
        }
    }
}

/// A name no other test run uses, for a table, namespace or key prefix of
/// its own: `base`, the process id, the time and a counter, made of
/// identifier characters only if `base` is.
pub fn unique_name(base: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{base}_{}_{}_{n}",
        std::process::id(),
        nanos % 1_000_000_000_000
    )
}

/// A prefix no other run of the suite uses: process id, time and a counter.
pub fn unique_prefix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("sagaflow-conformance/{}-{nanos}-{n}/", std::process::id())
}

/// A get of a key that was never written is `Ok(None)`.
pub async fn get_absent<S: Store + ?Sized>(store: &S, prefix: &str) {
    let c = Check::new(store, "get_absent");
    let got = c.get(&format!("{prefix}get_absent/never-written")).await;
    c.ensure(got.is_none(), || {
        format!("a key never written must read as None, got {got:?}")
    });
}

/// `Expect::Absent` creates an absent key, and conflicts on a present one
/// without changing it.
pub async fn put_absent<S: Store + ?Sized>(store: &S, prefix: &str) {
    let c = Check::new(store, "put_absent");
    let key = format!("{prefix}put_absent/k");
    let v1 = c.put_ok(&key, b"one", Expect::Absent).await;
    c.expect_value(&key, b"one", v1).await;
    let second = store.put(&key, b"two".to_vec(), Expect::Absent).await;
    c.conflict(second, "put with Expect::Absent on a present key");
    c.expect_value(&key, b"one", v1).await;
}

/// `Expect::Version` succeeds with a greater version when it matches, and
/// conflicts (writing nothing) when stale or when the key is absent.
pub async fn put_version<S: Store + ?Sized>(store: &S, prefix: &str) {
    let c = Check::new(store, "put_version");
    let key = format!("{prefix}put_version/k");
    let v1 = c.put_ok(&key, b"one", Expect::Absent).await;
    let v2 = c.put_ok(&key, b"two", Expect::Version(v1)).await;
    c.ensure(v2 > v1, || {
        format!("a write must return a greater version: {v1} then {v2}")
    });
    c.expect_value(&key, b"two", v2).await;

    let stale = store
        .put(&key, b"stale".to_vec(), Expect::Version(v1))
        .await;
    c.conflict(stale, "put with a stale Expect::Version");
    c.expect_value(&key, b"two", v2).await;

    let future = store
        .put(&key, b"future".to_vec(), Expect::Version(v2 + 1000))
        .await;
    c.conflict(future, "put with an Expect::Version the key never had");
    c.expect_value(&key, b"two", v2).await;

    let v3 = c.put_ok(&key, b"three", Expect::Version(v2)).await;
    c.ensure(v3 > v2, || {
        format!("a write must return a greater version: {v2} then {v3}")
    });
    c.expect_value(&key, b"three", v3).await;

    let absent = format!("{prefix}put_version/absent");
    let on_absent = store.put(&absent, b"x".to_vec(), Expect::Version(v1)).await;
    c.conflict(on_absent, "put with Expect::Version on an absent key");
    c.expect_absent(&absent).await;
}

/// `Expect::Any` creates and overwrites, each time with a greater version.
pub async fn put_any<S: Store + ?Sized>(store: &S, prefix: &str) {
    let c = Check::new(store, "put_any");
    let key = format!("{prefix}put_any/k");
    let v1 = c.put_ok(&key, b"one", Expect::Any).await;
    c.expect_value(&key, b"one", v1).await;
    let v2 = c.put_ok(&key, b"two", Expect::Any).await;
    c.ensure(v2 > v1, || {
        format!("a write must return a greater version: {v1} then {v2}")
    });
    c.expect_value(&key, b"two", v2).await;
}

/// `delete` with each expectation, on present and absent keys; a conflict
/// leaves the key as it was.
pub async fn delete_expectations<S: Store + ?Sized>(store: &S, prefix: &str) {
    let c = Check::new(store, "delete");
    let key = format!("{prefix}delete/k");

    let v1 = c.put_ok(&key, b"one", Expect::Absent).await;
    let r = store.delete(&key, Expect::Absent).await;
    c.conflict(r, "delete with Expect::Absent on a present key");
    c.expect_value(&key, b"one", v1).await;

    let v2 = c.put_ok(&key, b"two", Expect::Version(v1)).await;
    let r = store.delete(&key, Expect::Version(v1)).await;
    c.conflict(r, "delete with a stale Expect::Version");
    c.expect_value(&key, b"two", v2).await;

    c.delete_ok(&key, Expect::Version(v2)).await;
    c.expect_absent(&key).await;

    let r = store.delete(&key, Expect::Version(v2)).await;
    c.conflict(r, "delete with Expect::Version on an absent key");
    c.expect_absent(&key).await;

    c.delete_ok(&key, Expect::Absent).await;
    c.expect_absent(&key).await;
    c.delete_ok(&key, Expect::Any).await;
    c.expect_absent(&key).await;

    c.put_ok(&key, b"three", Expect::Absent).await;
    c.delete_ok(&key, Expect::Any).await;
    c.expect_absent(&key).await;
}

/// A key deleted and created again gets a version greater than any it had
/// before; versions of one key strictly increase over many writes.
pub async fn versions_never_reused<S: Store + ?Sized>(store: &S, prefix: &str) {
    let c = Check::new(store, "versions_never_reused");
    let key = format!("{prefix}versions/k");
    let mut seen = Vec::new();
    for round in 0..3 {
        let mut v = c
            .put_ok(&key, format!("r{round}-0").as_bytes(), Expect::Absent)
            .await;
        seen.push(v);
        for i in 1..4 {
            v = c
                .put_ok(&key, format!("r{round}-{i}").as_bytes(), Expect::Version(v))
                .await;
            seen.push(v);
        }
        c.expect_value(&key, format!("r{round}-3").as_bytes(), v)
            .await;
        c.delete_ok(&key, Expect::Version(v)).await;
    }
    let increasing = seen.windows(2).all(|w| w[0] < w[1]);
    c.ensure(increasing, || {
        format!("versions of one key must strictly increase, across deletes too; got {seen:?}")
    });
}

/// Keys with `/`, spaces, punctuation and non-ASCII characters round-trip.
pub async fn odd_keys<S: Store + ?Sized>(store: &S, prefix: &str) {
    let c = Check::new(store, "odd_keys");
    for (i, suffix) in ODD_SUFFIXES.iter().enumerate() {
        let key = format!("{prefix}odd/{suffix}");
        let value = format!("value {i}");
        let v = c.put_ok(&key, value.as_bytes(), Expect::Absent).await;
        c.expect_value(&key, value.as_bytes(), v).await;
    }
}

/// An empty value and a [`LARGE_VALUE_SIZE`] value round-trip through
/// `put`, `get` and `scan`.
pub async fn large_and_empty_values<S: Store + ?Sized>(store: &S, prefix: &str) {
    let c = Check::new(store, "large_and_empty_values");
    let empty = format!("{prefix}values/empty");
    let v = c.put_ok(&empty, b"", Expect::Absent).await;
    c.expect_value(&empty, b"", v).await;

    let large = format!("{prefix}values/large");
    // Not one repeated byte, so a backend that mangles offsets is caught.
    let value: Vec<u8> = (0..LARGE_VALUE_SIZE).map(|i| (i % 251) as u8).collect();
    let lv = c.put_ok(&large, &value, Expect::Absent).await;
    c.expect_value(&large, &value, lv).await;

    let page = c.scan(&format!("{prefix}values/"), None, 10).await;
    let keys: Vec<&str> = page.entries.iter().map(|(k, _)| k.as_str()).collect();
    c.ensure(keys == [empty.as_str(), large.as_str()], || {
        format!("scan must return the empty and the large value's keys, got {keys:?}")
    });
    let ok = page.entries[0].1
        == Versioned {
            value: Vec::new(),
            version: v,
        }
        && page.entries[1].1.version == lv
        && page.entries[1].1.value == value;
    c.ensure(ok, || {
        "scan must return the empty and the large value as written".to_owned()
    });
}

/// `scan` returns exactly the keys under the prefix (not keys that merely
/// share a string prefix with it, nor keys of which it is a prefix), in
/// ascending byte order, with `after` exclusive.
pub async fn scan_prefix_and_order<S: Store + ?Sized>(store: &S, prefix: &str) {
    let c = Check::new(store, "scan_prefix_and_order");
    let base = format!("{prefix}scan1/");
    let scanned = format!("{base}in/");
    // Neighbours that sort right before, inside and after the scanned range.
    for outside in ["in", "in.", "in0", "i", "im/x", "io", "in\u{7f}", "inx/a"] {
        c.put_ok(&format!("{base}{outside}"), b"outside", Expect::Absent)
            .await;
    }
    let mut expected: Vec<String> = Vec::new();
    for suffix in ODD_SUFFIXES.iter().copied().chain([""]) {
        let key = format!("{scanned}{suffix}");
        c.put_ok(&key, key.as_bytes(), Expect::Absent).await;
        expected.push(key);
    }
    // `String`'s order is the byte order of its UTF-8 encoding.
    expected.sort();

    let page = c.scan(&scanned, None, 1000).await;
    let keys: Vec<String> = page.entries.iter().map(|(k, _)| k.clone()).collect();
    c.ensure(keys == expected, || {
        format!("scan must return exactly the keys under {scanned:?} in byte order;\n expected {expected:?}\n got      {keys:?}")
    });
    c.ensure(page.next.is_none(), || {
        format!(
            "a page holding every key must have next = None, got {:?}",
            page.next
        )
    });
    for (key, entry) in &page.entries {
        c.ensure(entry.value == key.as_bytes(), || {
            format!("scan returned a wrong value for {key:?}")
        });
    }

    // `after` is exclusive, and need not be a key that exists.
    let mid = &expected[expected.len() / 2];
    let page = c.scan(&scanned, Some(mid), 1000).await;
    let keys: Vec<String> = page.entries.into_iter().map(|(k, _)| k).collect();
    let want: Vec<String> = expected.iter().filter(|k| *k > mid).cloned().collect();
    c.ensure(keys == want, || {
        format!("scan after {mid:?} must return the keys after it; expected {want:?}, got {keys:?}")
    });

    let between = format!("{mid}\u{0}");
    let page = c.scan(&scanned, Some(&between), 1000).await;
    let keys: Vec<String> = page.entries.into_iter().map(|(k, _)| k).collect();
    let want: Vec<String> = expected.iter().filter(|k| **k > between).cloned().collect();
    c.ensure(keys == want, || format!("scan after a key that does not exist ({between:?}) must return the keys after it; expected {want:?}, got {keys:?}"));

    // An `after` before the prefix reads from the start; one past it reads nothing.
    let page = c.scan(&scanned, Some(&base), 1000).await;
    c.ensure(page.entries.len() == expected.len(), || {
        format!(
            "scan with `after` sorting before the prefix must return every key, got {}",
            page.entries.len()
        )
    });
    let page = c.scan(&scanned, Some(&format!("{base}inz")), 1000).await;
    c.ensure(page.entries.is_empty() && page.next.is_none(), || {
        format!("scan with `after` past the prefix must be empty, got {page:?}")
    });

    let page = c.scan(&format!("{base}nothing-here/"), None, 10).await;
    c.ensure(page == ScanPage::default(), || {
        format!("scan of an empty prefix must be empty, got {page:?}")
    });
}

/// Walking the pages with `next` returns every key exactly once, in order,
/// for limits 1, 2, 7, an exact multiple, the exact count and more.
pub async fn scan_pagination<S: Store + ?Sized>(store: &S, prefix: &str) {
    let c = Check::new(store, "scan_pagination");
    let scanned = format!("{prefix}scan2/");
    let mut expected = Vec::new();
    // 14 keys: 7 and 2 divide it, 5 does not, 14 is the count.
    for i in 0..14 {
        let key = format!("{scanned}{}/{i:02}", ["a", "é", "z/y", "日"][i % 4]);
        c.put_ok(&key, format!("{i}").as_bytes(), Expect::Absent)
            .await;
        expected.push(key);
    }
    expected.sort();
    for limit in [1, 2, 5, 7, 14, 15, 1000] {
        let mut keys: Vec<String> = Vec::new();
        let mut after: Option<String> = None;
        let mut pages = 0;
        loop {
            pages += 1;
            c.ensure(pages <= expected.len() + 2, || {
                format!("limit {limit}: pagination does not end")
            });
            let page = c.scan(&scanned, after.as_deref(), limit).await;
            c.ensure(page.entries.len() <= limit, || {
                format!("limit {limit}: a page holds {} entries", page.entries.len())
            });
            let empty = page.entries.is_empty();
            keys.extend(page.entries.into_iter().map(|(k, _)| k));
            match page.next {
                Some(next) => {
                    c.ensure(!empty, || {
                        format!("limit {limit}: an empty page must not have a next (got {next:?})")
                    });
                    after = Some(next);
                }
                None => break,
            }
        }
        c.ensure(keys == expected, || {
            format!("limit {limit}: the pages must hold every key exactly once, in order;\n expected {expected:?}\n got      {keys:?}")
        });
    }
}

/// [`RACERS`] tasks race `put(Expect::Version(v))` on one key, several
/// rounds: each round exactly one wins and the others get `Conflict`.
pub async fn concurrent_cas<S: Store + ?Sized>(store: Arc<S>, prefix: &str) {
    let c = Check::new(&*store, "concurrent_cas");
    let key = format!("{prefix}race/cas");
    let mut version = c.put_ok(&key, b"start", Expect::Absent).await;
    for round in 0..5 {
        let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
        let mut tasks = Vec::new();
        for racer in 0..RACERS {
            let (store, key, barrier) = (store.clone(), key.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let value = format!("round {round} racer {racer}").into_bytes();
                (
                    racer,
                    store.put(&key, value, Expect::Version(version)).await,
                )
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            let (racer, result) = c.join(task).await;
            match result {
                Ok(v) => winners.push((racer, v)),
                Err(StoreError::Conflict) => {}
                Err(e) => c.fail(format!("racer {racer} got {e:?}; expected Ok or Conflict")),
            }
        }
        c.ensure(winners.len() == 1, || {
            format!("round {round}: exactly one of {RACERS} racing CAS writes must win, {} did: {winners:?}", winners.len())
        });
        let (racer, v) = winners[0];
        c.ensure(v > version, || {
            format!("round {round}: the winner's version {v} must exceed {version}")
        });
        c.expect_value(&key, format!("round {round} racer {racer}").as_bytes(), v)
            .await;
        version = v;
    }
}

/// [`RACERS`] tasks race `put(Expect::Absent)` on one new key: exactly one
/// creates it.
pub async fn concurrent_create<S: Store + ?Sized>(store: Arc<S>, prefix: &str) {
    let c = Check::new(&*store, "concurrent_create");
    let key = format!("{prefix}race/create");
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
    let mut tasks = Vec::new();
    for racer in 0..RACERS {
        let (store, key, barrier) = (store.clone(), key.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            (
                racer,
                store.put(&key, vec![racer as u8], Expect::Absent).await,
            )
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (racer, result) = c.join(task).await;
        match result {
            Ok(v) => winners.push((racer, v)),
            Err(StoreError::Conflict) => {}
            Err(e) => c.fail(format!("racer {racer} got {e:?}; expected Ok or Conflict")),
        }
    }
    c.ensure(winners.len() == 1, || {
        format!(
            "exactly one racing create must win, {} did: {winners:?}",
            winners.len()
        )
    });
    let (racer, v) = winners[0];
    c.expect_value(&key, &[racer as u8], v).await;
}

/// Tasks increment a shared counter with read-modify-CAS loops; no
/// increment is lost, which a store that lets two CAS writes of the same
/// version through would break.
pub async fn concurrent_increments<S: Store + ?Sized>(store: Arc<S>, prefix: &str) {
    const TASKS: u64 = 8;
    const EACH: u64 = 10;
    let c = Check::new(&*store, "concurrent_increments");
    let key = format!("{prefix}race/counter");
    c.put_ok(&key, &0u64.to_be_bytes(), Expect::Absent).await;
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (store, key) = (store.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            while done < EACH {
                let current = match store.get(&key).await {
                    Ok(Some(current)) => current,
                    other => return Err(format!("get of the counter returned {other:?}")),
                };
                let n = <[u8; 8]>::try_from(current.value.as_slice())
                    .map(u64::from_be_bytes)
                    .map_err(|_| format!("the counter holds {:?}", current.value))?;
                match store
                    .put(
                        &key,
                        (n + 1).to_be_bytes().to_vec(),
                        Expect::Version(current.version),
                    )
                    .await
                {
                    Ok(_) => done += 1,
                    Err(StoreError::Conflict) => tokio::task::yield_now().await,
                    Err(e) => return Err(format!("put of the counter failed: {e:?}")),
                }
            }
            Ok(())
        }));
    }
    for task in tasks {
        if let Err(message) = c.join(task).await {
            c.fail(message);
        }
    }
    let got = c.get(&key).await.map(|v| v.value);
    let want = (TASKS * EACH).to_be_bytes().to_vec();
    c.ensure(got.as_deref() == Some(&want[..]), || {
        format!(
            "{TASKS} tasks × {EACH} CAS increments must give {}, got {got:?}",
            TASKS * EACH
        )
    });
}

/// [`Store::put_batch`] gives each write its own result, as `put` would,
/// in order: a failed expectation fails only its write and writes nothing;
/// two writes of one key apply one after the other.
pub async fn put_batch_results<S: Store + ?Sized>(store: &S, prefix: &str) {
    let c = Check::new(store, "put_batch");
    let key = |name: &str| format!("{prefix}batch/{name}");
    let present = c.put_ok(&key("present"), b"old", Expect::Absent).await;
    let write = |name: &str, value: &[u8], expect| Write {
        key: key(name),
        value: value.to_vec(),
        expect,
    };
    let results = store
        .put_batch(vec![
            write("new", b"new", Expect::Absent),
            write("present", b"clobbered", Expect::Absent),
            write("present", b"next", Expect::Version(present)),
            write("present", b"stale", Expect::Version(present)),
            write("missing", b"x", Expect::Version(present)),
            write("any", b"any", Expect::Any),
        ])
        .await;
    c.ensure(results.len() == 6, || {
        format!("a batch of 6 writes must give 6 results, got {results:?}")
    });
    let version = |i: usize| match &results[i] {
        Ok(version) => *version,
        other => c.fail(format!(
            "write {i} of the batch must succeed, got {other:?}"
        )),
    };
    for i in [1, 3, 4] {
        c.ensure(matches!(results[i], Err(StoreError::Conflict)), || {
            format!(
                "write {i} of the batch has a failed expectation: it must be Conflict, got {:?}",
                results[i]
            )
        });
    }
    c.expect_value(&key("new"), b"new", version(0)).await;
    let next = version(2);
    c.ensure(next > present, || {
        format!("a batched write must return a greater version: {present} then {next}")
    });
    c.expect_value(&key("present"), b"next", next).await;
    c.expect_absent(&key("missing")).await;
    c.expect_value(&key("any"), b"any", version(5)).await;
    let empty = store.put_batch(Vec::new()).await;
    c.ensure(empty.is_empty(), || {
        format!("an empty batch must give no results, got {empty:?}")
    });
}

/// [`RACERS`] tasks each send a batch: a CAS on one shared key (exactly
/// one wins per round) and a create of a key of their own (all succeed).
pub async fn concurrent_batches<S: Store + ?Sized>(store: Arc<S>, prefix: &str) {
    let c = Check::new(&*store, "concurrent_batches");
    let shared = format!("{prefix}batch-race/shared");
    let mut version = c.put_ok(&shared, b"start", Expect::Absent).await;
    for round in 0..3 {
        let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
        let mut tasks = Vec::new();
        for racer in 0..RACERS {
            let (store, shared, barrier) = (store.clone(), shared.clone(), barrier.clone());
            let own = format!("{prefix}batch-race/{round}-{racer}");
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let writes = vec![
                    Write {
                        key: shared,
                        value: format!("round {round} racer {racer}").into_bytes(),
                        expect: Expect::Version(version),
                    },
                    Write {
                        key: own,
                        value: vec![racer as u8],
                        expect: Expect::Absent,
                    },
                ];
                (racer, store.put_batch(writes).await)
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            let (racer, results) = c.join(task).await;
            match results.as_slice() {
                [Ok(v), Ok(_)] => winners.push((racer, *v)),
                [Err(StoreError::Conflict), Ok(_)] => {}
                other => c.fail(format!(
                    "racer {racer}: expected [Ok or Conflict, Ok], got {other:?}"
                )),
            }
        }
        c.ensure(winners.len() == 1, || {
            format!(
                "round {round}: exactly one of {RACERS} batched CAS writes must win, {} did: {winners:?}",
                winners.len()
            )
        });
        let (racer, v) = winners[0];
        c.expect_value(
            &shared,
            format!("round {round} racer {racer}").as_bytes(),
            v,
        )
        .await;
        version = v;
    }
}

/// If the store has change notification ([`Store::due_changes`]), a write
/// of a key under [`WAKE_PREFIX`] wakes a subscriber. Not part of [`run`]:
/// it writes (and deletes) one key outside `prefix`, in the due index, so
/// run it where no runtime minds a stale hint. Waits up to a minute for the
/// listener to be up: each round writes the key and waits a second for the
/// notification.
pub async fn due_notifications<S: Store + ?Sized>(store: &S, prefix: &str) {
    let c = Check::new(store, "due_notifications");
    let Some(mut changes) = store.due_changes() else {
        return;
    };
    let key = format!("{WAKE_PREFIX}00000000000000000000/{prefix}notified");
    let mut woken = false;
    for round in 0..60u8 {
        changes.borrow_and_update();
        c.put_ok(&key, &[round], Expect::Any).await;
        let wait = tokio::time::timeout(std::time::Duration::from_secs(1), changes.changed());
        if let Ok(changed) = wait.await {
            c.ensure(changed.is_ok(), || {
                "the notification channel closed while subscribed".to_owned()
            });
            woken = true;
            break;
        }
    }
    if let Err(e) = store.delete(&key, Expect::Any).await {
        c.fail(format!("cannot delete the due key: {e:?}"));
    }
    c.ensure(woken, || {
        "writes of a due key never woke a subscriber within a minute".to_owned()
    });
}

/// Deletes every key under `prefix`, so a shared server is left as found.
pub async fn cleanup<S: Store + ?Sized>(store: &S, prefix: &str) {
    let c = Check::new(store, "cleanup");
    loop {
        let page = c.scan(prefix, None, 100).await;
        if page.entries.is_empty() {
            break;
        }
        for (key, _) in page.entries {
            c.delete_ok(&key, Expect::Any).await;
        }
    }
}

/// Key suffixes that trip up backends: separators, spaces, escapes,
/// multi-byte characters, bytes that sort at the edges.
const ODD_SUFFIXES: &[&str] = &[
    "plain",
    "a/b/c",
    "trailing/",
    "//double",
    "with space",
    "per%cent_und\\er",
    "quote'\"",
    "é",
    "日本語/キー",
    "emoji-🦀",
    "\u{7f}del",
    "~tilde",
    "UPPER",
    "0digit",
    "-dash",
];

/// One check's context: names it in panic messages and wraps the calls
/// that must succeed.
struct Check<'a, S: Store + ?Sized> {
    store: &'a S,
    name: &'static str,
}

impl<'a, S: Store + ?Sized> Check<'a, S> {
    fn new(store: &'a S, name: &'static str) -> Self {
        Check { store, name }
    }

    #[track_caller]
    fn fail(&self, message: String) -> ! {
        panic!(
            "store conformance [{}] {}: {message}",
            self.store.name(),
            self.name
        )
    }

    #[track_caller]
    fn ensure(&self, holds: bool, message: impl FnOnce() -> String) {
        if !holds {
            self.fail(message());
        }
    }

    #[track_caller]
    fn conflict<T: std::fmt::Debug>(&self, result: Result<T, StoreError>, what: &str) {
        if !matches!(result, Err(StoreError::Conflict)) {
            self.fail(format!("{what} must fail with Conflict, got {result:?}"));
        }
    }

    async fn get(&self, key: &str) -> Option<Versioned> {
        match self.store.get(key).await {
            Ok(value) => value,
            Err(e) => self.fail(format!("get({key:?}) failed: {e:?}")),
        }
    }

    async fn put_ok(&self, key: &str, value: &[u8], expect: Expect) -> u64 {
        match self.store.put(key, value.to_vec(), expect).await {
            Ok(version) => version,
            Err(e) => self.fail(format!(
                "put({key:?}, {} bytes, {expect:?}) must succeed, got {e:?}",
                value.len()
            )),
        }
    }

    async fn delete_ok(&self, key: &str, expect: Expect) {
        if let Err(e) = self.store.delete(key, expect).await {
            self.fail(format!(
                "delete({key:?}, {expect:?}) must succeed, got {e:?}"
            ));
        }
    }

    async fn scan(&self, prefix: &str, after: Option<&str>, limit: usize) -> ScanPage {
        match self.store.scan(prefix, after, limit).await {
            Ok(page) => page,
            Err(e) => self.fail(format!(
                "scan({prefix:?}, {after:?}, {limit}) failed: {e:?}"
            )),
        }
    }

    async fn expect_value(&self, key: &str, value: &[u8], version: u64) {
        let got = self.get(key).await;
        let want = Versioned {
            value: value.to_vec(),
            version,
        };
        if got.as_ref() != Some(&want) {
            let shown = |v: &Versioned| {
                format!(
                    "{} bytes {:?}.. at version {}",
                    v.value.len(),
                    &v.value[..v.value.len().min(40)],
                    v.version
                )
            };
            self.fail(format!(
                "get({key:?}) must return {}, got {}",
                shown(&want),
                got.as_ref().map_or_else(|| "None".to_owned(), shown)
            ));
        }
    }

    async fn expect_absent(&self, key: &str) {
        if let Some(found) = self.get(key).await {
            self.fail(format!(
                "{key:?} must be absent, found version {}",
                found.version
            ));
        }
    }

    async fn join<T>(&self, task: tokio::task::JoinHandle<T>) -> T {
        match task.await {
            Ok(value) => value,
            Err(e) => self.fail(format!("a racing task panicked or was cancelled: {e}")),
        }
    }
}
