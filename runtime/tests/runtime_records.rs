//! What the runtime does with what it finds in the store: corrupt records,
//! records of other code, oversized inputs, and unfinished instances left by
//! another runtime.

mod common;

use std::time::Duration;

use common::{EACH_STEP_ONCE, Order, log_of, ping, place_order, runtime};
use sagaflow::record::{self, format_fingerprint};
use sagaflow::store::Expect;
use sagaflow::{Error, MemoryStore, Outcome, Phase, Runtime, Store};

async fn client(store: &MemoryStore) -> Runtime {
    Runtime::builder()
        .workers(0)
        .store(store.clone())
        .register(place_order)
        .register(ping)
        .build()
        .await
        .expect("builds")
}

async fn stored_bytes(store: &MemoryStore, id: &str) -> Vec<u8> {
    store
        .get(&record::key(id))
        .await
        .expect("reads")
        .expect("exists")
        .value
}

/// Runs a `ping` instance to its end, so workers have had every chance to
/// touch the other instances.
async fn run_a_neighbour(rt: &Runtime, id: &str) {
    let handle = rt.start(ping, id, id.to_owned()).await.expect("starts");
    assert_eq!(
        handle.outcome().await.expect("ends"),
        Outcome::Completed(id.to_owned())
    );
}

#[tokio::test(start_paused = true)]
async fn a_corrupt_record_is_reported_and_left_as_it_is_while_others_run() {
    let store = MemoryStore::new();
    store
        .put("instances/x", b"\x00garbage".to_vec(), Expect::Any)
        .await
        .expect("writes");
    let rt = runtime(store.clone()).await;
    run_a_neighbour(&rt, "corrupt-neighbour").await;

    assert!(matches!(rt.status("x").await, Err(Error::Corrupt { id, .. }) if id == "x"));
    assert!(matches!(
        rt.handle(place_order, "x").outcome().await,
        Err(Error::Corrupt { .. })
    ));
    assert!(matches!(rt.cancel("x").await, Err(Error::Corrupt { .. })));
    assert!(matches!(
        rt.start(place_order, "x", Order::new("x")).await,
        Err(Error::Corrupt { .. })
    ));
    assert_eq!(stored_bytes(&store, "x").await, b"\x00garbage");
    assert!(log_of("x").is_empty());

    let page = rt.list(None, 10).await.expect("lists");
    assert_eq!(page.instances.len(), 2);
    assert_eq!(
        page.instances[0].as_ref().map(|status| status.phase).ok(),
        Some(Phase::Completed)
    );
    assert!(matches!(&page.instances[1], Err(Error::Corrupt { id, .. }) if id == "x"));
}

