//! `attendant-server keys` end to end: the real binary makes the root key, delegates a signing
//! key, revokes keys and shows the files; `signify-openbsd` checks every certificate's signature
//! with the root's public key, and the router-side checks (`proto::channel::trust`) accept the
//! delegation and honour the revocation.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail the test by panicking"
)]

use std::path::Path;
use std::process::{Command, Output};

use attendant_proto::channel::trust::{TrustError, verify_metadata};
use attendant_proto::ucert::{CertBody, Chain};
use attendant_proto::usign::{PublicKey, SecretKey};
use attendant_server::channels::keys::MetadataSigner;

const FEB_2027: i64 = 1_801_440_000; // Mon Feb 01 00:00:00 UTC 2027

fn keys(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_attendant-server"))
        .arg("keys")
        .args(args)
        .current_dir(dir)
        .env_remove("ATTENDANT_CONFIG")
        .output()
        .unwrap()
}

fn success(output: Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed: {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn failure(output: Output, what: &str) -> String {
    assert_eq!(output.status.code(), Some(1), "{what}: {output:?}");
    assert!(output.stdout.is_empty(), "{what}: {output:?}");
    String::from_utf8(output.stderr).unwrap()
}

/// `signify-openbsd -V` of `signature` over `message` with `public` (files in `dir`).
fn signify_verifies(dir: &Path, public: &[u8], message: &[u8], signature: &[u8]) -> bool {
    std::fs::write(dir.join("check.pub"), public).unwrap();
    std::fs::write(dir.join("check.msg"), message).unwrap();
    std::fs::write(dir.join("check.sig"), signature).unwrap();
    let output = match Command::new("signify-openbsd")
        .args([
            "-V",
            "-p",
            "check.pub",
            "-x",
            "check.sig",
            "-m",
            "check.msg",
        ])
        .current_dir(dir)
        .output()
    {
        Ok(output) => output,
        Err(error) => panic!(
            "cannot run signify-openbsd ({error}); install it with `apt-get install \
             signify-openbsd`"
        ),
    };
    output.status.success()
}

/// Every certificate in `file` carries a signature signify accepts with `root_pub`.
fn assert_signify_accepts_every_certificate(dir: &Path, root_pub: &[u8], file: &Path) {
    let chain = Chain::parse(&std::fs::read(file).unwrap()).unwrap();
    assert!(!chain.elements().is_empty());
    for element in chain.elements() {
        let cert = element.cert().unwrap();
        assert!(
            signify_verifies(dir, root_pub, cert.payload(), element.signature_file()),
            "signify refuses a certificate of {}",
            file.display()
        );
    }
}

#[test]
fn root_delegate_sign_verify_and_revoke() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();

    let root_fp = success(
        keys(dir, &["root-init", "-s", "offline/root.sec"]),
        "root-init",
    );
    let root_pub = std::fs::read(dir.join("offline/root.sec.pub")).unwrap();
    let root = PublicKey::parse(&root_pub).unwrap();
    assert_eq!(root_fp, format!("{}\n", root.fingerprint()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("offline/root.sec"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Never overwritten.
    let stderr = failure(keys(dir, &["root-init", "-s", "offline/root.sec"]), "again");
    assert!(
        stderr.starts_with("error: cannot write the secret key `offline/root.sec`"),
        "{stderr}"
    );

    let signing_fp = success(
        keys(
            dir,
            &[
                "delegate",
                "--root",
                "offline/root.sec",
                "--signing",
                "etc/signing.sec",
                "--valid-from",
                "2027-02-01T00:00:00Z",
                "--valid-for",
                "90d",
                "-o",
                "etc/signing.ucert",
            ],
        ),
        "delegate",
    );
    let signing = SecretKey::parse(&std::fs::read(dir.join("etc/signing.sec")).unwrap()).unwrap();
    assert_eq!(signing_fp, format!("{}\n", signing.fingerprint()));
    let delegation_path = dir.join("etc/signing.ucert");
    assert_signify_accepts_every_certificate(dir, &root_pub, &delegation_path);

    let chain = Chain::parse(&std::fs::read(&delegation_path).unwrap()).unwrap();
    let cert = chain.elements()[0].cert().unwrap();
    assert_eq!(cert.valid_from(), FEB_2027);
    let CertBody::Auth {
        public_key,
        expires_at,
    } = cert.body()
    else {
        panic!("not an auth certificate");
    };
    assert_eq!(public_key, &signing.public_key());
    assert_eq!(*expires_at, FEB_2027 + 90 * 86_400);

    // The server's signer signs; signify and the router's checks accept it.
    let signer = MetadataSigner::load(&dir.join("etc/signing.sec"), &delegation_path).unwrap();
    let message = b"{\"global\":{\"serial\":1}}\n";
    let signature = signer.sign(message);
    assert!(signify_verifies(
        dir,
        signing.public_key().to_file().as_bytes(),
        message,
        signature.as_bytes()
    ));
    let inside = FEB_2027 + 86_400;
    let delegation = std::fs::read(&delegation_path).unwrap();
    let verify = |revocations: Option<&[u8]>, now| {
        verify_metadata(
            message,
            signature.as_bytes(),
            &delegation,
            revocations,
            std::slice::from_ref(&root),
            now,
        )
    };
    assert_eq!(verify(None, inside), Ok(signing.public_key()));
    assert!(matches!(
        verify(None, FEB_2027 - 1),
        Err(TrustError::DelegationNotYetValid { .. })
    ));

    // Revoke the signing key; a second revocation of the same key changes nothing.
    let fingerprint = signing.fingerprint().to_string();
    for round in 0..2 {
        let output = keys(
            dir,
            &[
                "revoke",
                "--root",
                "offline/root.sec",
                &fingerprint,
                "--valid-from",
                "Mon Feb 01 00:00:00 UTC 2027",
                "-o",
                "etc/revoked.ucert",
            ],
        );
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        success(output, "revoke");
        if round == 1 {
            assert!(stderr.contains("already revokes key"), "{stderr}");
        }
    }
    let revoked_path = dir.join("etc/revoked.ucert");
    assert_signify_accepts_every_certificate(dir, &root_pub, &revoked_path);
    let revoked = std::fs::read(&revoked_path).unwrap();
    assert_eq!(Chain::parse(&revoked).unwrap().elements().len(), 1);
    assert_eq!(
        verify(Some(&revoked), inside),
        Err(TrustError::Revoked {
            fingerprint: signing.fingerprint()
        })
    );

    // `show`, as text and as JSON.
    let text = success(keys(dir, &["show", "etc/signing.ucert"]), "show");
    assert_eq!(
        text,
        format!(
            "element 1: delegation by key {}\n  key:        {}\n  valid from: Mon Feb 01 00:00:00 \
             UTC 2027\n  expires at: Sun May 02 00:00:00 UTC 2027\n",
            root.fingerprint(),
            signing.fingerprint()
        )
    );
    let json: serde_json::Value = serde_json::from_str(&success(
        keys(dir, &["show", "--json", "etc/revoked.ucert"]),
        "show",
    ))
    .unwrap();
    assert_eq!(json["elements"][0]["kind"], "revoke");
    assert_eq!(json["elements"][0]["fingerprint"], fingerprint.as_str());
    assert_eq!(
        json["elements"][0]["signed_by"],
        root.fingerprint().to_string()
    );
    assert_eq!(json["elements"][0]["valid_from"], FEB_2027);
    assert_eq!(
        json["elements"][0]["valid_from_text"],
        "Mon Feb 01 00:00:00 UTC 2027"
    );
}

#[test]
fn errors_name_the_file_and_the_rule() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    success(keys(dir, &["root-init", "-s", "root.sec"]), "root-init");

    let stderr = failure(
        keys(
            dir,
            &[
                "delegate",
                "--root",
                "missing.sec",
                "--signing",
                "s.sec",
                "--valid-for",
                "1d",
                "-o",
                "s.ucert",
            ],
        ),
        "missing root",
    );
    assert!(
        stderr.starts_with("error: cannot read the root key `missing.sec`: "),
        "{stderr}"
    );
    assert!(
        !dir.join("s.sec").exists(),
        "no signing key is made for a failed delegation"
    );

    let stderr = failure(
        keys(
            dir,
            &[
                "delegate",
                "--root",
                "root.sec",
                "--signing",
                "s.sec",
                "--valid-from",
                "1796557500",
                "--valid-for",
                "0s",
                "-o",
                "s.ucert",
            ],
        ),
        "empty window",
    );
    assert_eq!(
        stderr,
        "error: cannot issue the certificate: certificate window is empty: valid from Sun Dec 06 \
         11:45:00 UTC 2026 but expires at Sun Dec 06 11:45:00 UTC 2026\n"
    );

    let stderr = failure(
        keys(
            dir,
            &[
                "delegate",
                "--root",
                "root.sec",
                "--signing",
                "s.sec",
                "--valid-from",
                "soon",
                "--valid-for",
                "1d",
                "-o",
                "s.ucert",
            ],
        ),
        "bad time",
    );
    assert_eq!(
        stderr,
        "error: --valid-from `soon` is not a time; expected RFC 3339 (`2027-02-01T00:00:00Z`), a \
         channel date (`Mon Feb 01 00:00:00 UTC 2027`) or Unix seconds\n"
    );

    let stderr = failure(
        keys(
            dir,
            &["revoke", "--root", "root.sec", "not-hex", "-o", "r.ucert"],
        ),
        "bad fingerprint",
    );
    assert_eq!(
        stderr,
        "error: cannot revoke: the key is named by its fingerprint: `not-hex` is not a key \
         fingerprint: expected 1 to 16 hex digits\n"
    );

    std::fs::write(dir.join("junk.ucert"), b"not a ucert file").unwrap();
    let stderr = failure(keys(dir, &["show", "junk.ucert"]), "junk");
    assert!(
        stderr.starts_with(
            "error: `junk.ucert` is not a usable ucert file: blob attribute at byte 0"
        ),
        "{stderr}"
    );
    std::fs::write(dir.join("big.ucert"), vec![0_u8; 5000]).unwrap();
    let stderr = failure(keys(dir, &["show", "big.ucert"]), "big");
    assert_eq!(
        stderr,
        "error: `big.ucert` is 5000 bytes, more than the 4095 bytes of a ucert file\n"
    );

    // A delegation of another key: the signer refuses it and the CLI hint says what to run.
    success(
        keys(
            dir,
            &[
                "delegate",
                "--root",
                "root.sec",
                "--signing",
                "s.sec",
                "--valid-for",
                "1d",
                "-o",
                "s.ucert",
            ],
        ),
        "delegate",
    );
    success(
        keys(
            dir,
            &[
                "delegate",
                "--root",
                "root.sec",
                "--signing",
                "t.sec",
                "--valid-for",
                "1d",
                "-o",
                "t.ucert",
            ],
        ),
        "delegate",
    );
    let error = MetadataSigner::load(&dir.join("s.sec"), &dir.join("t.ucert")).unwrap_err();
    assert!(
        error.to_string().contains("certifies key")
            && error
                .hint()
                .unwrap()
                .contains("attendant-server keys delegate"),
        "{error}"
    );
}

#[test]
fn help_shows_examples() {
    let temp = tempfile::tempdir().unwrap();
    let help = success(keys(temp.path(), &["--help"]), "help");
    assert!(
        help.contains("attendant-server keys root-init -s"),
        "{help}"
    );
    assert!(
        help.contains("publish both delegations while they overlap"),
        "{help}"
    );
    for command in ["root-init", "delegate", "revoke", "show"] {
        let help = success(keys(temp.path(), &[command, "--help"]), command);
        assert!(help.contains("Examples:"), "{command}: {help}");
    }
}

#[test]
fn show_prints_final_signatures() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    std::fs::write(
        dir.join("signed.ucert"),
        include_bytes!("../../proto/testdata/ucert/delegation-and-message.txt.ucert"),
    )
    .unwrap();
    let text = success(keys(dir, &["show", "signed.ucert"]), "show");
    assert_eq!(
        text,
        "element 1: delegation by key 3d851eb6ad1db4f5\n  key:        0707070707070707\n  \
         valid from: Sun Dec 06 11:45:00 UTC 2026\n  expires at: Sat Mar 06 11:45:00 UTC 2027\n\
         element 2: signature by key 0707070707070707\n"
    );
    let json: serde_json::Value = serde_json::from_str(&success(
        keys(dir, &["show", "--json", "signed.ucert"]),
        "show",
    ))
    .unwrap();
    assert_eq!(
        json["elements"][1],
        serde_json::json!({"kind": "signature", "signed_by": "0707070707070707"})
    );
    assert_eq!(json["elements"][0]["expires_at"], 1_804_333_500_i64);
}
