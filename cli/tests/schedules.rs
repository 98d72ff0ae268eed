//! `sagaflow schedule …` and the web view's `/schedules`, run as the real
//! binary on an embedded store whose schedules a program created, asserting
//! what an operator sees; then a worker runtime starts what the commands
//! asked for.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::Arc;

use common::Seeded;
use sagaflow::schedule::{format_time, parse_time};
use sagaflow::{EmbeddedStore, Overlap, ScheduleOptions, ScheduleSpec, Schedules};
use sagaflow_examples::report::nightly_report;

/// Creates `nightly` (cron 02:00 in Paris) and `hourly` (every hour, paused).
async fn create_schedules(store: &Seeded) {
    let embedded = EmbeddedStore::open(&store.path).expect("the store opens");
    let schedules = Schedules::new(Arc::new(embedded));
    let request = serde_json::json!({ "recipients": ["ops@example.com"] });
    schedules
        .create_by_name(
            "nightly",
            ScheduleSpec::cron("0 2 * * *").in_zone("Europe/Paris"),
            "nightly_report",
            request.clone(),
            ScheduleOptions::new(),
        )
        .await
        .expect("create nightly");
    schedules
        .create_by_name(
            "hourly",
            ScheduleSpec::every(std::time::Duration::from_secs(3600)),
            "nightly_report",
            request,
            ScheduleOptions::new()
                .overlap(Overlap::BufferOne)
                .paused("until the warehouse opens"),
        )
        .await
        .expect("create hourly");
}

