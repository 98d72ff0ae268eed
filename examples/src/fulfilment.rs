//! Order fulfilment with a child workflow: `fulfil_order` charges the card,
//! then runs `ship_order` (pack the parcel, book a carrier) as a child
//! workflow with its own id and record, then issues the invoice.
//!
//! When the carrier refuses, the child rolls back its own steps (the parcel
//! is unpacked) and the parent sees the child's error and refunds the card.
//! When the invoice fails after the child completed, the parent's rollback
//! reaches into the child: the booking is cancelled and the parcel unpacked
//! (the child's compensations, in reverse order), then the card refunded.

use sagaflow::prelude::*;
use serde::{Deserialize, Serialize};

use crate::timeline::record;

/// An order to fulfil.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// The order's id, also the parent instance's id.
    pub id: String,
    /// What is shipped.
    pub items: Vec<String>,
    /// The price.
    pub amount_cents: u64,
    /// Failure injection: the carrier refuses the booking.
    pub carrier_refuses: bool,
    /// Failure injection: the invoice cannot be issued.
    pub invoice_fails: bool,
}

/// A payment taken from the card.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    /// The card processor's transaction id.
    pub transaction: String,
}

/// A packed parcel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Parcel {
    /// The parcel's label.
    pub label: String,
}

/// What `ship_order`, the child workflow, returns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Shipment {
    /// The parcel.
    pub parcel: Parcel,
    /// The carrier's tracking number.
    pub tracking: String,
}

/// What a fulfilled order returns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    /// The payment.
    pub payment: Payment,
    /// The shipment, from the child workflow.
    pub shipment: Shipment,
    /// The invoice number.
    pub invoice: String,
}

/// Charges the customer's card.
#[step]
pub async fn charge_card(order: &Order) -> Result<Payment, StepError> {
    record(format!("{}: charge {} cents", order.id, order.amount_cents));
    Ok(Payment {
        transaction: format!("txn-{}", order.id),
    })
}

/// Refunds the card.
#[compensate(charge_card)]
pub async fn refund_card(order: &Order, payment: Payment) -> Result<(), StepError> {
    record(format!("{}: refund {}", order.id, payment.transaction));
    Ok(())
}

/// Packs the order's items into a parcel.
#[step]
pub async fn pack_parcel(order: &Order) -> Result<Parcel, StepError> {
    record(format!("{}: pack {}", order.id, order.items.join(", ")));
    Ok(Parcel {
        label: format!("parcel-{}", order.id),
    })
}

/// Puts the items back on the shelf.
#[compensate(pack_parcel)]
pub async fn unpack_parcel(order: &Order, parcel: Parcel) -> Result<(), StepError> {
    record(format!("{}: unpack {}", order.id, parcel.label));
    Ok(())
}

/// Books a carrier for the parcel.
#[step]
pub async fn book_carrier(order: &Order, parcel: &Parcel) -> Result<String, StepError> {
    if order.carrier_refuses {
        record(format!(
            "{}: the carrier refuses {}",
            order.id, parcel.label
        ));
        return Err(StepError::permanent("the carrier refuses the parcel"));
    }
    record(format!("{}: book a carrier for {}", order.id, parcel.label));
    Ok(format!("trk-{}", order.id))
}

/// Cancels the carrier's booking.
#[compensate(book_carrier)]
pub async fn cancel_booking(
    order: &Order,
    parcel: &Parcel,
    tracking: String,
) -> Result<(), StepError> {
    record(format!(
        "{}: cancel booking {tracking} of {}",
        order.id, parcel.label
    ));
    Ok(())
}

/// Issues the invoice.
#[step]
pub async fn issue_invoice(order: &Order, shipment: &Shipment) -> Result<String, StepError> {
    if order.invoice_fails {
        record(format!("{}: the invoice cannot be issued", order.id));
        return Err(StepError::permanent(
            "the accounting system rejects the invoice",
        ));
    }
    record(format!("{}: invoice for {}", order.id, shipment.tracking));
    Ok(format!("inv-{}", order.id))
}

/// Voids the invoice.
#[compensate(issue_invoice)]
pub async fn void_invoice(
    order: &Order,
    shipment: &Shipment,
    invoice: String,
) -> Result<(), StepError> {
    record(format!(
        "{}: void {invoice} for {}",
        order.id, shipment.tracking
    ));
    Ok(())
}

/// The child workflow: pack the parcel, book a carrier.
#[workflow]
pub async fn ship_order(order: Order) -> Result<Shipment, WorkflowError> {
    let parcel = pack_parcel(&order).await?;
    let tracking = book_carrier(&order, &parcel).await?;
    Ok(Shipment { parcel, tracking })
}

/// The parent workflow: charge, ship (a child workflow), invoice.
#[workflow]
pub async fn fulfil_order(order: Order) -> Result<Receipt, WorkflowError> {
    let payment = charge_card(&order).await?;
    let shipment = sagaflow::child(ship_order, order.clone()).await?;
    let invoice = issue_invoice(&order, &shipment).await?;
    Ok(Receipt {
        payment,
        shipment,
        invoice,
    })
}
