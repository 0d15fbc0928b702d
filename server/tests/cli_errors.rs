//! How `attendant-server` reports a start-up error to the operator: the error chain on one
//! line, then the way out on its own `hint:` line.

use std::process::Command;

#[test]
fn passphrase_key_error_is_followed_by_its_hint() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("protected.sec");
    std::fs::write(
        &key,
        include_bytes!("../../proto/testdata/usign/protected.sec"),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_attendant-server"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("ATTENDANT_CONFIG")
        .env("ATTENDANT_DATA_DIR", dir.path().join("data"))
        .env("ATTENDANT_SIGNING_KEY", &key)
        .env("ATTENDANT_WORKERS", "0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    let expected = format!(
        "error: `{path}` is encrypted with a passphrase (42 bcrypt_pbkdf rounds); the server \
         signs without asking for one\n\nhint: make a key without a passphrase with \
         `attendant-server keygen -s {path}`, `signify-openbsd -G -n -p key.pub -s key.sec` or \
         `usign -G -p key.pub -s key.sec`\n",
        path = key.display()
    );
    assert!(stderr.ends_with(&expected), "{stderr}");
}
