//! Helpers for the tool's tests: a store filled by running the examples'
//! sagas (`sagaflow-demo seed`), and the real binaries run on it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// An embedded store in a temporary directory, filled by the examples.
pub struct Seeded {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl Seeded {
    /// Runs `sagaflow-demo seed` into a fresh store: order-ok (Completed),
    /// order-rejected (Compensated), coffee-ok, coffee-declined,
    /// coffee-oversold, batch-ok, batch-short, approval-1 (Waiting for the
    /// signal `approval`) and order-pending (Running at Start, never claimed).
    pub fn new() -> Seeded {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("store");
        std::fs::create_dir(&path).expect("the store directory");
        let seeded = Seeded { _dir: dir, path };
        let output = Command::new(env!("CARGO_BIN_EXE_sagaflow-demo"))
            .args(["seed", "--store", &seeded.url()])
            .output()
            .expect("sagaflow-demo runs");
        assert!(
            output.status.success(),
            "seed failed: {}",
            text(&output.stderr)
        );
        seeded
    }

    /// An empty store.
    pub fn empty() -> Seeded {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("store");
        std::fs::create_dir(&path).expect("the store directory");
        Seeded { _dir: dir, path }
    }

    /// `embedded:PATH`.
    pub fn url(&self) -> String {
        url(&self.path)
    }

    /// Runs the bare `sagaflow` binary on this store.
    pub fn sagaflow(&self, args: &[&str]) -> Run {
        sagaflow_with(&[&["--store", &self.url()], args].concat())
    }

    /// Runs `sagaflow-demo` (the examples' workflows registered) on this store.
    pub fn demo(&self, args: &[&str]) -> Run {
        demo_with(&[&["--store", &self.url()], args].concat())
    }
}

pub fn url(path: &Path) -> String {
    format!("embedded:{}", path.display())
}

/// What a run of a binary printed, and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(self.code, Some(0), "expected success: {self:#?}");
        self
    }

    #[track_caller]
    pub fn fails(self) -> Run {
        assert_eq!(self.code, Some(1), "expected exit code 1: {self:#?}");
        self
    }

    /// The JSON it printed.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|error| {
            panic!("not JSON ({error}): {}", self.stdout);
        })
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run(program: &str, args: &[&str]) -> Run {
    let output: Output = Command::new(program)
        .args(args)
        .env_remove("SAGAFLOW_STORE")
        .env_remove("NO_COLOR")
        .output()
        .expect("the binary runs");
    Run {
        code: output.status.code(),
        stdout: text(&output.stdout),
        stderr: text(&output.stderr),
    }
}

/// Runs the bare `sagaflow` binary.
pub fn sagaflow_with(args: &[&str]) -> Run {
    run(env!("CARGO_BIN_EXE_sagaflow"), args)
}

/// Runs `sagaflow-demo`.
pub fn demo_with(args: &[&str]) -> Run {
    run(env!("CARGO_BIN_EXE_sagaflow-demo"), args)
}

/// The first column of each table row after the header.
pub fn first_column(table: &str) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .take_while(|line| !line.trim().is_empty() && !line.contains(" shown, newest first"))
        .map(|line| line.split_whitespace().next().unwrap_or("").to_owned())
        .collect()
}

/// The instances ids the seed writes, newest first.
pub const SEEDED_NEWEST_FIRST: [&str; 9] = [
    "order-pending",
    "approval-1",
    "batch-short",
    "batch-ok",
    "coffee-oversold",
    "coffee-declined",
    "coffee-ok",
    "order-rejected",
    "order-ok",
];