#[tokio::test(start_paused = true)]
async fn a_changed_byte_fails_the_checksum_and_the_record_is_not_resumed() {
    let store = MemoryStore::new();
    client(&store)
        .await
        .start(place_order, "flipped", Order::new("flipped"))
        .await
        .expect("starts");
    let stored = store
        .get("instances/flipped")
        .await
        .expect("reads")
        .expect("exists");
    let edited = String::from_utf8(stored.value)
        .expect("utf-8")
        .replace("\"attempt\":1", "\"attempt\":7");
    store
        .put(
            "instances/flipped",
            edited.clone().into_bytes(),
            Expect::Version(stored.version),
        )
        .await
        .expect("writes");

    let rt = runtime(store.clone()).await;
    run_a_neighbour(&rt, "flipped-neighbour").await;
    let error = rt.status("flipped").await.expect_err("corrupt");
    assert!(error.to_string().contains("checksum mismatch"), "{error}");
    assert_eq!(stored_bytes(&store, "flipped").await, edited.into_bytes());
    assert!(log_of("flipped").is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_instance_of_another_fingerprint_is_left_untouched_and_reported() {
    let store = MemoryStore::new();
    client(&store)
        .await
        .start(place_order, "old-code", Order::new("old-code"))
        .await
        .expect("starts");
    let stored = store
        .get("instances/old-code")
        .await
        .expect("reads")
        .expect("exists");
    let mut instance = record::decode(&stored.value).expect("decodes");
    instance.fingerprint = format_fingerprint(0xdead_beef);
    let bytes = record::encode(&instance).expect("encodes");
    store
        .put(
            "instances/old-code",
            bytes.clone(),
            Expect::Version(stored.version),
        )
        .await
        .expect("writes");

    let rt = runtime(store.clone()).await;
    run_a_neighbour(&rt, "old-code-neighbour").await;
    assert_eq!(stored_bytes(&store, "old-code").await, bytes);
    assert!(log_of("old-code").is_empty());

    let status = rt.status("old-code").await.expect("reads").expect("exists");
    assert_eq!(status.phase, Phase::Running);
    assert_eq!(status.fingerprint, 0xdead_beef);
    let blocked = status.blocked.expect("reported");
    assert!(
        blocked.contains("fingerprint 00000000deadbeef"),
        "{blocked}"
    );
    let outcome = rt.handle(place_order, "old-code").outcome().await;
    assert!(
        matches!(outcome, Err(Error::FingerprintMismatch { stored: 0xdead_beef, registered, .. })
            if registered == common::PLACE_ORDER_MACHINE.fingerprint()),
        "{outcome:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_instance_of_an_unregistered_workflow_is_reported() {
    let store = MemoryStore::new();
    client(&store)
        .await
        .start(place_order, "orphan", Order::new("orphan"))
        .await
        .expect("starts");
    let rt = Runtime::builder()
        .store(store.clone())
        .register(ping)
        .build()
        .await
        .expect("builds");
    run_a_neighbour(&rt, "orphan-neighbour").await;
    let status = rt.status("orphan").await.expect("reads").expect("exists");
    assert!(
        status
            .blocked
            .expect("reported")
            .contains("`place_order` is not registered")
    );
    assert!(
        matches!(rt.handle(place_order, "orphan").outcome().await, Err(Error::UnknownWorkflow(name)) if name == "place_order")
    );
    assert!(matches!(
        rt.start(place_order, "new", Order::new("new")).await,
        Err(Error::UnknownWorkflow(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn an_oversized_input_is_refused_before_anything_is_written() {
    let store = MemoryStore::new();
    let rt = Runtime::builder()
        .max_input_bytes(64)
        .store(store.clone())
        .register(place_order)
        .build()
        .await
        .expect("builds");
    let order = Order::new(&"k".repeat(100));
    let error = rt
        .start(place_order, "big", order)
        .await
        .expect_err("too large");
    assert!(
        matches!(error, Error::InputTooLarge { size, limit: 64 } if size > 100),
        "{error:?}"
    );
    assert!(
        store
            .scan("instances/", None, 10)
            .await
            .expect("scans")
            .entries
            .is_empty()
    );
    assert!(rt.status("big").await.expect("reads").is_none());
}

#[tokio::test(start_paused = true)]
async fn build_resumes_an_instance_another_runtime_started() {
    let store = MemoryStore::new();
    let client = client(&store).await;
    let waiting = client
        .start(place_order, "resumed", Order::new("resumed"))
        .await
        .expect("starts");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let status = client
        .status("resumed")
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(
        (status.phase, status.state.as_str()),
        (Phase::Running, "Start")
    );
    assert!(
        log_of("resumed").is_empty(),
        "a client-only runtime runs nothing"
    );

    let worker = runtime(store.clone()).await;
    let outcome = worker
        .handle(place_order, "resumed")
        .outcome()
        .await
        .expect("ends");
    assert!(matches!(outcome, Outcome::Completed(_)));
    // The client sees it too, by polling the store.
    assert_eq!(waiting.outcome().await.expect("ends"), outcome);
    assert_eq!(log_of("resumed"), EACH_STEP_ONCE);
}

#[tokio::test(start_paused = true)]
async fn an_instance_waiting_to_retry_resumes_on_the_next_runtime_with_its_attempt_count() {
    let store = MemoryStore::new();
    let first = runtime(store.clone()).await;
    let order = Order::new("handover").failing("charge_payment", 1);
    first
        .start(place_order, "handover", order)
        .await
        .expect("starts");
    loop {
        let status = first
            .status("handover")
            .await
            .expect("reads")
            .expect("exists");
        if status.phase == Phase::Waiting {
            assert_eq!(
                (status.state.as_str(), status.attempt),
                ("ChargePayment1", 2)
            );
            assert!(status.next_run_at.is_some());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.shutdown().await;

    let second = runtime(store.clone()).await;
    let outcome = second
        .handle(place_order, "handover")
        .outcome()
        .await
        .expect("ends");
    assert!(matches!(outcome, Outcome::Completed(_)));
    assert_eq!(
        log_of("handover"),
        [
            "reserve_inventory#1",
            "charge_payment#1",
            "charge_payment#2",
            "create_shipment#1",
            "send_confirmation#1"
        ]
    );
}

#[tokio::test]
async fn build_checks_its_configuration() {
    assert!(matches!(
        Runtime::builder().register(ping).build().await,
        Err(Error::NoStore)
    ));
    let twice = Runtime::builder()
        .store(MemoryStore::new())
        .register(ping)
        .register(ping)
        .build()
        .await;
    assert!(
        matches!(&twice, Err(Error::DuplicateWorkflow { name, version: 1 }) if name == "ping"),
        "{twice:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn handles_of_a_shut_down_runtime_stop_waiting() {
    let store = MemoryStore::new();
    let rt = client(&store).await;
    let handle = rt
        .start(place_order, "never", Order::new("never"))
        .await
        .expect("starts");
    let waiting = tokio::spawn(async move { handle.outcome().await });
    tokio::time::sleep(Duration::from_secs(3)).await;
    rt.shutdown().await;
    assert!(matches!(
        waiting.await.expect("joins"),
        Err(Error::Shutdown)
    ));
}

#[tokio::test(start_paused = true)]
async fn build_stores_each_registered_machine_once_and_never_overwrites_it() {
    use sagaflow::machine::{MachineDescription, machine_key};
    use sagaflow::{StateMachine, Workflow};

    let store = MemoryStore::new();
    let _rt = client(&store).await;
    let machine: &StateMachine = place_order.state_machine();
    let key = machine_key(machine.workflow, machine.fingerprint());
    assert_eq!(
        key,
        format!(
            "machines/place_order/{}",
            format_fingerprint(machine.fingerprint())
        )
    );
    let stored = store.get(&key).await.expect("reads").expect("stored");
    let (description, _) = MachineDescription::from_stored(&stored.value).expect("decodes");
    assert_eq!(description, MachineDescription::from(machine));
    assert_eq!(description.to_mermaid(), machine.to_mermaid());
    assert_eq!(description.to_dot(), machine.to_dot());
    let pings = store.scan("machines/ping/", None, 10).await.expect("scans");
    assert_eq!(pings.entries.len(), 1);

    // Put-if-absent: another build leaves what is there, even if it differs.
    store
        .put(&key, b"{\"format\":1}".to_vec(), Expect::Any)
        .await
        .expect("writes");
    let _again = client(&store).await;
    let kept = store.get(&key).await.expect("reads").expect("kept");
    assert_eq!(kept.value, b"{\"format\":1}");
}
