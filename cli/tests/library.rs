//! The tool as a library: `Admin` on any `Arc<dyn Store>` (here a
//! `MemoryStore` the examples ran on), `run_with` with captured output, and
//! the SVG drawing.

use std::sync::Arc;

use sagaflow::prelude::*;
use sagaflow::record::Phase;
use sagaflow::store::Store;
use sagaflow_cli::{Admin, Highlight, ListQuery, Registry, render_svg, run_with};
use sagaflow_examples::batch::reserve_batch;
use sagaflow_examples::order::{Order, place_order};

fn order(id: &str, fail_shipment: bool) -> Order {
    Order {
        id: id.to_owned(),
        sku: "lamp".to_owned(),
        quantity: 1,
        amount_cents: 1_999,
        fail_shipment,
    }
}

#[tokio::test]
async fn admin_lists_shows_and_counts_on_any_store() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let runtime = Runtime::builder()
        .store(Arc::clone(&store))
        .register(place_order)
        .build()
        .await
        .unwrap();
    for (id, fail) in [("a", false), ("b", true), ("c", false)] {
        runtime
            .start(place_order, id, order(id, fail))
            .await
            .unwrap()
            .outcome()
            .await
            .unwrap();
    }
    runtime.shutdown().await;

    let admin = Admin::new(Arc::clone(&store), Registry::new().register(place_order))
        .await
        .unwrap();
    let mut progress = Vec::new();
    let completed = admin
        .list(
            &ListQuery {
                phases: vec![Phase::Completed],
                ..ListQuery::default()
            },
            |read| progress.push(read),
        )
        .await
        .unwrap();
    let ids: Vec<&str> = completed.instances.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["c", "a"]);
    assert_eq!(progress, [3], "one page of three records");
    assert_eq!(
        completed.instances[0].step.as_deref(),
        Some("send_confirmation")
    );

    let shown = admin.show("b").await.unwrap();
    assert_eq!(shown.summary.phase, Phase::Compensated);
    assert_eq!(shown.step_kind.as_deref(), Some("pivot"));
    assert_eq!(shown.fingerprint_matches, Some(true));
    assert_eq!(shown.blocked, None);
    assert_eq!(shown.variables[0].name, "order");
    assert_eq!(shown.variables[0].ty.as_deref(), Some("Order"));

    let counts = admin.state_counts("place_order", |_| {}).await.unwrap();
    assert_eq!(counts.ended(Phase::Completed), 2);
    assert_eq!(counts.ended(Phase::Compensated), 1);
    assert_eq!(counts.other_fingerprint, 0);

    let retry = admin.retry("a").await.unwrap_err();
    assert_eq!(
        retry.to_string(),
        "instance `a` is Completed, not Failed: only a Failed instance can be retried"
    );

    // The drawing marks where an instance is, and where it stopped.
    let machine = admin.machine("place_order").await.unwrap().machine;
    let svg = render_svg(
        &machine,
        &Highlight {
            current: Some("Compensated"),
            stopped: Some("CreateShipment3"),
            counts: Some(&counts),
        },
    );
    assert!(svg.contains("<g class=\"state terminal current\" data-state=\"Compensated\""));
    assert!(svg.contains("<g class=\"state stopped\" data-state=\"CreateShipment3\""));
    assert_eq!(svg.matches("<g class=\"count\"").count(), 2, "{svg}");
    let unknown = admin.machine("nope").await.unwrap_err().to_string();
    assert_eq!(
        unknown,
        "workflow `nope` is not registered in this tool (registered: place_order), and the \
         store holds no description of it"
    );
}

#[test]
fn loops_are_drawn_as_hooks_back_onto_their_state() {
    let svg = render_svg(
        &reserve_batch.state_machine().describe(),
        &Highlight {
            current: Some("ReserveItem1"),
            ..Highlight::default()
        },
    );
    assert!(svg.contains("<g class=\"state current\" data-state=\"ReserveItem1\""));
    // The for loop's back edge, from the state to itself.
    assert!(
        svg.contains("data-from=\"ReserveItem1\" data-to=\"ReserveItem1\""),
        "{svg}"
    );
}

