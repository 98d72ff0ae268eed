//! `Journal`: effects in order, tagged with the instance that recorded them.

use std::sync::LazyLock;
use std::time::Duration;

use sagaflow::prelude::*;
use sagaflow_testkit::{Journal, JournalEntry, TestEnv};

static EFFECTS: LazyLock<Journal> = LazyLock::new(Journal::new);

#[step]
async fn take(item: &u32) -> Result<u32, StepError> {
    // Instances in flight together interleave their effects.
    tokio::time::sleep(Duration::from_millis(u64::from(*item))).await;
    EFFECTS.record(format!("take {item}"));
    Ok(*item)
}

#[compensate(take)]
async fn put_back(item: &u32, _taken: u32) -> Result<(), StepError> {
    EFFECTS.record(format!("put back {item}"));
    Ok(())
}

#[step(pivot)]
async fn check_out(items: &[u32]) -> Result<(), StepError> {
    if items.contains(&0) {
        return Err(StepError::permanent("item 0 cannot be sold"));
    }
    EFFECTS.record("check out");
    Ok(())
}

#[workflow]
async fn basket(items: Vec<u32>) -> Result<(), WorkflowError> {
    for item in items.clone() {
        take(&item).await?;
    }
    check_out(&items).await?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn each_instance_reads_its_own_effects_in_order_compensations_included() {
    let env = TestEnv::builder().register(basket).build().await;
    let sold = env
        .start(basket, "basket-sold", vec![30, 10])
        .await
        .expect("starts");
    let refused = env
        .start(basket, "basket-refused", vec![20, 5, 0])
        .await
        .expect("starts");
    assert_eq!(env.outcome(&sold).await, Outcome::Completed(()));
    assert!(matches!(
        env.outcome(&refused).await,
        Outcome::Compensated(_)
    ));

    assert_eq!(
        EFFECTS.effects_of("basket-sold"),
        ["take 30", "take 10", "check out"]
    );
    assert_eq!(
        EFFECTS.effects_of("basket-refused"),
        [
            "take 20",
            "take 5",
            "take 0",
            "put back 0",
            "put back 5",
            "put back 20"
        ]
    );
    // Both instances ran at once: the whole journal interleaves them.
    let all = EFFECTS.effects();
    let first_sold = all.iter().position(|e| e == "take 30").expect("recorded");
    let first_refused = all.iter().position(|e| e == "take 20").expect("recorded");
    assert!(first_refused < first_sold, "{all:?}");
}

#[test]
fn clones_share_one_log_and_entries_outside_a_step_have_no_instance() {
    let journal = Journal::new();
    let clone = journal.clone();
    std::thread::spawn(move || clone.record("from another thread"))
        .join()
        .expect("the thread records");
    journal.record(String::from("from the test"));
    assert_eq!(journal.effects(), ["from another thread", "from the test"]);
    assert_eq!(
        journal.entries()[1],
        JournalEntry {
            instance: None,
            effect: "from the test".to_owned()
        }
    );
    assert!(journal.effects_of("any").is_empty());
    journal.clear();
    assert!(journal.entries().is_empty());
}
