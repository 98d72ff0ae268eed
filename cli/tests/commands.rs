//! Every command of the `sagaflow` binary (and of `sagaflow-demo`, the same
//! tool with the examples' workflows registered) against a store filled by
//! running the examples' sagas, asserting what an operator sees.

mod common;

use common::{SEEDED_NEWEST_FIRST, Seeded, demo_with, first_column, sagaflow_with};
use sagaflow::record::{self, Phase};
use sagaflow::store::{Expect, Store};

#[test]
fn list_shows_every_instance_newest_first_in_aligned_columns() {
    let store = Seeded::new();
    let run = store.sagaflow(&["list"]).ok();
    assert_eq!(
        first_column(&run.stdout),
        SEEDED_NEWEST_FIRST,
        "{}",
        run.stdout
    );
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].starts_with("ID ") && lines[0].contains("WORKFLOW") && lines[0].contains("NOTE"),
        "{}",
        run.stdout
    );
    // Aligned: every row's phase starts where the header's PHASE does.
    let column = lines[0].find("PHASE").unwrap();
    for line in &lines[1..=9] {
        let phase = &line[column..];
        assert!(
            ["Running", "Waiting", "Completed", "Compensated"]
                .iter()
                .any(|name| phase.starts_with(name)),
            "misaligned: {line}\n{}",
            run.stdout
        );
    }
    let rejected = lines
        .iter()
        .find(|l| l.starts_with("order-rejected"))
        .unwrap();
    assert!(rejected.contains("Compensated"), "{rejected}");
    assert!(rejected.contains("CreateShipment3"), "{rejected}");
    assert!(
        rejected.contains("step `create_shipment` failed: the carrier rejected the parcel"),
        "{rejected}"
    );
    assert!(
        run.stdout
            .contains("9 of 9 matching instances shown, newest first (9 records read)"),
        "{}",
        run.stdout
    );
    // Not a terminal: no colours.
    assert!(!run.stdout.contains('\x1b'), "{:?}", run.stdout);
}

#[test]
fn list_filters_by_workflow_phase_and_age_and_pages() {
    let store = Seeded::new();
    let coffee = store.sagaflow(&["list", "--workflow", "coffee_order"]).ok();
    assert_eq!(
        first_column(&coffee.stdout),
        ["coffee-oversold", "coffee-declined", "coffee-ok"]
    );
    let rolled_back = store.sagaflow(&["list", "--phase", "compensated"]).ok();
    assert_eq!(
        first_column(&rolled_back.stdout),
        [
            "batch-short",
            "coffee-oversold",
            "coffee-declined",
            "order-rejected"
        ]
    );
    let two_phases = store
        .sagaflow(&[
            "list",
            "--phase",
            "Running,completed",
            "--workflow",
            "place_order",
        ])
        .ok();
    assert_eq!(
        first_column(&two_phases.stdout),
        ["order-pending", "order-ok"]
    );

    let recent = store.sagaflow(&["list", "--newer-than", "1h"]).ok();
    assert_eq!(first_column(&recent.stdout).len(), 9);
    let old = store.sagaflow(&["list", "--older-than", "1h"]).ok();
    assert!(
        old.stdout.starts_with("no instances match\n"),
        "{}",
        old.stdout
    );
    assert!(
        old.stdout.contains("0 of 0 matching instances"),
        "{}",
        old.stdout
    );
    let before_2000 = store
        .sagaflow(&["list", "--older-than", "2000-01-01T00:00:00Z"])
        .ok();
    assert!(before_2000.stdout.starts_with("no instances match"));

    let first = store.sagaflow(&["list", "--limit", "3"]).ok();
    assert_eq!(first_column(&first.stdout), SEEDED_NEWEST_FIRST[..3]);
    assert!(
        first.stdout.contains("3 of 9 matching instances shown"),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains("next page: --after batch-short\n"),
        "{}",
        first.stdout
    );
    let second = store
        .sagaflow(&["list", "--limit", "3", "--after", "batch-short"])
        .ok();
    assert_eq!(first_column(&second.stdout), SEEDED_NEWEST_FIRST[3..6]);
    let last = store
        .sagaflow(&["list", "--limit", "3", "--after", "coffee-declined"])
        .ok();
    assert_eq!(first_column(&last.stdout), SEEDED_NEWEST_FIRST[6..]);
    assert!(!last.stdout.contains("next page"), "{}", last.stdout);

    let bad = store
        .sagaflow(&["list", "--older-than", "yesterday-ish"])
        .fails();
    assert!(
        bad.stderr
            .contains("`yesterday-ish` is neither an age (`90s`, `1h`, `2days`) nor a time"),
        "{}",
        bad.stderr
    );
    let usage = store.sagaflow(&["list", "--phase", "sleeping"]);
    assert_eq!(usage.code, Some(2), "{usage:?}");
    assert!(
        usage.stderr.contains("invalid value 'sleeping'"),
        "{}",
        usage.stderr
    );
}

