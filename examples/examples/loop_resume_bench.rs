//! Resume cost inside a long loop: a workflow loops 10,000 times over a step;
//! the states at iteration 10 and at iteration 9,990 are serialized, then
//! each is deserialized and resumed for one step, many times. The state
//! holds the loop's position, not its history, so both cost the same.
//!
//! ```text
//! cargo run --release -p sagaflow-examples --example loop_resume_bench
//! ```

use std::hint::black_box;
use std::time::Instant;

use sagaflow::__private::{Driver, Transition};
use sagaflow::prelude::*;

const ITERATIONS: u64 = 10_000;
const REPEATS: u32 = 2_000;
const RUNS: usize = 9;

/// A step per element: what one iteration waits on.
#[step(readonly)]
async fn weigh(parcel: u64) -> Result<u64, StepError> {
    Ok(parcel % 7)
}

/// Over a stored collection: the state holds the 10,000 parcels and the
/// position of the next one.
#[workflow]
async fn weigh_parcels(parcels: Vec<u64>) -> Result<u64, WorkflowError> {
    let mut total: u64 = 0;
    for parcel in parcels {
        let weight = weigh(parcel).await?;
        total += weight;
    }
    Ok(total)
}

/// Over a range: the state holds the rest of the range.
#[workflow]
async fn weigh_range(count: u64) -> Result<u64, WorkflowError> {
    let mut total: u64 = 0;
    for parcel in 0..count {
        let weight = weigh(parcel).await?;
        total += weight;
    }
    Ok(total)
}

/// Drives the workflow by hand, as the runtime would, and keeps the JSON of
/// the states at the given iterations (the n-th step state is iteration n).
async fn states_at<W: Workflow>(input: W::Input, wanted: &[u64]) -> Vec<String> {
    let mut state = W::begin(input);
    let mut iteration = 0;
    let mut saved = Vec::new();
    loop {
        if wanted.contains(&iteration) {
            saved.push(serde_json::to_string(&state).expect("a state serializes"));
        }
        let mut driver = Driver::new("bench", W::state_name(&state), 1);
        match W::resume(state, &mut driver).await {
            Transition::Next(next) => state = next,
            Transition::Complete(_) => return saved,
            _ => panic!("the bench workflow neither fails nor retries"),
        }
        iteration += 1;
    }
}

/// Mean time of deserializing `json` and resuming it for one step.
async fn resume_time<W: Workflow>(json: &str) -> f64 {
    let started = Instant::now();
    for _ in 0..REPEATS {
        let state: W::State = serde_json::from_str(black_box(json)).expect("a state deserializes");
        let mut driver = Driver::new("bench", W::state_name(&state), 1);
        match W::resume(state, &mut driver).await {
            Transition::Next(next) => drop(black_box(next)),
            _ => panic!("the loop goes on"),
        }
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(REPEATS)
}

async fn measure<W: Workflow>(label: &str, input: W::Input) {
    let states = states_at::<W>(input, &[10, ITERATIONS - 10]).await;
    let (early, late) = (&states[0], &states[1]);
    // Warm up allocator and caches on both before measuring.
    resume_time::<W>(early).await;
    resume_time::<W>(late).await;
    let (mut at_early, mut at_late) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        at_early.push(resume_time::<W>(early).await);
        at_late.push(resume_time::<W>(late).await);
    }
    // The fastest run: the least disturbed by other processes.
    let best = |times: &[f64]| times.iter().copied().fold(f64::INFINITY, f64::min);
    println!("{label}");
    println!(
        "  iteration {:>5}: state {:>6} bytes, deserialize + resume one step: {:8.2} us",
        10,
        early.len(),
        best(&at_early)
    );
    println!(
        "  iteration {:>5}: state {:>6} bytes, deserialize + resume one step: {:8.2} us",
        ITERATIONS - 10,
        late.len(),
        best(&at_late)
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    println!(
        "{ITERATIONS} iterations of a step in a loop; mean over {REPEATS} resumes, best of {RUNS} runs\n"
    );
    measure::<weigh_parcels>(
        "for parcel in parcels (a stored Vec<u64> of 10,000 and a position)",
        (0..ITERATIONS).collect(),
    )
    .await;
    measure::<weigh_range>("for parcel in 0..count (a stored Range<u64>)", ITERATIONS).await;
}
