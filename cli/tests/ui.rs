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
        Server::start_with(program, store, &[])
    }

    /// With more arguments to `ui`.
    fn start_with(program: &str, store: &Seeded, ui_args: &[&str]) -> Server {
        let mut child = Command::new(program)
            .args(["--store", &store.url(), "ui", "--listen", "127.0.0.1:0"])
            .args(ui_args)
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
    dump_dom_with(chromium, url, &[])
}

/// The DOM of `url` after chromium rendered it, with extra flags.
fn dump_dom_with(chromium: &str, url: &str, flags: &[&str]) -> String {
    let output = run_chromium(chromium, url, flags);
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success() && dom.contains("</html>"),
        "chromium failed on {url}: {}\n{dom}",
        String::from_utf8_lossy(&output.stderr)
    );
    dom
}

/// What chromium printed for `url` with `--dump-dom`, whether or not the
/// page loaded.
fn run_chromium(chromium: &str, url: &str, flags: &[&str]) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    Command::new("timeout")
        .args(["120", chromium])
        .args(flags)
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
        .expect("chromium runs")
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
        waiting.contains("<td id=\"awaiting-signal\">signal <b>approval</b> until 20")
            && waiting.contains("Z (in 23h)</td>"),
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

    // The bare binary knows no workflows, but the runtime that ran them
    // stored their machines: it draws the same picture from the store.
    let registered = rejected.clone();
    let bare = Server::start(env!("CARGO_BIN_EXE_sagaflow"), &store);
    let page = dump_dom(
        &chromium,
        &format!("{}/instance?id=order-rejected", bare.base),
    );
    assert_eq!(svg_of(&page), svg_of(&registered), "{page}");
    assert!(
        page.contains("<p class=\"muted\" id=\"stored-machine\">"),
        "{page}"
    );
    // The header links to the workflows the store describes.
    for workflow in ["approval", "coffee_order", "place_order", "reserve_batch"] {
        assert!(
            page.contains(&format!(
                "<a href=\"/workflow?name={workflow}\">{workflow}</a>"
            )),
            "{workflow}: {page}"
        );
    }
    let coffee_bare = dump_dom(
        &chromium,
        &format!("{}/workflow?name=coffee_order", bare.base),
    );
    assert_eq!(svg_of(&coffee_bare), svg_of(&coffee), "{coffee_bare}");
    drop(bare);

    // Without the stored description it shows the record, not a drawing.
    delete_machines(&store, "place_order");
    let bare = Server::start(env!("CARGO_BIN_EXE_sagaflow"), &store);
    let page = dump_dom(
        &chromium,
        &format!("{}/instance?id=order-rejected", bare.base),
    );
    assert!(
        page.contains("<p class=\"notice\" id=\"no-machine\">Workflow <b>place_order</b> is not registered in this tool and the store holds no description of it"),
        "{page}"
    );
    assert!(!page.contains("<svg"), "{page}");
    assert!(
        page.contains("<tr class=\"event kind-step_retried\">"),
        "{page}"
    );
}

/// The `<svg>…</svg>` of a page.
fn svg_of(page: &str) -> &str {
    let start = page
        .find("<svg")
        .unwrap_or_else(|| panic!("no drawing:\n{page}"));
    let end = page[start..].find("</svg>").unwrap() + start + "</svg>".len();
    &page[start..end]
}

/// Deletes the stored machine descriptions of `workflow`.
fn delete_machines(store: &Seeded, workflow: &str) {
    use sagaflow::store::{Expect, Store};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let embedded = sagaflow::EmbeddedStore::open(&store.path).unwrap();
        let prefix = format!("machines/{workflow}/");
        let page = embedded.scan(&prefix, None, 100).await.unwrap();
        assert!(!page.entries.is_empty(), "the seed stored {prefix}");
        for (key, _) in page.entries {
            embedded.delete(&key, Expect::Any).await.unwrap();
        }
    });
}