#[test]
fn list_json_is_for_scripts() {
    let store = Seeded::new();
    let run = store.sagaflow(&["--json", "list", "--limit", "2"]).ok();
    let json = run.json();
    let ids: Vec<&str> = json["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|instance| instance["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, SEEDED_NEWEST_FIRST[..2]);
    assert_eq!(json["next"], "approval-1");
    assert_eq!(json["matched"], 9);
    assert_eq!(json["instances"][0]["phase"], "Running");
    assert_eq!(json["instances"][0]["state"], "Start");
    assert_eq!(json["instances"][1]["phase"], "Waiting");
    assert_eq!(json["instances"][1]["awaiting_signal"], "approval");
    assert_eq!(json["undecodable"], serde_json::json!([]));
}

#[test]
fn colours_only_when_asked_or_on_a_terminal() {
    let store = Seeded::new();
    let run = store.sagaflow(&["--color", "always", "list"]).ok();
    assert!(
        run.stdout.contains("\x1b[32mCompleted\x1b[0m"),
        "{:?}",
        run.stdout
    );
    assert!(run.stdout.contains("\x1b[1mID\x1b[0m"), "{:?}", run.stdout);
    // Colour codes do not break the alignment of the columns after them.
    let strip = |text: &str| {
        let mut out = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                for c in chars.by_ref() {
                    if c == 'm' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    };
    let stripped = strip(&run.stdout);
    let lines: Vec<&str> = stripped.lines().collect();
    let state = lines[0].find("STATE").unwrap();
    for line in &lines[1..=9] {
        assert!(
            line[..state].ends_with("  ") && !line[state..].starts_with(' '),
            "misaligned: {line}\n{stripped}"
        );
    }
}

#[test]
fn show_tells_where_it_stopped_with_variables_stack_and_timeline() {
    let store = Seeded::new();
    let run = store.sagaflow(&["show", "order-rejected"]).ok();
    let out = &run.stdout;
    assert!(out.starts_with("instance       order-rejected\n"), "{out}");
    assert!(
        out.contains("workflow       place_order v1 (fingerprint "),
        "{out}"
    );
    assert!(out.contains("\nphase          Compensated\n"), "{out}");
    // The bare tool names the step from the machine the runtime stored.
    assert!(
        out.contains("\nstate          CreateShipment3 (step create_shipment, pivot)\n"),
        "{out}"
    );
    assert!(
        out.contains(
            "\nfailure        step `create_shipment` failed: the carrier rejected the parcel\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("\nvariables stored in CreateShipment3\n"),
        "{out}"
    );
    assert!(
        out.contains(
            "  reservation: <reserve_inventory as Step>::Output = {\n    \"id\": \"res-order-rejected\"\n  }"
        ),
        "{out}"
    );
    assert!(
        out.contains("\"transaction\": \"txn-order-rejected\""),
        "{out}"
    );
    assert!(
        out.contains("compensation stack (undone from the bottom up)\n  (empty)\n"),
        "{out}"
    );
    let timeline: Vec<&str> = out.split("\ntimeline\n").nth(1).unwrap().lines().collect();
    assert!(timeline[0].trim_start().starts_with("TIME"), "{out}");
    let events: Vec<Vec<&str>> = timeline[1..]
        .iter()
        .map(|line| line.split_whitespace().skip(2).take(2).collect())
        .collect();
    assert_eq!(
        events,
        [
            vec!["created", "Start"],
            vec!["succeeded", "reserve_inventory"],
            vec!["succeeded", "charge_payment"],
            vec!["retried", "create_shipment"],
            vec!["failed", "create_shipment"],
            vec!["rolling", "back"],
            vec!["compensated", "charge_payment"],
            vec!["compensated", "reserve_inventory"],
            vec!["rolled", "back"],
        ],
        "{out}"
    );
    let retried = timeline.iter().find(|l| l.contains("retried")).unwrap();
    let words =
        |line: &str| -> Vec<String> { line.split_whitespace().map(str::to_owned).collect() };
    assert_eq!(
        words(retried)[3..6],
        ["create_shipment", "CreateShipment3", "1"]
    );
    assert!(
        words(retried)[6].ends_with("ms"),
        "how long the attempt took: {retried}"
    );
    assert!(
        retried.ends_with("the carrier rejected the parcel"),
        "{retried}"
    );
    let failed = timeline.iter().find(|l| l.contains(" failed ")).unwrap();
    assert_eq!(
        words(failed)[3..6],
        ["create_shipment", "CreateShipment3", "2"]
    );

    // A completed instance shows its output and its stack of undo entries.
    let ok = store.sagaflow(&["show", "order-ok"]).ok().stdout;
    assert!(ok.contains("\nphase          Completed\n"), "{ok}");
    assert!(ok.contains("\noutput\n  {\n"), "{ok}");
    assert!(ok.contains("\"tracking\": \"trk-order-ok\""), "{ok}");
    assert!(ok.contains("  1. reserve_inventory  args [{"), "{ok}");
    assert!(ok.contains("  2. charge_payment  args [{"), "{ok}");
}

#[test]
fn show_with_the_workflows_registered_names_steps_and_types() {
    let store = Seeded::new();
    let out = store.demo(&["show", "order-rejected"]).ok().stdout;
    assert!(
        out.contains("workflow       place_order v1 (fingerprint ")
            && out.contains(", matches this build)"),
        "{out}"
    );
    assert!(
        out.contains("\nstate          CreateShipment3 (step create_shipment, pivot)\n"),
        "{out}"
    );
    assert!(out.contains("\n  order: Order = {\n"), "{out}");
    let pending = store.demo(&["show", "order-pending"]).ok().stdout;
    assert!(pending.contains("\nphase          Running\n"), "{pending}");
    assert!(
        pending.contains("\nlease          free (never claimed)\n"),
        "{pending}"
    );
    assert!(!pending.contains("blocked"), "{pending}");
}

#[test]
fn show_json_has_the_whole_picture() {
    let store = Seeded::new();
    let json = store.demo(&["--json", "show", "batch-short"]).ok().json();
    assert_eq!(json["id"], "batch-short");
    assert_eq!(json["phase"], "Compensated");
    assert_eq!(json["state"], "ReserveItem1");
    assert_eq!(json["step"], "reserve_item");
    assert_eq!(json["step_kind"], "compensable");
    assert_eq!(json["fingerprint_matches"], true);
    let names: Vec<&str> = json["variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|variable| variable["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"holds"), "{json:#}");
    let timeline = json["timeline"].as_array().unwrap();
    let kinds: Vec<&str> = timeline
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "created",
            "step_succeeded",
            "step_succeeded",
            "step_failed",
            "compensating",
            "compensated",
            "compensated",
            "rolled_back"
        ]
    );
    assert_eq!(timeline[3]["error"], "gold-nib is out of stock");
    assert!(timeline[1]["duration_ms"].is_u64(), "{json:#}");
}

