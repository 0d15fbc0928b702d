//! usign interoperability with OpenBSD signify (`signify-openbsd`), in both directions.
//!
//! The committed fixtures in `testdata/usign/` were made by signify (see the README there); the
//! live tests run `signify-openbsd` and fail, never skip, when it is not installed.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail the test by panicking"
)]

use std::path::Path;
use std::process::{Command, Output};

use attendant_proto::usign::{Fingerprint, Keyring, PublicKey, SecretKey, Signature, UsignError};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

const MESSAGE: &[u8] = include_bytes!("../testdata/usign/message.txt");
const PUB: &[u8] = include_bytes!("../testdata/usign/signify.pub");
const SEC: &[u8] = include_bytes!("../testdata/usign/signify.sec");
const SIG: &[u8] = include_bytes!("../testdata/usign/message.txt.sig");
const LZ_PUB: &[u8] = include_bytes!("../testdata/usign/leading-zero.pub");
const LZ_SEC: &[u8] = include_bytes!("../testdata/usign/leading-zero.sec");
const LZ_SIG: &[u8] = include_bytes!("../testdata/usign/message.txt.leading-zero.sig");
const PROTECTED_PUB: &[u8] = include_bytes!("../testdata/usign/protected.pub");
const PROTECTED_SEC: &[u8] = include_bytes!("../testdata/usign/protected.sec");

/// Run `signify-openbsd` with `args` in `dir`; a missing binary fails the test with a hint.
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

fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed: {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn decoded(file: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(file).unwrap();
    BASE64.decode(text.lines().nth(1).unwrap()).unwrap()
}

fn reencoded(comment: &str, raw: &[u8]) -> Vec<u8> {
    format!("untrusted comment: {comment}\n{}\n", BASE64.encode(raw)).into_bytes()
}

fn our_key(n: u8) -> SecretKey {
    SecretKey::generate(
        [n; 32],
        Fingerprint([n, 0xaa, 2, 3, 4, 5, 6, 7]),
        [n; 16],
        None,
    )
    .unwrap()
}

#[test]
fn signify_fixture_signature_verifies_with_ours() {
    let key = PublicKey::parse(PUB).unwrap();
    let sig = Signature::parse(SIG).unwrap();
    assert_eq!(key.comment(), "attendant test key public key");
    assert_eq!(sig.fingerprint(), key.fingerprint());
    key.verify(MESSAGE, &sig).unwrap();

    let mut stream = key.stream_verifier(&sig).unwrap();
    for chunk in MESSAGE.chunks(7) {
        stream.update(chunk);
    }
    stream.finalize().unwrap();

    let mut ring = Keyring::new();
    ring.add_file(&key.fingerprint().to_string(), PUB).unwrap();
    assert_eq!(ring.verify(MESSAGE, &sig).unwrap(), key.fingerprint());
}

#[test]
fn leading_zero_fingerprint_is_padded_and_old_unpadded_names_still_match() {
    let key = PublicKey::parse(LZ_PUB).unwrap();
    let name = key.fingerprint().to_string();
    assert_eq!(name, "01abe8fb424a20bb");
    let mut ring = Keyring::new();
    assert!(matches!(
        ring.add_file("01abe8fb424a20bc", LZ_PUB),
        Err(UsignError::FileNameMismatch { .. })
    ));
    // usign before 2020 named the file without the leading zero.
    ring.add_file("1abe8fb424a20bb", LZ_PUB).unwrap();
    ring.add_file(&name, LZ_PUB).unwrap();
    ring.verify(MESSAGE, &Signature::parse(LZ_SIG).unwrap())
        .unwrap();
    let secret = SecretKey::parse(LZ_SEC).unwrap();
    assert_eq!(secret.public_key().key_bytes(), key.key_bytes());
}

#[test]
fn signify_secret_key_signs_byte_identically() {
    let secret = SecretKey::parse(SEC).unwrap();
    assert_eq!(secret.comment(), "attendant test key secret key");
    let public = PublicKey::parse(PUB).unwrap();
    assert_eq!(secret.public_key().key_bytes(), public.key_bytes());
    assert_eq!(secret.fingerprint(), public.fingerprint());
    let ours = secret.sign(MESSAGE);
    assert_eq!(decoded(ours.to_file().as_bytes()), decoded(SIG));
    // Writing the secret key again gives signify's bytes (salt and checksum kept).
    assert_eq!(decoded(secret.to_file().as_bytes()), decoded(SEC));
}

#[test]
fn refuses_real_passphrase_protected_key() {
    let err = SecretKey::parse(PROTECTED_SEC).unwrap_err();
    assert_eq!(err, UsignError::PasswordProtected { rounds: 42 });
    assert!(err.to_string().contains("without a passphrase"), "{err}");
    // Its public half is an ordinary public key.
    PublicKey::parse(PROTECTED_PUB).unwrap();
}

#[test]
fn refuses_key_with_patched_kdfrounds() {
    let mut raw = decoded(SEC);
    raw[4..8].copy_from_slice(&16_u32.to_be_bytes());
    let err = SecretKey::parse(&reencoded("patched", &raw)).unwrap_err();
    assert_eq!(err, UsignError::PasswordProtected { rounds: 16 });
}

#[test]
fn flipped_bytes_are_rejected() {
    let key = PublicKey::parse(PUB).unwrap();
    let sig = Signature::parse(SIG).unwrap();
    for at in 0..MESSAGE.len() {
        let mut message = MESSAGE.to_vec();
        message[at] ^= 0x01;
        assert!(key.verify(&message, &sig).is_err(), "message byte {at}");
    }
    let raw_key = decoded(PUB);
    for at in 0..raw_key.len() {
        let mut raw = raw_key.clone();
        raw[at] ^= 0x01;
        let outcome = PublicKey::parse(&reencoded("k", &raw)).and_then(|k| k.verify(MESSAGE, &sig));
        assert!(outcome.is_err(), "key byte {at}");
    }
    let raw_sig = decoded(SIG);
    for at in 0..raw_sig.len() {
        let mut raw = raw_sig.clone();
        raw[at] ^= 0x01;
        let outcome = Signature::parse(&reencoded("s", &raw)).and_then(|s| key.verify(MESSAGE, &s));
        assert!(outcome.is_err(), "signature byte {at}");
    }
    let raw_sec = decoded(SEC);
    for at in 0..raw_sec.len() {
        let mut raw = raw_sec.clone();
        raw[at] ^= 0x01;
        let outcome = SecretKey::parse(&reencoded("s", &raw));
        // Flipping the salt changes nothing usign checks; every other byte must be refused.
        if (8..24).contains(&at) {
            assert!(outcome.is_ok(), "salt byte {at}");
        } else if (32..40).contains(&at) {
            // The fingerprint is not covered by the checksum (as in usign and signify).
            assert_ne!(outcome.unwrap().fingerprint(), key.fingerprint());
        } else {
            assert!(outcome.is_err(), "secret key byte {at}");
        }
    }
}

#[test]
fn our_signature_verifies_with_signify() {
    let dir = tempfile::tempdir().unwrap();
    let secret = our_key(1);
    std::fs::write(dir.path().join("ours.pub"), secret.public_key().to_file()).unwrap();
    std::fs::write(dir.path().join("msg"), MESSAGE).unwrap();
    std::fs::write(dir.path().join("msg.sig"), secret.sign(MESSAGE).to_file()).unwrap();
    let output = signify(
        dir.path(),
        &["-V", "-p", "ours.pub", "-m", "msg", "-x", "msg.sig"],
    );
    assert_success(&output, "signify -V on our signature");

    // The oracle discriminates: a tampered message is refused by signify too.
    std::fs::write(dir.path().join("msg"), b"tampered").unwrap();
    let output = signify(
        dir.path(),
        &["-V", "-p", "ours.pub", "-m", "msg", "-x", "msg.sig"],
    );
    assert!(
        !output.status.success(),
        "signify accepted a tampered message"
    );
}

#[test]
fn our_secret_key_works_in_signify() {
    let dir = tempfile::tempdir().unwrap();
    let secret = our_key(2);
    std::fs::write(dir.path().join("ours.sec"), secret.to_file()).unwrap();
    std::fs::write(dir.path().join("msg"), MESSAGE).unwrap();
    let output = signify(
        dir.path(),
        &["-S", "-s", "ours.sec", "-m", "msg", "-x", "msg.sig"],
    );
    assert_success(&output, "signify -S with our secret key");
    let theirs = Signature::parse(&std::fs::read(dir.path().join("msg.sig")).unwrap()).unwrap();
    secret.public_key().verify(MESSAGE, &theirs).unwrap();
    assert_eq!(
        decoded(theirs.to_file().as_bytes()),
        decoded(secret.sign(MESSAGE).to_file().as_bytes())
    );
}

#[test]
fn signify_generated_keys_work_with_ours() {
    let dir = tempfile::tempdir().unwrap();
    let output = signify(
        dir.path(),
        &["-G", "-n", "-p", "k.pub", "-s", "k.sec", "-c", "live key"],
    );
    assert_success(&output, "signify -G -n");
    let message: Vec<u8> = (0..70_000_u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(dir.path().join("msg"), &message).unwrap();
    let output = signify(
        dir.path(),
        &["-S", "-s", "k.sec", "-m", "msg", "-x", "msg.sig"],
    );
    assert_success(&output, "signify -S");

    let public = PublicKey::parse(&std::fs::read(dir.path().join("k.pub")).unwrap()).unwrap();
    let secret = SecretKey::parse(&std::fs::read(dir.path().join("k.sec")).unwrap()).unwrap();
    let sig = Signature::parse(&std::fs::read(dir.path().join("msg.sig")).unwrap()).unwrap();
    assert_eq!(public.comment(), "live key public key");
    public.verify(&message, &sig).unwrap();
    let ours = secret.sign(&message);
    assert_eq!(
        decoded(ours.to_file().as_bytes()),
        decoded(sig.to_file().as_bytes())
    );
    assert!(public.verify(&message[1..], &sig).is_err());

    // Our re-written key files are accepted by signify.
    std::fs::write(dir.path().join("again.pub"), public.to_file()).unwrap();
    std::fs::write(dir.path().join("again.sec"), secret.to_file()).unwrap();
    let output = signify(
        dir.path(),
        &["-S", "-s", "again.sec", "-m", "msg", "-x", "again.sig"],
    );
    assert_success(&output, "signify -S with our rewritten secret key");
    let output = signify(
        dir.path(),
        &["-V", "-p", "again.pub", "-m", "msg", "-x", "again.sig"],
    );
    assert_success(&output, "signify -V with our rewritten public key");
}

#[test]
fn signify_refuses_a_signature_from_another_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.pub"), our_key(3).public_key().to_file()).unwrap();
    std::fs::write(dir.path().join("msg"), MESSAGE).unwrap();
    std::fs::write(
        dir.path().join("msg.sig"),
        our_key(4).sign(MESSAGE).to_file(),
    )
    .unwrap();
    let output = signify(
        dir.path(),
        &["-V", "-p", "a.pub", "-m", "msg", "-x", "msg.sig"],
    );
    assert!(!output.status.success());
    let err = our_key(3)
        .public_key()
        .verify(MESSAGE, &our_key(4).sign(MESSAGE))
        .unwrap_err();
    assert!(matches!(err, UsignError::FingerprintMismatch { .. }));
}
