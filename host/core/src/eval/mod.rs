//! Measured prompt and agent quality (`orchestr8 eval`): the suite file
//! ([`suite`]), graders that decide whether a run passed ([`grader`]), the
//! statistics that say how sure a pass rate is and whether one variant
//! beats another ([`stats`]), and the report made of the runs ([`report`]).

pub mod grader;
pub mod report;
pub mod stats;
pub mod suite;
