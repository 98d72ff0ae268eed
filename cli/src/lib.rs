//! The operator's tool: "where did it stop?", answered from the store.
//!
//! `sagaflow` (the `sagaflow-cli` crate's binary) opens any store by URL and
//! lists, shows, cancels and retries instances, and serves a read-only web
//! view. It reads records as JSON, so it needs none of your code, and it
//! draws state machines (with how many instances sit in each state) from the
//! descriptions every runtime stores of the machines it registers
//! ([`MachineDescription`] under
//! `machines/{workflow}/{fingerprint}`). Ship the same tool inside your own
//! binary with your workflows registered and it also checks that stored
//! states decode, and draws workflows no runtime stored yet:
//!
//! ```no_run
//! use sagaflow_cli::Registry;
//! # use sagaflow_examples::{coffee::coffee_order, order::place_order};
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     sagaflow_cli::run(Registry::new().register(place_order).register(coffee_order)).await
//! }
//! ```
//!
//! ```text
//! $ ops --store embedded:./sagaflow.db list --phase failed
//! $ ops --store postgres://app@db/app show order-42
//! $ ops --store redis://127.0.0.1 retry order-42
//! $ ops --store redis://127.0.0.1 signal approval-7 approval '{"approved":true,"by":"ops"}'
//! $ ops graph place_order --format mermaid
//! $ ops --store postgres://app@db/app versions --workflow place_order
//! $ ops --store postgres://app@db/app upgrade --dry-run
//! $ ops --store etcd://10.0.0.1:2379,10.0.0.2:2379 ui --listen 127.0.0.1:8080
//! ```
//!
//! Around a deploy, `versions` says which versions of each workflow still
//! have instances (and which have drained, so their code can go), and
//! `upgrade [--dry-run]` what becomes of each unfinished instance under the
//! versions and migrations registered in the tool
//! (`Registry::new().register(v1::place_order).register(place_order).migrate(v1_to_v2)`),
//! moving them now instead of at their next claim.
//!
//! Everything the commands do is also a library API: [`Admin`] (list, show,
//! cancel, retry, signal, state counts, versions, upgrade, on an
//! `Arc<dyn Store>` and a [`Registry`]),
//! [`open_store`] and [`router`] / [`serve`] for the web view.
//!
//! Output: aligned columns for a person, with colours only on a terminal
//! (never with `NO_COLOR` set, or `--color never`); `--json` for scripts;
//! progress of long listings on stderr when it is a terminal; errors on
//! stderr with exit code 1 (2 for a wrong command line).

#![warn(missing_docs)]

pub mod access;
mod admin;
mod schedule;
mod store_url;
mod svg;
mod text;
mod web;

