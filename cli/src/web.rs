//! The read-only web view: the instance list, one instance (its state
//! machine drawn as SVG with the current state highlighted, beside its
//! timeline), and a workflow's machine with instance counts. Plain HTML and
//! CSS served by the binary: no JavaScript, nothing from a CDN, no writes.
//! On an address beyond loopback it asks for a token ([`crate::access`]).
//! `/schedules` lists the schedules with their next fire times (its body is
//! drawn in `web/schedules.rs`).

mod schedules;

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use crate::access::{self, AccessError};
use crate::admin::{Admin, AdminError, InstanceDetail, ListQuery, MachineSource, now_ms};
use crate::svg::{self, Highlight, escape};
use crate::text;
use sagaflow::record::Phase;

const STYLE: &str = r#"
:root{--fg:#1f2933;--muted:#616e7c;--line:#e4e7eb;--bg:#f5f7fa;--accent:#2680c2}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{background:#1f2933;color:#fff;padding:10px 24px;display:flex;gap:24px;align-items:baseline}
header a{color:#fff;text-decoration:none;font-weight:600}
header .store{color:#9aa5b1;font-size:12px}
main{padding:18px 24px}
h1{font-size:20px;margin:4px 0 14px}
h2{font-size:15px;margin:18px 0 8px}
table{border-collapse:collapse;background:#fff;border:1px solid var(--line)}
th,td{padding:5px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#eef2f6;font-weight:600;font-size:12px;text-transform:uppercase;color:var(--muted)}
td.num{text-align:right}
a{color:var(--accent)}
.phase{font-weight:600;padding:1px 7px;border-radius:9px;font-size:12px}
.phase-Running{background:#e0f2fe;color:#035388}
.phase-Waiting{background:#fff3c4;color:#8d2b0b}
.phase-Compensating{background:#f3e8ff;color:#580a94}
.phase-Completed{background:#e3f9e5;color:#05400a}
.phase-Compensated{background:#fff3c4;color:#8d2b0b}
.phase-Failed{background:#ffe3e3;color:#780a0a}
.error{color:#ab091e}
.muted{color:var(--muted)}
.columns{display:flex;gap:24px;align-items:flex-start}
#details{flex:1;min-width:0;overflow-x:auto}
.machine-box{background:#fff;border:1px solid var(--line);padding:8px;overflow:auto;flex:none}
.facts th,#variables th{text-transform:none;font-size:13px;width:140px}
.timeline td.num,.timeline td:first-child{white-space:nowrap}
.timeline td.error{min-width:200px;max-width:560px}
.timeline td.error summary{cursor:pointer}
.timeline td.error details[open] summary{color:var(--muted)}
pre{background:#fff;border:1px solid var(--line);padding:8px;margin:0;max-width:640px;overflow:auto;font-size:12px}
form.filters{display:flex;gap:10px;margin-bottom:12px;align-items:center}
.notice{background:#fff;border-left:4px solid var(--accent);padding:8px 12px;margin:8px 0}
.timeline tr.kind-step_failed td,.timeline tr.kind-failed td,.timeline tr.kind-compensation_failed td{background:#fff5f5}
"#;

/// The web view's routes on `admin`: `/` (instances), `/instance?id=`,
/// `/workflow?name=`, `/versions`, `/schedules`, `/style.css`. Every route only reads
/// (`sagaflow upgrade` stays a command).
pub fn router(admin: Admin) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/versions", get(versions))
        .route("/schedules", get(schedules_page))
        .route("/instance", get(instance))
        .route("/workflow", get(workflow))
        .route("/style.css", get(style))
        .fallback(not_found)
        .with_state(admin)
}

/// [`router`] behind a token: a request without it (HTTP Basic with any
/// user name and the token as the password, or `Authorization: Bearer
/// TOKEN`) gets `401` and nothing of the store.
pub fn router_with_token(admin: Admin, token: &str) -> Router {
    router(admin).layer(axum::middleware::from_fn_with_state(
        Arc::<str>::from(token),
        access::require_token,
    ))
}

/// Serves [`router`] on `listener` until the process ends, open to whoever
/// reaches it: only on a loopback address (a listener on any other address
/// is refused with [`std::io::ErrorKind::PermissionDenied`]; use
/// [`serve_with_token`] there).
pub async fn serve(admin: Admin, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    access::check(listener.local_addr()?, None).map_err(refused)?;
    axum::serve(listener, router(admin)).await
}

/// Serves [`router_with_token`] on `listener` until the process ends, on
/// any address. The token must have at least
/// [`MIN_TOKEN_LEN`](crate::access::MIN_TOKEN_LEN) characters.
pub async fn serve_with_token(
    admin: Admin,
    listener: tokio::net::TcpListener,
    token: &str,
) -> std::io::Result<()> {
    access::check(listener.local_addr()?, Some(token)).map_err(refused)?;
    axum::serve(listener, router_with_token(admin, token)).await
}

fn refused(error: AccessError) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::PermissionDenied, error)
}

/// Percent-encodes a query value.
fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// A page with the header: links to every workflow this tool can draw
/// (registered, or described in the store).
async fn page(admin: &Admin, title: &str, body: &str) -> Html<String> {
    let mut names: Vec<String> = match admin.machines().await {
        Ok((machines, _)) => machines
            .into_iter()
            .map(|known| known.machine.workflow)
            .collect(),
        Err(_) => admin
            .registry()
            .names()
            .into_iter()
            .map(str::to_owned)
            .collect(),
    };
    names.dedup();
    let workflows: String = names
        .iter()
        .map(|name| {
            format!(
                "<a href=\"/workflow?name={}\">{}</a>",
                encode(name),
                escape(name)
            )
        })
        .collect();
    Html(format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · sagaflow</title><link rel=\"stylesheet\" href=\"/style.css\"></head>\
         <body><header><a href=\"/\">sagaflow</a><a href=\"/\">instances</a><a href=\"/versions\">versions</a><a href=\"/schedules\">schedules</a>{workflows}\
         <span class=\"store\">{} store · read-only</span></header><main>{body}</main></body></html>",
        escape(title),
        escape(admin.store_name()),
    ))
}

async fn error_page(admin: &Admin, error: &AdminError) -> Response {
    let status = match error {
        AdminError::NotFound(_)
        | AdminError::UnknownWorkflow { .. }
        | AdminError::UnknownVersion { .. }
        | AdminError::NoWorkflows(_) => StatusCode::NOT_FOUND,
        AdminError::Invalid(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let body = format!(
        "<h1>{}</h1><p class=\"error\" id=\"error\">{}</p><p><a href=\"/\">all instances</a></p>",
        status.canonical_reason().unwrap_or("error"),
        escape(&error.to_string())
    );
    (status, page(admin, "error", &body).await).into_response()
}

fn phase_badge(phase: Phase) -> String {
    format!(
        "<span class=\"phase phase-{phase}\">{phase}</span>",
        phase = phase.as_str()
    )
}

async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE)
}

async fn schedules_page(State(admin): State<Admin>) -> Response {
    let listed = match admin.schedules().list().await {
        Ok(listed) => listed,
        Err(error) => return error_page(&admin, &AdminError::from(error)).await,
    };
    let body = schedules::body(&listed, now_ms(), |id| {
        format!("/instance?id={}", encode(id))
    });
    page(&admin, "schedules", &body).await.into_response()
}

async fn not_found(State(admin): State<Admin>) -> Response {
    (
        StatusCode::NOT_FOUND,
        page(
            &admin,
            "not found",
            "<h1>Not found</h1><p><a href=\"/\">all instances</a></p>",
        )
        .await,
    )
        .into_response()
}

#[derive(Debug, Default, Deserialize)]
struct IndexQuery {
    workflow: Option<String>,
    phase: Option<String>,
    after: Option<String>,
}

const PAGE_SIZE: usize = 100;

async fn index(State(admin): State<Admin>, Query(params): Query<IndexQuery>) -> Response {
    let phase = params
        .phase
        .as_deref()
        .filter(|phase| !phase.is_empty())
        .and_then(|name| {
            [
                Phase::Running,
                Phase::Waiting,
                Phase::Compensating,
                Phase::Completed,
                Phase::Compensated,
                Phase::Failed,
            ]
            .into_iter()
            .find(|phase| phase.as_str().eq_ignore_ascii_case(name))
        });
    let workflow = params.workflow.filter(|workflow| !workflow.is_empty());
    let query = ListQuery {
        workflow: workflow.clone(),
        phases: phase.into_iter().collect(),
        after: params.after.clone(),
        limit: PAGE_SIZE,
        ..ListQuery::default()
    };
    let list = match admin.list(&query, |_| {}).await {
        Ok(list) => list,
        Err(error) => return error_page(&admin, &error).await,
    };
    let now = now_ms();
    let mut body = String::from("<h1>Instances</h1>");
    // Filters: a plain GET form, no script.
    body.push_str("<form class=\"filters\" method=\"get\" action=\"/\"><label>workflow <select name=\"workflow\"><option value=\"\">all</option>");
    let mut names: Vec<String> = admin
        .registry()
        .names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    for instance in &list.instances {
        if !names.contains(&instance.workflow) {
            names.push(instance.workflow.clone());
        }
    }
    if let Some(workflow) = &workflow
        && !names.contains(workflow)
    {
        names.push(workflow.clone());
    }
    names.sort();
    for name in &names {
        let selected = if workflow.as_deref() == Some(name) {
            " selected"
        } else {
            ""
        };
        let _ = write!(body, "<option{selected}>{}</option>", escape(name));
    }
    body.push_str(
        "</select></label><label>phase <select name=\"phase\"><option value=\"\">all</option>",
    );
    for candidate in [
        Phase::Running,
        Phase::Waiting,
        Phase::Compensating,
        Phase::Completed,
        Phase::Compensated,
        Phase::Failed,
    ] {
        let selected = if phase == Some(candidate) {
            " selected"
        } else {
            ""
        };
        let _ = write!(body, "<option{selected}>{candidate}</option>");
    }
    body.push_str("</select></label><button type=\"submit\">filter</button></form>");

    if list.instances.is_empty() {
        body.push_str("<p class=\"notice\" id=\"empty\">No instances match.</p>");
    } else {
        let versions = text::several_versions(&list.instances);
        let _ = write!(
            body,
            "<table id=\"instances\"><thead><tr><th>id</th><th>workflow</th>{}<th>phase</th>\
             <th>state</th><th>step</th><th>attempt</th><th>created</th><th>updated</th>\
             <th>note</th></tr></thead><tbody>",
            if versions { "<th>version</th>" } else { "" }
        );
        for instance in &list.instances {
            let _ = write!(
                body,
                "<tr class=\"instance\" data-id=\"{id}\" data-phase=\"{phase}\"{v}><td><a href=\"/instance?id={link}\">{id}</a></td>\
                 <td>{workflow}</td>{version}<td>{badge}</td><td>{state}</td><td>{step}</td><td class=\"num\">{attempt}</td>\
                 <td title=\"{created_full}\">{created}</td><td title=\"{updated_full}\">{updated}</td><td class=\"{note_class}\">{note}</td></tr>",
                id = escape(&instance.id),
                link = encode(&instance.id),
                phase = instance.phase.as_str(),
                workflow = escape(&instance.workflow),
                v = if versions {
                    format!(" data-version=\"{}\"", instance.version)
                } else {
                    String::new()
                },
                version = if versions {
                    format!("<td>v{}</td>", instance.version)
                } else {
                    String::new()
                },
                badge = phase_badge(instance.phase),
                state = escape(&instance.state),
                step = escape(instance.step.as_deref().unwrap_or("")),
                attempt = instance.attempt,
                created_full = text::format_time(instance.created_at),
                created = text::age(instance.created_at, now),
                updated_full = text::format_time(instance.updated_at),
                updated = text::age(instance.updated_at, now),
                note_class = if instance.phase == Phase::Failed {
                    "error"
                } else {
                    "muted"
                },
                note = escape(&text::truncate(&text::note(instance, now), 90)),
            );
        }
        body.push_str("</tbody></table>");
    }
    let _ = write!(
        body,
        "<p class=\"muted\" id=\"summary\">{} of {} matching instances, newest first; {} records read.</p>",
        list.instances.len(),
        list.matched,
        list.scanned
    );
    if let Some(next) = &list.next {
        let mut link = format!("/?after={}", encode(next));
        if let Some(workflow) = &workflow {
            let _ = write!(link, "&workflow={}", encode(workflow));
        }
        if let Some(phase) = phase {
            let _ = write!(link, "&phase={phase}");
        }
        let _ = write!(
            body,
            "<p><a id=\"next\" href=\"{}\">next page</a></p>",
            escape(&link)
        );
    }
    if !list.undecodable.is_empty() {
        body.push_str("<h2 class=\"error\">Records that cannot be decoded</h2><table id=\"undecodable\"><thead><tr><th>key</th><th>why</th></tr></thead><tbody>");
        for bad in &list.undecodable {
            let _ = write!(
                body,
                "<tr><td>{}</td><td class=\"error\">{}</td></tr>",
                escape(&bad.key),
                escape(&bad.reason)
            );
        }
        body.push_str("</tbody></table>");
    }
    page(&admin, "instances", &body).await.into_response()
}

#[derive(Debug, Deserialize)]
struct InstanceQuery {
    id: String,
}

async fn instance(State(admin): State<Admin>, Query(params): Query<InstanceQuery>) -> Response {
    match admin.show(&params.id).await {
        Ok(detail) => {
            let body = instance_body(&detail);
            page(&admin, &detail.summary.id, &body)
                .await
                .into_response()
        }
        Err(error) => error_page(&admin, &error).await,
    }
}

fn instance_body(detail: &InstanceDetail) -> String {
    let summary = &detail.summary;
    let now = now_ms();
    // The workflow's page at the instance's own version, when it is known.
    let version_link = detail
        .machine
        .as_ref()
        .filter(|machine| {
            sagaflow::record::format_fingerprint(machine.fingerprint) == detail.fingerprint
        })
        .map_or_else(String::new, |_| {
            format!("&amp;fingerprint={}", encode(&detail.fingerprint))
        });
    let mut body = format!(
        "<h1>{} <a class=\"muted\" href=\"/workflow?name={}{version_link}\">{}</a> {}</h1>",
        escape(&summary.id),
        encode(&summary.workflow),
        escape(&summary.workflow),
        phase_badge(summary.phase)
    );
    body.push_str("<div class=\"columns\"><section class=\"machine-box\" id=\"machine\">");
    match &detail.machine {
        Some(machine) => {
            let terminal = summary.phase.is_terminal();
            let highlight = Highlight {
                current: Some(if terminal {
                    summary.phase.as_str()
                } else {
                    summary.state.as_str()
                }),
                stopped: (terminal && summary.phase != Phase::Completed)
                    .then_some(summary.state.as_str()),
                counts: None,
            };
            body.push_str(&svg::render(machine, &highlight));
            if detail.machine_source == Some(MachineSource::Stored) {
                body.push_str("<p class=\"muted\" id=\"stored-machine\">Drawn from the description a runtime stored (the workflow is not registered in this tool).</p>");
            } else if detail.fingerprint_matches == Some(false) {
                body.push_str("<p class=\"error\">This instance was started on another version of the workflow (another fingerprint): the drawing is the registered version's.</p>");
            }
        }
        None => {
            let _ = write!(
                body,
                "<p class=\"notice\" id=\"no-machine\">Workflow <b>{}</b> is not registered in this tool and the store holds no description of it, so its state machine cannot be drawn. \
                 A runtime that registers it stores one when it is built; or ship the tool in your binary with <code>sagaflow_cli::run(Registry::new().register({}))</code>.</p>",
                escape(&summary.workflow),
                escape(&summary.workflow)
            );
        }
    }
    body.push_str("</section><section id=\"details\"><table class=\"facts\" id=\"facts\"><tbody>");
    let mut fact = |name: &str, id: &str, value: String| {
        let _ = write!(body, "<tr><th>{name}</th><td id=\"{id}\">{value}</td></tr>");
    };
    fact("phase", "phase", phase_badge(summary.phase));
    fact("version", "version", format!("v{}", summary.version));
    let step = match (&summary.step, &detail.step_kind) {
        (Some(step), Some(kind)) => format!(
            " <span class=\"muted\">step {} · {}</span>",
            escape(step),
            escape(kind)
        ),
        (Some(wait), None) => format!(" <span class=\"muted\">{}</span>", escape(wait)),
        _ => String::new(),
    };
    fact(
        "state",
        "state",
        format!("{}{step}", escape(&summary.state)),
    );
    fact("attempt", "attempt", summary.attempt.to_string());
    if let Some(parent) = &summary.parent {
        fact("parent", "parent", escape(parent));
    }
    if !summary.children.is_empty() {
        fact("children", "children", escape(&summary.children.join(", ")));
    }
    if let Some(child) = &summary.awaiting_child {
        fact(
            "waits for",
            "awaiting-child",
            format!("child workflow <b>{}</b>", escape(child)),
        );
    }
    match (&summary.awaiting_signal, summary.next_run_at) {
        (Some(signal), Some(at)) => fact(
            "waits for",
            "awaiting-signal",
            format!(
                "signal <b>{}</b> until {} ({})",
                escape(signal),
                text::format_time(at),
                text::age(at, now)
            ),
        ),
        (Some(signal), None) => fact(
            "waits for",
            "awaiting-signal",
            format!("signal <b>{}</b>, no timeout", escape(signal)),
        ),
        (None, Some(at)) => fact(
            if summary.awaiting_child.is_some() {
                "re-check"
            } else {
                "next run"
            },
            "next-run",
            format!("{} ({})", text::format_time(at), text::age(at, now)),
        ),
        (None, None) => {}
    }
    if let Some(status) = &detail.status {
        fact(
            "status",
            "status",
            format!("<code>{}</code>", escape(&status.to_string())),
        );
    }
    for (name, messages) in &detail.inbox {
        for message in messages {
            fact(
                "signal received",
                &format!("inbox-{}", message.seq),
                format!(
                    "{} #{}: <code>{}</code>",
                    escape(name),
                    message.seq,
                    escape(&message.value.to_string())
                ),
            );
        }
    }
    fact(
        "pivot passed",
        "pivot",
        if summary.pivot_passed { "yes" } else { "no" }.to_owned(),
    );
    if summary.cancel_requested {
        fact("cancel", "cancel", "requested".to_owned());
    }
    if let Some(failure) = &summary.failure {
        fact(
            "failure",
            "failure",
            format!(
                "<span class=\"error\">{}</span>",
                escape(&failure.to_string())
            ),
        );
    }
    if let Some(error) = &summary.last_error {
        fact("last error", "last-error", escape(error));
    }
    if let Some(blocked) = &detail.blocked {
        fact(
            "blocked",
            "blocked",
            format!("<span class=\"error\">{}</span>", escape(blocked)),
        );
    }
    fact(
        "created",
        "created",
        format!(
            "{} ({})",
            text::format_time(summary.created_at),
            text::age(summary.created_at, now)
        ),
    );
    fact(
        "updated",
        "updated",
        format!(
            "{} ({})",
            text::format_time(summary.updated_at),
            text::age(summary.updated_at, now)
        ),
    );
    let lease = match &detail.lease.owner {
        Some(owner) if detail.lease_live => {
            format!("held by {} (epoch {})", escape(owner), detail.lease.epoch)
        }
        Some(owner) => format!(
            "free, last held by {} (epoch {})",
            escape(owner),
            detail.lease.epoch
        ),
        None => "free, never claimed".to_owned(),
    };
    fact("lease", "lease", lease);
    fact("fingerprint", "fingerprint", escape(&detail.fingerprint));
    body.push_str("</tbody></table>");

    body.push_str("<h2>Timeline</h2><table class=\"timeline\" id=\"timeline\"><thead><tr><th>time (UTC)</th><th>elapsed</th><th>event</th><th>step</th><th>state</th><th>attempt</th><th>took</th><th>error / note</th></tr></thead><tbody>");
    for entry in &detail.timeline {
        let kind = serde_json::to_value(entry.kind)
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_default();
        let _ = write!(
            body,
            "<tr class=\"event kind-{kind}\"><td title=\"{at}\">{clock}</td><td class=\"num\">+{elapsed}</td><td>{label}</td>\
             <td>{step}</td><td>{state}</td><td class=\"num\">{attempt}</td><td class=\"num\">{took}</td><td class=\"error\" title=\"{error}\">{shown}</td></tr>",
            at = text::format_time(entry.at),
            clock = text::time_of_day(entry.at),
            elapsed = text::format_duration_ms(entry.at.saturating_sub(summary.created_at)),
            label = text::event_label(entry.kind),
            step = escape(entry.step.as_deref().unwrap_or("")),
            state = escape(entry.state.as_deref().unwrap_or("")),
            attempt = entry.attempt.map(|a| a.to_string()).unwrap_or_default(),
            took = entry
                .duration_ms
                .map(text::format_duration_ms)
                .unwrap_or_default(),
            error = escape(
                entry
                    .error
                    .as_deref()
                    .or(entry.note.as_deref())
                    .unwrap_or("")
            ),
            shown = match (&entry.error, &entry.note) {
                (None, Some(note)) => escape(note),
                (error, _) => error_cell(error.as_deref().unwrap_or("")),
            },
        );
    }
    body.push_str("</tbody></table>");

    let _ = write!(
        body,
        "<h2>Variables stored in {}</h2>",
        escape(&summary.state)
    );
    if detail.variables.is_empty() {
        body.push_str("<p class=\"muted\">none</p>");
    } else {
        body.push_str("<table id=\"variables\"><tbody>");
        for variable in &detail.variables {
            let pretty = serde_json::to_string_pretty(&variable.value).unwrap_or_default();
            let _ = write!(
                body,
                "<tr><th>{}<br><span class=\"muted\">{}</span></th><td><pre>{}</pre></td></tr>",
                escape(&variable.name),
                escape(variable.ty.as_deref().unwrap_or("")),
                escape(&pretty)
            );
        }
        body.push_str("</tbody></table>");
    }
    if let Some(output) = &detail.output {
        let pretty = serde_json::to_string_pretty(output).unwrap_or_default();
        let _ = write!(
            body,
            "<h2>Output</h2><pre id=\"output\">{}</pre>",
            escape(&pretty)
        );
    }
    body.push_str("<h2>Compensation stack</h2>");
    if detail.compensation_stack.is_empty() {
        body.push_str("<p class=\"muted\" id=\"compensation-stack\">empty</p>");
    } else {
        body.push_str("<table id=\"compensation-stack\"><thead><tr><th>#</th><th>step</th><th>args</th><th>output</th></tr></thead><tbody>");
        for (index, entry) in detail.compensation_stack.iter().enumerate() {
            let _ = write!(
                body,
                "<tr><td class=\"num\">{}</td><td>{}</td><td><pre>{}</pre></td><td><pre>{}</pre></td></tr>",
                index + 1,
                escape(&entry.step),
                escape(&serde_json::to_string(&entry.args).unwrap_or_default()),
                escape(&serde_json::to_string(&entry.output).unwrap_or_default())
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section></div>");
    body
}

/// Characters of an error shown before it folds into an expandable cell.
const ERROR_PREVIEW: usize = 160;

/// A timeline error: as it is when short, else its start, the whole text a
/// click away (`<details>`; the cell's title has it too).
fn error_cell(error: &str) -> String {
    if error.chars().count() <= ERROR_PREVIEW {
        return escape(error);
    }
    format!(
        "<details><summary>{}</summary>{}</details>",
        escape(&text::truncate(error, ERROR_PREVIEW)),
        escape(error)
    )
}

#[derive(Debug, Deserialize)]
struct WorkflowQuery {
    name: String,
    /// A version's fingerprint (16 hex digits); the newest version without.
    fingerprint: Option<String>,
}

/// `/workflow?name=[&fingerprint=]`: a version's machine (the newest, or the
/// one with that fingerprint) with how many of its instances sit where.
async fn workflow(State(admin): State<Admin>, Query(params): Query<WorkflowQuery>) -> Response {
    let fingerprint = match params
        .fingerprint
        .as_deref()
        .filter(|text| !text.is_empty())
    {
        None => None,
        Some(text) => match sagaflow::record::parse_fingerprint(text) {
            Some(fingerprint) => Some(fingerprint),
            None => {
                let error = AdminError::Invalid(format!(
                    "`{text}` is not a fingerprint (16 hex digits, as `sagaflow versions` prints)"
                ));
                return error_page(&admin, &error).await;
            }
        },
    };
    let known = match fingerprint {
        None => admin.machine(&params.name).await,
        Some(fingerprint) => admin.version_machine(&params.name, fingerprint).await,
    };
    let machine = match known {
        Ok(known) => known.machine,
        Err(error) => return error_page(&admin, &error).await,
    };
    let counts = match admin.count_states(&machine, |_| {}).await {
        Ok(counts) => counts,
        Err(error) => return error_page(&admin, &error).await,
    };
    let mut body = format!(
        "<h1>{} <span class=\"muted\" id=\"version\">v{} · fingerprint {}</span></h1>\
         <p class=\"muted\">Badges count the instances of this version in each state. \
         <a href=\"/?workflow={}\">List them</a>.</p><section class=\"machine-box\" id=\"machine\">",
        escape(&machine.workflow),
        machine.version,
        sagaflow::record::format_fingerprint(machine.fingerprint),
        encode(&machine.workflow)
    );
    body.push_str(&svg::render(
        &machine,
        &Highlight {
            counts: Some(&counts),
            ..Highlight::default()
        },
    ));
    body.push_str("</section>");
    if counts.other_fingerprint > 0 {
        let _ = write!(
            body,
            "<p class=\"notice\" id=\"other-versions\">{} instance(s) of other versions of this workflow (other fingerprints) are not counted: see <a href=\"/versions\">versions</a>.</p>",
            counts.other_fingerprint
        );
    }
    page(&admin, &machine.workflow, &body).await.into_response()
}

/// Stranded instances linked per group on `/versions` before `and N more`.
const STRANDED_LINKS: usize = 100;

/// `/versions`: what `sagaflow versions` prints, read-only (`sagaflow
/// upgrade` stays a command), each version linking to its machine and the
/// stranded instances to their pages.
async fn versions(State(admin): State<Admin>) -> Response {
    let report = match admin.versions(None).await {
        Ok(report) => report,
        Err(error) => return error_page(&admin, &error).await,
    };
    let now = now_ms();
    let mut body = String::from(
        "<h1>Versions</h1><p class=\"muted\">Each version (machine fingerprint) of each \
         workflow, with its instances. A version has <em>drained</em> when no unfinished \
         instance needs its code any more: it can then be deleted. Instances that \
         <em>move</em> go to another version at their next claim; \
         <code>sagaflow upgrade --dry-run</code> says what becomes of each, and \
         <code>sagaflow upgrade</code> moves them now.</p>",
    );
    if admin.registry().is_empty() {
        body.push_str(
            "<p class=\"notice\" id=\"bare\">This tool registers no workflows: it shows the \
             versions the store knows, and cannot tell what a runtime with your code makes of \
             the unfinished instances (they count as stranded here). Ship the tool in your \
             binary with your versions and migrations registered to see that.</p>",
        );
    }
    if report.workflows.is_empty() {
        body.push_str(
            "<p class=\"muted\" id=\"no-versions\">No instances in the store, and no workflows \
             registered here or described in the store.</p>",
        );
    }
    for known in &report.workflows {
        let _ = write!(
            body,
            "<h2><a href=\"/workflow?name={}\">{}</a></h2><table class=\"versions\" data-workflow=\"{}\"><thead><tr>\
             <th>version</th><th>fingerprint</th><th>code</th><th>upgrade</th><th>instances</th>\
             <th>unfinished</th><th>oldest unfinished</th><th>moving</th><th>stranded</th><th>drained</th>\
             </tr></thead><tbody>",
            encode(&known.workflow),
            escape(&known.workflow),
            escape(&known.workflow)
        );
        for version in &known.versions {
            let fingerprint = sagaflow::record::format_fingerprint(version.fingerprint);
            let oldest = version
                .oldest_unfinished
                .as_ref()
                .map_or_else(String::new, |(id, at)| {
                    format!(
                        "<a href=\"/instance?id={}\">{}</a> <span class=\"muted\" title=\"{}\">{}</span>",
                        encode(id),
                        escape(id),
                        text::format_time(*at),
                        text::age(*at, now)
                    )
                });
            // Drawable when registered here or described in the store.
            let drawn = if version.registered || version.described {
                format!(
                    "<a href=\"/workflow?name={}&amp;fingerprint={fingerprint}\">v{}</a>",
                    encode(&known.workflow),
                    version.version
                )
            } else {
                format!("v{}", version.version)
            };
            let _ = write!(
                body,
                "<tr class=\"version\" data-version=\"{v}\" data-fingerprint=\"{fingerprint}\"><td>{drawn}</td><td><code>{fingerprint}</code></td>\
                 <td class=\"code\">{code}</td><td class=\"upgrade\">{upgrade}</td><td class=\"instances\">{phases}</td>\
                 <td class=\"num unfinished\">{unfinished}</td><td>{oldest}</td>\
                 <td class=\"num moving\">{moving}</td><td class=\"num stranded{stranded_class}\">{stranded}</td>\
                 <td class=\"drained\">{drained}</td></tr>",
                v = version.version,
                code = text::version_code(version),
                upgrade = version
                    .upgrade
                    .map_or("-", sagaflow::machine::Upgrade::as_str),
                phases = escape(&text::phase_counts(&version.counts)),
                unfinished = version.unfinished(),
                moving = version.moving,
                stranded = version.stranded.len(),
                stranded_class = if version.stranded.is_empty() {
                    ""
                } else {
                    " error"
                },
                drained = if version.drained() { "yes" } else { "no" },
            );
        }
        body.push_str("</tbody></table>");
    }
    // The stranded instances, grouped by version and reason.
    let groups = text::stranded_groups(&report);
    if !groups.is_empty() {
        body.push_str(
            "<h2 class=\"error\" id=\"stranded\">Stranded</h2><p class=\"muted\">No version \
             registered here can run these instances.</p><ul class=\"stranded\">",
        );
        for group in &groups {
            let mut links: Vec<String> = group
                .ids
                .iter()
                .take(STRANDED_LINKS)
                .map(|id| {
                    format!(
                        "<a href=\"/instance?id={}\" data-id=\"{}\">{}</a>",
                        encode(id),
                        escape(id),
                        escape(id)
                    )
                })
                .collect();
            if group.ids.len() > STRANDED_LINKS {
                links.push(format!(
                    "and {} more (<code>sagaflow versions --json</code> lists them all)",
                    group.ids.len() - STRANDED_LINKS
                ));
            }
            let _ = write!(
                body,
                "<li data-workflow=\"{}\" data-version=\"{}\">{} <span class=\"muted\">({} v{})</span>: <span class=\"error\">{}</span></li>",
                escape(group.workflow),
                group.version,
                links.join(", "),
                escape(group.workflow),
                group.version,
                escape(group.reason)
            );
        }
        body.push_str("</ul>");
    }
    if !report.undecodable.is_empty() {
        body.push_str("<h2 class=\"error\">Records that cannot be decoded</h2><table id=\"undecodable\"><thead><tr><th>key</th><th>why</th></tr></thead><tbody>");
        for (id, reason) in &report.undecodable {
            let _ = write!(
                body,
                "<tr><td>{}</td><td class=\"error\">{}</td></tr>",
                escape(&sagaflow::record::key(id)),
                escape(reason)
            );
        }
        body.push_str("</tbody></table>");
    }
    page(&admin, "versions", &body).await.into_response()
}
