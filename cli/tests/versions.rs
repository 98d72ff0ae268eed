//! `sagaflow versions`, `sagaflow upgrade [--dry-run]` and the web view's
//! `/versions` page, on an embedded store where v1 orders of the `upgrade`
//! example wait for their approval.

use std::io::{Read, Write};

use sagaflow::prelude::*;
use sagaflow::record::KEY_PREFIX;
use sagaflow::{EmbeddedStore, Store};
use sagaflow_cli::{Registry, run_with};
use sagaflow_examples::upgrade::{Order, v1, v2, v2_to_v3, v3};

/// A store where `order-1` and `order-2` wait for their approval on v1.
async fn parked() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::builder()
        .store(EmbeddedStore::open(dir.path()).unwrap())
        .register(v1::place_order)
        .build()
        .await
        .unwrap();
    for id in ["order-1", "order-2"] {
        let order = Order {
            id: id.to_owned(),
            amount_cents: 100,
        };
        rt.start(v1::place_order, id, order).await.unwrap();
    }
    for id in ["order-1", "order-2"] {
        while rt
            .status(id)
            .await
            .unwrap()
            .unwrap()
            .awaiting_signal
            .is_none()
        {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    rt.shutdown().await;
    drop(rt);
    dir
}

fn url(dir: &tempfile::TempDir) -> String {
    format!("embedded:{}", dir.path().display())
}

/// Runs the tool; returns its exit code's success, stdout and stderr.
async fn tool(
    dir: &tempfile::TempDir,
    registry: Registry,
    args: &[&str],
) -> (bool, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let url = url(dir);
    let mut all = vec!["ops", "--store", url.as_str()];
    all.extend_from_slice(args);
    let code = run_with(all, registry, &mut out, &mut err).await;
    (
        code == std::process::ExitCode::SUCCESS,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

fn with_v2() -> Registry {
    Registry::new()
        .register(v1::place_order)
        .register(v2::place_order)
}

/// The stored bytes of every instance record.
async fn records(dir: &tempfile::TempDir) -> Vec<(String, Vec<u8>)> {
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let page = store.scan(KEY_PREFIX, None, 100).await.unwrap();
    page.entries
        .into_iter()
        .map(|(key, stored)| (key, stored.value.to_vec()))
        .collect()
}

#[tokio::test]
async fn versions_says_what_each_version_holds_and_whether_it_drained() {
    let dir = parked().await;
    let (ok, out, err) = tool(&dir, with_v2(), &["versions"]).await;
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("WORKFLOW "), "{out}");
    assert!(
        lines[0].contains("MOVING") && lines[0].contains("DRAINED"),
        "{out}"
    );
    let v1_line = lines.iter().find(|line| line.contains(" v1 ")).unwrap();
    let v2_line = lines.iter().find(|line| line.contains(" v2 ")).unwrap();
    // Both v1 orders move to v2 (auto) at their next claim: v1 has drained.
    assert!(
        v1_line.contains("registered here ") && v1_line.contains("order-1 ("),
        "{v1_line}"
    );
    assert!(v1_line.contains(" 2 waiting "), "{v1_line}");
    assert!(v1_line.trim_end().ends_with("yes"), "{v1_line}");
    assert!(
        v2_line.contains("registered here, newest") && v2_line.contains("auto"),
        "{v2_line}"
    );

    let (ok, out, _) = tool(&dir, with_v2(), &["--json", "versions"]).await;
    assert!(ok);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let versions = &json["workflows"][0]["versions"];
    assert_eq!(json["workflows"][0]["workflow"], "place_order");
    assert_eq!(versions[0]["version"], 1);
    assert_eq!(versions[0]["unfinished"], 2);
    assert_eq!(versions[0]["moving"], 2);
    assert_eq!(versions[0]["drained"], true);
    assert_eq!(versions[0]["counts"]["Waiting"], 2);
    assert_eq!(versions[0]["oldest_unfinished"]["id"], "order-1");
    assert_eq!(
        versions[0]["fingerprint"],
        sagaflow::record::format_fingerprint(v1::place_order.state_machine().fingerprint())
    );
    assert_eq!(versions[1]["version"], 2);
    assert_eq!(versions[1]["newest"], true);
    assert_eq!(versions[1]["upgrade"], "auto");
    assert_eq!(versions[1]["unfinished"], 0);
}

#[tokio::test]
async fn the_bare_tool_shows_the_stored_versions_and_reports_instances_it_cannot_run() {
    let dir = parked().await;
    let (ok, out, _) = tool(&dir, Registry::new(), &["--json", "versions"]).await;
    assert!(ok);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let v1 = &json["workflows"][0]["versions"][0];
    assert_eq!(
        (v1["version"].clone(), v1["registered"].clone()),
        (1.into(), false.into())
    );
    assert_eq!(v1["described"], true);
    assert_eq!(v1["stranded"].as_array().unwrap().len(), 2);
    assert_eq!(v1["drained"], false);
    let reason = v1["stranded"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("workflow `place_order` is not registered"),
        "{reason}"
    );
    let (_, out, _) = tool(&dir, Registry::new(), &["versions"]).await;
    assert!(
        out.contains("not registered (described in the store)"),
        "{out}"
    );
    assert!(
        out.contains("\n2 stranded instances (no version registered here can run them):\n"),
        "{out}"
    );
    assert!(out.contains("\n  order-1, order-2 (place_order v1): workflow `place_order` is not registered in this tool"), "{out}");
}

#[tokio::test]
async fn upgrade_dry_run_changes_nothing_and_upgrade_moves_the_instances() {
    let dir = parked().await;
    let before = records(&dir).await;
    let (ok, out, err) = tool(&dir, with_v2(), &["upgrade", "--dry-run"]).await;
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "order-1 (place_order v1 at Signal2): moves to v2 (automatic upgrade)\n\
         order-2 (place_order v1 at Signal2): moves to v2 (automatic upgrade)\n\
         2 unfinished instances: 2 to move; dry run: nothing written\n"
    );
    assert_eq!(records(&dir).await, before, "a dry run writes nothing");

    let (ok, out, _) = tool(&dir, with_v2(), &["upgrade"]).await;
    assert!(ok);
    assert!(
        out.contains("order-1 (place_order v1 at Signal2): moves to v2 (automatic upgrade): done"),
        "{out}"
    );
    assert!(
        out.ends_with("2 unfinished instances: 2 moved; 2 records written\n"),
        "{out}"
    );
    let (_, out, _) = tool(&dir, with_v2(), &["upgrade", "--dry-run"]).await;
    assert_eq!(
        out,
        "order-1 (place_order v2 at Signal2): stays on v2\n\
         order-2 (place_order v2 at Signal2): stays on v2\n\
         2 unfinished instances: 2 staying; nothing to move\n"
    );
    // `show` tells the move in the timeline.
    let (_, out, _) = tool(&dir, with_v2(), &["show", "order-1"]).await;
    assert!(out.contains("workflow       place_order v2 ("), "{out}");
    assert!(out.contains("upgraded"), "{out}");
    assert!(out.contains("v1 (") && out.contains(") → v2 ("), "{out}");
}

#[tokio::test]
async fn upgrade_with_a_migration_says_where_each_instance_goes() {
    let dir = parked().await;
    // v3 (auto) cannot take v1 orders at their approval (it scores fraud
    // before it), and no migration starts from v1: they stay on v1.
    let registry = || {
        Registry::new()
            .register(v1::place_order)
            .register(v3::place_order)
    };
    let (_, out, _) = tool(&dir, registry(), &["--json", "upgrade", "--dry-run"]).await;
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["instances"][0]["action"]["action"], "stays");
    let why = json["instances"][0]["action"]["why"].as_str().unwrap();
    assert!(why.starts_with("it cannot move to v3 by itself: "), "{why}");
    // Moved to v2 first, then migrated to v3 by `v2_to_v3`.
    tool(&dir, with_v2(), &["upgrade"]).await;
    let migrating = || Registry::new().register(v3::place_order).migrate(v2_to_v3);
    let (_, out, _) = tool(
        &dir,
        migrating(),
        &["upgrade", "--dry-run", "--workflow", "place_order"],
    )
    .await;
    assert!(
        out.contains("order-1 (place_order v2 at Signal2): migrates to v3 by v2_to_v3 at Signal3"),
        "{out}"
    );
    let (_, out, _) = tool(&dir, migrating(), &["upgrade"]).await;
    assert!(
        out.ends_with("2 unfinished instances: 2 migrated; 2 records written\n"),
        "{out}"
    );
    let (_, out, _) = tool(&dir, migrating(), &["--json", "versions"]).await;
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let versions = json["workflows"][0]["versions"].as_array().unwrap().clone();
    let v3 = versions.iter().find(|v| v["version"] == 3).unwrap();
    assert_eq!(v3["unfinished"], 2);
    for old in versions.iter().filter(|v| v["version"] != 3) {
        assert_eq!(old["unfinished"], 0, "{old}");
        assert_eq!(old["drained"], true, "{old}");
    }
}

#[tokio::test]
async fn the_versions_page_shows_each_version_and_links_the_stranded_instances() {
    let dir = parked().await;
    let admin = sagaflow_cli::Admin::open(&url(&dir), Registry::new())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(sagaflow_cli::serve(admin, listener));
    let page = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        write!(
            stream,
            "GET /versions HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut page = String::new();
        stream.read_to_string(&mut page).unwrap();
        page
    })
    .await
    .unwrap();
    server.abort();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("<h1>Versions</h1>"), "{page}");
    assert!(
        page.contains("<a href=\"/versions\">versions</a>"),
        "{page}"
    );
    assert!(page.contains("data-version=\"1\""), "{page}");
    assert!(
        page.contains("not registered (described in the store)"),
        "{page}"
    );
    assert!(
        page.contains("<h2 class=\"error\" id=\"stranded\">Stranded</h2>"),
        "{page}"
    );
    assert!(
        page.contains(
            "<a href=\"/instance?id=order-1\" data-id=\"order-1\">order-1</a>, \
             <a href=\"/instance?id=order-2\" data-id=\"order-2\">order-2</a> \
             <span class=\"muted\">(place_order v1)</span>: "
        ),
        "{page}"
    );
}
