//! What the tool prints for a person: aligned columns, colours on a
//! terminal only, times as dates and ages.
//!
//! `format` holds the pieces (styles, tables, times); `instances` the
//! pages of `list` and `show`; `versions` those of `versions` and `upgrade`; `schedules` those of
//! `schedule list` and `schedule show`.

mod format;
mod instances;
mod schedules;
mod versions;

pub(crate) use format::*;
pub(crate) use instances::*;
pub(crate) use schedules::*;
pub(crate) use versions::*;
