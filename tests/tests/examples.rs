//! The examples' sagas, run as a user would: outcomes and the exact order of
//! their side effects.

use sagaflow::prelude::*;
use sagaflow_examples::coffee::{CoffeeOrder, coffee_order};
use sagaflow_examples::fanout::{Trip, book_trip};
use sagaflow_examples::fulfilment::{self, fulfil_order, ship_order};
use sagaflow_examples::order::{Order, place_order};
use sagaflow_examples::timeline::events_for;

fn order(id: &str, fail_shipment: bool) -> Order {
    Order {
        id: id.into(),
        sku: "grinder".into(),
        quantity: 2,
        amount_cents: 12_000,
        fail_shipment,
    }
}

fn coffee(id: &str) -> CoffeeOrder {
    CoffeeOrder {
        id: id.into(),
        customer: "Dee".into(),
        beverage: "latte".into(),
        price_cents: 400,
        card_declined: false,
        phone_off: false,
        beans_oversold: false,
    }
}

async fn runtime() -> Runtime {
    let built = Runtime::builder()
        .register(place_order)
        .store(MemoryStore::new())
        .register(coffee_order)
        .register(fulfil_order)
        .register(ship_order)
        .build()
        .await;
    built.expect("the runtime builds")
}

#[tokio::test(start_paused = true)]
async fn an_order_completes_with_every_step_once_in_order() {
    let rt = runtime().await;
    let handle = rt
        .start(place_order, "t-order-ok", order("t-order-ok", false))
        .await
        .expect("start");
    let Outcome::Completed(receipt) = handle.outcome().await.expect("outcome") else {
        panic!("the order should complete")
    };
    assert_eq!(receipt.order_id, "t-order-ok");
    assert_eq!(receipt.payment.amount_cents, 12_000);
    assert_eq!(receipt.shipment.tracking, "trk-t-order-ok");
    assert_eq!(
        events_for("t-order-ok:"),
        [
            "t-order-ok: reserve 2 x grinder",
            "t-order-ok: charge 12000 cents",
            "t-order-ok: ship res-t-order-ok",
            "t-order-ok: confirm, tracking trk-t-order-ok",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_shipment_refunds_then_releases() {
    let rt = runtime().await;
    let handle = rt
        .start(place_order, "t-order-fail", order("t-order-fail", true))
        .await
        .expect("start");
    let Outcome::Compensated(failure) = handle.outcome().await.expect("outcome") else {
        panic!("the order should be rolled back")
    };
    assert!(
        failure
            .to_string()
            .contains("the carrier rejected the parcel"),
        "{failure}"
    );
    assert_eq!(
        events_for("t-order-fail:"),
        [
            "t-order-fail: reserve 2 x grinder",
            "t-order-fail: charge 12000 cents",
            // the pivot's policy allows two attempts
            "t-order-fail: shipment rejected by the carrier",
            "t-order-fail: shipment rejected by the carrier",
            "t-order-fail: refund 12000 cents (txn-t-order-fail)",
            "t-order-fail: release inventory res-t-order-fail",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn starting_an_order_twice_runs_it_once() {
    let rt = runtime().await;
    let first = rt
        .start(place_order, "t-order-twice", order("t-order-twice", false))
        .await
        .expect("start");
    let second = rt
        .start(place_order, "t-order-twice", order("t-order-twice", false))
        .await
        .expect("attach");
    let (first, second) = (
        first.outcome().await.expect("first"),
        second.outcome().await.expect("second"),
    );
    assert!(matches!((&first, &second), (Outcome::Completed(a), Outcome::Completed(b)) if a == b));
    assert_eq!(events_for("t-order-twice: reserve").len(), 1);
    assert_eq!(events_for("t-order-twice: charge").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_customer_who_cannot_be_notified_still_gets_the_drink() {
    let rt = runtime().await;
    let handle = rt.start(
        coffee_order,
        "t-cup-phone",
        CoffeeOrder {
            phone_off: true,
            ..coffee("t-cup-phone")
        },
    );
    let Outcome::Completed(served) = handle
        .await
        .expect("start")
        .outcome()
        .await
        .expect("outcome")
    else {
        panic!("the order should complete")
    };
    assert!(!served.notified);
    assert_eq!(served.beverage.label, "latte for Dee");
    assert_eq!(
        events_for("t-cup-phone: phone").len(),
        2,
        "notify is retried once, then given up by the workflow"
    );
    assert!(events_for("t-cup-phone: refund").is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_declined_card_has_nothing_to_undo() {
    let rt = runtime().await;
    let handle = rt.start(
        coffee_order,
        "t-cup-card",
        CoffeeOrder {
            card_declined: true,
            ..coffee("t-cup-card")
        },
    );
    let Outcome::Compensated(failure) = handle
        .await
        .expect("start")
        .outcome()
        .await
        .expect("outcome")
    else {
        panic!("the order should be rolled back")
    };
    assert!(failure.to_string().contains("card declined"), "{failure}");
    assert_eq!(
        events_for("t-cup-card:"),
        ["t-cup-card: card declined"],
        "a permanent error is not retried"
    );
}

#[tokio::test(start_paused = true)]
async fn oversold_beans_undo_stock_drink_and_payment_in_reverse_order() {
    let rt = runtime().await;
    let handle = rt.start(
        coffee_order,
        "t-cup-beans",
        CoffeeOrder {
            beans_oversold: true,
            ..coffee("t-cup-beans")
        },
    );
    let Outcome::Compensated(failure) = handle
        .await
        .expect("start")
        .outcome()
        .await
        .expect("outcome")
    else {
        panic!("the order should be rolled back")
    };
    assert!(failure.to_string().contains("beans oversold"), "{failure}");
    assert_eq!(
        events_for("t-cup-beans:"),
        [
            "t-cup-beans: charge 400 cents",
            "t-cup-beans: prepare latte",
            "t-cup-beans: take 18 g of beans from stock",
            "t-cup-beans: put 18 g of beans back",
            "t-cup-beans: discard latte for Dee",
            "t-cup-beans: refund 400 (auth-t-cup-beans)",
        ]
    );
}

fn trip(id: &str, no_cars: bool) -> Trip {
    Trip {
        id: id.into(),
        destination: "Porto".into(),
        nights: 2,
        no_cars,
    }
}

async fn trip_runtime() -> Runtime {
    let built = Runtime::builder()
        .store(MemoryStore::new())
        .register(book_trip)
        .build()
        .await;
    built.expect("the runtime builds")
}

/// The three bookings run at once: their side effects land in the order
/// their services answer (hotel 10 ms, car 20 ms, flight 30 ms), not the
/// order written; each runs once.
#[tokio::test(start_paused = true)]
async fn a_fanned_out_trip_books_all_three_at_once_then_issues_the_itinerary() {
    let rt = trip_runtime().await;
    let started = tokio::time::Instant::now();
    let handle = rt
        .start(book_trip, "t-trip-ok", trip("t-trip-ok", false))
        .await
        .expect("start");
    let Outcome::Completed(itinerary) = handle.outcome().await.expect("outcome") else {
        panic!("the trip should be booked")
    };
    assert_eq!(itinerary.flight.ticket, "tkt-t-trip-ok");
    assert_eq!(itinerary.room.confirmation, "room-t-trip-ok");
    assert_eq!(itinerary.car.contract, "car-t-trip-ok");
    assert_eq!(
        events_for("t-trip-ok:"),
        [
            "t-trip-ok: book hotel in Porto for 2 nights",
            "t-trip-ok: rent car in Porto",
            "t-trip-ok: book flight to Porto",
            "t-trip-ok: issue itinerary tkt-t-trip-ok / room-t-trip-ok / car-t-trip-ok",
        ]
    );
    // Concurrent: the join took as long as its slowest branch, not the sum.
    let elapsed = started.elapsed();
    assert!(
        elapsed < std::time::Duration::from_millis(60),
        "{elapsed:?}"
    );
}

/// The car fails while the flight is still being booked: the join waits
/// for the flight, then the saga undoes the flight and the hotel, the last
/// completed first.
#[tokio::test(start_paused = true)]
async fn a_trip_without_a_car_cancels_the_flight_then_the_hotel() {
    let rt = trip_runtime().await;
    let handle = rt
        .start(book_trip, "t-trip-nocar", trip("t-trip-nocar", true))
        .await
        .expect("start");
    let Outcome::Compensated(failure) = handle.outcome().await.expect("outcome") else {
        panic!("the trip should be rolled back")
    };
    assert_eq!(
        failure.to_string(),
        "step `rent_car` failed: no car left in Porto"
    );
    assert_eq!(
        events_for("t-trip-nocar:"),
        [
            "t-trip-nocar: book hotel in Porto for 2 nights",
            "t-trip-nocar: no car left in Porto",
            "t-trip-nocar: book flight to Porto",
            "t-trip-nocar: cancel flight tkt-t-trip-nocar",
            "t-trip-nocar: cancel hotel room-t-trip-nocar",
        ]
    );
}

fn fulfilment_order(id: &str, carrier_refuses: bool, invoice_fails: bool) -> fulfilment::Order {
    fulfilment::Order {
        id: id.into(),
        items: vec!["grinder".into()],
        amount_cents: 9_900,
        carrier_refuses,
        invoice_fails,
    }
}

#[tokio::test(start_paused = true)]
async fn a_fulfilment_runs_its_shipping_as_a_child_workflow() {
    let rt = runtime().await;
    let handle = rt
        .start(
            fulfil_order,
            "t-ful-ok",
            fulfilment_order("t-ful-ok", false, false),
        )
        .await
        .expect("start");
    let Outcome::Completed(receipt) = handle.outcome().await.expect("outcome") else {
        panic!("the order should be fulfilled")
    };
    assert_eq!(receipt.shipment.tracking, "trk-t-ful-ok");
    assert_eq!(
        events_for("t-ful-ok:"),
        [
            "t-ful-ok: charge 9900 cents",
            "t-ful-ok: pack grinder",
            "t-ful-ok: book a carrier for parcel-t-ful-ok",
            "t-ful-ok: invoice for trk-t-ful-ok",
        ]
    );
    let child = rt
        .status("t-ful-ok/ShipOrder2")
        .await
        .expect("status")
        .expect("the child's record");
    assert_eq!(child.parent.as_deref(), Some("t-ful-ok"));
}

#[tokio::test(start_paused = true)]
async fn a_refused_carrier_unpacks_in_the_child_then_refunds_in_the_parent() {
    let rt = runtime().await;
    let handle = rt
        .start(
            fulfil_order,
            "t-ful-carrier",
            fulfilment_order("t-ful-carrier", true, false),
        )
        .await
        .expect("start");
    let Outcome::Compensated(failure) = handle.outcome().await.expect("outcome") else {
        panic!("the order should be rolled back")
    };
    assert!(
        failure
            .to_string()
            .contains("the carrier refuses the parcel"),
        "{failure}"
    );
    assert_eq!(
        events_for("t-ful-carrier:"),
        [
            "t-ful-carrier: charge 9900 cents",
            "t-ful-carrier: pack grinder",
            "t-ful-carrier: the carrier refuses parcel-t-ful-carrier",
            "t-ful-carrier: unpack parcel-t-ful-carrier",
            "t-ful-carrier: refund txn-t-ful-carrier",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_invoice_rolls_back_into_the_completed_child() {
    let rt = runtime().await;
    let handle = rt
        .start(
            fulfil_order,
            "t-ful-invoice",
            fulfilment_order("t-ful-invoice", false, true),
        )
        .await
        .expect("start");
    let Outcome::Compensated(failure) = handle.outcome().await.expect("outcome") else {
        panic!("the order should be rolled back")
    };
    assert!(
        failure.to_string().contains("rejects the invoice"),
        "{failure}"
    );
    assert_eq!(
        events_for("t-ful-invoice:"),
        [
            "t-ful-invoice: charge 9900 cents",
            "t-ful-invoice: pack grinder",
            "t-ful-invoice: book a carrier for parcel-t-ful-invoice",
            "t-ful-invoice: the invoice cannot be issued",
            "t-ful-invoice: cancel booking trk-t-ful-invoice of parcel-t-ful-invoice",
            "t-ful-invoice: unpack parcel-t-ful-invoice",
            "t-ful-invoice: refund txn-t-ful-invoice",
        ]
    );
}
