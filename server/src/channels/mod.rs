//! Release channels: named, numbered, signed firmware streams for fleets of routers.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`model`] | the tree as data: channels, devices, builds, images |
//! | [`keys`] | the metadata signing key, its delegation by the offline root key, revocations |

pub mod keys;
pub mod model;
