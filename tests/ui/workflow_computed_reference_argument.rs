use sagaflow::prelude::*;

#[step(retriable)]
async fn greet(name: &str) -> Result<(), StepError> {
    let _ = name;
    Ok(())
}

#[workflow]
async fn welcome(name: String) -> Result<(), WorkflowError> {
    // A computed argument is stored owned (a `String`) before the step;
    // a `&str` parameter takes it with `&`: `greet(&name.trim()).await?`.
    greet(name.trim()).await?;
    Ok(())
}

fn main() {}