use std::ffi::OsString;
use std::io::{IsTerminal as _, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

pub use admin::{
    Admin, AdminError, CancelOutcome, InstanceDetail, InstanceList, InstanceSummary, KnownMachine,
    ListQuery, MachineSource, Registry, RetryOutcome, StateCounts, StoredVariable, TimelineEntry,
    Undecodable,
};
pub use store_url::open_store;
pub use svg::{Highlight, render as render_svg};
pub use web::{router, router_with_token, serve, serve_with_token};

use sagaflow::machine::MachineDescription;
use sagaflow::record::Phase;
use text::Style;

// The guide's page on this tool: its examples compile as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/cli.md")]
struct CliGuide;

/// Inspect and repair sagaflow instances in a store.
#[derive(Debug, Parser)]
#[command(name = "sagaflow", version, about, long_about = None)]
struct Cli {
    /// The store: embedded:PATH, postgres://…, redis://…, etcd://host:port[,host:port]
    #[arg(long, short, env = "SAGAFLOW_STORE", global = true, value_name = "URL")]
    store: Option<String>,
    /// Print JSON instead of text, for scripts.
    #[arg(long, global = true)]
    json: bool,
    /// When to use colours.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true)]
    color: ColorChoice,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ColorChoice {
    /// On a terminal, unless NO_COLOR is set.
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List instances, newest first.
    List(ListArgs),
    /// Show one instance: phase, state, variables, compensation stack, timeline.
    Show {
        /// The instance id.
        id: String,
    },
    /// Cancel an instance: it stops before its next step and compensates.
    Cancel {
        /// The instance id.
        id: String,
    },
    /// Re-run a Failed instance once its cause is fixed.
    ///
    /// Failed after its pivot: back to Running at the state it stopped at,
    /// attempt 1. Failed while compensating: back to Compensating, so its
    /// remaining compensations run again. A worker runtime with the
    /// workflow registered picks it up at its next poll.
    Retry {
        /// The instance id.
        id: String,
    },
    /// Send a signal to an instance: recorded in its inbox, consumed by its
    /// next wait for that name.
    Signal {
        /// The instance id.
        id: String,
        /// The signal's name.
        name: String,
        /// The signal's payload, as JSON.
        payload: String,
    },
    /// Draw a workflow's state machine, with how many instances sit in each
    /// state when a store is given. The machine is the one registered in this
    /// tool, else the description a runtime that registers the workflow
    /// stored (so the bare binary draws from the store alone). With
    /// several versions, the newest; `--fingerprint` picks another (see
    /// `sagaflow versions`).
    Graph {
        /// The workflow's name.
        workflow: String,
        /// The version to draw, by its fingerprint (16 hex digits).
        #[arg(long, value_name = "HEX")]
        fingerprint: Option<String>,
        /// The diagram's language.
        #[arg(long, short, value_enum, default_value_t = GraphFormat::Mermaid)]
        format: GraphFormat,
    },
    /// List the workflows this tool knows (every version) and, with a
    /// store, those whose machines runtimes described in it.
    Workflows,
    /// Per workflow, each version (fingerprint) in the store or registered
    /// here: whether this tool has its code, its upgrade policy, instances
    /// by phase, the oldest unfinished one, how many move to another
    /// version at their next claim, and whether it has drained (no
    /// unfinished instance needs its code: it can go). Then the stranded
    /// instances (no registered version can run them) with why, and the
    /// records that cannot be decoded.
    ///
    /// The bare `sagaflow` binary registers no workflows: it shows the
    /// versions the store knows (from the machine descriptions runtimes
    /// stored and from the records), and every unfinished instance as
    /// stranded as far as it knows; ship the tool in your binary with your
    /// versions and migrations registered to see what your code makes of them.
    ///
    /// `--json` prints:
    /// `{"workflows": [{"workflow": NAME, "versions": [{"version": N,
    /// "fingerprint": "16 hex digits", "registered": bool, "newest": bool,
    /// "described": bool, "upgrade": "pinned" | "auto" | null,
    /// "counts": {"Waiting": n, ..}, "unfinished": n,
    /// "oldest_unfinished": {"id": ID, "created_at": ms} | null,
    /// "moving": n, "stranded": [{"id": ID, "reason": TEXT}],
    /// "drained": bool}]}], "undecodable": [{"key": KEY, "reason": TEXT}]}`,
    /// workflows by name, versions oldest first.
    Versions {
        /// Only this workflow.
        #[arg(long, short)]
        workflow: Option<String>,
    },
    /// Say what becomes of each unfinished instance under the versions and
    /// migrations registered in this tool, and, without `--dry-run`, do it
    /// now instead of at each instance's next claim.
    ///
    /// Per instance: `stays on v1` (and why, when a newer version would take
    /// it but cannot), `moves to v2 (automatic upgrade)` (with what changed
    /// compatibly), `migrates to v4 by v1_to_v4 at Signal2`, `not migrated:
    /// REASON (stays on v1 | stranded)`, `stranded: REASON`, or `leased by
    /// OWNER: decided at its next claim`; each change written is marked
    /// `done`. A move or migration is one compare-and-swap of a record no
    /// runtime holds the lease of; nothing else is written.
    ///
    /// The bare `sagaflow` binary registers no workflows, so it changes
    /// nothing and can only report the unfinished instances as stranded:
    /// run `upgrade` from your binary (`sagaflow_cli::run` with your
    /// versions and migrations registered).
    ///
    /// `--json` prints: `{"dry_run": bool, "instances": [{"id": ID,
    /// "workflow": NAME, "version": N, "fingerprint": "16 hex digits",
    /// "state": STATE, "action": {"action": "stays", "why": TEXT | null} |
    /// {"action": "moves", "to": N, "kind": TEXT, "notes": [TEXT]} |
    /// {"action": "migrates", "migration": NAME, "to": N, "state": STATE} |
    /// {"action": "not_migrated", "migration": NAME, "reason": TEXT,
    /// "stays": bool} | {"action": "stranded", "reason": TEXT} |
    /// {"action": "leased", "owner": OWNER}, "text": TEXT, "applied": bool}],
    /// "counts": {"moves": n, ..}, "written": n,
    /// "undecodable": [{"key": KEY, "reason": TEXT}]}`, instances by id.
    /// The exit code is 0 whatever becomes of the instances.
    Upgrade {
        /// Say what would happen; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Only this workflow's instances.
        #[arg(long, short)]
        workflow: Option<String>,
    },
    /// The schedules in the store: list, show, pause, unpause, trigger,
    /// backfill, delete. Triggers and backfills are started by a worker
    /// runtime that registers the schedule's workflow.
    Schedule {
        #[command(subcommand)]
        command: schedule::ScheduleCommand,
    },
    /// Serve a read-only web view of the store.
    ///
    /// On a loopback address (the default) anyone on this machine may read
    /// it; on any other address it needs a token: a browser signs in with
    /// any user name and the token as the password, a script sends
    /// `Authorization: Bearer TOKEN`.
    Ui {
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
        listen: String,
        /// The secret a client must show (at least 16 characters); required
        /// beyond loopback.
        #[arg(
            long,
            env = "SAGAFLOW_UI_TOKEN",
            hide_env_values = true,
            value_name = "TOKEN"
        )]
        token: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    /// Only instances of this workflow.
    #[arg(long, short)]
    workflow: Option<String>,
    /// Only instances in these phases (comma-separated or repeated).
    #[arg(long, short, value_enum, value_delimiter = ',', ignore_case = true)]
    phase: Vec<PhaseArg>,
    /// Only instances created before this: an age (`1h`, `2days`) or a time
    /// (`2025-01-31T12:00:00Z`).
    #[arg(long, value_name = "AGE|TIME")]
    older_than: Option<String>,
    /// Only instances created after this: an age or a time.
    #[arg(long, value_name = "AGE|TIME")]
    newer_than: Option<String>,
    /// At most this many instances (0: all).
    #[arg(long, short, default_value_t = 50)]
    limit: usize,
    /// Continue after this instance id (the `next page` of the last listing).
    #[arg(long, value_name = "ID")]
    after: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum PhaseArg {
    Running,
    Waiting,
    Compensating,
    Completed,
    Compensated,
    Failed,
}

impl From<PhaseArg> for Phase {
    fn from(phase: PhaseArg) -> Phase {
        match phase {
            PhaseArg::Running => Phase::Running,
            PhaseArg::Waiting => Phase::Waiting,
            PhaseArg::Compensating => Phase::Compensating,
            PhaseArg::Completed => Phase::Completed,
            PhaseArg::Compensated => Phase::Compensated,
            PhaseArg::Failed => Phase::Failed,
        }
    }
}

/// The language of `graph`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum GraphFormat {
    Mermaid,
    Dot,
    Svg,
}

/// Where the tool writes, and what the terminal allows.
struct Io<'a> {
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
    /// Whether stdout is a terminal (colours in `auto`).
    out_terminal: bool,
    /// Whether stderr is a terminal (progress).
    err_terminal: bool,
}

