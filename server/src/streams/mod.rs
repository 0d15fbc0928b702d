//! Image streams: the channel builds published as simplestreams (`index:1.0`, `products:1.0`;
//! <https://git.launchpad.net/simplestreams>), so that a site, a mesh community or an air-gapped
//! network mirrors the firmware it needs with the stock tools (`sstream-mirror`,
//! `sstream-query`), managed with the verbs of MAAS's `meph2-util`
//! (<https://github.com/canonical/maas-images>). `docs/streams.md` is the operator's guide.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`format`](mod@format) | the two documents: parse, encode, flatten; names, paths, fixed-width versions |
//! | [`filter`] | the filter language: `=`, `!=`, `~`, `!~`, ANDed over flattened items |
//! | [`manage`] | insert, promote, clean-md as pure functions on products trees |
//! | [`sync`] | channel builds → products; which products changed since the stream's latest |
//! | [`orphans`] | first-seen bookkeeping of unreferenced files, grace periods |
//! | [`tree`] | the I/O edge: read any mirror, publish ours atomically and signed, copy verified |
//! | [`ops`] | the verbs: read, operate, copy, publish |
//! | [`error`] | [`StreamsError`], and the hints the CLI prints |
//!
//! What it deliberately does not do: serve the stream over HTTP (any static web server does,
//! or `rsync`), or download from a remote mirror (that is what `sstream-mirror` is for).

pub mod error;
pub mod filter;
pub mod format;
pub mod manage;
pub mod ops;
pub mod orphans;
pub mod sync;
pub mod tree;

pub use self::error::StreamsError;
