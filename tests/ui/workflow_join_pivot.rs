use sagaflow::prelude::*;

#[step]
async fn book_flight(trip: &u32) -> Result<u32, StepError> {
    Ok(*trip)
}

#[compensate(book_flight)]
async fn cancel_flight(trip: &u32, ticket: u32) -> Result<(), StepError> {
    let _ = (trip, ticket);
    Ok(())
}

#[step]
async fn book_hotel(trip: &u32) -> Result<u32, StepError> {
    Ok(*trip)
}

#[compensate(book_hotel)]
async fn cancel_hotel(trip: &u32, room: u32) -> Result<(), StepError> {
    let _ = (trip, room);
    Ok(())
}

#[step(pivot)]
async fn pay(trip: &u32) -> Result<(), StepError> {
    let _ = trip;
    Ok(())
}

#[workflow]
async fn book_trip(trip: u32) -> Result<u32, WorkflowError> {
    let (flight, ()) = sagaflow::join!(book_flight(&trip), pay(&trip))?;
    Ok(flight)
}

fn main() {}
