//! Property tests for the usign parsers: no input makes them panic, and what we write parses
//! back to the same value.

use attendant_proto::usign::{Fingerprint, PublicKey, SecretKey, Signature};
use proptest::prelude::*;

fn comment() -> impl Strategy<Value = Option<String>> {
    proptest::option::of("[^\r\n]{0,80}")
}

proptest! {
    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = PublicKey::parse(&bytes);
        let _ = SecretKey::parse(&bytes);
        let _ = Signature::parse(&bytes);
        let _ = Fingerprint::from_hex(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn parsers_never_panic_on_armored_bytes(
        comment in "[ -~]{0,40}", raw in proptest::collection::vec(any::<u8>(), 0..120),
    ) {
        use base64::Engine as _;
        let file = format!(
            "untrusted comment: {comment}\n{}\n",
            base64::engine::general_purpose::STANDARD.encode(&raw)
        );
        let _ = PublicKey::parse(file.as_bytes());
        let _ = SecretKey::parse(file.as_bytes());
        let _ = Signature::parse(file.as_bytes());
    }

    #[test]
    fn keys_and_signatures_round_trip(
        seed in any::<[u8; 32]>(), fp in any::<[u8; 8]>(), salt in any::<[u8; 16]>(),
        comment in comment(), message in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let secret = SecretKey::generate(seed, Fingerprint(fp), salt, comment.as_deref()).unwrap();
        let reparsed = SecretKey::parse(secret.to_file().as_bytes()).unwrap();
        prop_assert_eq!(reparsed.to_file(), secret.to_file());
        let public = secret.public_key();
        prop_assert_eq!(PublicKey::parse(public.to_file().as_bytes()).unwrap(), public.clone());
        let sig = secret.sign(&message);
        let parsed = Signature::parse(sig.to_file().as_bytes()).unwrap();
        prop_assert_eq!(&parsed, &sig);
        public.verify(&message, &parsed).unwrap();
        prop_assert_eq!(Fingerprint::from_hex(&public.fingerprint().to_string()).unwrap(), Fingerprint(fp));
    }
}
