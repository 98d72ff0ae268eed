//! A trip booked by fan-out on a memory store: `sagaflow::join!` books the
//! flight, the hotel and the car at the same time.
//!
//! ```text
//! cargo run -p sagaflow-examples --example fanout
//! ```
//! The first trip books all three, then issues the itinerary. In the second
//! no car is left: the join waits for the flight still being booked, then
//! the saga cancels the flight and the hotel, the last booked first. Each
//! branch prints its idempotency key, `{trip id}/Join1/{branch}`.

use sagaflow::prelude::*;
use sagaflow_examples::fanout::{Trip, book_trip};

fn trip(id: &str, no_cars: bool) -> Trip {
    Trip {
        id: id.into(),
        destination: "Lisbon".into(),
        nights: 3,
        no_cars,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rt = Runtime::builder()
        .store(MemoryStore::new())
        .register(book_trip)
        .build()
        .await?;
    for trip in [trip("trip-1", false), trip("trip-2", true)] {
        println!("{} to {}:", trip.id, trip.destination);
        let handle = rt.start(book_trip, &trip.id.clone(), trip).await?;
        match handle.outcome().await? {
            Outcome::Completed(itinerary) => println!(
                "  => booked: {}, {}, {}",
                itinerary.flight.ticket, itinerary.room.confirmation, itinerary.car.contract
            ),
            Outcome::Compensated(failure) => println!("  => rolled back: {failure}"),
            Outcome::Failed(failure) => println!("  => needs an operator: {failure}"),
        }
    }
    println!(
        "\nthe state machine:\n{}",
        book_trip.state_machine().to_mermaid()
    );
    rt.shutdown().await;
    Ok(())
}
