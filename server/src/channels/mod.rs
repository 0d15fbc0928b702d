//! Release channels: named, numbered, signed firmware streams for fleets of routers.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`model`] | the tree as data: channels, devices, builds, images |
//! | [`ops`] | operations: pure functions from a tree to a change, or the rule that refused them |
//! | [`apply`] | the one path of every mutation: snapshot, operation, jobs, commit + audit, publish hook |
//! | [`builds`] | channel builds through the build queue, imports, `settle` into the pool |
//! | [`pool`] | the content-addressed image pool: copy in, hash, sign; reap unreferenced files |
//! | [`jobs`] | the image jobs of channel builds: recipe request, stamp, submission |
//! | [`downloads`] | download counts of pool images, per file and per build |
//! | [`cache`] | the published metadata files and the admin tree in memory, revalidated cheaply |
//!
//! Persistence (snapshot, optimistic commit, serial, locks, audit) is
//! [`crate::store::channel_store::ChannelStore`], beside the job store it shares a database with.
//! | [`publish`] | the tree rendered into the signed static files under `/channels/`, atomically |
//! | [`mirror`] | mirror push: commands run (as argv, no shell) after each publication |
//! | [`import`] | the importer of automatic channels: inputs → a new build when one changed |
//! | [`generators`] | the importer's inputs: `upstream`, `recipe`, `http`, `channel`, `version` |
//! | [`reports`] | outcome reports from routers: the salt, checks, storage, counts per build |
//! | [`rollout`] | auto-halt and auto-advance of phased builds from their reports |
//! | [`remote`] | the `remote-channel` input: another server's channel, its signatures checked |
//! | [`schedule`] | what `serve` does on its own: publish changes, re-sign before expiry, reap |
//! | [`keys`] | the metadata signing key, its delegation by the offline root key, revocations |

pub mod apply;
pub mod builds;
pub mod cache;
pub mod downloads;
pub mod generators;
pub mod import;
pub mod jobs;
pub mod keys;
pub mod mirror;
pub mod model;
pub mod ops;
pub mod pool;
pub mod publish;
pub mod remote;
pub mod reports;
pub mod rollout;
pub mod schedule;
