//! `#[workflow]` lowering of `if`/`match`, kept results, assignments,
//! `return` and shadowing, driven by hand.

use sagaflow::__private::{EdgeLabel, Target};
use sagaflow::prelude::*;
use sagaflow_tests::journal::{record, take_log};
use sagaflow_tests::{End, drive};

#[step(readonly)]
async fn quote_price(item: &str) -> Result<u64, StepError> {
    record(format!("quote {item}"));
    match item {
        "gold" => Ok(900),
        "lead" => Err(StepError::permanent("no such item")),
        _ => Ok(10),
    }
}

#[step(retriable)]
async fn send_mail(to: &str, text: String) -> Result<(), StepError> {
    record(format!("mail {to}: {text}"));
    Ok(())
}

#[step(readonly)]
async fn audit(note: String) -> Result<u32, StepError> {
    record(format!("audit {note}"));
    Ok(note.len() as u32)
}

#[workflow]
async fn buy(item: String, customer: String) -> Result<String, WorkflowError> {
    let quoted = quote_price(&item).await;
    let price: u64;
    match quoted {
        Ok(quoted) if quoted > 100 => {
            send_mail(&customer, format!("{item} is pricey")).await?;
            price = quoted;
        }
        Ok(quoted) => price = quoted,
        Err(error) => {
            send_mail(&customer, format!("no {item}: {error}")).await?;
            return Err(WorkflowError::new("unavailable"));
        }
    }
    let mut total: u32 = 0;
    if price > 500 {
        total = audit(format!("big sale {price}")).await?;
    } else if customer == "vip" {
        audit(String::from("vip")).await?;
    }
    let summary = format!("{customer} pays {price}");
    println!("{summary:?} {total}");
    if total > 0 {
        let receipt: String = format!("{summary} after audit {total}");
        send_mail(&customer, receipt.clone()).await?;
        Ok(receipt)
    } else {
        Ok(summary)
    }
}

/// Shadowing that is never live at the same step is fine.
#[workflow]
async fn shadowing(x: u64) -> Result<u64, WorkflowError> {
    let x: u64 = x + 1;
    let y = quote_price("tin").await?;
    let x: u64 = x * y;
    Ok(x)
}

#[tokio::test]
async fn expensive_item_takes_the_guarded_arm_and_the_audit() {
    let (end, states) = drive::<buy>(("gold".into(), "ann".into())).await;
    let End::Complete(output) = end else {
        panic!("failed")
    };
    assert_eq!(output, "ann pays 900 after audit 12");
    assert_eq!(
        take_log(),
        [
            "quote gold",
            "mail ann: gold is pricey",
            "audit big sale 900",
            "mail ann: ann pays 900 after audit 12"
        ]
    );
    assert_eq!(
        states,
        [
            r#"{"Start":{"item":"gold","customer":"ann"}}"#,
            r#"{"QuotePrice1":{"item":"gold","customer":"ann"}}"#,
            r#"{"SendMail2":{"customer":"ann","quoted":900,"__send_mail1_arg1":"gold is pricey"}}"#,
            r#"{"Audit4":{"customer":"ann","price":900,"__audit3_arg0":"big sale 900"}}"#,
            r#"{"SendMail6":{"customer":"ann","receipt":"ann pays 900 after audit 12"}}"#,
        ]
    );
}

#[tokio::test]
async fn cheap_item_skips_every_branch_step() {
    let (end, states) = drive::<buy>(("tin".into(), "bob".into())).await;
    let End::Complete(output) = end else {
        panic!("failed")
    };
    assert_eq!(output, "bob pays 10");
    assert_eq!(take_log(), ["quote tin"]);
    assert_eq!(states.len(), 2);
}

#[tokio::test]
async fn vip_takes_the_else_if_branch() {
    let (end, _) = drive::<buy>(("tin".into(), "vip".into())).await;
    let End::Complete(output) = end else {
        panic!("failed")
    };
    assert_eq!(output, "vip pays 10");
    assert_eq!(take_log(), ["quote tin", "audit vip"]);
}

#[tokio::test]
async fn a_kept_error_is_handled_by_its_arm_and_returned() {
    let (end, states) = drive::<buy>(("lead".into(), "cy".into())).await;
    let End::Fail(error) = end else {
        panic!("should fail")
    };
    assert_eq!(error.message(), "unavailable");
    assert_eq!(take_log(), ["quote lead", "mail cy: no lead: no such item"]);
    assert_eq!(
        states[2],
        r#"{"SendMail3":{"customer":"cy","__send_mail2_arg1":"no lead: no such item"}}"#
    );
}

#[tokio::test]
async fn shadowed_names_resolve_to_their_own_binding() {
    let (end, states) = drive::<shadowing>(4).await;
    let End::Complete(output) = end else {
        panic!("failed")
    };
    assert_eq!(output, 50);
    assert_eq!(states[1], r#"{"QuotePrice1":{"x":5}}"#);
    take_log();
}

#[test]
fn branch_edges() {
    let machine = buy.state_machine();
    let names: Vec<_> = machine.states.iter().map(|state| state.name).collect();
    assert_eq!(
        names,
        [
            "Start",
            "QuotePrice1",
            "SendMail2",
            "SendMail3",
            "Audit4",
            "Audit5",
            "SendMail6"
        ]
    );
    let edges: Vec<_> = machine
        .edges
        .iter()
        .map(|e| (e.from, e.to, e.label))
        .collect();
    let from = |state: usize| -> Vec<_> {
        edges
            .iter()
            .filter(|e| e.0 == state)
            .map(|e| (e.1, e.2))
            .collect()
    };
    assert_eq!(from(0), [(Target::State(1), EdgeLabel::Ok)]);
    assert_eq!(
        from(1),
        [
            (Target::State(2), EdgeLabel::Branch),
            (Target::State(3), EdgeLabel::Branch),
            (Target::State(4), EdgeLabel::Branch),
            (Target::State(5), EdgeLabel::Branch),
            (Target::State(6), EdgeLabel::Branch),
            (Target::Complete, EdgeLabel::Branch),
        ]
    );
    assert_eq!(
        from(3),
        [
            (Target::Error, EdgeLabel::Ok),
            (Target::Error, EdgeLabel::Err)
        ]
    );
    assert_eq!(
        from(6),
        [
            (Target::Complete, EdgeLabel::Ok),
            (Target::Error, EdgeLabel::Err)
        ]
    );
}
