//! What the tests that kill child processes share: a scratch directory, a
//! line to the parent, and the effects file the children append to.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A scratch directory for one test, removed when it passes and kept (and
/// named on stderr) when it fails.
pub struct Scratch {
    root: PathBuf,
}

impl Scratch {
    /// A fresh, empty directory `sagaflow-{suite}-{name}-{pid}` in the
    /// system's temp directory.
    pub fn new(suite: &str, name: &str) -> Scratch {
        let root =
            std::env::temp_dir().join(format!("sagaflow-{suite}-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("create the scratch directory");
        Scratch { root }
    }

    /// The directory for an embedded store.
    pub fn store(&self) -> PathBuf {
        self.root.join("store")
    }

    /// The effects file.
    pub fn effects(&self) -> PathBuf {
        self.root.join("effects.log")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept for inspection: {}", self.root.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// A line from a child to its parent, flushed at once: the parent waits for
/// it before it kills the child.
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Reads an effects file of `{kind} {idempotency key} {number}` lines (the
/// number is what the suite records: an attempt, a pid). A missing file has
/// no effects; a malformed line fails the test.
pub fn read_effect_lines(path: &Path) -> Vec<(String, String, u32)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|line| {
            let parts: Vec<&str> = line.split(' ').collect();
            let [kind, key, number] = parts.as_slice() else {
                panic!("a malformed effect line {line:?}")
            };
            let number = number
                .parse()
                .unwrap_or_else(|_| panic!("a malformed number in {line:?}"));
            ((*kind).to_owned(), (*key).to_owned(), number)
        })
        .collect()
}
