//! The operator's view of a deploy, with workflows defined here: `checkout`
//! v1 instances parked on their approval signal in an embedded store, then
//! the tool run in-process (`run_with`) with the registry a new build would
//! ship: v1 beside an automatic v2, only a pinned v2 (v1's code deleted),
//! a v3 reached through a migration that declines some orders and panics
//! on others, or nothing at all (the bare `sagaflow` binary). Each test
//! asserts what an operator reads: `versions`, `upgrade [--dry-run]`,
//! `show`, `list`, `graph` and the web view's `/versions` page.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use sagaflow::prelude::*;
use sagaflow::record::format_fingerprint;
use sagaflow::{Phase, Store};
use sagaflow_cli::{Admin, Registry, run_with, serve};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub id: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    pub reservation: String,
    pub payment: String,
    pub version: u32,
}

#[step]
async fn reserve(order: &Order) -> Result<String, StepError> {
    Ok(format!("res-{}", order.id))
}

#[compensate(reserve)]
async fn release(_order: &Order, _reservation: String) -> Result<(), StepError> {
    Ok(())
}

#[step]
async fn charge(order: &Order) -> Result<String, StepError> {
    Ok(format!("pay-{}", order.id))
}

#[compensate(charge)]
async fn refund(_order: &Order, _payment: String) -> Result<(), StepError> {
    Ok(())
}

#[step(retriable)]
async fn notify(_order: &Order) -> Result<(), StepError> {
    Ok(())
}

/// v1: reserve, wait for the approval, charge.
mod v1 {
    use super::*;

    #[workflow(name = "checkout", version = 1)]
    pub async fn checkout(order: Order) -> Result<Receipt, WorkflowError> {
        let reservation = reserve(&order).await?;
        let approved: bool = sagaflow::signal("approval").await;
        if !approved {
            return Err(WorkflowError::new("not approved"));
        }
        let payment = charge(&order).await?;
        Ok(Receipt {
            reservation,
            payment,
            version: 1,
        })
    }
}

/// v2 notifies the customer after the charge and takes v1 instances over.
mod v2 {
    use super::*;

    #[workflow(name = "checkout", version = 2, upgrade = "auto")]
    pub async fn checkout(order: Order) -> Result<Receipt, WorkflowError> {
        let reservation = reserve(&order).await?;
        let approved: bool = sagaflow::signal("approval").await;
        if !approved {
            return Err(WorkflowError::new("not approved"));
        }
        let payment = charge(&order).await?;
        notify(&order).await?;
        Ok(Receipt {
            reservation,
            payment,
            version: 2,
        })
    }
}

/// The same v2, pinned: instances stay on the version they started on.
mod v2_pinned {
    use super::*;

    #[workflow(name = "checkout", version = 2)]
    pub async fn checkout(order: Order) -> Result<Receipt, WorkflowError> {
        let reservation = reserve(&order).await?;
        let approved: bool = sagaflow::signal("approval").await;
        if !approved {
            return Err(WorkflowError::new("not approved"));
        }
        let payment = charge(&order).await?;
        notify(&order).await?;
        Ok(Receipt {
            reservation,
            payment,
            version: 2,
        })
    }
}

/// v3 keeps the approval's reviewer: its approval state stores one more
/// variable, so v1 instances reach it only through `v1_to_v3`.
pub mod v3 {
    use super::*;

    #[workflow(name = "checkout", version = 3)]
    pub async fn checkout(order: Order) -> Result<Receipt, WorkflowError> {
        let reservation = reserve(&order).await?;
        let reviewer: String = format!("desk-{}", order.id.len());
        let approved: bool = sagaflow::signal("approval").await;
        if !approved {
            return Err(WorkflowError::new(format!("{reviewer} said no")));
        }
        let payment = charge(&order).await?;
        Ok(Receipt {
            reservation,
            payment: format!("{payment} via {reviewer}"),
            version: 3,
        })
    }
}

/// v1 → v3: orders with `keep` in their id are declined, `panic` panics
/// (a bug in a migration); the others get a reviewer.
#[migrate(from = v1::checkout, to = v3::checkout)]
fn v1_to_v3(old: v1::CheckoutState) -> Migration<v3::CheckoutState> {
    use v1::CheckoutState as Old;
    use v3::CheckoutState as New;
    match old {
        Old::Start { order } => Migration::To(New::Start { order }),
        Old::Reserve1 { order } => Migration::To(New::Reserve1 { order }),
        Old::Signal2 { order, .. } if order.id.contains("keep") => {
            Migration::Decline(format!("{} is kept on v1", order.id))
        }
        Old::Signal2 { order, .. } if order.id.contains("panic") => {
            panic!("cannot migrate {}", order.id)
        }
        Old::Signal2 { order, reservation } => Migration::To(New::Signal2 {
            reviewer: "migrated".to_owned(),
            order,
            reservation,
        }),
        Old::Charge3 { order, reservation } => Migration::To(New::Charge3 {
            reviewer: "migrated".to_owned(),
            order,
            reservation,
        }),
    }
}