#[test]
fn unknown_ids_wrong_urls_and_missing_stores_are_clear_errors() {
    let store = Seeded::new();
    let unknown = store.sagaflow(&["show", "order-999"]).fails();
    assert_eq!(
        unknown.stderr,
        "error: no instance with id `order-999` (see `sagaflow list`)\n"
    );
    assert!(unknown.stdout.is_empty());
    for command in ["cancel", "retry"] {
        let run = store.sagaflow(&[command, "order-999"]).fails();
        assert!(
            run.stderr.contains("no instance with id `order-999`"),
            "{run:?}"
        );
    }

    let scheme = sagaflow_with(&["--store", "mysql://db/app", "list"]).fails();
    assert!(
        scheme.stderr.starts_with(
            "error: cannot open store `mysql://db/app`: unknown store kind `mysql`; use one of embedded:PATH, postgres://"
        ),
        "{}",
        scheme.stderr
    );
    let not_url = sagaflow_with(&["--store", "/var/lib/sagaflow", "list"]).fails();
    assert!(
        not_url.stderr.contains("not a store URL"),
        "{}",
        not_url.stderr
    );
    let missing = sagaflow_with(&["--store", "embedded:/no/such/dir", "list"]).fails();
    assert_eq!(
        missing.stderr,
        "error: cannot open store `embedded:/no/such/dir`: there is no embedded store at \
         /no/such/dir (no such directory)\n"
    );
    let etcd = sagaflow_with(&["--store", "etcd://", "list"]).fails();
    assert!(
        etcd.stderr.contains("write etcd://host:port"),
        "{}",
        etcd.stderr
    );
    let none = sagaflow_with(&["list"]).fails();
    assert!(
        none.stderr
            .starts_with("error: no store given: pass `--store URL` or set SAGAFLOW_STORE"),
        "{}",
        none.stderr
    );
    // The environment variable works as well as the flag.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sagaflow"))
        .args(["list", "--limit", "1"])
        .env("SAGAFLOW_STORE", store.url())
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("ID "));
}

