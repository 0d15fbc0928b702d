//! The fixture mirror and free ports, for the end-to-end tests and the soak benchmark
//! (`benches/soak.rs` includes this file).

use attendant_e2e::mirror::{DEFAULT_SEED, MirrorInfo, helper_path, shared_fixture};

/// The fixture mirror, generating it (and building the ImageBuilder helper) on first use.
pub(crate) fn mirror() -> MirrorInfo {
    if helper_path().is_err() {
        let status = std::process::Command::new(env!("CARGO"))
            .args([
                "build",
                "-p",
                "attendant-e2e",
                "--bin",
                "attendant-ib-helper",
            ])
            .status()
            .expect("run cargo build for the ImageBuilder helper");
        assert!(status.success(), "building attendant-ib-helper failed");
    }
    shared_fixture(DEFAULT_SEED).expect("generate the fixture mirror")
}

/// A port nothing listens on right now.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