/// An embedded store in a temporary directory.
struct Deploy {
    dir: tempfile::TempDir,
}

impl Deploy {
    /// A store where each of `ids` started on v1 and waits for its approval.
    async fn parked(ids: &[&str]) -> Deploy {
        let deploy = Deploy {
            dir: tempfile::tempdir().expect("a temporary directory"),
        };
        let old = deploy
            .runtime(Runtime::builder().register(v1::checkout))
            .await;
        for id in ids {
            old.start(v1::checkout, *id, order(id)).await.unwrap();
        }
        for id in ids {
            wait_until(&old, id, |status| {
                status.phase == Phase::Waiting && status.state == "Signal2"
            })
            .await;
        }
        old.shutdown().await;
        deploy
    }

    /// A worker runtime with `builder`'s workflows on this store.
    async fn runtime(&self, builder: sagaflow::RuntimeBuilder) -> Runtime {
        builder
            .store(EmbeddedStore::open(self.dir.path()).unwrap())
            .build()
            .await
            .unwrap()
    }

    fn url(&self) -> String {
        format!("embedded:{}", self.dir.path().display())
    }

    /// Runs the tool with `registry` on this store.
    async fn tool(&self, registry: Registry, args: &[&str]) -> Run {
        let url = self.url();
        let mut all = vec!["ops", "--store", url.as_str()];
        all.extend_from_slice(args);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run_with(all, registry, &mut out, &mut err).await;
        Run {
            ok: code == ExitCode::SUCCESS,
            stdout: String::from_utf8(out).unwrap(),
            stderr: String::from_utf8(err).unwrap(),
        }
    }

    /// Every key and value in the store.
    async fn contents(&self) -> Vec<(String, Vec<u8>)> {
        let store = EmbeddedStore::open(self.dir.path()).unwrap();
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = store.scan("", after.as_deref(), 100).await.unwrap();
            all.extend(
                page.entries
                    .into_iter()
                    .map(|(key, stored)| (key, stored.value.to_vec())),
            );
            match page.next {
                Some(next) => after = Some(next),
                None => return all,
            }
        }
    }

    /// The answer to `GET path` from the web view on this store.
    async fn get(&self, registry: Registry, path: &str) -> String {
        let admin = Admin::open(&self.url(), registry).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(serve(admin, listener));
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let answer = tokio::task::spawn_blocking(move || {
            let mut stream = std::net::TcpStream::connect(address).unwrap();
            stream.write_all(request.as_bytes()).unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).unwrap();
            answer
        })
        .await
        .unwrap();
        server.abort();
        let _ = server.await;
        // The server's connection tasks let go of the store a moment later.
        for _ in 0..500 {
            if EmbeddedStore::open(self.dir.path()).is_ok() {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the web view did not close the store");
    }
}

/// What a run of the tool printed, and whether it succeeded.
#[derive(Debug)]
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn ok(self) -> String {
        assert!(self.ok, "expected success: {self:#?}");
        assert!(self.stderr.is_empty(), "{self:#?}");
        self.stdout
    }

    #[track_caller]
    fn json(self) -> serde_json::Value {
        let out = self.ok();
        serde_json::from_str(&out).unwrap_or_else(|error| panic!("not JSON ({error}): {out}"))
    }
}

fn order(id: &str) -> Order {
    Order { id: id.to_owned() }
}

async fn wait_until(rt: &Runtime, id: &str, done: impl Fn(&sagaflow::Status) -> bool) {
    for _ in 0..2_000 {
        if let Some(status) = rt.status(id).await.unwrap()
            && done(&status)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{id}: {:?}", rt.status(id).await.unwrap());
}

fn fingerprint(workflow: impl Workflow) -> String {
    format_fingerprint(workflow.state_machine().fingerprint())
}

fn v1_v2() -> Registry {
    Registry::new()
        .register(v1::checkout)
        .register(v2::checkout)
}

/// The table row of `version` (`v1`) in `versions`' output.
fn row<'a>(out: &'a str, version: &str) -> Vec<&'a str> {
    let line = out
        .lines()
        .find(|line| line.starts_with("checkout ") && line.contains(&format!(" {version} ")))
        .unwrap_or_else(|| panic!("no {version} row:\n{out}"));
    // Columns are two spaces apart at least; cells hold single spaces.
    line.split("  ")
        .map(str::trim)
        .filter(|cell| !cell.is_empty())
        .collect()
}

