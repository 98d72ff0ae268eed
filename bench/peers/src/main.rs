//! sagaflow against two other durable-workflow systems on one machine and
//! one PostgreSQL server: the seed's order saga (reserve → charge, both
//! compensable → ship, the pivot → confirm, retriable) with trivial step
//! bodies, N workflows started at once and each awaited to its outcome.
//!
//! ```text
//! cargo run --release --manifest-path bench/peers/Cargo.toml -- \
//!     [--only sagaflow,dbos,temporal] [--rounds 3] [--n 2000] [--n-temporal 500]
//! ```
//!
//! - **sagaflow**: `PostgresStore` on the table `sagaflow_peers` (emptied
//!   before each round), the runtime's default settings.
//! - **dbos**: the `dbos` crate, its system database `dbos_peers` on the same
//!   server (created by DBOS if missing; its workflow tables emptied before
//!   each round), default settings.
//! - **temporal**: the `temporalio-sdk` worker and client against a Temporal
//!   server at `TEMPORAL_ADDRESS` (default `http://127.0.0.1:7233`), e.g.
//!   `temporal server start-dev --headless`; default worker settings.
//!
//! Rounds are interleaved (sagaflow, dbos, temporal, sagaflow, ...), each on
//! a fresh runtime / DBOS instance / Temporal worker, after one untimed
//! warm-up workflow. A system that cannot be set up is reported as
//! `skipped: <why>` and the others still run; a round that fails prints its
//! error and no figure.

/// The allocator of sagaflow's own bench, under all three systems alike.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod dbos_saga;
mod sagaflow_saga;
mod temporal_saga;

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The order every system's saga runs on: its number in the round.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Order {
    /// The order's number, `0..N` in a round.
    pub id: u32,
}

/// The PostgreSQL server of sagaflow's store and DBOS's system database.
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// The Temporal frontend the bench connects to.
const DEFAULT_TEMPORAL_ADDRESS: &str = "http://127.0.0.1:7233";
/// The longest one round may take before it is reported as failed.
const ROUND_TIMEOUT: Duration = Duration::from_secs(600);

/// The systems under test, in the order their rounds interleave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum System {
    Sagaflow,
    Dbos,
    Temporal,
}

impl System {
    const ALL: [System; 3] = [System::Sagaflow, System::Dbos, System::Temporal];

    fn name(self) -> &'static str {
        match self {
            System::Sagaflow => "sagaflow",
            System::Dbos => "dbos",
            System::Temporal => "temporal",
        }
    }

    fn parse(name: &str) -> Result<System, String> {
        System::ALL
            .into_iter()
            .find(|system| system.name() == name.trim())
            .ok_or_else(|| format!("--only takes sagaflow, dbos, temporal; not {name:?}"))
    }
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so that `{:<9}` aligns the names.
        f.pad(self.name())
    }
}

/// What the command line and the environment asked for.
struct Options {
    systems: Vec<System>,
    rounds: usize,
    /// Workflows per round, per system in [`System::ALL`]'s order.
    counts: [usize; 3],
    postgres_url: String,
    temporal_address: String,
}

/// What `--help` prints.
const USAGE: &str = "\
usage: sagaflow-peers [--only sagaflow,dbos,temporal] [--rounds N] [--n N]
                      [--n-sagaflow N] [--n-dbos N] [--n-temporal N]
  --only LIST       the systems to run (default: all three)
  --rounds N        rounds per system, interleaved (default 3)
  --n N             workflows started at once per round, for every system
                    (defaults: sagaflow 2000, dbos 2000, temporal 500)
  --n-sagaflow N, --n-dbos N, --n-temporal N
                    the same for one system, over --n
environment: SAGAFLOW_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test),
             TEMPORAL_ADDRESS (default http://127.0.0.1:7233)";

impl Options {
    fn parse() -> Result<Options, String> {
        let mut options = Options {
            systems: System::ALL.to_vec(),
            rounds: 3,
            counts: [2_000, 2_000, 500],
            postgres_url: std::env::var("SAGAFLOW_POSTGRES_URL")
                .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned()),
            temporal_address: std::env::var("TEMPORAL_ADDRESS")
                .unwrap_or_else(|_| DEFAULT_TEMPORAL_ADDRESS.to_owned()),
        };
        let mut all: Option<usize> = None;
        let mut one: [Option<usize>; 3] = [None; 3];
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            if flag == "--help" || flag == "-h" {
                println!("{USAGE}");
                std::process::exit(0);
            }
            let value = args
                .next()
                .ok_or_else(|| format!("{flag} needs a value\n\n{USAGE}"))?;
            let number = || match value.parse::<usize>() {
                Ok(number) if number > 0 && number <= u32::MAX as usize => Ok(number),
                _ => Err(format!("{flag} {value}: not a positive number")),
            };
            match flag.as_str() {
                "--only" => {
                    options.systems = value
                        .split(',')
                        .map(System::parse)
                        .collect::<Result<_, _>>()?;
                }
                "--rounds" => options.rounds = number()?,
                "--n" => all = Some(number()?),
                "--n-sagaflow" => one[0] = Some(number()?),
                "--n-dbos" => one[1] = Some(number()?),
                "--n-temporal" => one[2] = Some(number()?),
                _ => return Err(format!("unknown flag {flag}\n\n{USAGE}")),
            }
        }
        for (count, one) in options.counts.iter_mut().zip(one) {
            if let Some(given) = one.or(all) {
                *count = given;
            }
        }
        Ok(options)
    }

    /// Workflows per round of `system`.
    fn count(&self, system: System) -> usize {
        let index = System::ALL
            .iter()
            .position(|&s| s == system)
            .expect("every system is in System::ALL");
        self.counts[index]
    }
}

