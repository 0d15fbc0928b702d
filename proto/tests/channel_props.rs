//! Property tests for the channel formats and ucert: the UTC date text agrees with the `time`
//! crate's formatting of the same strftime pattern (an independent implementation of the
//! calendar), certificates round trip and verify for any window and key, and the parsers never
//! panic.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail the test by panicking"
)]

use attendant_proto::channel::{VersionDetail, parse_channels, parse_index, parse_stamp};
use attendant_proto::timestamp::{MAX_UNIX, Timestamp};
use attendant_proto::ucert::{Chain, Element, Revocations, issue_auth, issue_revoke};
use attendant_proto::usign::{Fingerprint, Keyring, SecretKey};
use proptest::prelude::*;

const FORMAT: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
    "[weekday repr:short] [month repr:short] [day] [hour]:[minute]:[second] UTC [year]"
);

fn key(seed: u8, fingerprint: [u8; 8]) -> SecretKey {
    SecretKey::generate([seed; 32], Fingerprint(fingerprint), [0; 16], None).unwrap()
}

proptest! {
    #[test]
    fn date_text_agrees_with_the_time_crate(unix in 0..=MAX_UNIX) {
        let ours = Timestamp::from_unix(unix).unwrap().to_string();
        let theirs = time::OffsetDateTime::from_unix_timestamp(unix).unwrap().format(FORMAT).unwrap();
        prop_assert_eq!(&ours, &theirs);
        prop_assert_eq!(Timestamp::parse(&ours).unwrap().unix(), unix);
    }

    #[test]
    fn certificates_round_trip_and_verify(
        root_seed in any::<u8>(), signing_seed in any::<u8>(),
        root_fp in any::<[u8; 8]>(), signing_fp in any::<[u8; 8]>(),
        valid_from in any::<i64>(), length in 1..=i64::MAX, message in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let root = key(root_seed, root_fp);
        let signing = key(signing_seed, signing_fp);
        let expires_at = valid_from.saturating_add(length);
        prop_assume!(expires_at > valid_from);
        let chain = Chain::new(vec![
            issue_auth(&root, &signing.public_key(), valid_from, expires_at).unwrap(),
            Element::final_signature(&signing.sign(&message)),
        ]);
        let bytes = chain.to_bytes();
        let parsed = Chain::parse(&bytes).unwrap();
        prop_assert_eq!(&parsed, &chain);
        prop_assert_eq!(parsed.to_bytes(), bytes);
        let mut trusted = Keyring::new();
        trusted.add(root.public_key());
        let verified = parsed.verify(&trusted, &Revocations::new(), valid_from).unwrap();
        verified.verify_message(&message).unwrap();
        prop_assert!(parsed.verify(&trusted, &Revocations::new(), expires_at).is_err());

        let revocation = Chain::new(vec![issue_revoke(&root, signing.fingerprint(), valid_from)]);
        let mut revoked = Revocations::new();
        revoked.add_chain(&Chain::parse(&revocation.to_bytes()).unwrap(), &trusted, valid_from).unwrap();
        prop_assert!(parsed.verify(&trusted, &revoked, valid_from).is_err());
    }

    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Chain::parse(&bytes);
        let _ = parse_channels(&bytes);
        let _ = parse_index(&bytes);
        let _ = parse_stamp(&bytes);
        let text = String::from_utf8_lossy(&bytes);
        let _ = Timestamp::parse(&text);
        let _ = VersionDetail::parse(&text);
    }

    /// Byte flips in a real chain reach the nested parsers that random bytes never get to: the
    /// parser still returns, and whatever it accepts writes back to exactly the mutated bytes.
    #[test]
    fn mutated_chains_parse_canonically_or_fail(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = include_bytes!("../testdata/ucert/delegation-and-message.txt.ucert").to_vec();
        for (at, value) in flips {
            let at = at.index(bytes.len());
            bytes[at] = value;
        }
        if let Ok(chain) = Chain::parse(&bytes) {
            prop_assert_eq!(chain.to_bytes(), bytes);
        }
    }

    #[test]
    fn mutated_indexes_round_trip_or_fail(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 0x20_u8..0x7f), 1..4),
    ) {
        let mut bytes = include_bytes!("../testdata/channel/index.json").to_vec();
        for (at, value) in flips {
            let at = at.index(bytes.len());
            bytes[at] = value;
        }
        if let Ok(doc) = parse_index(&bytes) {
            let written = attendant_proto::channel::encode_index(&doc);
            prop_assert_eq!(parse_index(&written).unwrap(), doc);
        }
    }
}
