//! Approval with a timeout: reserve the budget, ask an approver, and wait
//! for a durable `"approval"` signal for up to [`ApprovalRequest::wait_ms`].
//! Approved: the purchase is placed. Rejected or no answer in time: the
//! budget reservation is released.
//!
//! The workflow declares what it accepts: the `approval` signal carries a
//! [`Decision`], and its status is an [`ApprovalStatus`]. A client sends
//! the answer typed, `handle.signal(approval::approval, Decision { .. })`,
//! and reads the status with `handle.query()`; the CLI and other dynamic
//! callers still use the names (`rt.signal(id, "approval", ..)`).
//!
//! While it waits the instance holds no worker and no lease; it wakes when
//! the answer is recorded, or when its timeout passes, in whichever process
//! runs the store's workers.

use std::time::Duration;

use sagaflow::prelude::*;
use serde::{Deserialize, Serialize};

use crate::timeline::record;

/// A purchase that needs a manager's approval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    /// The request's id.
    pub id: String,
    /// What to buy.
    pub item: String,
    /// Its price in cents.
    pub amount_cents: u64,
    /// How long to wait for the approver (ms).
    pub wait_ms: u64,
}

/// The approver's answer, sent as the `"approval"` signal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Whether the purchase is approved.
    pub approved: bool,
    /// Who decided.
    pub by: String,
}

/// Where a request is, as `handle.query()` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ApprovalStatus {
    /// Waiting for the approver.
    AwaitingApproval,
    /// Approved; the purchase is placed.
    Approved,
    /// Rejected, or not answered in time.
    Declined,
}

/// A purchase order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Purchase {
    /// The purchase order number.
    pub number: String,
    /// Who approved it.
    pub approved_by: String,
}

/// Sets the amount aside in the budget.
#[step]
pub async fn reserve_budget(request: &ApprovalRequest) -> Result<String, StepError> {
    record(format!(
        "{}: reserve {} cents",
        request.id, request.amount_cents
    ));
    Ok(format!("budget-{}", request.id))
}

/// Gives the amount back to the budget.
#[compensate(reserve_budget)]
pub async fn release_budget(request: &ApprovalRequest, hold: String) -> Result<(), StepError> {
    record(format!("{}: release {hold}", request.id));
    Ok(())
}

/// Asks the approver (an e-mail, a chat message).
#[step(readonly)]
pub async fn ask_approver(request: &ApprovalRequest) -> Result<(), StepError> {
    record(format!(
        "{}: ask for approval of {}",
        request.id, request.item
    ));
    Ok(())
}

/// Places the purchase: the point of no return.
#[step(pivot)]
pub async fn place_purchase(request: &ApprovalRequest, by: String) -> Result<Purchase, StepError> {
    record(format!(
        "{}: purchase {} (approved by {by})",
        request.id, request.item
    ));
    Ok(Purchase {
        number: format!("po-{}", request.id),
        approved_by: by,
    })
}

/// The approval saga.
#[workflow(signals(approval: Decision), query = ApprovalStatus)]
pub async fn approval(request: ApprovalRequest) -> Result<Purchase, WorkflowError> {
    let _hold = reserve_budget(&request).await?;
    ask_approver(&request).await?;
    sagaflow::set_status(ApprovalStatus::AwaitingApproval);
    let decision: Option<Decision> =
        sagaflow::signal_timeout("approval", Duration::from_millis(request.wait_ms)).await;
    let by: String = match decision {
        Some(Decision { approved: true, by }) => by,
        Some(Decision { by, .. }) => {
            sagaflow::set_status(ApprovalStatus::Declined);
            return Err(WorkflowError::new(format!("rejected by {by}")));
        }
        None => {
            sagaflow::set_status(ApprovalStatus::Declined);
            return Err(WorkflowError::new("no answer in time"));
        }
    };
    sagaflow::set_status(ApprovalStatus::Approved);
    let purchase = place_purchase(&request, by).await?;
    Ok(purchase)
}
