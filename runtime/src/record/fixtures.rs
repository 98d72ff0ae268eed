//! Records the record's tests share: a small one and one with every field
//! set. Apart so the tests of the record's rules and of its encoding, each
//! beside the code it tests, build the same records.

use std::collections::{BTreeMap, VecDeque};

use super::instance::{InstanceRecord, format_fingerprint};
use super::parts::{CompensationEntry, EventKind, Failure, Heartbeat, HistoryEvent, Lease, Phase};
use super::raw::RawJson;

pub(super) fn sample() -> InstanceRecord {
    let mut record = InstanceRecord {
        workflow: "place_order".into(),
        id: "order-42".into(),
        fingerprint: format_fingerprint(0x0123_4567_89ab_cdef),
        version: 1,
        phase: Phase::Running,
        state_name: "ChargePayment1".into(),
        state: RawJson::from_value(
            &serde_json::json!({"ChargePayment1": {"order": {"id": 42}, "reservation": "R-1"}}),
        ),
        compensation_stack: vec![CompensationEntry {
            step: "reserve_inventory".into(),
            args: RawJson::from_value(&serde_json::json!([{"id": 42}])),
            output: RawJson::from_value(&serde_json::json!("R-1")),
            child: None,
        }],
        pivot_passed: false,
        attempt: 1,
        next_run_at: None,
        cancel_requested: false,
        lease: Lease {
            owner: Some("worker-1".into()),
            expires_at: Some(1_700_000_030_000),
            epoch: 1,
        },
        heartbeat: None,
        output: None,
        failure: None,
        last_error: None,
        history: VecDeque::new(),
        transitions: 1,
        committed_at: 1_700_000_000_500,
        awaiting_signal: None,
        inbox: BTreeMap::new(),
        signal_seq: 0,
        signal_keys: VecDeque::new(),
        parent: None,
        awaiting_child: None,
        status: None,
        created_at: 1_700_000_000_000,
        updated_at: 1_700_000_000_500,
    };
    record.push_event(HistoryEvent::new(1_700_000_000_000, EventKind::Created));
    record.push_event(HistoryEvent {
        state: Some("ReserveInventory0".into()),
        step: Some("reserve_inventory".into()),
        attempt: Some(1),
        ..HistoryEvent::new(1_700_000_000_100, EventKind::StepStarted)
    });
    record.push_event(HistoryEvent {
        state: Some("ReserveInventory0".into()),
        step: Some("reserve_inventory".into()),
        attempt: Some(1),
        ..HistoryEvent::new(1_700_000_000_500, EventKind::StepSucceeded)
    });
    record
}

/// Every field set, strings that need escaping, every event kind.
pub(super) fn rich() -> InstanceRecord {
    let mut record = sample();
    record.id = "order \"42\"\\ \u{1}\n\t é".into();
    record.pivot_passed = true;
    record.next_run_at = Some(7);
    record.cancel_requested = true;
    record.heartbeat = Some(Heartbeat {
        state: "Charge1".into(),
        attempt: 2,
        at: 5,
        details: serde_json::json!({"done": 3}),
    });
    record.output = Some(serde_json::json!({
        "receipt": [1, 2.5, null, "\u{7f}"],
        "numbers": [-5, u64::MAX, i64::MIN, 1e-7, 1e300, -0.0, 0.1],
        "key \"quoted\"\n": {"é": [true, false, [], {}], "": "\u{1f600}"},
    }));
    record.state = RawJson::from_value(
        &serde_json::json!({"Charge1": {"order": {"id": -42, "tags": ["a\\b"]}}}),
    );
    record.failure = Some(Failure {
        message: "boom\r".into(),
        step: Some("charge".into()),
    });
    record.last_error = Some("timed out \u{8}\u{c}".into());
    record.awaiting_signal = Some("approval".into());
    record.push_signal("approval", serde_json::json!(true), 9);
    record.push_keyed_signal(
        "approval",
        serde_json::json!(false),
        10,
        "approver-1/SendSignal2",
    );
    record.status = Some(serde_json::json!("half way"));
    record.parent = Some("parent \"1\"".into());
    record.awaiting_child = Some("child-1".into());
    record.compensation_stack.push(CompensationEntry {
        step: "child_flow".into(),
        args: RawJson::null(),
        output: RawJson::null(),
        child: Some("child-1".into()),
    });
    record.lease = Lease::default();
    let kinds = [
        EventKind::Created,
        EventKind::StepStarted,
        EventKind::StepSucceeded,
        EventKind::StepRetried,
        EventKind::StepFailed,
        EventKind::CancelRequested,
        EventKind::Compensating,
        EventKind::Compensated,
        EventKind::CompensationRetried,
        EventKind::CompensationFailed,
        EventKind::Completed,
        EventKind::RolledBack,
        EventKind::Failed,
        EventKind::TimerStarted,
        EventKind::TimerFired,
        EventKind::SignalAwaited,
        EventKind::SignalReceived,
        EventKind::SignalTimedOut,
        EventKind::ChildStarted,
        EventKind::ChildEnded,
        EventKind::ChildCompensating,
        EventKind::ChildCompensated,
    ];
    for (at, kind) in kinds.into_iter().enumerate() {
        record.push_event(HistoryEvent {
            error: Some(format!("error \"{at}\"")),
            attempt: Some(u32::MAX),
            ..HistoryEvent::new(u64::MAX - at as u64, kind)
        });
    }
    record
}