#[tokio::test]
async fn versions_tells_each_version_its_counts_what_moves_and_whether_it_drained() {
    let deploy = Deploy::parked(&["chk-1", "chk-2", "chk-3"]).await;
    {
        // One of them finishes on v1 before the deploy.
        let old = deploy
            .runtime(Runtime::builder().register(v1::checkout))
            .await;
        old.signal("chk-3", "approval", true).await.unwrap();
        wait_until(&old, "chk-3", |status| status.phase == Phase::Completed).await;
        old.shutdown().await;
    }
    let out = deploy.tool(v1_v2(), &["versions"]).await.ok();
    let header = out.lines().next().unwrap();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        [
            "WORKFLOW",
            "VERSION",
            "FINGERPRINT",
            "CODE",
            "UPGRADE",
            "INSTANCES",
            "UNFINISHED",
            "OLDEST",
            "UNFINISHED",
            "MOVING",
            "STRANDED",
            "DRAINED"
        ],
        "{out}"
    );
    let v1 = row(&out, "v1");
    assert_eq!(
        v1[..7],
        [
            "checkout",
            "v1",
            fingerprint(v1::checkout).as_str(),
            "registered here",
            "pinned",
            "2 waiting, 1 completed",
            "2",
        ],
        "{out}"
    );
    assert!(
        v1[7].starts_with("chk-1 (") && v1[7].ends_with(" ago)"),
        "{out}"
    );
    // Both waiting ones move to the automatic v2: v1's code can go.
    assert_eq!(v1[8..], ["2", "0", "yes"], "{out}");
    let v2 = row(&out, "v2");
    assert_eq!(
        v2,
        [
            "checkout",
            "v2",
            fingerprint(v2::checkout).as_str(),
            "registered here, newest",
            "auto",
            "none",
            "0",
            "-",
            "0",
            "0",
            "yes"
        ],
        "{out}"
    );
    assert!(
        out.contains(
            "\n2 instances move to another version at their next claim; `sagaflow upgrade` \
             moves them now\n"
        ),
        "{out}"
    );
    // Aligned: each row's fingerprint starts under the header's.
    let column = header.find("FINGERPRINT").unwrap();
    for line in out.lines().skip(1).take(2) {
        let cell = &line[column..column + 16];
        assert!(
            cell.chars().all(|c| c.is_ascii_hexdigit()),
            "misaligned: {line}\n{out}"
        );
    }

    let json = deploy.tool(v1_v2(), &["--json", "versions"]).await.json();
    let created = json["workflows"][0]["versions"][0]["oldest_unfinished"]["created_at"].clone();
    assert!(created.is_u64(), "{json:#}");
    assert_eq!(
        json,
        serde_json::json!({
            "workflows": [{
                "workflow": "checkout",
                "versions": [
                    {
                        "version": 1,
                        "fingerprint": fingerprint(v1::checkout),
                        "registered": true,
                        "newest": false,
                        "described": true,
                        "upgrade": "pinned",
                        "counts": {"Waiting": 2, "Completed": 1},
                        "unfinished": 2,
                        "oldest_unfinished": {"id": "chk-1", "created_at": created},
                        "moving": 2,
                        "stranded": [],
                        "drained": true,
                    },
                    {
                        "version": 2,
                        "fingerprint": fingerprint(v2::checkout),
                        "registered": true,
                        "newest": true,
                        "described": true,
                        "upgrade": "auto",
                        "counts": {},
                        "unfinished": 0,
                        "oldest_unfinished": null,
                        "moving": 0,
                        "stranded": [],
                        "drained": true,
                    }
                ]
            }],
            "undecodable": []
        })
    );

    let other = deploy
        .tool(v1_v2(), &["versions", "--workflow", "refund"])
        .await
        .ok();
    assert_eq!(
        other,
        "no instances of `refund` in the store, and no version of it registered here or \
         described in the store\n"
    );
    let only = deploy
        .tool(v1_v2(), &["--json", "versions", "-w", "checkout"])
        .await
        .json();
    assert_eq!(only["workflows"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn upgrade_dry_run_writes_nothing_upgrade_moves_and_a_second_run_finds_nothing_to_move() {
    let deploy = Deploy::parked(&["chk-1", "chk-2"]).await;
    // The first run of the tool stores v2's description, as any runtime
    // built with v2 does; from then on a dry run writes nothing at all.
    deploy.tool(v1_v2(), &["versions"]).await.ok();
    let before = deploy.contents().await;
    let planned = deploy.tool(v1_v2(), &["upgrade", "--dry-run"]).await.ok();
    assert_eq!(
        planned,
        "chk-1 (checkout v1 at Signal2): moves to v2 (automatic upgrade)\n\
         chk-2 (checkout v1 at Signal2): moves to v2 (automatic upgrade)\n\
         2 unfinished instances: 2 to move; dry run: nothing written\n"
    );
    let json = deploy
        .tool(v1_v2(), &["--json", "upgrade", "--dry-run"])
        .await
        .json();
    assert_eq!(json["dry_run"], true);
    assert_eq!(json["counts"], serde_json::json!({"moves": 2}));
    assert_eq!(json["written"], 0);
    assert_eq!(
        json["instances"][0],
        serde_json::json!({
            "id": "chk-1",
            "workflow": "checkout",
            "version": 1,
            "fingerprint": fingerprint(v1::checkout),
            "state": "Signal2",
            "action": {"action": "moves", "to": 2, "kind": "automatic upgrade", "notes": []},
            "text": "moves to v2 (automatic upgrade)",
            "applied": false,
        })
    );
    assert!(
        deploy.contents().await == before,
        "a dry run changes no byte of the store"
    );

    let applied = deploy.tool(v1_v2(), &["upgrade"]).await.ok();
    assert_eq!(
        applied,
        "chk-1 (checkout v1 at Signal2): moves to v2 (automatic upgrade): done\n\
         chk-2 (checkout v1 at Signal2): moves to v2 (automatic upgrade): done\n\
         2 unfinished instances: 2 moved; 2 records written\n"
    );
    let again = deploy.tool(v1_v2(), &["upgrade"]).await.ok();
    assert_eq!(
        again,
        "chk-1 (checkout v2 at Signal2): stays on v2\n\
         chk-2 (checkout v2 at Signal2): stays on v2\n\
         2 unfinished instances: 2 staying; nothing to move\n"
    );
    let json = deploy.tool(v1_v2(), &["--json", "upgrade"]).await.json();
    assert_eq!(json["counts"], serde_json::json!({"stays": 2}));
    assert_eq!(json["written"], 0);

    // The records say so: v2 now, with the move in the timeline.
    let shown = deploy.tool(v1_v2(), &["show", "chk-1"]).await.ok();
    assert!(
        shown.contains(&format!(
            "\nworkflow       checkout v2 (fingerprint {}, matches this build)\n",
            fingerprint(v2::checkout)
        )),
        "{shown}"
    );
    let upgraded = shown
        .lines()
        .find(|line| line.contains(" upgraded "))
        .unwrap_or_else(|| panic!("{shown}"));
    assert!(
        upgraded.trim_end().ends_with(&format!(
            "v1 ({}) → v2 ({}): automatic upgrade",
            fingerprint(v1::checkout),
            fingerprint(v2::checkout)
        )),
        "{upgraded}"
    );
    assert!(shown.contains("ERROR/NOTE"), "{shown}");
    let json = deploy
        .tool(v1_v2(), &["--json", "show", "chk-1"])
        .await
        .json();
    assert_eq!(json["version"], 2);
    let event = json["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|event| event["kind"] == "upgraded")
        .unwrap_or_else(|| panic!("{json:#}"));
    assert!(
        event["note"]
            .as_str()
            .unwrap()
            .ends_with(": automatic upgrade"),
        "{event}"
    );
    let versions = deploy.tool(v1_v2(), &["--json", "versions"]).await.json();
    let counts: Vec<(u64, u64)> = versions["workflows"][0]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_u64().unwrap(),
                v["unfinished"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(counts, [(1, 0), (2, 2)]);

    // And v2's code finishes them.
    let rt = deploy.runtime(v1_v2_builder()).await;
    rt.signal("chk-1", "approval", true).await.unwrap();
    match rt.handle(v2::checkout, "chk-1").outcome().await.unwrap() {
        Outcome::Completed(receipt) => assert_eq!(receipt.version, 2),
        other => panic!("{other:?}"),
    }
    rt.shutdown().await;
}

fn v1_v2_builder() -> sagaflow::RuntimeBuilder {
    Runtime::builder()
        .register(v1::checkout)
        .register(v2::checkout)
}

#[tokio::test]
async fn a_migration_is_planned_applied_and_its_refusals_explained() {
    let deploy = Deploy::parked(&["chk-1", "chk-keep", "chk-panic"]).await;
    let migrating = || {
        Registry::new()
            .register(v1::checkout)
            .register(v3::checkout)
            .migrate(v1_to_v3)
    };
    let planned = deploy
        .tool(migrating(), &["upgrade", "--dry-run"])
        .await
        .ok();
    assert_eq!(
        planned,
        "chk-1 (checkout v1 at Signal2): migrates to v3 by v1_to_v3 at Signal2\n\
         chk-keep (checkout v1 at Signal2): not migrated: migration `v1_to_v3` declined: \
         chk-keep is kept on v1 (stays on v1)\n\
         chk-panic (checkout v1 at Signal2): not migrated: migration `v1_to_v3` panicked: \
         cannot migrate chk-panic (stays on v1)\n\
         3 unfinished instances: 1 to migrate, 2 not migrated; dry run: nothing written\n"
    );
    let versions = deploy
        .tool(migrating(), &["--json", "versions"])
        .await
        .json();
    let v1 = &versions["workflows"][0]["versions"][0];
    assert_eq!(
        (
            v1["version"].clone(),
            v1["unfinished"].clone(),
            v1["moving"].clone()
        ),
        (1.into(), 3.into(), 1.into())
    );
    assert_eq!(v1["drained"], false, "two stay on v1: its code is needed");
    assert_eq!(v1["stranded"], serde_json::json!([]));

    // Without v1's code the declined ones have nowhere to run.
    let without_v1 = || Registry::new().register(v3::checkout).migrate(v1_to_v3);
    let planned = deploy
        .tool(
            without_v1(),
            &["upgrade", "--dry-run", "--workflow", "checkout"],
        )
        .await
        .ok();
    assert!(
        planned.contains(
            "chk-keep (checkout v1 at Signal2): not migrated: migration `v1_to_v3` declined: \
             chk-keep is kept on v1 (stranded)\n"
        ),
        "{planned}"
    );
    let out = deploy.tool(without_v1(), &["versions"]).await.ok();
    assert_eq!(
        row(&out, "v1")[3],
        "not registered (described in the store)"
    );
    assert!(
        out.contains("\n2 stranded instances (no version registered here can run them):\n"),
        "{out}"
    );
    assert!(
        out.contains(
            "\n  chk-keep (checkout v1): migration `v1_to_v3` declined: chk-keep is kept on v1\n"
        ),
        "{out}"
    );

    let applied = deploy.tool(migrating(), &["upgrade"]).await.ok();
    assert!(
        applied.starts_with(
            "chk-1 (checkout v1 at Signal2): migrates to v3 by v1_to_v3 at Signal2: done\n"
        ),
        "{applied}"
    );
    assert!(
        applied.ends_with("3 unfinished instances: 1 migrated, 2 not migrated; 1 record written\n"),
        "{applied}"
    );
    let shown = deploy.tool(migrating(), &["show", "chk-1"]).await.ok();
    assert!(
        shown.contains("\nworkflow       checkout v3 (fingerprint "),
        "{shown}"
    );
    assert!(
        shown.contains("\n  reviewer: String = \"migrated\"\n"),
        "{shown}"
    );
    let migrated = shown
        .lines()
        .find(|line| line.contains(" migrated "))
        .unwrap_or_else(|| panic!("{shown}"));
    assert!(
        migrated
            .trim_end()
            .ends_with("by `v1_to_v3`, from state `Signal2`"),
        "{migrated}"
    );
    // The declined ones are untouched, and stay runnable on v1.
    let kept = deploy.tool(migrating(), &["show", "chk-keep"]).await.ok();
    assert!(kept.contains("\nworkflow       checkout v1 ("), "{kept}");
    assert!(!kept.contains("\nblocked"), "{kept}");
}

#[tokio::test]
async fn with_the_old_code_deleted_instances_are_stranded_and_say_why() {
    let deploy = Deploy::parked(&["chk-1", "chk-2"]).await;
    let pinned = || Registry::new().register(v2_pinned::checkout);
    let out = deploy.tool(pinned(), &["versions"]).await.ok();
    let v1 = row(&out, "v1");
    assert_eq!(
        v1[3..7],
        [
            "not registered (described in the store)",
            "pinned",
            "2 waiting",
            "2"
        ],
        "{out}"
    );
    assert_eq!(v1[8..], ["0", "2", "no"], "{out}");
    let why = format!(
        "it runs on v1, and no registered version can run it (registered: v2 {})",
        fingerprint(v2_pinned::checkout)
    );
    let stranded = out
        .split("\n2 stranded instances (no version registered here can run them):\n")
        .nth(1)
        .unwrap_or_else(|| panic!("{out}"));
    let lines: Vec<&str> = stranded.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with(
            "  chk-1 (checkout v1): instance `chk-1` of workflow `checkout` has fingerprint "
        ),
        "{out}"
    );
    assert!(lines[0].contains(&why), "{out}");
    let json = deploy.tool(pinned(), &["--json", "versions"]).await.json();
    let reason = json["workflows"][0]["versions"][0]["stranded"][1]["reason"]
        .as_str()
        .unwrap();
    assert!(reason.contains(&why), "{reason}");
    assert_eq!(
        json["workflows"][0]["versions"][0]["stranded"][1]["id"],
        "chk-2"
    );

    let planned = deploy.tool(pinned(), &["upgrade"]).await.ok();
    assert!(
        planned.starts_with("chk-1 (checkout v1 at Signal2): stranded: instance `chk-1`"),
        "{planned}"
    );
    assert!(
        planned.ends_with("2 unfinished instances: 2 stranded; nothing to move\n"),
        "{planned}"
    );
    let shown = deploy.tool(pinned(), &["show", "chk-1"]).await.ok();
    let blocked = shown
        .lines()
        .find(|line| line.starts_with("blocked"))
        .unwrap_or_else(|| panic!("{shown}"));
    assert!(blocked.contains(&why), "{blocked}");
    assert!(
        shown.contains("fingerprint ") && shown.contains(", NOT the registered machine's)"),
        "{shown}"
    );
}

#[tokio::test]
async fn the_bare_tool_shows_the_versions_the_store_knows_and_moves_nothing() {
    let deploy = Deploy::parked(&["chk-1", "chk-2"]).await;
    // A build with v2 ran against the store (it stored v2's description).
    deploy.tool(v1_v2(), &["versions"]).await.ok();
    let before = deploy.contents().await;
    let out = deploy.tool(Registry::new(), &["versions"]).await.ok();
    let v1 = row(&out, "v1");
    assert_eq!(
        v1[3..7],
        [
            "not registered (described in the store)",
            "pinned",
            "2 waiting",
            "2"
        ],
        "{out}"
    );
    assert_eq!(v1[8..], ["0", "2", "no"], "{out}");
    // v2 has no instances yet: the store's description says it exists.
    let v2 = row(&out, "v2");
    assert_eq!(
        v2[3..],
        [
            "not registered (described in the store)",
            "auto",
            "none",
            "0",
            "-",
            "0",
            "0",
            "yes"
        ],
        "{out}"
    );
    assert!(
        out.contains(
            "\n  chk-1, chk-2 (checkout v1): workflow `checkout` is not registered in this tool (it \
             registers none): only a runtime with its code can run it;"
        ),
        "{out}"
    );
    let planned = deploy.tool(Registry::new(), &["upgrade"]).await.ok();
    assert!(
        planned.starts_with(
            "chk-1 (checkout v1 at Signal2): stranded: workflow `checkout` is not registered in \
             this tool (it registers none)"
        ),
        "{planned}"
    );
    assert!(
        planned.ends_with("2 unfinished instances: 2 stranded; nothing to move\n"),
        "{planned}"
    );
    assert!(
        deploy.contents().await == before,
        "the bare tool wrote nothing"
    );
    // Its help says as much.
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_with(
        ["sagaflow", "upgrade", "--help"],
        Registry::new(),
        &mut out,
        &mut err,
    )
    .await;
    assert_eq!(code, ExitCode::SUCCESS);
    let help = String::from_utf8(out).unwrap();
    assert!(
        help.contains("The bare `sagaflow` binary registers no workflows, so it changes nothing"),
        "{help}"
    );
    assert!(help.contains("--dry-run"), "{help}");
}

#[tokio::test]
async fn a_registry_the_runtime_refuses_is_an_error_with_its_message() {
    let deploy = Deploy::parked(&["chk-1"]).await;
    // The same machine twice is one registration.
    let twice = Registry::new()
        .register(v1::checkout)
        .register(v1::checkout)
        .register(v2::checkout);
    assert_eq!(format!("{twice:?}"), "[\"checkout\"]");
    assert_eq!(twice.versions("checkout").len(), 2);
    assert_eq!(
        twice.machine("checkout").map(|machine| machine.version),
        Some(2),
        "the newest"
    );
    deploy.tool(twice, &["versions"]).await.ok();
    // Two machines that both claim version 2 are refused.
    let clash = Registry::new()
        .register(v2::checkout)
        .register(v2_pinned::checkout);
    let run = deploy.tool(clash, &["list"]).await;
    assert!(!run.ok, "{run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");
    assert!(
        run.stderr.starts_with(
            "error: workflow `checkout` version 2 is registered twice: give the other one \
             another version"
        ),
        "{}",
        run.stderr
    );
    // So is a migration to a version the tool does not register.
    let dangling = Registry::new().register(v1::checkout).migrate(v1_to_v3);
    let run = deploy.tool(dangling, &["versions"]).await;
    assert!(
        run.stderr.starts_with(
            "error: migration `v1_to_v3` goes to `checkout` version 3, which is not registered"
        ),
        "{run:?}"
    );
}

#[tokio::test]
async fn list_and_graph_tell_the_versions_apart() {
    let deploy = Deploy::parked(&["chk-1", "chk-2"]).await;
    {
        let rt = deploy
            .runtime(
                Runtime::builder()
                    .register(v1::checkout)
                    .register(v2_pinned::checkout),
            )
            .await;
        rt.start(v2_pinned::checkout, "chk-new", order("chk-new"))
            .await
            .unwrap();
        wait_until(&rt, "chk-new", |status| status.phase == Phase::Waiting).await;
        rt.shutdown().await;
    }
    let registry = || {
        Registry::new()
            .register(v1::checkout)
            .register(v2_pinned::checkout)
    };
    let out = deploy.tool(registry(), &["list"]).await.ok();
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header[..4], ["ID", "WORKFLOW", "VERSION", "PHASE"], "{out}");
    let versions: Vec<(String, String)> = out
        .lines()
        .skip(1)
        .take(3)
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            (words[0].to_owned(), words[2].to_owned())
        })
        .collect();
    assert_eq!(
        versions,
        [
            ("chk-new".to_owned(), "v2".to_owned()),
            ("chk-2".to_owned(), "v1".to_owned()),
            ("chk-1".to_owned(), "v1".to_owned())
        ],
        "{out}"
    );
    // One version only: no column.
    let only_v1 = deploy
        .tool(registry(), &["list", "--limit", "1", "--after", "chk-new"])
        .await
        .ok();
    assert!(
        !only_v1.lines().next().unwrap().contains("VERSION"),
        "{only_v1}"
    );
    let json = deploy.tool(registry(), &["--json", "list"]).await.json();
    assert_eq!(json["instances"][0]["version"], 2);
    assert_eq!(json["instances"][2]["version"], 1);

    // `workflows` names every version.
    let workflows = deploy.tool(registry(), &["workflows"]).await.ok();
    let rows: Vec<Vec<&str>> = workflows
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().take(2).collect())
        .collect();
    assert_eq!(
        rows,
        [vec!["checkout", "v1"], vec!["checkout", "v2"]],
        "{workflows}"
    );

    // `graph` draws the newest version, or the one asked for, counting its
    // own instances.
    let newest = deploy.tool(registry(), &["graph", "checkout"]).await.ok();
    assert!(newest.contains("Notify4"), "v2 notifies: {newest}");
    assert!(
        newest.contains("note right of Signal2 : 1 waiting\n"),
        "{newest}"
    );
    assert!(
        newest.contains("%% 2 instance(s) started on another fingerprint are not counted\n"),
        "{newest}"
    );
    let old = deploy
        .tool(
            registry(),
            &[
                "graph",
                "checkout",
                "--fingerprint",
                &fingerprint(v1::checkout),
            ],
        )
        .await
        .ok();
    assert!(!old.contains("Notify4"), "{old}");
    assert!(old.contains("note right of Signal2 : 2 waiting\n"), "{old}");
    // The bare tool draws v1 from the store's description, the same way.
    let bare = deploy
        .tool(
            Registry::new(),
            &[
                "graph",
                "checkout",
                "--fingerprint",
                &fingerprint(v1::checkout),
            ],
        )
        .await
        .ok();
    assert_eq!(bare, old);
    let wrong = deploy
        .tool(
            registry(),
            &["graph", "checkout", "--fingerprint", "00000000000000ab"],
        )
        .await;
    assert_eq!(
        wrong.stderr,
        "error: no version of `checkout` with fingerprint 00000000000000ab is registered in this \
         tool or described in the store (see `sagaflow versions --workflow checkout`)\n"
    );
    let garbled = deploy
        .tool(registry(), &["graph", "checkout", "--fingerprint", "v1"])
        .await;
    assert!(
        garbled
            .stderr
            .starts_with("error: `v1` is not a fingerprint (16 hex digits"),
        "{garbled:?}"
    );
}