/// Runs the tool on the process's arguments, stdout and stderr, knowing the
/// workflows of `registry`; returns the exit code.
///
/// ```no_run
/// # use sagaflow_examples::order::place_order;
/// #[tokio::main]
/// async fn main() -> std::process::ExitCode {
///     sagaflow_cli::run(sagaflow_cli::Registry::new().register(place_order)).await
/// }
/// ```
pub async fn run(registry: Registry) -> ExitCode {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let out_terminal = stdout.is_terminal();
    let err_terminal = stderr.is_terminal();
    let mut out = stdout.lock();
    let mut err = stderr.lock();
    let mut io = Io {
        out: &mut out,
        err: &mut err,
        out_terminal,
        err_terminal,
    };
    execute(std::env::args_os(), registry, &mut io).await
}

/// Runs the tool on `args` (the first is the program's name), writing to
/// `out` and `err` as to files: no colours unless `--color always`, no
/// progress. For tests and for embedding the commands in another tool.
pub async fn run_with<I, T>(
    args: I,
    registry: Registry,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let mut io = Io {
        out,
        err,
        out_terminal: false,
        err_terminal: false,
    };
    execute(args, registry, &mut io).await
}

async fn execute<I, T>(args: I, registry: Registry, io: &mut Io<'_>) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let exit = if error.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
            let rendered = if io.out_terminal {
                error.render().ansi().to_string()
            } else {
                error.render().to_string()
            };
            let target: &mut dyn Write = if error.use_stderr() {
                &mut *io.err
            } else {
                &mut *io.out
            };
            let _ = write!(target, "{rendered}");
            return exit;
        }
    };
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
    let style = Style {
        color: match cli.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => io.out_terminal && !no_color,
        },
    };
    let err_style = Style {
        color: match cli.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => io.err_terminal && !no_color,
        },
    };
    match command(cli, registry, style, io).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(io.err, "{} {error}", err_style.red("error:"));
            ExitCode::FAILURE
        }
    }
}