#[tokio::test]
async fn records_that_cannot_be_decoded_are_named_with_their_key_and_why() {
    let store = Seeded::new();
    {
        let embedded = sagaflow::EmbeddedStore::open(&store.path).unwrap();
        embedded
            .put(
                "instances/torn",
                b"{\"format\":1,\"chec".to_vec(),
                Expect::Absent,
            )
            .await
            .unwrap();
        // A hand-edited record: the checksum no longer matches.
        let ok = embedded.get("instances/order-ok").await.unwrap().unwrap();
        let edited = String::from_utf8(ok.value)
            .unwrap()
            .replace("\"Completed\"", "\"Running\"");
        embedded
            .put("instances/order-ok", edited.into_bytes(), Expect::Any)
            .await
            .unwrap();
    }
    let list = store.sagaflow(&["list"]).ok();
    assert_eq!(first_column(&list.stdout).len(), 8, "{}", list.stdout);
    assert!(
        list.stdout
            .contains("2 records cannot be decoded (left as they are):\n"),
        "{}",
        list.stdout
    );
    assert!(
        list.stdout
            .contains("  instances/order-ok: checksum mismatch: stored xxh3-64:"),
        "{}",
        list.stdout
    );
    assert!(
        list.stdout
            .contains("  instances/torn: not a record envelope: EOF while parsing"),
        "{}",
        list.stdout
    );
    let json = store.sagaflow(&["--json", "list"]).ok().json();
    assert_eq!(json["undecodable"][1]["key"], "instances/torn");

    let show = store.sagaflow(&["show", "torn"]).fails();
    assert!(
        show.stderr.starts_with(
            "error: the record at key `instances/torn` cannot be decoded: not a record envelope:"
        ),
        "{}",
        show.stderr
    );
    assert!(
        show.stderr
            .trim_end()
            .ends_with("it is left as it is in the store"),
        "{}",
        show.stderr
    );
}

