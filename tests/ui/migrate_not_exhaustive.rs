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

// v1's `Look1` state is not mapped.
#[migrate(from = v1::lookup, to = lookup)]
fn lookup_v1_to_v2(old: v1::LookupState) -> Migration<LookupState> {
    match old {
        v1::LookupState::Start { id } => Migration::To(LookupState::Start { id }),
    }
}

fn main() {}
