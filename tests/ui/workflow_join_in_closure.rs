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
async fn book_trip(trips: Vec<u32>) -> Result<(), WorkflowError> {
    let book = |trip: u32| async move { sagaflow::join!(book_flight(&trip), book_hotel(&trip)) };
    let _ = book;
    Ok(())
}

fn main() {}
