//! The wire protocol of the three roles: every path and header, the fence codec,
//! and the enums their bodies carry. Services, the simulation's driver and the
//! bench take their names from here, so a name is spelled once.

pub mod change;
pub mod fence;
pub mod headers;
pub mod paths;
