//! Many instances at once on a multi-threaded runtime, and the runtime on
//! the embedded store across a restart.

mod common;

use common::{EACH_STEP_ONCE, Order, log_of, place_order};
use sagaflow::{MemoryStore, Outcome, Phase, Runtime};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_instances_each_run_their_steps_exactly_once() {
    let rt = Runtime::builder()
        .store(MemoryStore::new())
        .register(place_order)
        .workers(3)
        .build()
        .await
        .expect("builds");
    let mut handles = Vec::new();
    for n in 0..60 {
        let key = format!("many-{n}");
        let order = if n % 3 == 0 {
            Order::new(&key).failing_permanently("create_shipment")
        } else {
            Order::new(&key)
        };
        handles.push((
            n,
            rt.start(place_order, key.clone(), order)
                .await
                .expect("starts"),
        ));
    }
    for (n, handle) in handles {
        let key = format!("many-{n}");
        let outcome = handle.outcome().await.expect("ends");
        if n % 3 == 0 {
            assert!(
                matches!(outcome, Outcome::Compensated(_)),
                "{key}: {outcome:?}"
            );
            assert_eq!(
                log_of(&key),
                [
                    "reserve_inventory#1".to_owned(),
                    "charge_payment#1".to_owned(),
                    "create_shipment#1".to_owned(),
                    "refund_payment(42)#1".to_owned(),
                    format!("release_inventory(R-{key})#1"),
                ]
            );
        } else {
            assert!(
                matches!(outcome, Outcome::Completed(_)),
                "{key}: {outcome:?}"
            );
            assert_eq!(log_of(&key), EACH_STEP_ONCE);
        }
    }
    let page = rt.list(None, 100).await.expect("lists");
    assert_eq!(page.instances.len(), 60);
    assert!(page.instances.iter().all(|status| {
        status
            .as_ref()
            .is_ok_and(|status| status.phase.is_terminal())
    }));
}

#[cfg(feature = "embedded")]
#[tokio::test]
async fn an_instance_survives_a_restart_on_the_embedded_store() {
    use sagaflow::EmbeddedStore;

    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    let dir = std::env::temp_dir().join(format!("sagaflow-runtime-{}-{nanos}", std::process::id()));
    {
        let store = EmbeddedStore::open(&dir).expect("opens");
        let client = Runtime::builder()
            .workers(0)
            .store(store)
            .register(place_order)
            .build()
            .await
            .expect("builds");
        client
            .start(place_order, "durable", Order::new("durable"))
            .await
            .expect("starts");
        let status = client
            .status("durable")
            .await
            .expect("reads")
            .expect("exists");
        assert_eq!(status.phase, Phase::Running);
        client.shutdown().await;
    }
    let store = EmbeddedStore::open(&dir).expect("reopens");
    let rt = Runtime::builder()
        .store(store)
        .register(place_order)
        .build()
        .await
        .expect("builds");
    let outcome = rt
        .handle(place_order, "durable")
        .outcome()
        .await
        .expect("ends");
    assert!(matches!(outcome, Outcome::Completed(_)), "{outcome:?}");
    assert_eq!(log_of("durable"), EACH_STEP_ONCE);
    rt.shutdown().await;
    drop(rt);
    let _ = std::fs::remove_dir_all(&dir);
}