/// The write failed (a closed pipe): nothing more to say.
fn written(result: std::io::Result<()>) -> Result<(), AdminError> {
    result.map_err(|error| AdminError::Invalid(format!("cannot write the output: {error}")))
}

fn print_json(io: &mut Io<'_>, value: &impl serde::Serialize) -> Result<(), AdminError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|error| AdminError::Invalid(format!("cannot encode JSON: {error}")))?;
    written(writeln!(io.out, "{text}"))
}

/// `1h` (that long ago) or `2025-01-31T12:00:00Z`, as ms since the epoch.
fn parse_time(text: &str, now: u64) -> Result<u64, AdminError> {
    if let Ok(age) = humantime::parse_duration(text) {
        let age = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
        return Ok(now.saturating_sub(age));
    }
    if let Ok(time) = humantime::parse_rfc3339_weak(text) {
        let since = time
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        return Ok(u64::try_from(since.as_millis()).unwrap_or(u64::MAX));
    }
    Err(AdminError::Invalid(format!(
        "`{text}` is neither an age (`90s`, `1h`, `2days`) nor a time (`2025-01-31T12:00:00Z`)"
    )))
}

async fn admin(store: Option<&str>, registry: Registry) -> Result<Admin, AdminError> {
    let url = store.ok_or(AdminError::NoStore)?;
    Admin::open(url, registry).await
}

