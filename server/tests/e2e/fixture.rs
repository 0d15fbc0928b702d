//! The fixture mirror and free ports, for the end-to-end tests and the soak benchmark
//! (`benches/soak.rs` includes this file).

use attendant_e2e::mirror::{DEFAULT_SEED, MirrorInfo};
use attendant_e2e::workspace;

/// The fixture mirror, generating it (and building the ImageBuilder helper) on first use.
pub(crate) fn mirror() -> MirrorInfo {
    workspace::fixture(DEFAULT_SEED).expect("the fixture mirror")
}

/// A port nothing listens on right now.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