/// Instance `id`'s record with a long error (a long sentence, then a long
/// unbroken token, as a serialized payload or a URL would be) in its
/// failure and in every failed attempt of its timeline.
fn long_error_copy(store: &Seeded, from: &str, id: &str) -> String {
    use sagaflow::record;
    use sagaflow::store::{Expect, Store};
    let long_error = format!(
        "{} {}",
        "the carrier rejected the parcel because the address could not be verified; ".repeat(8),
        "x".repeat(400)
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let embedded = sagaflow::EmbeddedStore::open(&store.path).unwrap();
        let stored = embedded.get(&record::key(from)).await.unwrap().unwrap();
        let mut instance = record::decode(&stored.value).unwrap();
        instance.id = id.to_owned();
        for event in &mut instance.history {
            if event.error.is_some() {
                event.error = Some(long_error.clone());
            }
        }
        if let Some(failure) = &mut instance.failure {
            failure.message = long_error.clone();
        }
        instance.last_error = Some(long_error.clone());
        embedded
            .put(
                &record::key(id),
                record::encode(&instance).unwrap(),
                Expect::Absent,
            )
            .await
            .unwrap();
    });
    long_error
}

/// How wide `path` renders in a window 1,400 px wide (the page's
/// `scrollWidth`, or the right edge of any element beyond it), and
/// `innerWidth`: the page with its stylesheet inlined and a script that
/// writes both into the DOM.
fn widths(chromium: &str, base: &str, path: &str) -> (u32, u32, String) {
    let body = |answer: String| -> String {
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        answer.split_once("\r\n\r\n").unwrap().1.to_owned()
    };
    let page = body(http(base, &format!("GET {path} HTTP/1.1")));
    let css = body(http(base, "GET /style.css HTTP/1.1"));
    let link = "<link rel=\"stylesheet\" href=\"/style.css\">";
    assert!(page.contains(link), "{page}");
    // The page's width, or the right edge of whatever sticks out furthest
    // (inside a box that scrolls, an element can overflow without widening
    // the page).
    let probe = "<script>var right = document.documentElement.scrollWidth; \
                 document.querySelectorAll('body *').forEach(function (element) { \
                 right = Math.max(right, Math.ceil(element.getBoundingClientRect().right)); }); \
                 document.body.setAttribute('data-fit', right + ' ' + window.innerWidth);</script>";
    let page = page
        .replace(link, &format!("<style>{css}</style>"))
        .replace("</body>", &format!("{probe}</body>"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("page.html");
    std::fs::write(&file, &page).unwrap();
    let dom = dump_dom_with(
        chromium,
        &format!("file://{}", file.display()),
        &["--window-size=1400,900", "--hide-scrollbars"],
    );
    let fit = dom
        .split("data-fit=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("the probe did not run:\n{dom}"));
    let (scroll, inner) = fit.split_once(' ').unwrap();
    (scroll.parse().unwrap(), inner.parse().unwrap(), dom)
}

#[test]
fn long_errors_wrap_and_the_pages_fit_a_1400px_window() {
    let store = Seeded::new();
    let long_error = long_error_copy(&store, "order-rejected", "order-long-error");
    let server = Server::start(env!("CARGO_BIN_EXE_sagaflow-demo"), &store);
    let Some(chromium) = chromium() else { return };
    for path in ["/instance?id=order-long-error", "/"] {
        let (scroll, inner, dom) = widths(&chromium, &server.base, path);
        assert_eq!(inner, 1400, "the window is 1,400 px wide");
        assert!(
            scroll <= inner,
            "{path} overflows: {scroll} px wide in a {inner} px window\n{dom}"
        );
    }
    // The full text stays available: in the cell's title, and in full
    // inside the expandable cell.
    let page = dump_dom(
        &chromium,
        &format!("{}/instance?id=order-long-error", server.base),
    );
    let escaped = long_error.replace('\'', "&#39;");
    assert!(page.contains(&format!("title=\"{escaped}\"")), "{page}");
    assert!(page.contains("<details"), "{page}");
}

const TOKEN: &str = "a7c1f0e25b9d4e3c8f60";

#[test]
fn with_a_token_nothing_is_shown_to_a_browser_without_it() {
    let store = Seeded::new();
    let server = Server::start_with(
        env!("CARGO_BIN_EXE_sagaflow-demo"),
        &store,
        &["--token", TOKEN],
    );

    // Scripts: no header, a wrong token, the token.
    let bare = http(&server.base, "GET / HTTP/1.1");
    assert!(bare.starts_with("HTTP/1.1 401"), "{bare}");
    assert!(
        bare.contains("www-authenticate: Basic realm=\"sagaflow\""),
        "{bare}"
    );
    let wrong = http(
        &server.base,
        "GET /instance?id=order-ok HTTP/1.1\r\nAuthorization: Bearer a7c1f0e25b9d4e3c8f61",
    );
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");
    let css = http(&server.base, "GET /style.css HTTP/1.1");
    assert!(
        css.starts_with("HTTP/1.1 401"),
        "not even the style:\n{css}"
    );
    let script = http(
        &server.base,
        &format!("GET /instance?id=order-ok HTTP/1.1\r\nAuthorization: Bearer {TOKEN}"),
    );
    assert!(script.starts_with("HTTP/1.1 200"), "{script}");
    assert!(script.contains("order-ok"), "{script}");
    // Signing in by address: a redirect without the token, and the cookie.
    let sign_in = http(
        &server.base,
        &format!("GET /instance?id=order-ok&token={TOKEN} HTTP/1.1"),
    );
    assert!(sign_in.starts_with("HTTP/1.1 303"), "{sign_in}");
    assert!(
        sign_in.contains("location: /instance?id=order-ok\r\n"),
        "{sign_in}"
    );
    assert!(
        sign_in.contains(&format!(
            "set-cookie: sagaflow_token={TOKEN}; HttpOnly; SameSite=Strict; Path=/"
        )),
        "{sign_in}"
    );
    let with_cookie = http(
        &server.base,
        &format!("GET /instance?id=order-ok HTTP/1.1\r\nCookie: sagaflow_token={TOKEN}"),
    );
    assert!(with_cookie.starts_with("HTTP/1.1 200"), "{with_cookie}");

    let Some(chromium) = chromium() else { return };
    // A browser without the token is asked for credentials: headless
    // chromium, which cannot answer, loads nothing (a browser with a
    // window shows the sign-in page behind its dialog). No instance shows.
    for path in [
        "/",
        "/instance?id=order-ok",
        "/workflow?name=place_order",
        "/versions",
    ] {
        let output = run_chromium(&chromium, &format!("{}{path}", server.base), &[]);
        let page = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("ERR_INVALID_AUTH_CREDENTIALS")
                || page.contains("This sagaflow view needs its token"),
            "{path}: neither refused nor the sign-in page:\n{page}\n{stderr}"
        );
        for id in SEEDED_NEWEST_FIRST {
            assert!(
                !page.contains(id),
                "{path} shows {id} without the token:\n{page}"
            );
        }
        assert!(!page.contains("place_order"), "{path}:\n{page}");
    }
    // Signed in once with the token (a redirect sets the cookie), the list.
    let list = dump_dom(&chromium, &format!("{}/?token={TOKEN}", server.base));
    for id in SEEDED_NEWEST_FIRST {
        assert!(
            list.contains(&format!("<tr class=\"instance\" data-id=\"{id}\"")),
            "no row for {id} once signed in:\n{list}"
        );
    }
}

#[test]
fn beyond_loopback_the_view_is_not_served_without_a_token() {
    let store = Seeded::new();
    let output = Command::new(env!("CARGO_BIN_EXE_sagaflow-demo"))
        .args(["--store", &store.url(), "ui", "--listen", "0.0.0.0:0"])
        .env_remove("SAGAFLOW_UI_TOKEN")
        .output()
        .expect("the ui command runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        output.stdout.is_empty(),
        "nothing served: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(
        stderr.contains("shows every payload in the store to whoever reaches that address; give a token (`--token`, or SAGAFLOW_UI_TOKEN"),
        "{stderr}"
    );
    // A token too short to be a secret is refused too.
    let output = Command::new(env!("CARGO_BIN_EXE_sagaflow-demo"))
        .args(["--store", &store.url(), "ui", "--listen", "0.0.0.0:0"])
        .env("SAGAFLOW_UI_TOKEN", "secret")
        .output()
        .expect("the ui command runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("has 6 characters; give one of at least 16"),
        "{stderr}"
    );
}
