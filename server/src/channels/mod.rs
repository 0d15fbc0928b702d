//! Release channels: named, numbered, signed firmware streams for fleets of routers.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`model`] | the tree as data: channels, devices, builds, images |
//! | [`ops`] | operations: pure functions from a tree to a change, or the rule that refused them |
//! | [`apply`] | the one path of every mutation: snapshot, operation, jobs, commit + audit, publish hook |
//! | [`builds`] | channel builds through the build queue, imports, `settle` into the pool |
//! | [`pool`] | the content-addressed image pool: copy in, hash, sign; reap unreferenced files |
//! | [`store`] | persistence: [`store::ChannelStore`] (snapshot, optimistic commit, serial, locks, audit) |
//! | [`keys`] | the metadata signing key, its delegation by the offline root key, revocations |

pub mod apply;
pub mod builds;
pub mod keys;
pub mod model;
pub mod ops;
pub mod pool;
pub mod store;