async fn command(
    cli: Cli,
    registry: Registry,
    style: Style,
    io: &mut Io<'_>,
) -> Result<(), AdminError> {
    let now = admin::now_ms();
    let store = cli.store.as_deref();
    match cli.command {
        Command::List(args) => {
            let query = ListQuery {
                workflow: args.workflow,
                phases: args.phase.into_iter().map(Phase::from).collect(),
                created_before: args
                    .older_than
                    .map(|text| parse_time(&text, now))
                    .transpose()?,
                created_after: args
                    .newer_than
                    .map(|text| parse_time(&text, now))
                    .transpose()?,
                after: args.after,
                limit: args.limit,
            };
            let admin = admin(store, registry).await?;
            let progress_shown = io.err_terminal;
            let mut shown = false;
            let list = {
                let err = &mut *io.err;
                admin
                    .list(&query, |read| {
                        // Only worth a line when the listing takes a while.
                        if progress_shown && read >= 1_000 {
                            let _ = write!(err, "\rread {read} records…");
                            shown = true;
                        }
                    })
                    .await?
            };
            if shown {
                let _ = write!(io.err, "\r\x1b[K");
            }
            if cli.json {
                print_json(io, &list)
            } else {
                written(write!(io.out, "{}", text::list(style, &list, now)))
            }
        }
        Command::Show { id } => {
            let detail = admin(store, registry).await?.show(&id).await?;
            if cli.json {
                print_json(io, &detail)
            } else {
                written(write!(io.out, "{}", text::show(style, &detail, now)))
            }
        }
        Command::Cancel { id } => {
            let outcome = admin(store, registry).await?.cancel(&id).await?;
            if cli.json {
                return print_json(io, &serde_json::json!({ "id": id, "cancel": outcome }));
            }
            let message = match outcome {
                CancelOutcome::Requested => format!(
                    "cancel of {id} recorded: it stops before its next step and compensates \
                     the steps it completed"
                ),
                CancelOutcome::AlreadyRequested => {
                    format!("cancel of {id} was already requested")
                }
                CancelOutcome::NothingToDo { phase } => format!(
                    "{id} is {phase}: {}",
                    if phase == Phase::Compensating {
                        "it is already rolling back"
                    } else {
                        "it has ended, nothing to cancel"
                    }
                ),
            };
            written(writeln!(io.out, "{message}"))
        }
        Command::Retry { id } => {
            let outcome = admin(store, registry).await?.retry(&id).await?;
            if cli.json {
                return print_json(io, &serde_json::json!({ "id": id, "retry": outcome }));
            }
            let message = match outcome {
                RetryOutcome::Resumed { state, step } => format!(
                    "{id} is Running again at {state}{}, attempt 1: a worker runtime with its \
                     workflow registered runs it at its next poll",
                    step.map_or_else(String::new, |step| format!(" (step {step})"))
                ),
                RetryOutcome::Compensating { step, remaining } => format!(
                    "{id} is Compensating again: {remaining} compensation{} to run, `{step}` \
                     first, on a worker runtime with its workflow registered",
                    if remaining == 1 { "" } else { "s" }
                ),
            };
            written(writeln!(io.out, "{message}"))
        }
        Command::Signal { id, name, payload } => {
            let payload: serde_json::Value = serde_json::from_str(&payload).map_err(|error| {
                AdminError::Invalid(format!("the signal's payload is not JSON: {error}"))
            })?;
            admin(store, registry)
                .await?
                .signal(&id, &name, payload.clone())
                .await?;
            if cli.json {
                return print_json(
                    io,
                    &serde_json::json!({ "id": id, "signal": name, "payload": payload }),
                );
            }
            written(writeln!(
                io.out,
                "signal `{name}` recorded for {id}: its next wait for `{name}` consumes it"
            ))
        }
        Command::Workflows => {
            let (machines, undecodable) = match store {
                Some(_) => admin(store, registry).await?.machines().await?,
                None => (
                    registry
                        .names()
                        .into_iter()
                        .flat_map(|name| registry.versions(name))
                        .map(|machine| KnownMachine {
                            machine: machine.describe(),
                            source: MachineSource::Registered,
                            registered_at: None,
                        })
                        .collect(),
                    Vec::new(),
                ),
            };
            if cli.json {
                let machines: Vec<serde_json::Value> = machines
                    .iter()
                    .map(|known| {
                        serde_json::json!({
                            "workflow": known.machine.workflow,
                            "version": known.machine.version,
                            "fingerprint": sagaflow::record::format_fingerprint(known.machine.fingerprint),
                            "states": known.machine.states.len(),
                            "source": known.source,
                            "registered_at": known.registered_at,
                        })
                    })
                    .collect();
                return print_json(
                    io,
                    &serde_json::json!({ "workflows": machines, "undecodable": undecodable }),
                );
            }
            if machines.is_empty() && undecodable.is_empty() {
                return written(writeln!(
                    io.out,
                    "this tool knows no workflows{}: ship it in your binary with \
                     sagaflow_cli::run(Registry::new().register(your_workflow))",
                    if store.is_some() {
                        " and the store describes none"
                    } else {
                        ""
                    }
                ));
            }
            let rows: Vec<Vec<text::Cell>> = machines
                .iter()
                .map(|known| {
                    vec![
                        text::Cell::plain(known.machine.workflow.clone()),
                        text::Cell::plain(format!("v{}", known.machine.version)),
                        text::Cell::plain(known.machine.states.len().saturating_sub(1).to_string()),
                        text::Cell::plain(sagaflow::record::format_fingerprint(
                            known.machine.fingerprint,
                        )),
                        text::Cell::plain(match (known.source, known.registered_at) {
                            (MachineSource::Registered, _) => "registered".to_owned(),
                            (MachineSource::Stored, Some(at)) => {
                                format!("stored {}", text::format_time(at))
                            }
                            (MachineSource::Stored, None) => "stored".to_owned(),
                        }),
                    ]
                })
                .collect();
            written(write!(
                io.out,
                "{}",
                text::table(
                    style,
                    &["WORKFLOW", "VERSION", "STEPS", "FINGERPRINT", "SOURCE"],
                    &rows
                )
            ))?;
            for bad in &undecodable {
                written(writeln!(
                    io.out,
                    "the machine description at `{}` cannot be decoded: {}",
                    bad.key, bad.reason
                ))?;
            }
            Ok(())
        }
        Command::Versions { workflow } => {
            let report = admin(store, registry)
                .await?
                .versions(workflow.as_deref())
                .await?;
            if cli.json {
                return print_json(io, &text::versions_json(&report));
            }
            written(write!(
                io.out,
                "{}",
                text::versions(style, &report, workflow.as_deref(), now)
            ))
        }
        Command::Upgrade { dry_run, workflow } => {
            let report = admin(store, registry)
                .await?
                .upgrade(workflow.as_deref(), dry_run)
                .await?;
            if cli.json {
                return print_json(io, &text::upgrade_json(&report, dry_run));
            }
            written(write!(
                io.out,
                "{}",
                text::upgrade(style, &report, workflow.as_deref(), dry_run)
            ))
        }
        Command::Graph {
            workflow,
            fingerprint,
            format,
        } => {
            let fingerprint = fingerprint
                .map(|text| {
                    sagaflow::record::parse_fingerprint(&text).ok_or_else(|| {
                        AdminError::Invalid(format!(
                            "`{text}` is not a fingerprint (16 hex digits, as `sagaflow versions` \
                             prints)"
                        ))
                    })
                })
                .transpose()?;
            graph(
                store,
                registry,
                &workflow,
                fingerprint,
                format,
                cli.json,
                io,
            )
            .await
        }
        Command::Schedule { command } => {
            let admin = admin(store, registry).await?;
            schedule::run(command, &admin, cli.json, style, now, io).await
        }
        Command::Ui { listen, token } => {
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .map_err(|error| {
                    AdminError::Invalid(format!("cannot listen on {listen}: {error}"))
                })?;
            let address = listener.local_addr().map_err(|error| {
                AdminError::Invalid(format!("cannot listen on {listen}: {error}"))
            })?;
            // Refused before the store is opened: nothing is served unguarded.
            access::check(address, token.as_deref())
                .map_err(|error| AdminError::Invalid(error.to_string()))?;
            let admin = admin(store, registry).await?;
            let guard = if token.is_some() {
                ", token required"
            } else {
                ""
            };
            written(writeln!(
                io.out,
                "serving a read-only view of the {} store on http://{address}/ (Ctrl-C stops it{guard})",
                admin.store_name()
            ))?;
            written(io.out.flush())?;
            let served = match token {
                Some(token) => serve_with_token(admin, listener, &token).await,
                None => serve(admin, listener).await,
            };
            served.map_err(|error| AdminError::Invalid(format!("the web view stopped: {error}")))
        }
    }
}

