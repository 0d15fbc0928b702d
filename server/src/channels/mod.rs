//! Release channels: named, numbered, signed firmware streams for fleets of routers.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`model`] | the tree as data: channels, devices, builds, images |
//! | [`publish`] | the tree rendered into the signed static files under `/channels/`, atomically |
//! | [`store`] | persistence of the tree (both job stores), serial, locks, audit |

pub mod model;
pub mod publish;
pub mod store;
mod wire;
