//! The ImageBuilder cache: get the OpenWrt ImageBuilder for a version, target and subtarget from
//! the upstream, verify it, unpack it safely and share it between builds.
//!
//! How ASU does it (<https://github.com/openwrt/asu>, <https://github.com/openwrt/docker>): a container's `setup.sh`
//! downloads
//! `sha256sums` and its signature from `<upstream>/<version_path>/targets/<target>/<subtarget>/`,
//! checks the archive's SHA-256 and unpacks it with `tar`, once per build for snapshots. Here:
//!
//! 1. `fetch` gets `sha256sums` and `sha256sums.sig` (bounded, retried on network errors and
//!    5xx), and the signature is checked against the configured usign keys;
//! 2. `sums` finds the archive (`openwrt-imagebuilder-*.Linux-x86_64.tar.(zst|xz)`) and its
//!    SHA-256; the cache key is version/target/subtarget plus that SHA-256;
//! 3. on a miss the archive is streamed to disk and hashed, and compared with the signed value;
//! 4. `unpack` extracts it under strict rules (no absolute paths, `..`, escaping links,
//!    devices, setuid) with size and entry limits;
//! 5. `cache` installs it atomically, hands out [`Lease`]s that pin it, and evicts least
//!    recently used entries over the disk budget.
//!
//! Everything that goes wrong is an [`IbError`]; [`IbError::is_infrastructure`] tells the
//! worker whether to try the job again later ([`IbError::is_retryable`]: whether to fetch again
//! at once).

mod cache;
mod error;
mod fetch;
mod layout;
mod spec;
mod sums;
mod unpack;

pub use cache::{
    CacheConfig, CacheCounts, DEFAULT_DISK_BUDGET_BYTES, DEFAULT_DOWNLOAD_LIMIT_BYTES,
    ImagebuilderCache, Lease,
};
pub use error::{IbError, error_chain};
pub use fetch::Upstream;
pub use spec::{IbSpec, MAX_SPEC_FIELD_LEN, MAX_VERSION_PATH_LEN, UpstreamFile};