#[tokio::test]
async fn cancel_stops_an_instance_before_its_pivot_and_explains_otherwise() {
    let store = Seeded::new();
    let run = store.sagaflow(&["cancel", "order-pending"]).ok();
    assert_eq!(
        run.stdout,
        "cancel of order-pending recorded: it stops before its next step and compensates the \
         steps it completed\n"
    );
    let shown = store.sagaflow(&["show", "order-pending"]).ok().stdout;
    assert!(shown.contains("\ncancel         requested\n"), "{shown}");
    assert!(shown.contains("cancel requested"), "{shown}");
    let again = store.sagaflow(&["cancel", "order-pending"]).ok();
    assert_eq!(
        again.stdout,
        "cancel of order-pending was already requested\n"
    );
    let ended = store.sagaflow(&["cancel", "order-ok"]).ok();
    assert_eq!(
        ended.stdout,
        "order-ok is Completed: it has ended, nothing to cancel\n"
    );
    let json = store
        .sagaflow(&["--json", "cancel", "coffee-ok"])
        .ok()
        .json();
    assert_eq!(
        json,
        serde_json::json!({"id": "coffee-ok", "cancel": {"result": "nothing_to_do", "phase": "Completed"}})
    );

    // The cancelled instance rolls back once a worker runtime runs it.
    {
        let embedded = sagaflow::EmbeddedStore::open(&store.path).unwrap();
        let runtime = sagaflow::Runtime::builder()
            .store(embedded.clone())
            .register(sagaflow_examples::order::place_order)
            .build()
            .await
            .unwrap();
        let outcome = runtime
            .handle(sagaflow_examples::order::place_order, "order-pending")
            .outcome()
            .await
            .unwrap();
        assert!(
            matches!(&outcome, sagaflow::Outcome::Compensated(failure) if failure.is_cancelled()),
            "{outcome:?}"
        );
        runtime.shutdown().await;

        // An instance past its pivot cannot be cancelled: make one by hand.
        let stored = embedded.get("instances/order-ok").await.unwrap().unwrap();
        let mut instance = record::decode(&stored.value).unwrap();
        instance.id = "order-shipping".to_owned();
        instance.phase = Phase::Running;
        instance.state_name = "SendConfirmation4".to_owned();
        embedded
            .put(
                &record::key("order-shipping"),
                record::encode(&instance).unwrap(),
                Expect::Absent,
            )
            .await
            .unwrap();
    }
    let past = store.sagaflow(&["cancel", "order-shipping"]).fails();
    assert_eq!(
        past.stderr,
        "error: instance `order-shipping` has passed its pivot and cannot be cancelled; it \
         continues forward\n"
    );
}

