//! memring-sim: the deterministic simulation harness of memring.
//!
//! The whole system runs on turmoil: the production front-end, manager and cache
//! nodes on the turmoil side of the network seam ([`seam`]), with fake S3 and RDS
//! hosts ([`fakes`]) and client hosts driving a workload ([`driver`]). Every client
//! operation is recorded ([`history`]) and checked against a model ([`checker`]);
//! every log line, request and fault is traced with its simulated time ([`trace`]).
//! A seed reproduces a run byte for byte.
//!
//! [`crash`] is the exception: it kills the real `memring up` process under load
//! and checks what survives a restart, in real time.

pub mod checker;
pub mod context;
pub mod crash;
pub mod disk;
pub mod documented;
pub mod driver;
pub mod fakes;
pub mod faults;
pub mod history;
pub mod run;
pub mod scenarios;
pub mod seam;
pub mod swarm;
pub mod trace;
pub mod world;

pub use memring;
