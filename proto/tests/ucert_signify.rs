//! Every signature inside a ucert chain is a plain usign signature: OpenBSD signify
//! (`signify-openbsd`) must accept each element's signature over the element's payload bytes,
//! and the final signature over the message, exactly as `ucert -V` hands them to `usign -V`.
//! The root key is one signify generated, so the chain interoperates in both directions.
//!
//! Fails, never skips, when `signify-openbsd` is not installed.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail the test by panicking"
)]

use std::path::Path;
use std::process::{Command, Output};

use attendant_proto::ucert::{Chain, Element, Revocations, issue_auth, issue_revoke};
use attendant_proto::usign::{Fingerprint, Keyring, PublicKey, SecretKey};

const SIGNIFY_PUB: &[u8] = include_bytes!("../testdata/usign/signify.pub");
const SIGNIFY_SEC: &[u8] = include_bytes!("../testdata/usign/signify.sec");
const NOW: i64 = 1_796_557_500;

fn signify(dir: &Path, args: &[&str]) -> Output {
    match Command::new("signify-openbsd")
        .args(args)
        .current_dir(dir)
        .output()
    {
        Ok(output) => output,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!(
            "signify-openbsd is not installed; these interoperability tests need it.\n\
             install it with `apt-get install signify-openbsd`"
        ),
        Err(error) => panic!("cannot run signify-openbsd: {error}"),
    }
}

/// Writes `public`, `message` and `signature` into `dir` and runs `signify -V` on them.
fn signify_verifies(dir: &Path, public: &PublicKey, message: &[u8], signature: &[u8]) -> bool {
    std::fs::write(dir.join("key.pub"), public.to_file()).unwrap();
    std::fs::write(dir.join("message"), message).unwrap();
    std::fs::write(dir.join("message.sig"), signature).unwrap();
    let output = signify(
        dir,
        &["-V", "-p", "key.pub", "-x", "message.sig", "-m", "message"],
    );
    output.status.success()
}

#[test]
fn every_chain_signature_verifies_with_signify() {
    let dir = tempfile::tempdir().unwrap();
    let root = SecretKey::parse(SIGNIFY_SEC).unwrap();
    let root_public = PublicKey::parse(SIGNIFY_PUB).unwrap();
    let signing = SecretKey::generate([7; 32], Fingerprint([7; 8]), [7; 16], None).unwrap();
    let message = b"{\"global\": {}}\n";
    let bytes = Chain::new(vec![
        issue_auth(&root, &signing.public_key(), NOW - 60, NOW + 3600).unwrap(),
        Element::final_signature(&signing.sign(message)),
    ])
    .to_bytes();

    // Parse the file as a router would, then hand each piece to signify.
    let chain = Chain::parse(&bytes).unwrap();
    let [cert_element, final_element] = chain.elements() else {
        panic!("two elements expected");
    };
    let cert = cert_element.cert().unwrap();
    assert!(signify_verifies(
        dir.path(),
        &root_public,
        cert.payload(),
        cert_element.signature_file()
    ));
    assert!(signify_verifies(
        dir.path(),
        &signing.public_key(),
        message,
        final_element.signature_file()
    ));
    // signify must also refuse: the payload signature is not one over other bytes.
    let mut tampered = cert.payload().to_vec();
    tampered[20] ^= 1;
    assert!(!signify_verifies(
        dir.path(),
        &root_public,
        &tampered,
        cert_element.signature_file()
    ));

    let mut trusted = Keyring::new();
    trusted.add(root_public);
    let verified = chain.verify(&trusted, &Revocations::new(), NOW).unwrap();
    verified.verify_message(message).unwrap();
}

#[test]
fn revoke_certificate_signature_verifies_with_signify() {
    let dir = tempfile::tempdir().unwrap();
    let root = SecretKey::parse(SIGNIFY_SEC).unwrap();
    let element = issue_revoke(&root, Fingerprint([7; 8]), NOW);
    let chain = Chain::parse(&element.to_bytes()).unwrap();
    let [element] = chain.elements() else {
        panic!("one element expected");
    };
    assert!(signify_verifies(
        dir.path(),
        &PublicKey::parse(SIGNIFY_PUB).unwrap(),
        element.cert().unwrap().payload(),
        element.signature_file()
    ));
}

/// The committed chains in `testdata/ucert/` (also the fuzz seeds) are exactly what this recipe
/// makes; `ATTENDANT_WRITE_FIXTURES=1` rewrites them after a deliberate format change.
#[test]
fn fixtures_match_their_recipe() {
    let root = SecretKey::parse(SIGNIFY_SEC).unwrap();
    let signing = SecretKey::generate([7; 32], Fingerprint([7; 8]), [7; 16], None).unwrap();
    let message = include_bytes!("../testdata/usign/message.txt");
    let delegation = Chain::new(vec![
        issue_auth(&root, &signing.public_key(), NOW, NOW + 90 * 86_400).unwrap(),
    ]);
    let mut signed = delegation.clone();
    signed.push(Element::final_signature(&signing.sign(message)));
    let revoked = Chain::new(vec![issue_revoke(&root, Fingerprint([9; 8]), NOW)]);
    let image = Chain::new(vec![Element::final_signature(&root.sign(message))]);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/ucert");
    for (name, chain) in [
        ("delegation.ucert", delegation),
        ("delegation-and-message.txt.ucert", signed),
        ("revoked.ucert", revoked),
        ("message.txt.ucert", image),
    ] {
        let path = dir.join(name);
        if std::env::var_os("ATTENDANT_WRITE_FIXTURES").is_some() {
            std::fs::write(&path, chain.to_bytes()).unwrap();
        }
        let committed = std::fs::read(&path).unwrap();
        assert_eq!(
            committed,
            chain.to_bytes(),
            "{name} differs from its recipe"
        );
        assert_eq!(Chain::parse(&committed).unwrap(), chain);
    }
}
