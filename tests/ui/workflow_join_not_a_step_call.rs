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

#[workflow]
async fn book_trip(trip: u32) -> Result<(u32, u32), WorkflowError> {
    let (flight, room) = sagaflow::join!(book_flight(&trip), trip + 1)?;
    Ok((flight, room))
}

fn main() {}