/// One set-up system, ready to run rounds.
enum Contender {
    Sagaflow(sagaflow_saga::Bench),
    Dbos(dbos_saga::Bench),
    Temporal(temporal_saga::Bench),
}

impl Contender {
    /// Connects `system` to its servers, or says why it cannot run.
    fn set_up(
        system: System,
        options: &Options,
        tokio: &tokio::runtime::Runtime,
    ) -> Result<Contender, String> {
        Ok(match system {
            System::Sagaflow => Contender::Sagaflow(
                tokio.block_on(sagaflow_saga::Bench::set_up(&options.postgres_url))?,
            ),
            System::Dbos => {
                Contender::Dbos(tokio.block_on(dbos_saga::Bench::set_up(&options.postgres_url))?)
            }
            System::Temporal => Contender::Temporal(temporal_saga::Bench::set_up(
                &options.temporal_address,
                tokio,
            )?),
        })
    }

    /// Runs round `round`: `count` workflows at once; the wall time from the
    /// first start to the last outcome.
    fn round(
        &mut self,
        tokio: &tokio::runtime::Runtime,
        count: usize,
        round: usize,
    ) -> Result<Duration, String> {
        match self {
            Contender::Sagaflow(bench) => {
                tokio.block_on(timed(bench.round(count, round), "the round"))
            }
            Contender::Dbos(bench) => tokio.block_on(timed(bench.round(count, round), "the round")),
            Contender::Temporal(bench) => bench.round(tokio, count, round),
        }
    }
}

/// `future`, failed with a message if it takes longer than [`ROUND_TIMEOUT`].
async fn timed<T>(
    future: impl Future<Output = Result<T, String>>,
    what: &str,
) -> Result<T, String> {
    tokio::time::timeout(ROUND_TIMEOUT, future)
        .await
        .unwrap_or_else(|_| Err(format!("{what} took longer than {ROUND_TIMEOUT:?}")))
}

/// Where a system stands: running with its rates so far, or skipped.
struct Entry {
    system: System,
    contender: Option<Contender>,
    skipped: Option<String>,
    rates: Vec<f64>,
    failures: Vec<String>,
}

/// The machine's load averages (1, 5, 15 min), where the system tells them:
/// other work on the cores changes every figure here.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|line| {
            line.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The median of `values`, if there are any.
fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[middle]),
        _ => Some((sorted[middle - 1] + sorted[middle]) / 2.0),
    }
}

fn main() {
    let options = match Options::parse() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    // As sagaflow's own bench: two tokio workers, one per core.
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    println!(
        "peer bench: four-step order saga, trivial steps; {} cores, tokio multi-thread with 2 \
         workers, mimalloc; {} rounds, interleaved",
        std::thread::available_parallelism().map_or(0, usize::from),
        options.rounds
    );
    println!(
        "PostgreSQL: {}; Temporal: {}; load average before: {}",
        options.postgres_url,
        options.temporal_address,
        load_average()
    );
    let counts: Vec<String> = options
        .systems
        .iter()
        .map(|&system| format!("{system} {}", options.count(system)))
        .collect();
    println!("workflows started at once per round: {}", counts.join(", "));

    let mut entries: Vec<Entry> = Vec::new();
    for &system in &options.systems {
        if entries.iter().any(|entry| entry.system == system) {
            continue;
        }
        let (contender, skipped) = match Contender::set_up(system, &options, &tokio) {
            Ok(contender) => (Some(contender), None),
            Err(why) => {
                println!("{system:<9} skipped: {why}");
                (None, Some(why))
            }
        };
        entries.push(Entry {
            system,
            contender,
            skipped,
            rates: Vec::new(),
            failures: Vec::new(),
        });
    }

    for round in 1..=options.rounds {
        for entry in &mut entries {
            let Some(contender) = entry.contender.as_mut() else {
                continue;
            };
            let count = options.count(entry.system);
            match contender.round(&tokio, count, round) {
                Ok(wall) => {
                    let rate = count as f64 / wall.as_secs_f64();
                    println!(
                        "{:<9} round {round}: {count:>6} workflows in {:>7.3} s = {rate:>9.1} workflows/s",
                        entry.system,
                        wall.as_secs_f64()
                    );
                    entry.rates.push(rate);
                }
                Err(why) => {
                    println!("{:<9} round {round}: failed: {why}", entry.system);
                    entry.failures.push(why);
                }
            }
        }
    }

    println!(
        "\nmedians (workflows/s; each workflow is four steps); load average after: {}",
        load_average()
    );
    let mut medians: Vec<(System, f64)> = Vec::new();
    for entry in &entries {
        let count = options.count(entry.system);
        if let Some(why) = &entry.skipped {
            println!("  {:<9} skipped: {why}", entry.system);
            continue;
        }
        match median(&entry.rates) {
            Some(median) => {
                println!(
                    "  {:<9} {median:>9.1} workflows/s  ({} at once; {} of {} rounds; range {:.1}-{:.1})",
                    entry.system,
                    count,
                    entry.rates.len(),
                    options.rounds,
                    entry.rates.iter().copied().fold(f64::INFINITY, f64::min),
                    entry.rates.iter().copied().fold(0.0, f64::max),
                );
                medians.push((entry.system, median));
            }
            None => println!(
                "  {:<9} no figure: every round failed ({})",
                entry.system,
                entry.failures.first().map_or("", String::as_str)
            ),
        }
    }
    let median_of = |system: System| {
        medians
            .iter()
            .find(|(s, _)| *s == system)
            .map(|&(_, median)| median)
    };
    if let Some(ours) = median_of(System::Sagaflow) {
        for peer in [System::Dbos, System::Temporal] {
            if let Some(theirs) = median_of(peer) {
                println!("  sagaflow/{peer}: {:.1}x", ours / theirs);
            }
        }
    }
}
