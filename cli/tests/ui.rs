//! The read-only web view, in a real browser: `sagaflow-demo ui` on a store
//! the examples filled, pages rendered by Debian's headless `chromium`
//! (`--dump-dom`), asserting what the page shows: the instance list, the
//! state machine with the current state highlighted, the timeline.
//!
//! Needs `chromium` on the PATH (`.ci/run` installs it); without it the
//! test is skipped, unless `CI=true`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use common::{SEEDED_NEWEST_FIRST, Seeded};

/// A `ui` server process, killed (by its id) when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(program: &str, store: &Seeded) -> Server {
        let mut child = Command::new(program)
            .args(["--store", &store.url(), "ui", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the ui server starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "serving a read-only view of the embedded store on http://127.0.0.1:PORT/ (…)"
        let base = line
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .trim_end_matches('/')
            .to_owned();
        assert!(
            line.starts_with("serving a read-only view of the embedded store on http://127.0.0.1:"),
            "{line}"
        );
        Server { child, base }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromium() -> Option<String> {
    let program = std::env::var("SAGAFLOW_CHROMIUM").unwrap_or_else(|_| "chromium".to_owned());
    let found = Command::new(&program)
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if found {
        return Some(program);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "chromium is not installed, but CI=true: .ci/run installs it (apt-get install chromium)"
    );
    println!("skipped: chromium is not installed (apt-get install chromium)");
    None
}

/// The DOM of `url` after chromium rendered it.
fn dump_dom(chromium: &str, url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let output = Command::new("timeout")
        .args(["120", chromium])
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success() && dom.contains("</html>"),
        "chromium failed on {url}: {}\n{dom}",
        String::from_utf8_lossy(&output.stderr)
    );
    dom
}

/// The raw HTTP answer to one request.
fn http(base: &str, request: &str) -> String {
    let address = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .write_all(format!("{request}\r\nHost: {address}\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn the_web_view_shows_instances_the_machine_and_the_timeline() {
    let store = Seeded::new();
    let server = Server::start(env!("CARGO_BIN_EXE_sagaflow-demo"), &store);

    // Read-only and self-contained, whatever the browser.
    assert!(
        http(&server.base, "POST / HTTP/1.1").starts_with("HTTP/1.1 405"),
        "the view accepts no writes"
    );
    let css = http(&server.base, "GET /style.css HTTP/1.1");
    assert!(css.contains("content-type: text/css"), "{css}");

    let Some(chromium) = chromium() else { return };

    // The instance list, newest first, each with its phase.
    let list = dump_dom(&chromium, &format!("{}/", server.base));
    let rows: Vec<usize> = SEEDED_NEWEST_FIRST
        .iter()
        .map(|id| {
            list.find(&format!("<tr class=\"instance\" data-id=\"{id}\""))
                .unwrap_or_else(|| panic!("no row for {id}:\n{list}"))
        })
        .collect();
    assert!(
        rows.windows(2).all(|pair| pair[0] < pair[1]),
        "newest first:\n{list}"
    );
    assert!(
        list.contains(
            "<tr class=\"instance\" data-id=\"order-rejected\" data-phase=\"Compensated\">\
             <td><a href=\"/instance?id=order-rejected\">order-rejected</a></td>"
        ),
        "{list}"
    );
    assert!(list.contains("9 of 9 matching instances"), "{list}");
    assert!(!list.contains("<script"), "no scripts:\n{list}");
    assert!(
        !list.contains("https://"),
        "nothing from elsewhere:\n{list}"
    );

    // Filters are plain links.
    let failed_only = dump_dom(
        &chromium,
        &format!("{}/?phase=Compensated&workflow=place_order", server.base),
    );
    assert_eq!(
        failed_only.matches("<tr class=\"instance\"").count(),
        1,
        "{failed_only}"
    );

    // A rolled-back order: the terminal state is current, the pivot it
    // stopped at is marked, and the timeline is beside it.
    let rejected = dump_dom(
        &chromium,
        &format!("{}/instance?id=order-rejected", server.base),
    );
    assert!(
        rejected.contains("<g class=\"state terminal current\" data-state=\"Compensated\""),
        "{rejected}"
    );
    assert!(
        rejected.contains("<g class=\"state stopped\" data-state=\"CreateShipment3\""),
        "{rejected}"
    );
    assert_eq!(
        rejected.matches(" current\" data-state=").count(),
        1,
        "{rejected}"
    );
    for state in [
        "Start",
        "ReserveInventory1",
        "ChargePayment2",
        "SendConfirmation4",
        "Completed",
        "Failed",
    ] {
        assert!(
            rejected.contains(&format!("<g class=\"state\" data-state=\"{state}\""))
                || rejected.contains(&format!(
                    "<g class=\"state terminal\" data-state=\"{state}\""
                )),
            "{state} drawn:\n{rejected}"
        );
    }
    let timeline = rejected
        .split("<table class=\"timeline\" id=\"timeline\">")
        .nth(1)
        .and_then(|rest| rest.split("</table>").next())
        .unwrap_or_else(|| panic!("no timeline:\n{rejected}"));
    let kinds: Vec<&str> = timeline
        .match_indices("<tr class=\"event kind-")
        .map(|(at, _)| {
            let rest = &timeline[at + "<tr class=\"event kind-".len()..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "created",
            "step_succeeded",
            "step_succeeded",
            "step_retried",
            "step_failed",
            "compensating",
            "compensated",
            "compensated",
            "rolled_back"
        ],
        "{timeline}"
    );
    assert!(
        timeline
            .contains("<td>create_shipment</td><td>CreateShipment3</td><td class=\"num\">2</td>"),
        "{timeline}"
    );
    assert!(
        timeline.contains("the carrier rejected the parcel"),
        "{timeline}"
    );
    assert!(
        rejected.contains("<td id=\"failure\"><span class=\"error\">step `create_shipment` failed: the carrier rejected the parcel</span></td>"),
        "{rejected}"
    );
    assert!(
        rejected.contains("&quot;res-order-rejected&quot;")
            || rejected.contains("\"res-order-rejected\""),
        "{rejected}"
    );

    // A pending order is at Start.
    let pending = dump_dom(
        &chromium,
        &format!("{}/instance?id=order-pending", server.base),
    );
    assert!(
        pending.contains("<g class=\"state current\" data-state=\"Start\""),
        "{pending}"
    );
    assert!(
        pending.contains("<td id=\"lease\">free, never claimed</td>"),
        "{pending}"
    );

    // An approval waits for its signal, at its signal state.
    let waiting = dump_dom(
        &chromium,
        &format!("{}/instance?id=approval-1", server.base),
    );
    assert!(
        waiting.contains("<g class=\"state current\" data-state=\"SignalTimeout3\""),
        "{waiting}"
    );
    assert!(
        waiting.contains("<td id=\"awaiting-signal\">signal <b>approval</b></td>"),
        "{waiting}"
    );

    // A workflow's machine with how many instances sit where.
    let coffee = dump_dom(
        &chromium,
        &format!("{}/workflow?name=coffee_order", server.base),
    );
    let completed = coffee
        .split("data-state=\"Completed\"")
        .nth(1)
        .unwrap_or_else(|| panic!("{coffee}"));
    assert!(
        completed[..completed.find("</g></g>").unwrap()].contains("data-count=\"1\""),
        "{coffee}"
    );
    assert!(
        coffee.contains("data-count=\"2\""),
        "two compensated:\n{coffee}"
    );

    // An unknown id is a page saying so, with a 404.
    let missing = dump_dom(&chromium, &format!("{}/instance?id=order-999", server.base));
    assert!(
        missing.contains("no instance with id `order-999`"),
        "{missing}"
    );
    assert!(http(&server.base, "GET /instance?id=order-999 HTTP/1.1").starts_with("HTTP/1.1 404"));
    drop(server);

    // The bare binary knows no workflows: it shows the record, not a drawing.
    let bare = Server::start(env!("CARGO_BIN_EXE_sagaflow"), &store);
    let page = dump_dom(
        &chromium,
        &format!("{}/instance?id=order-rejected", bare.base),
    );
    assert!(
        page.contains("<p class=\"notice\" id=\"no-machine\">Workflow <b>place_order</b> is not registered in this tool"),
        "{page}"
    );
    assert!(!page.contains("<svg"), "{page}");
    assert!(
        page.contains("<tr class=\"event kind-step_retried\">"),
        "{page}"
    );
}
