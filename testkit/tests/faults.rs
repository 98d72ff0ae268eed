//! `FaultyStore`: seeded, so a run replays.

use sagaflow::MemoryStore;
use sagaflow::store::{Expect, Store};
use sagaflow_testkit::{Faults, FaultyStore, Injected};

const FAULTS: Faults = Faults {
    error_before_apply: 0.2,
    timeout_after_apply: 0.2,
    conflict: 0.2,
    max_latency: std::time::Duration::ZERO,
};

/// What 200 writes and reads see through a store seeded with `seed`.
async fn run(seed: u64) -> (Vec<String>, Injected) {
    let store = FaultyStore::new(MemoryStore::new(), FAULTS, seed);
    let mut seen = Vec::new();
    for n in 0..100 {
        let key = format!("k{}", n % 7);
        let put = store.put(&key, vec![n], Expect::Any).await;
        let get = store.get(&key).await;
        seen.push(format!(
            "{:?} {:?}",
            put.map(|_| ()),
            get.map(|v| v.map(|v| v.value))
        ));
    }
    (seen, store.injected())
}

#[tokio::test]
async fn the_same_seed_replays_the_same_faults_and_another_seed_does_not() {
    let (first, injected) = run(17).await;
    assert_eq!(run(17).await, (first.clone(), injected));
    assert!(injected.errors_before > 0 && injected.timeouts_after > 0 && injected.conflicts > 0);
    assert_ne!(run(18).await.0, first);
}
