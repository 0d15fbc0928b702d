use super::*;
use crate::channel::tests::sample_index;
use crate::ucert::{Element, issue_auth, issue_revoke};
use crate::usign::SecretKey;

const NOW: i64 = 1_796_557_500;
const DAY: i64 = 86_400;

fn key(n: u8) -> SecretKey {
    SecretKey::generate([n; 32], Fingerprint([n; 8]), [0; 16], None).unwrap()
}

fn delegation(root: &SecretKey, signing: &SecretKey, from: i64, until: i64) -> Vec<u8> {
    Chain::new(vec![
        issue_auth(root, &signing.public_key(), from, until).unwrap(),
    ])
    .to_bytes()
}

struct Setup {
    root: SecretKey,
    signing: SecretKey,
    message: Vec<u8>,
    signature: Vec<u8>,
    delegation: Vec<u8>,
}

fn setup() -> Setup {
    let root = key(1);
    let signing = key(2);
    let message = b"{\"global\":{}}\n".to_vec();
    Setup {
        signature: signing.sign(&message).to_file().into_bytes(),
        delegation: delegation(&root, &signing, NOW - DAY, NOW + 90 * DAY),
        root,
        signing,
        message,
    }
}

impl Setup {
    fn verify(&self, revocations: Option<&[u8]>, now: i64) -> Result<PublicKey, TrustError> {
        verify_metadata(
            &self.message,
            &self.signature,
            &self.delegation,
            revocations,
            &[self.root.public_key()],
            now,
        )
    }
}

#[test]
fn accepts_delegated_signature() {
    let setup = setup();
    assert_eq!(setup.verify(None, NOW), Ok(setup.signing.public_key()));
    assert_eq!(
        signing_key_of(&setup.signature),
        Ok(setup.signing.fingerprint())
    );
    // An empty revocation list is no revocation.
    let unrelated = Chain::new(vec![issue_revoke(&setup.root, Fingerprint([5; 8]), 0)]).to_bytes();
    assert!(setup.verify(Some(&unrelated), NOW).is_ok());
}

#[test]
fn refuses_tampered_message() {
    let mut setup = setup();
    setup.message.push(b' ');
    assert_eq!(
        setup.verify(None, NOW).unwrap_err().to_string(),
        "the metadata signature by key `0202020202020202` does not match the file"
    );
}

#[test]
fn refuses_delegation_by_unpinned_root() {
    let mut setup = setup();
    setup.delegation = delegation(&key(9), &setup.signing, 0, NOW + DAY);
    let err = setup.verify(None, NOW).unwrap_err();
    assert_eq!(
        err,
        TrustError::UnknownKey {
            fingerprint: Fingerprint([9; 8])
        }
    );
    assert_eq!(err.code(), "unknown-key");
}

#[test]
fn refuses_signature_by_other_key() {
    let mut setup = setup();
    setup.signature = key(3).sign(&setup.message).to_file().into_bytes();
    assert_eq!(
        setup.verify(None, NOW).unwrap_err().to_string(),
        "the metadata is signed by key `0303030303030303`, but the delegation certifies key \
         `0202020202020202`"
    );
}

#[test]
fn refuses_outside_the_delegation_window() {
    let setup = setup();
    let err = setup.verify(None, NOW + 90 * DAY).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the delegation of the signing key expired at Sat Mar 06 11:45:00 UTC 2027, it is now Sat \
         Mar 06 11:45:00 UTC 2027"
    );
    assert_eq!(err.code(), "delegation-expired");
    assert!(matches!(
        setup.verify(None, NOW - DAY - 1),
        Err(TrustError::DelegationNotYetValid { .. })
    ));
}

#[test]
fn refuses_revoked_signing_key_and_forged_revocations() {
    let setup = setup();
    let revoked = Chain::new(vec![issue_revoke(
        &setup.root,
        setup.signing.fingerprint(),
        NOW - 1,
    )])
    .to_bytes();
    assert_eq!(
        setup.verify(Some(&revoked), NOW).unwrap_err(),
        TrustError::Revoked {
            fingerprint: setup.signing.fingerprint()
        }
    );
    // A revocation list signed by someone else is refused as a whole.
    let forged = Chain::new(vec![issue_revoke(&key(9), setup.signing.fingerprint(), 0)]).to_bytes();
    assert!(matches!(
        setup.verify(Some(&forged), NOW),
        Err(TrustError::Revocations(UcertError::UnknownKey { .. }))
    ));
    assert!(matches!(
        setup.verify(Some(b"garbage"), NOW),
        Err(TrustError::Revocations(_))
    ));
}

#[test]
fn refuses_malformed_inputs() {
    let mut setup = setup();
    setup.signature = b"not a signature".to_vec();
    assert!(matches!(
        setup.verify(None, NOW),
        Err(TrustError::SignatureFile(_))
    ));
    let mut setup = self::setup();
    setup.delegation = b"\0\0\0\x03".to_vec();
    assert!(matches!(
        setup.verify(None, NOW),
        Err(TrustError::Delegation(UcertError::BadLength { .. }))
    ));
    // A bare root signature is not a delegation.
    let mut setup = self::setup();
    setup.delegation =
        Chain::new(vec![Element::final_signature(&setup.root.sign(b"x"))]).to_bytes();
    assert_eq!(setup.verify(None, NOW), Err(TrustError::NotADelegation));
}

#[test]
fn rotation_accepts_either_overlapping_key() {
    let root = key(1);
    let old = key(2);
    let new = key(3);
    let message = b"channels";
    for (signing, from, until) in [
        (&old, NOW - 80 * DAY, NOW + 10 * DAY),
        (&new, NOW - DAY, NOW + 89 * DAY),
    ] {
        let signature = signing.sign(message).to_file().into_bytes();
        let chain = delegation(&root, signing, from, until);
        assert_eq!(signing_key_of(&signature), Ok(signing.fingerprint()));
        assert_eq!(
            verify_metadata(message, &signature, &chain, None, &[root.public_key()], NOW),
            Ok(signing.public_key())
        );
    }
}

#[test]
fn freshness_rules() {
    let freshness = sample_index().global.freshness;
    assert_eq!(check_freshness(&freshness, NOW, 0), Ok(()));
    assert_eq!(check_freshness(&freshness, NOW, 12), Ok(()));
    let err = check_freshness(&freshness, NOW, 13).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the metadata has serial 12, lower than serial 13 seen before"
    );
    assert_eq!(err.code(), "serial-rollback");
    let err = check_freshness(&freshness, freshness.expires, 0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the metadata expired at Sun Dec 13 11:45:00 UTC 2026, it is now Sun Dec 13 11:45:00 UTC \
         2026"
    );
    check_freshness(&freshness, freshness.expires - 1, 0).unwrap();
}

#[test]
fn index_must_be_for_the_device_asked_for() {
    let global = sample_index().global;
    check_index_target(&global, "stable", "ath79/generic/tplink_archer-c7-v5").unwrap();
    let err = check_index_target(&global, "stable", "x86/64/generic").unwrap_err();
    assert_eq!(
        err.to_string(),
        "the index is for `stable` `ath79/generic/tplink_archer-c7-v5`, expected `stable` \
         `x86/64/generic`"
    );
    assert_eq!(err.code(), "wrong-device");
    assert!(check_index_target(&global, "testing", "ath79/generic/tplink_archer-c7-v5").is_err());
}
