use sagaflow::prelude::*;

#[step(readonly)]
async fn look(id: &u32) -> Result<u32, StepError> {
    Ok(*id)
}

mod v1 {
    use super::*;

    #[workflow(name = "lookup", version = 1)]
    pub async fn lookup(id: u32) -> Result<u32, WorkflowError> {
        let found = look(&id).await?;
        Ok(found)
    }
}

#[workflow(name = "lookup", version = 2)]
async fn lookup(id: u32) -> Result<u32, WorkflowError> {
    let first = look(&id).await?;
    let second = look(&first).await?;
    Ok(second)
}

// Takes the new version's state instead of the old one's.
#[migrate(from = v1::lookup, to = lookup)]
fn backwards(old: LookupState) -> Migration<LookupState> {
    Migration::To(old)
}

// Returns the old version's state instead of the new one's.
#[migrate(from = v1::lookup, to = lookup)]
fn unchanged(old: v1::LookupState) -> Migration<v1::LookupState> {
    Migration::To(old)
}

fn main() {}
