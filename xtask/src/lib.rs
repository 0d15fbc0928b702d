//! Attendant's release tool: builds the router binaries and packs them as OpenWrt packages.
//!
//! - [`layout`]: what each package installs, mirroring the feed in `openwrt-feed/`.
//! - [`ipk`]: the `.ipk` and tarball writers.
//! - [`mod@dist`]: the `dist` command that puts it together under `target/dist/`.
//! - [`elf`]: what a binary is built for, checked before it is packed.

pub mod dist;
pub mod elf;
pub mod ipk;
pub mod layout;

pub use dist::{DistError, DistOptions, dist};
pub use ipk::Mtime;
pub use layout::{Binaries, Package, Target};
