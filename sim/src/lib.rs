//! memring-sim: the deterministic simulation harness of memring.
//!
//! For now it only re-exports the core it will drive; the simulated world (turmoil
//! hosts, fake S3 and RDS, faults and the checker) comes with the `sim` issue.

pub use memring;