async fn graph(
    store: Option<&str>,
    registry: Registry,
    workflow: &str,
    fingerprint: Option<u64>,
    format: GraphFormat,
    json: bool,
    io: &mut Io<'_>,
) -> Result<(), AdminError> {
    // The machine comes from the registry, else (with a store) from the
    // description a runtime stored; counts only with a store.
    let (machine, counts) = match store {
        Some(url) => {
            let admin = Admin::open(url, registry).await?;
            let machine = match fingerprint {
                None => admin.machine(workflow).await?.machine,
                Some(fingerprint) => admin.version_machine(workflow, fingerprint).await?.machine,
            };
            let counts = admin.count_states(&machine, |_| {}).await?;
            (machine, Some(counts))
        }
        None => match fingerprint {
            Some(fingerprint) => match registry
                .versions(workflow)
                .into_iter()
                .find(|machine| machine.fingerprint() == fingerprint)
            {
                Some(machine) => (machine.describe(), None),
                None => {
                    return Err(AdminError::UnknownVersion {
                        workflow: workflow.to_owned(),
                        fingerprint: sagaflow::record::format_fingerprint(fingerprint),
                    });
                }
            },
            None => match registry.machine(workflow) {
                Some(machine) => (machine.describe(), None),
                None if registry.is_empty() => {
                    return Err(AdminError::NoWorkflows(workflow.to_owned()));
                }
                None => {
                    return Err(AdminError::UnknownWorkflow {
                        name: workflow.to_owned(),
                        known: registry.names().join(", "),
                    });
                }
            },
        },
    };
    let diagram = match format {
        GraphFormat::Mermaid => mermaid_with_counts(&machine, counts.as_ref()),
        GraphFormat::Dot => dot_with_counts(&machine, counts.as_ref()),
        GraphFormat::Svg => svg::render(
            &machine,
            &Highlight {
                counts: counts.as_ref(),
                ..Highlight::default()
            },
        ),
    };
    if json {
        return print_json(
            io,
            &serde_json::json!({ "workflow": workflow, "diagram": diagram, "counts": counts }),
        );
    }
    written(write!(io.out, "{diagram}"))
}