#[tokio::test]
async fn schedule_commands_show_and_change_the_schedules() {
    let store = Seeded::empty();
    create_schedules(&store).await;

    let list = store.sagaflow(&["schedule", "list"]).ok();
    let lines: Vec<&str> = list.stdout.lines().collect();
    assert!(
        lines[0].starts_with("NAME ")
            && lines[0].contains("SPEC")
            && lines[0].contains("NEXT FIRE"),
        "{}",
        list.stdout
    );
    let hourly = lines.iter().find(|l| l.starts_with("hourly")).unwrap();
    assert!(
        hourly.contains("every 1h") && hourly.contains("paused: until the warehouse opens"),
        "{hourly}"
    );
    let nightly = lines.iter().find(|l| l.starts_with("nightly")).unwrap();
    assert!(
        nightly.contains("cron `0 2 * * *` in Europe/Paris") && nightly.contains("active"),
        "{nightly}"
    );
    // The next fire time is 02:00 in Paris: 00:00 or 01:00 UTC.
    assert!(
        nightly.contains("T01:00:00Z (in ") || nightly.contains("T00:00:00Z (in "),
        "{nightly}"
    );

    let json = store.sagaflow(&["--json", "schedule", "list"]).ok().json();
    let names: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|described| described["schedule"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["hourly", "nightly"]);
    assert_eq!(
        json[1]["next_fire_times"].as_array().unwrap().len(),
        5,
        "{json}"
    );

    let show = store.sagaflow(&["schedule", "show", "nightly"]).ok();
    for expected in [
        "schedule nightly",
        "nightly_report (its newest version)",
        "overlap skip, catch-up last within 1day",
        "next fires",
        "0 started, 0 skipped, 0 missed, 0 failed",
        "recent actions",
        "created",
    ] {
        assert!(
            show.stdout.contains(expected),
            "{expected}:\n{}",
            show.stdout
        );
    }

    let paused = store
        .sagaflow(&["schedule", "pause", "nightly", "--note", "audit week"])
        .ok();
    assert!(
        paused.stdout.contains("schedule nightly paused"),
        "{}",
        paused.stdout
    );
    let show = store.sagaflow(&["schedule", "show", "nightly"]).ok();
    assert!(
        show.stdout.contains("paused: audit week"),
        "{}",
        show.stdout
    );

    let unpaused = store.sagaflow(&["schedule", "unpause", "hourly"]).ok();
    assert!(
        unpaused
            .stdout
            .contains("schedule hourly unpaused: next fire "),
        "{}",
        unpaused.stdout
    );

    let triggered = store
        .sagaflow(&["--json", "schedule", "trigger", "nightly"])
        .ok()
        .json();
    let triggered_id = triggered["instance"].as_str().unwrap().to_owned();
    assert!(triggered_id.starts_with("nightly/"), "{triggered}");

    let backfilled = store
        .sagaflow(&[
            "schedule",
            "backfill",
            "hourly",
            "--from",
            "2025-01-01T00:00:00Z",
            "--to",
            "2025-01-01T03:00:00Z",
        ])
        .ok();
    assert!(
        backfilled.stdout.contains(
            "backfill of hourly recorded: 3 ticks from 2025-01-01T00:00:00Z to 2025-01-01T03:00:00Z"
        ),
        "{}",
        backfilled.stdout
    );
    let show = store.sagaflow(&["schedule", "show", "hourly"]).ok();
    assert!(
        show.stdout.contains(
            "asked       backfill from 2025-01-01T00:00:00Z to 2025-01-01T03:00:00Z (allow_all)"
        ),
        "{}",
        show.stdout
    );

    // Wrong requests say what is wrong.
    let missing = store.sagaflow(&["schedule", "show", "weekly"]).fails();
    assert!(
        missing.stderr.contains("no schedule named `weekly`"),
        "{}",
        missing.stderr
    );
    let policy = store
        .sagaflow(&["schedule", "trigger", "nightly", "--overlap", "sometimes"])
        .fails();
    assert!(
        policy
            .stderr
            .contains("`sometimes` is not an overlap policy"),
        "{}",
        policy.stderr
    );
    let backwards = store
        .sagaflow(&[
            "schedule",
            "backfill",
            "hourly",
            "--from",
            "2025-01-02T00:00:00Z",
            "--to",
            "2025-01-01T00:00:00Z",
        ])
        .fails();
    assert!(
        backwards.stderr.contains("covers nothing"),
        "{}",
        backwards.stderr
    );

    // A worker runtime with the workflow starts what was asked for.
    {
        let runtime = sagaflow::Runtime::builder()
            .store(EmbeddedStore::open(&store.path).expect("the store opens"))
            .register(nightly_report)
            .build()
            .await
            .expect("a worker runtime");
        let mut ids = vec![triggered_id.clone()];
        for hour in 0..3 {
            ids.push(format!(
                "hourly/{}",
                format_time(
                    parse_time("2025-01-01T00:00:00Z").unwrap() + hour * 3_600_000,
                    1000
                )
            ));
        }
        for id in &ids {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while runtime.status(id).await.unwrap().is_none() {
                assert!(std::time::Instant::now() < deadline, "{id} never started");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            let outcome = runtime
                .handle(nightly_report, id.clone())
                .outcome()
                .await
                .unwrap();
            assert!(
                matches!(outcome, sagaflow::Outcome::Completed(_)),
                "{id}: {outcome:?}"
            );
        }
        runtime.shutdown().await;
    }
    let list = store
        .sagaflow(&["list", "--workflow", "nightly_report"])
        .ok();
    assert!(
        list.stdout.contains("4 of 4 matching instances"),
        "{}",
        list.stdout
    );

    let deleted = store.sagaflow(&["schedule", "delete", "hourly"]).ok();
    assert!(
        deleted.stdout.contains("schedule hourly deleted"),
        "{}",
        deleted.stdout
    );
    let json = store.sagaflow(&["--json", "schedule", "list"]).ok().json();
    assert_eq!(json.as_array().unwrap().len(), 1);
}

/// The raw HTTP answer to a GET of `path`.
fn get(base: &str, path: &str) -> String {
    let address = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[tokio::test]
async fn the_web_view_lists_the_schedules_with_their_next_fire_times() {
    let store = Seeded::empty();
    create_schedules(&store).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_sagaflow"))
        .args(["--store", &store.url(), "ui", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the ui server starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .trim_end_matches('/')
        .to_owned();
    let page = get(&base, "/schedules");
    let _ = child.kill();
    let _ = child.wait();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(
        page.contains("<a href=\"/schedules\">schedules</a>"),
        "linked from the header"
    );
    assert!(page.contains("id=\"schedule-nightly\""), "{page}");
    assert!(page.contains("cron `0 2 * * *` in Europe/Paris"), "{page}");
    assert!(page.contains("paused: until the warehouse opens"), "{page}");
    // Three next fire times for the active schedule, each at 02:00 in Paris.
    let nightly = &page[page.find("id=\"schedule-nightly\"").unwrap()..];
    let row = &nightly[..nightly.find("</tr>").unwrap()];
    let times = row.matches("<time>").count();
    assert_eq!(times, 3, "{row}");
    assert!(
        row.contains("T01:00:00Z</time>") || row.contains("T00:00:00Z</time>"),
        "{row}"
    );
    assert!(page.contains("recent actions"), "{page}");
}
