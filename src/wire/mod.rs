//! The wire protocol of the three roles, spelled once: every path and header, the
//! request and answer bodies, the enums they carry, the fence codec, the
//! envelope, and one typed client per role. Services, the simulation's driver,
//! the bench and the tests take their names and bodies from here.
//!
//! The layer sits above the core (whose types some bodies carry) and the network
//! seam (which the clients use), and below the services.

pub mod change;
pub mod client;
pub mod envelope;
pub mod fence;
pub mod form;
pub mod frontend;
pub mod headers;
pub mod item;
pub mod manager;
pub mod node;
pub mod paths;
