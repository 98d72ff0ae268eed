//! A trip booked by fan-out: the flight, the hotel and the rental car are
//! booked at the same time with `sagaflow::join!`, each a compensable step;
//! then the itinerary is issued (the pivot) and mailed (retriable).
//!
//! If the car cannot be rented, the join waits for the branches still
//! running, then the saga cancels what was booked, in the reverse order of
//! the bookings' completion.
//!
//! The steps take a little time (the hotel answers first, then the car, then
//! the airline) so the order of their side effects is the same on every run.

use std::time::Duration;

use sagaflow::prelude::*;
use serde::{Deserialize, Serialize};

use crate::timeline::record;

/// A trip to book.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trip {
    /// The trip's id, also the workflow instance's id.
    pub id: String,
    /// Where to.
    pub destination: String,
    /// How many nights.
    pub nights: u32,
    /// Failure injection: no car is left to rent.
    pub no_cars: bool,
}

/// A booked flight.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Flight {
    /// The ticket number.
    pub ticket: String,
}

/// A booked hotel room.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Room {
    /// The hotel's confirmation number.
    pub confirmation: String,
}

/// A rented car.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Car {
    /// The rental contract.
    pub contract: String,
}

/// What a booked trip returns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Itinerary {
    /// The trip's id.
    pub trip_id: String,
    /// The flight.
    pub flight: Flight,
    /// The room.
    pub room: Room,
    /// The car.
    pub car: Car,
}

/// Books the flight; the airline answers in 30 ms.
#[step(timeout = "10s")]
pub async fn book_flight(trip: &Trip) -> Result<Flight, StepError> {
    tokio::time::sleep(Duration::from_millis(30)).await;
    record(format!("{}: book flight to {}", trip.id, trip.destination));
    Ok(Flight {
        ticket: format!("tkt-{}", trip.id),
    })
}

/// Cancels the flight.
#[compensate(book_flight)]
pub async fn cancel_flight(trip: &Trip, flight: Flight) -> Result<(), StepError> {
    record(format!("{}: cancel flight {}", trip.id, flight.ticket));
    Ok(())
}

/// Books the room; the hotel answers in 10 ms.
#[step(timeout = "10s")]
pub async fn book_hotel(trip: &Trip) -> Result<Room, StepError> {
    tokio::time::sleep(Duration::from_millis(10)).await;
    record(format!(
        "{}: book hotel in {} for {} nights",
        trip.id, trip.destination, trip.nights
    ));
    Ok(Room {
        confirmation: format!("room-{}", trip.id),
    })
}

/// Cancels the room.
#[compensate(book_hotel)]
pub async fn cancel_hotel(trip: &Trip, room: Room) -> Result<(), StepError> {
    record(format!("{}: cancel hotel {}", trip.id, room.confirmation));
    Ok(())
}

/// Rents the car; the rental company answers in 20 ms.
#[step(timeout = "10s")]
pub async fn rent_car(trip: &Trip) -> Result<Car, StepError> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    if trip.no_cars {
        record(format!("{}: no car left in {}", trip.id, trip.destination));
        return Err(StepError::permanent(format!(
            "no car left in {}",
            trip.destination
        )));
    }
    record(format!("{}: rent car in {}", trip.id, trip.destination));
    Ok(Car {
        contract: format!("car-{}", trip.id),
    })
}

/// Returns the car.
#[compensate(rent_car)]
pub async fn return_car(trip: &Trip, car: Car) -> Result<(), StepError> {
    record(format!("{}: return car {}", trip.id, car.contract));
    Ok(())
}

/// Issues the itinerary: the point of no return.
#[step(pivot)]
pub async fn issue_itinerary(
    trip: &Trip,
    flight: &Flight,
    room: &Room,
    car: &Car,
) -> Result<(), StepError> {
    record(format!(
        "{}: issue itinerary {} / {} / {}",
        trip.id, flight.ticket, room.confirmation, car.contract
    ));
    Ok(())
}

/// The trip saga: flight, hotel and car at once, then the itinerary.
#[workflow]
pub async fn book_trip(trip: Trip) -> Result<Itinerary, WorkflowError> {
    let (flight, room, car) =
        sagaflow::join!(book_flight(&trip), book_hotel(&trip), rent_car(&trip))?;
    issue_itinerary(&trip, &flight, &room, &car).await?;
    Ok(Itinerary {
        trip_id: trip.id,
        flight,
        room,
        car,
    })
}