#[tokio::test]
async fn signal_records_a_value_the_waiting_instance_consumes() {
    let store = Seeded::new();
    let waiting = store.demo(&["show", "approval-1"]).ok().stdout;
    assert!(waiting.contains("\nphase          Waiting\n"), "{waiting}");
    assert!(
        waiting.contains("\nstate          SignalTimeout3 (signal approval or timeout)\n"),
        "{waiting}"
    );
    let awaited = waiting
        .lines()
        .find(|line| line.starts_with("waits for "))
        .unwrap_or_else(|| panic!("{waiting}"));
    assert!(
        awaited.starts_with("waits for      signal `approval` until 20")
            && awaited.ends_with("Z (in 23h)"),
        "{awaited}"
    );
    assert!(!waiting.contains("\ntimes out"), "{waiting}");
    assert!(
        waiting.contains("\nstatus         \"AWAITING_APPROVAL\"\n"),
        "{waiting}"
    );
    let listed = store.sagaflow(&["list", "--phase", "waiting"]).ok().stdout;
    assert!(
        listed.contains("waits for signal `approval`, times out in 23h"),
        "{listed}"
    );

    let sent = store
        .sagaflow(&[
            "signal",
            "approval-1",
            "approval",
            r#"{"approved": true, "by": "ops"}"#,
        ])
        .ok();
    assert_eq!(
        sent.stdout,
        "signal `approval` recorded for approval-1: its next wait for `approval` consumes it\n"
    );
    let shown = store.sagaflow(&["show", "approval-1"]).ok().stdout;
    assert!(
        shown.contains("\nsignals not consumed yet\n  approval #0 at "),
        "{shown}"
    );
    assert!(
        shown.contains(r#": {"approved":true,"by":"ops"}"#),
        "{shown}"
    );

    let ended = store
        .sagaflow(&["signal", "order-ok", "approval", "true"])
        .fails();
    assert_eq!(
        ended.stderr,
        "error: instance `order-ok` has ended (Completed); signal `approval` was not recorded\n"
    );
    let bad = store
        .sagaflow(&["signal", "approval-1", "approval", "{oops"])
        .fails();
    assert!(
        bad.stderr.contains("the signal's payload is not JSON"),
        "{}",
        bad.stderr
    );

    // A worker runtime wakes the instance and the signal decides it.
    let runtime = sagaflow::Runtime::builder()
        .store(sagaflow::EmbeddedStore::open(&store.path).unwrap())
        .register(sagaflow_examples::approval::approval)
        .build()
        .await
        .unwrap();
    let outcome = runtime
        .handle(sagaflow_examples::approval::approval, "approval-1")
        .outcome()
        .await
        .unwrap();
    match outcome {
        sagaflow::Outcome::Completed(purchase) => assert_eq!(purchase.approved_by, "ops"),
        other => panic!("{other:?}"),
    }
    runtime.shutdown().await;
}

#[test]
fn graph_needs_the_workflows_or_a_store_and_counts_instances_per_state() {
    let bare = sagaflow_with(&["graph", "place_order"]).fails();
    assert!(
        bare.stderr.starts_with(
            "error: this tool knows no workflows and the store holds no description of \
             `place_order`, so it cannot draw it"
        ),
        "{}",
        bare.stderr
    );
    let workflows = sagaflow_with(&["workflows"]).ok();
    assert!(
        workflows.stdout.starts_with("this tool knows no workflows"),
        "{}",
        workflows.stdout
    );

    // Without a store: the machine as the library draws it.
    let plain = demo_with(&["graph", "place_order"]).ok();
    assert_eq!(
        plain.stdout,
        sagaflow::Workflow::state_machine(&sagaflow_examples::order::place_order).to_mermaid()
    );
    let unknown = demo_with(&["graph", "refund_everything"]).fails();
    assert_eq!(
        unknown.stderr,
        "error: workflow `refund_everything` is not registered in this tool (registered: \
         approval, coffee_order, place_order, reserve_batch), and the store holds no description \
         of it\n"
    );

    let store = Seeded::new();
    let mermaid = store.demo(&["graph", "place_order"]).ok().stdout;
    assert!(mermaid.starts_with("stateDiagram-v2\n"), "{mermaid}");
    assert!(mermaid.contains("    %% 1 running at Start\n"), "{mermaid}");
    assert!(
        mermaid.contains("    note right of Completed : 1 completed\n"),
        "{mermaid}"
    );
    assert!(
        mermaid.contains("    note right of Compensated : 1 compensated\n"),
        "{mermaid}"
    );
    let dot = store
        .demo(&["graph", "coffee_order", "--format", "dot"])
        .ok()
        .stdout;
    assert!(dot.starts_with("digraph coffee_order {\n"), "{dot}");
    assert!(
        dot.contains("    Completed [xlabel=\"1 completed\"];\n"),
        "{dot}"
    );
    assert!(
        dot.contains("    Compensated [xlabel=\"2 compensated\"];\n"),
        "{dot}"
    );
    assert!(dot.ends_with("}\n"), "{dot}");
    let svg = store
        .demo(&["graph", "reserve_batch", "--format", "svg"])
        .ok()
        .stdout;
    assert!(
        svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
        "{svg}"
    );
    assert!(svg.contains("data-state=\"ReserveItem1\""), "{svg}");
    assert!(
        svg.contains("<g class=\"count\" data-count=\"1\">"),
        "{svg}"
    );
    let json = store.demo(&["--json", "graph", "place_order"]).ok().json();
    assert_eq!(json["counts"]["active"]["Start"]["Running"], 1);
    assert_eq!(json["counts"]["ended"]["Completed"], 1);

    let listed = demo_with(&["workflows"]).ok().stdout;
    assert_eq!(
        first_column(&listed),
        ["approval", "coffee_order", "place_order", "reserve_batch"]
    );
}

#[test]
fn the_bare_binary_draws_from_the_machines_the_runtime_stored() {
    let store = Seeded::new();
    // The same diagrams, with the same counts, as the tool built with the
    // workflows registered.
    for workflow in ["place_order", "coffee_order", "reserve_batch", "approval"] {
        for format in ["mermaid", "dot", "svg"] {
            let args = ["graph", workflow, "--format", format];
            let bare = store.sagaflow(&args).ok().stdout;
            let registered = store.demo(&args).ok().stdout;
            assert_eq!(bare, registered, "{workflow} as {format}");
        }
        let bare = store.sagaflow(&["--json", "graph", workflow]).ok().json();
        let registered = store.demo(&["--json", "graph", workflow]).ok().json();
        assert_eq!(bare, registered, "{workflow}");
    }
    let mermaid = store.sagaflow(&["graph", "place_order"]).ok().stdout;
    assert!(
        mermaid.contains("    note right of Compensated : 1 compensated\n"),
        "{mermaid}"
    );

    // `show` names the step and the variables' types from the description.
    let bare = store.sagaflow(&["show", "order-rejected"]).ok().stdout;
    assert!(
        bare.contains("\nstate          CreateShipment3 (step create_shipment, pivot)\n"),
        "{bare}"
    );
    assert!(bare.contains("\n  order: Order = {\n"), "{bare}");
    let json = store
        .sagaflow(&["--json", "show", "batch-short"])
        .ok()
        .json();
    assert_eq!(json["step"], "reserve_item");
    assert_eq!(json["step_kind"], "compensable");
    assert_eq!(json["machine_source"], "stored");
    let listed = store.sagaflow(&["--json", "list"]).ok().json();
    let approval = listed["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|instance| instance["id"] == "approval-1")
        .unwrap();
    assert_eq!(approval["step"], "signal approval or timeout");

    // `workflows` lists what the store describes.
    let workflows = store.sagaflow(&["workflows"]).ok().stdout;
    assert_eq!(
        first_column(&workflows),
        ["approval", "coffee_order", "place_order", "reserve_batch"],
        "{workflows}"
    );
    assert!(workflows.contains(" stored 20"), "{workflows}");
}

#[tokio::test]
async fn a_malformed_stored_description_is_a_clear_error() {
    let store = Seeded::new();
    {
        let embedded = sagaflow::EmbeddedStore::open(&store.path).unwrap();
        let page = embedded
            .scan("machines/place_order/", None, 10)
            .await
            .unwrap();
        let (key, _) = page.entries.into_iter().next().unwrap();
        embedded
            .put(&key, b"{\"format\":1,\"registered_at\":1,\"machine\":{\"workflow\":\"place_order\",\"fingerprint\":\"0000000000000001\",\"states\":[{\"name\":\"Start\"}],\"edges\":[{\"from\":0,\"to\":{\"state\":7},\"label\":\"ok\"}]}}".to_vec(), Expect::Any)
            .await
            .unwrap();
        embedded
            .put(
                "machines/coffee_order/0000000000000002",
                b"not json".to_vec(),
                Expect::Any,
            )
            .await
            .unwrap();
    }
    let graph = store.sagaflow(&["graph", "place_order"]).fails();
    assert!(
        graph
            .stderr
            .starts_with("error: the record at key `machines/place_order/"),
        "{}",
        graph.stderr
    );
    assert!(
        graph
            .stderr
            .contains("the machine description of `place_order` is inconsistent: edge 0 names state 7 but there are 1 states"),
        "{}",
        graph.stderr
    );
    // The other, good description of coffee_order is still drawn.
    let coffee = store.sagaflow(&["graph", "coffee_order"]).ok().stdout;
    assert!(coffee.starts_with("stateDiagram-v2\n"), "{coffee}");
    // `show` still works, without the machine; `workflows` names the bad one.
    let shown = store.sagaflow(&["show", "order-rejected"]).ok().stdout;
    assert!(
        shown.contains("\nstate          CreateShipment3\n"),
        "{shown}"
    );
    let workflows = store.sagaflow(&["workflows"]).ok().stdout;
    assert!(
        workflows.contains(
            "the machine description at `machines/coffee_order/0000000000000002` cannot be decoded: not a machine description:"
        ),
        "{workflows}"
    );
}