#[tokio::test]
async fn the_web_view_shows_versions_read_only_and_links_what_it_names() {
    let deploy = Deploy::parked(&["chk-1", "chk-2"]).await;
    let page = deploy.get(v1_v2(), "/versions").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    // Linked from the header of every page.
    assert!(
        page.contains("<a href=\"/versions\">versions</a>"),
        "{page}"
    );
    let v1 = fingerprint(v1::checkout);
    let row = page
        .split(&format!(
            "<tr class=\"version\" data-version=\"1\" data-fingerprint=\"{v1}\">"
        ))
        .nth(1)
        .and_then(|rest| rest.split("</tr>").next())
        .unwrap_or_else(|| panic!("{page}"));
    assert!(
        row.contains(&format!(
            "<a href=\"/workflow?name=checkout&amp;fingerprint={v1}\">v1</a>"
        )),
        "{row}"
    );
    for cell in [
        "<td class=\"code\">registered here</td>",
        "<td class=\"upgrade\">pinned</td>",
        "<td class=\"instances\">2 waiting</td>",
        "<td class=\"num unfinished\">2</td>",
        "<a href=\"/instance?id=chk-1\">chk-1</a>",
        "<td class=\"num moving\">2</td>",
        "<td class=\"num stranded\">0</td>",
        "<td class=\"drained\">yes</td>",
    ] {
        assert!(row.contains(cell), "{cell}: {row}");
    }
    assert!(
        page.contains(
            "<td class=\"code\">registered here, newest</td><td class=\"upgrade\">auto</td>"
        ),
        "{page}"
    );
    // Read-only: no form, no button, no script.
    for mutating in ["<form", "<button", "method=\"post\"", "<script"] {
        assert!(!page.contains(mutating), "{mutating}: {page}");
    }

    // With v1's code gone, the stranded instances link to their pages.
    let pinned = Registry::new().register(v2_pinned::checkout);
    let page = deploy.get(pinned, "/versions").await;
    assert!(
        page.contains("<h2 class=\"error\" id=\"stranded\">Stranded</h2>"),
        "{page}"
    );
    assert!(
        page.contains(
            "<li data-workflow=\"checkout\" data-version=\"1\"><a href=\"/instance?id=chk-1\" \
             data-id=\"chk-1\">chk-1</a> <span class=\"muted\">(checkout v1)</span>: \
             <span class=\"error\">instance `chk-1`"
        ),
        "{page}"
    );
    assert!(
        page.contains("<td class=\"num stranded error\">2</td>"),
        "{page}"
    );

    // The instance page names its version and links its version's machine.
    let instance = deploy.get(v1_v2(), "/instance?id=chk-1").await;
    assert!(
        instance.contains("<td id=\"version\">v1</td>"),
        "{instance}"
    );
    assert!(
        instance.contains(&format!(
            "href=\"/workflow?name=checkout&amp;fingerprint={v1}\">checkout</a>"
        )),
        "{instance}"
    );
    let machine = deploy
        .get(
            v1_v2(),
            &format!("/workflow?name=checkout&fingerprint={v1}"),
        )
        .await;
    assert!(
        machine.contains(&format!(
            "<span class=\"muted\" id=\"version\">v1 · fingerprint {v1}</span>"
        )),
        "{machine}"
    );
    assert!(machine.contains("data-count=\"2 waiting\""), "{machine}");
    let newest = deploy.get(v1_v2(), "/workflow?name=checkout").await;
    assert!(
        newest.contains("id=\"version\">v2 · fingerprint "),
        "{newest}"
    );
    assert!(
        newest.contains("<p class=\"notice\" id=\"other-versions\">2 instance(s)"),
        "{newest}"
    );
    let unknown = deploy
        .get(
            v1_v2(),
            "/workflow?name=checkout&fingerprint=00000000000000ab",
        )
        .await;
    assert!(unknown.starts_with("HTTP/1.1 404"), "{unknown}");
    let garbled = deploy
        .get(v1_v2(), "/workflow?name=checkout&fingerprint=zz")
        .await;
    assert!(garbled.starts_with("HTTP/1.1 400"), "{garbled}");

    // The bare tool's page says what it cannot know.
    let bare = deploy.get(Registry::new(), "/versions").await;
    assert!(
        bare.contains("<p class=\"notice\" id=\"bare\">This tool registers no workflows"),
        "{bare}"
    );
    assert!(
        bare.contains(
            "<a href=\"/instance?id=chk-1\" data-id=\"chk-1\">chk-1</a>, <a \
             href=\"/instance?id=chk-2\" data-id=\"chk-2\">chk-2</a> <span \
             class=\"muted\">(checkout v1)</span>: <span class=\"error\">workflow `checkout` \
             is not registered in this tool (it registers none)"
        ),
        "{bare}"
    );
}

