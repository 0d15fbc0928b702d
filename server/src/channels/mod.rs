//! Release channels: named, numbered, signed firmware streams for fleets of routers.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`model`] | the tree as data: channels, devices, builds, images |

pub mod model;
pub mod store;