/// `2 running, 1 waiting`.
fn active_label(counts: &StateCounts, state: &str) -> Option<String> {
    let phases = counts.active.get(state)?;
    Some(
        phases
            .iter()
            .map(|(phase, n)| format!("{n} {}", phase.to_lowercase()))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

fn ended_labels(counts: &StateCounts) -> Vec<(&'static str, String)> {
    [Phase::Completed, Phase::Compensated, Phase::Failed]
        .into_iter()
        .filter(|phase| counts.ended(*phase) > 0)
        .map(|phase| {
            let n = counts.ended(phase);
            let mut label = format!("{n} {}", phase.as_str().to_lowercase());
            if phase == Phase::Failed && !counts.failed_at.is_empty() {
                let at: Vec<String> = counts
                    .failed_at
                    .iter()
                    .map(|(state, n)| format!("{n} at {state}"))
                    .collect();
                label.push_str(&format!(" ({})", at.join(", ")));
            }
            (phase.as_str(), label)
        })
        .collect()
}

/// `to_mermaid()` plus a note per state with instances in it.
fn mermaid_with_counts(machine: &MachineDescription, counts: Option<&StateCounts>) -> String {
    let mut out = machine.to_mermaid();
    let Some(counts) = counts else { return out };
    let start = machine.states.first().map(|state| state.name.as_str());
    for state in &machine.states {
        if let Some(label) = active_label(counts, &state.name) {
            if Some(state.name.as_str()) == start {
                // `[*]` takes no note: say it in a comment.
                out.push_str(&format!("    %% {label} at {}\n", state.name));
            } else {
                out.push_str(&format!("    note right of {} : {label}\n", state.name));
            }
        }
    }
    for (terminal, label) in ended_labels(counts) {
        out.push_str(&format!("    note right of {terminal} : {label}\n"));
    }
    if counts.other_fingerprint > 0 {
        out.push_str(&format!(
            "    %% {} instance(s) started on another fingerprint are not counted\n",
            counts.other_fingerprint
        ));
    }
    out
}

/// `to_dot()` plus an outside label and a fill on every state with instances.
fn dot_with_counts(machine: &MachineDescription, counts: Option<&StateCounts>) -> String {
    let mut out = machine.to_dot();
    let Some(counts) = counts else { return out };
    let mut extra = String::new();
    for state in &machine.states {
        if let Some(label) = active_label(counts, &state.name) {
            extra.push_str(&format!(
                "    {} [xlabel=\"{label}\", style=\"rounded,filled\", fillcolor=\"#fff3c4\"];\n",
                state.name
            ));
        }
    }
    for (terminal, label) in ended_labels(counts) {
        extra.push_str(&format!("    {terminal} [xlabel=\"{label}\"];\n"));
    }
    if counts.other_fingerprint > 0 {
        extra.push_str(&format!(
            "    // {} instance(s) started on another fingerprint are not counted\n",
            counts.other_fingerprint
        ));
    }
    if out.ends_with("}\n") {
        out.truncate(out.len() - 2);
        out.push_str(&extra);
        out.push_str("}\n");
    }
    out
}