#[tokio::test]
async fn an_instance_a_runtime_holds_is_left_to_its_next_claim() {
    let deploy = Deploy::parked(&["chk-1", "chk-2"]).await;
    {
        // A runtime of the old build holds chk-2's lease for the next hour.
        let store = EmbeddedStore::open(deploy.dir.path()).unwrap();
        let key = sagaflow::record::key("chk-2");
        let stored = store.get(&key).await.unwrap().unwrap();
        let mut instance = sagaflow::record::decode(&stored.value).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        instance.lease.owner = Some("worker-7".to_owned());
        instance.lease.expires_at = Some(now + 3_600_000);
        store
            .put(
                &key,
                sagaflow::record::encode(&instance).unwrap(),
                sagaflow::store::Expect::Version(stored.version),
            )
            .await
            .unwrap();
    }
    let out = deploy.tool(v1_v2(), &["upgrade"]).await.ok();
    assert_eq!(
        out,
        "chk-1 (checkout v1 at Signal2): moves to v2 (automatic upgrade): done\n\
         chk-2 (checkout v1 at Signal2): leased by worker-7: decided at its next claim\n\
         2 unfinished instances: 1 moved, 1 leased; 1 record written\n"
    );
    let json = deploy
        .tool(v1_v2(), &["--json", "show", "chk-2"])
        .await
        .json();
    assert_eq!(json["version"], 1, "untouched");
    let versions = deploy.tool(v1_v2(), &["--json", "versions"]).await.json();
    let v1 = &versions["workflows"][0]["versions"][0];
    assert_eq!(
        (
            v1["unfinished"].clone(),
            v1["moving"].clone(),
            v1["drained"].clone()
        ),
        (1.into(), 0.into(), false.into()),
        "{v1}"
    );
}