#[tokio::test]
async fn run_with_captures_what_the_tool_prints() {
    let dir = tempfile::tempdir().unwrap();
    {
        let runtime = Runtime::builder()
            .store(EmbeddedStore::open(dir.path()).unwrap())
            .register(place_order)
            .build()
            .await
            .unwrap();
        runtime
            .start(place_order, "order-1", order("order-1", false))
            .await
            .unwrap()
            .outcome()
            .await
            .unwrap();
        runtime.shutdown().await;
    }
    let url = format!("embedded:{}", dir.path().display());
    let registry = || Registry::new().register(place_order);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_with(
        ["ops", "--store", &url, "list"],
        registry(),
        &mut out,
        &mut err,
    )
    .await;
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    let out = String::from_utf8(out).unwrap();
    assert!(out.starts_with("ID "), "{out}");
    assert!(
        out.contains("order-1  place_order  Completed  SendConfirmation4  send_confirmation"),
        "{out}"
    );
    assert!(err.is_empty());

    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_with(
        ["ops", "--store", &url, "show", "order-2"],
        registry(),
        &mut out,
        &mut err,
    )
    .await;
    assert_eq!(code, std::process::ExitCode::FAILURE);
    assert_eq!(
        String::from_utf8(err).unwrap(),
        "error: no instance with id `order-2` (see `sagaflow list`)\n"
    );

    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_with(["ops", "--help"], registry(), &mut out, &mut err).await;
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    let help = String::from_utf8(out).unwrap();
    for command in [
        "list",
        "show",
        "cancel",
        "retry",
        "signal",
        "graph",
        "workflows",
        "ui",
    ] {
        assert!(
            help.contains(&format!("\n  {command} ")),
            "{command}: {help}"
        );
    }
}

#[tokio::test]
async fn show_links_a_parent_and_its_child_workflow() {
    use sagaflow_examples::fulfilment::{self, fulfil_order, ship_order};
    let dir = tempfile::tempdir().unwrap();
    {
        let runtime = Runtime::builder()
            .store(EmbeddedStore::open(dir.path()).unwrap())
            .register(fulfil_order)
            .register(ship_order)
            .build()
            .await
            .unwrap();
        let input = fulfilment::Order {
            id: "ful-1".to_owned(),
            items: vec!["kettle".to_owned()],
            amount_cents: 4_000,
            carrier_refuses: false,
            invoice_fails: false,
        };
        let outcome = runtime
            .start(fulfil_order, "ful-1", input)
            .await
            .unwrap()
            .outcome()
            .await
            .unwrap();
        assert!(matches!(outcome, Outcome::Completed(_)), "{outcome:?}");
        runtime.shutdown().await;
    }
    let url = format!("embedded:{}", dir.path().display());
    let show = |id: &'static str| {
        let url = url.clone();
        async move {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let code = run_with(
                ["ops", "--store", &url, "show", id],
                Registry::new().register(fulfil_order).register(ship_order),
                &mut out,
                &mut err,
            )
            .await;
            assert_eq!(code, std::process::ExitCode::SUCCESS, "{err:?}");
            String::from_utf8(out).unwrap()
        }
    };
    let parent = show("ful-1").await;
    let children = parent
        .lines()
        .find(|line| line.starts_with("children"))
        .unwrap_or_else(|| panic!("{parent}"));
    assert!(children.ends_with("  ful-1/ShipOrder2"), "{parent}");
    assert!(
        !parent.lines().any(|line| line.starts_with("parent")),
        "{parent}"
    );
    let child = show("ful-1/ShipOrder2").await;
    let parent_line = child
        .lines()
        .find(|line| line.starts_with("parent"))
        .unwrap_or_else(|| panic!("{child}"));
    assert!(parent_line.ends_with("  ful-1"), "{child}");
    assert!(child.contains("ship_order"), "{child}");
}
