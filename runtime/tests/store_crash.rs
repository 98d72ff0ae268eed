//! `EmbeddedStore` keeps every acknowledged write across `kill -9`.
//!
//! The test re-executes its own binary as a writer child (selected by an
//! environment variable), lets it acknowledge writes for a while, SIGKILLs
//! it mid-run, then reopens the store and checks every write the child
//! reported as acknowledged.
#![cfg(all(feature = "embedded", unix))]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sagaflow::EmbeddedStore;
use sagaflow::store::{Expect, Store};

const DIR_VAR: &str = "SAGAFLOW_CRASH_WRITER_DIR";
const ROUND_VAR: &str = "SAGAFLOW_CRASH_WRITER_ROUND";
const WRITERS: usize = 32;

/// The value of the `n`th write of `key`: 300 bytes, self-describing.
fn value(key: &str, n: u64) -> Vec<u8> {
    let mut value = format!("{key} #{n} ").into_bytes();
    value.resize(300, b'.');
    value
}

fn parse_n(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(value).ok()?;
    text.split(" #").nth(1)?.split(' ').next()?.parse().ok()
}

/// The child: writers that create and then CAS-update their keys, printing
/// `ack {key} {version} {n}` once each write is acknowledged. Does nothing
/// when run as an ordinary test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_writer() {
    let (Ok(dir), Ok(round)) = (std::env::var(DIR_VAR), std::env::var(ROUND_VAR)) else {
        return;
    };
    let store = EmbeddedStore::open(&dir).expect("child: open");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        let round = round.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while Instant::now() < deadline {
                // A new key, then a few CAS updates of it.
                let key = format!("crash/{round}/{w:02}/{i:06}");
                let mut version = store
                    .put(&key, value(&key, 0), Expect::Absent)
                    .await
                    .expect("child: put");
                ack(&key, version, 0);
                for n in 1..4 {
                    version = store
                        .put(&key, value(&key, n), Expect::Version(version))
                        .await
                        .expect("child: cas");
                    ack(&key, version, n);
                }
                i += 1;
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}

fn ack(key: &str, version: u64, n: u64) {
    // Straight to the file descriptor: the test harness's capture must not
    // hold it back, and a line must be out before the next write starts.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ack {key} {version} {n}");
    let _ = out.flush();
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = std::env::temp_dir().join(format!("sagaflow-test-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // key → (highest acknowledged version, its n)
    let mut acked: HashMap<String, (u64, u64)> = HashMap::new();
    for (round, kill_after) in [(0, 300), (1, 1000), (2, 2500)] {
        let lines = run_child_and_kill(&dir, round, kill_after);
        assert!(
            lines >= kill_after,
            "round {round}: the child acknowledged only {lines} writes"
        );
        collect(&dir, round, &mut acked);
        check(&dir, &acked, round);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs a writer child until it has acknowledged `kill_after` writes, then
/// SIGKILLs it; returns how many it acknowledged, after saving the lines.
fn run_child_and_kill(dir: &Path, round: usize, kill_after: usize) -> usize {
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = Command::new(exe)
        .args(["crash_writer", "--exact", "--nocapture", "--test-threads=1"])
        .env(DIR_VAR, dir)
        .env(ROUND_VAR, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the writer child");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = Vec::new();
    let mut reader = BufReader::new(stdout);
    let started = Instant::now();
    let mut line = String::new();
    let mut killed = false;
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if line.starts_with("ack ") {
            lines.push(line.trim_end().to_owned());
        }
        if !killed && (lines.len() >= kill_after || started.elapsed() > Duration::from_secs(30)) {
            // SIGKILL: no destructor, no flush, no clean close.
            child.kill().expect("kill -9 the child");
            killed = true;
        }
    }
    if !killed {
        let _ = child.kill();
    }
    let status = child.wait().expect("wait for the child");
    assert!(
        killed && status.code().is_none(),
        "the child must die by the signal, not exit: {status:?}"
    );
    let count = lines.len();
    std::fs::write(
        dir.with_extension(format!("round{round}")),
        lines.join("\n"),
    )
    .expect("save acks");
    count
}

fn collect(dir: &Path, round: usize, acked: &mut HashMap<String, (u64, u64)>) {
    let path = dir.with_extension(format!("round{round}"));
    let text = std::fs::read_to_string(&path).expect("read acks");
    let _ = std::fs::remove_file(&path);
    for line in text.lines() {
        let mut parts = line.split(' ').skip(1);
        let (Some(key), Some(version), Some(n)) = (parts.next(), parts.next(), parts.next()) else {
            panic!("a malformed ack line: {line:?}");
        };
        let (version, n): (u64, u64) = (version.parse().expect("version"), n.parse().expect("n"));
        let entry = acked.entry(key.to_owned()).or_insert((version, n));
        if version > entry.0 {
            *entry = (version, n);
        }
    }
}

fn check(dir: &Path, acked: &HashMap<String, (u64, u64)>, round: usize) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = EmbeddedStore::open(dir).expect("reopen after kill -9");
        for (key, &(version, n)) in acked {
            let Some(stored) = store.get(key).await.expect("get") else {
                panic!("round {round}: acknowledged key {key} is missing after kill -9");
            };
            // A write may have reached the disk but not its acknowledgement:
            // the stored state may be newer than the last acknowledged one,
            // never older.
            assert!(
                stored.version >= version,
                "round {round}: {key} went back from version {version} to {}",
                stored.version
            );
            let stored_n = parse_n(&stored.value)
                .unwrap_or_else(|| panic!("{key}: unreadable value after kill -9"));
            assert_eq!(stored.value, value(key, stored_n), "{key}: a torn value");
            if stored.version == version {
                assert_eq!(
                    stored_n, n,
                    "round {round}: {key} at version {version} holds write #{stored_n}, not #{n}"
                );
            } else {
                assert!(
                    stored_n > n,
                    "round {round}: {key}: a newer version holds an older write"
                );
            }
        }
        eprintln!(
            "round {round}: {} acknowledged keys all present after kill -9",
            acked.len()
        );
    });
}
