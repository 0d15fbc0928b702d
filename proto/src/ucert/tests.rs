use super::*;

const NOW: i64 = 1_796_557_500;
const DAY: i64 = 86_400;

fn key(n: u8) -> SecretKey {
    SecretKey::generate(
        [n; 32],
        Fingerprint([n, 2, 3, 4, 5, 6, 7, 8]),
        [0; 16],
        None,
    )
    .unwrap()
}

fn keyring(keys: &[&SecretKey]) -> Keyring {
    let mut ring = Keyring::new();
    for key in keys {
        ring.add(key.public_key());
    }
    ring
}

/// root(1) certifies signing(2) for a week around `NOW`, and signing signs `message`.
fn signed_chain(message: &[u8]) -> Chain {
    let root = key(1);
    let signing = key(2);
    let cert = issue_auth(&root, &signing.public_key(), NOW - DAY, NOW + 6 * DAY).unwrap();
    Chain::new(vec![cert, Element::final_signature(&signing.sign(message))])
}

#[test]
fn revoke_cert_has_ucerts_byte_layout() {
    let root = key(1);
    let element = issue_revoke(&root, Fingerprint([1, 2, 3, 4, 5, 6, 7, 8]), 0x6500_0000);
    let mut payload = Vec::new();
    payload.extend_from_slice(&[0x82, 0, 0, 96]); // extended | table, 96 bytes
    payload.extend_from_slice(b"\0\x05ucert\0"); // name: 2 + 5 + 1 = 8
    payload.extend_from_slice(&[0x85, 0, 0, 20]); // extended | int32, 20 bytes
    payload.extend_from_slice(b"\0\x08certtype\0\0"); // 2 + 8 + 1 = 11, padded to 12
    payload.extend_from_slice(&[0, 0, 0, 2]);
    payload.extend_from_slice(&[0x84, 0, 0, 24]); // extended | int64, 24 bytes
    payload.extend_from_slice(b"\0\x09validfrom\0"); // 2 + 9 + 1 = 12
    payload.extend_from_slice(&[0, 0, 0, 0, 0x65, 0, 0, 0]);
    payload.extend_from_slice(&[0x83, 0, 0, 37]); // extended | string, 37 bytes
    payload.extend_from_slice(b"\0\x0bfingerprint\0\0\0"); // 2 + 11 + 1 = 14, padded to 16
    payload.extend_from_slice(b"0102030405060708\0\0\0\0"); // 17 bytes, 3 of padding
    assert_eq!(payload.len(), 96);
    assert_eq!(element.cert().unwrap().payload(), &payload[..]);

    let signature_file = root.sign(&payload).to_file();
    assert_eq!(signature_file.len(), 151);
    assert!(signature_file.starts_with("untrusted comment: signed by key 0102030405060708\n"));
    let mut expected = Vec::new();
    expected.extend_from_slice(&[0, 0, 1, 4]); // id 0, 4 + 156 + 100 = 260 bytes
    expected.extend_from_slice(&[0, 0, 0, 155]); // id 0 (signature), 4 + 151
    expected.extend_from_slice(signature_file.as_bytes());
    expected.push(0);
    expected.extend_from_slice(&[1, 0, 0, 100]); // id 1 (payload), 4 + 96
    expected.extend_from_slice(&payload);
    assert_eq!(element.to_bytes(), expected);
}

#[test]
fn chain_round_trips_byte_for_byte() {
    let chain = signed_chain(b"channels.json");
    let bytes = chain.to_bytes();
    assert_eq!(bytes.len() % 4, 0);
    let parsed = Chain::parse(&bytes).unwrap();
    assert_eq!(parsed, chain);
    assert_eq!(parsed.to_bytes(), bytes);
    let CertBody::Auth {
        public_key,
        expires_at,
    } = parsed.elements()[0].cert().unwrap().body()
    else {
        panic!("not an auth cert");
    };
    assert_eq!(public_key, &key(2).public_key());
    assert_eq!(*expires_at, NOW + 6 * DAY);
    assert_eq!(parsed.elements()[0].cert().unwrap().valid_from(), NOW - DAY);
    assert_eq!(parsed.elements()[1].cert(), None);
}

#[test]
fn verifies_chain_and_message() {
    let chain = signed_chain(b"message");
    let verified = chain
        .verify(&keyring(&[&key(1)]), &Revocations::new(), NOW)
        .unwrap();
    assert_eq!(verified.key(), &key(2).public_key());
    assert_eq!(verified.expires_at(), Some(NOW + 6 * DAY));
    verified.verify_message(b"message").unwrap();
    let mut stream = verified.stream_verifier().unwrap();
    stream.update(b"mess");
    stream.update(b"age");
    stream.finalize().unwrap();
    assert!(matches!(
        verified.verify_message(b"massage"),
        Err(UcertError::BadSignature { element: 2, .. })
    ));
}

#[test]
fn lone_final_signature_verifies_with_trusted_key() {
    // What ASU appends to an image: `ucert -A` of the image's usign signature, no certificate.
    let signing = key(3);
    let chain = Chain::new(vec![Element::final_signature(&signing.sign(b"image"))]);
    let parsed = Chain::parse(&chain.to_bytes()).unwrap();
    let verified = parsed
        .verify(&keyring(&[&signing]), &Revocations::new(), NOW)
        .unwrap();
    assert_eq!(verified.expires_at(), None);
    verified.verify_message(b"image").unwrap();
    assert_eq!(
        parsed
            .verify(&keyring(&[&key(1)]), &Revocations::new(), NOW)
            .unwrap_err()
            .to_string(),
        "chain element 1 is signed by key `0302030405060708`, which is not trusted"
    );
}

#[test]
fn rejects_window_edges() {
    let chain = signed_chain(b"m");
    let ring = keyring(&[&key(1)]);
    let none = Revocations::new();
    chain.verify(&ring, &none, NOW - DAY).unwrap();
    chain.verify(&ring, &none, NOW + 6 * DAY - 1).unwrap();
    let err = chain.verify(&ring, &none, NOW - DAY - 1).unwrap_err();
    assert!(
        matches!(err, UcertError::NotYetValid { element: 1, .. }),
        "{err}"
    );
    let err = chain.verify(&ring, &none, NOW + 6 * DAY).unwrap_err();
    assert_eq!(
        err.to_string(),
        "certificate in chain element 1 expired at Sat Dec 12 11:45:00 UTC 2026, it is now Sat \
         Dec 12 11:45:00 UTC 2026"
    );
}

#[test]
fn rejects_revoked_keys() {
    let chain = signed_chain(b"m");
    let ring = keyring(&[&key(1)]);
    let list = Chain::new(vec![issue_revoke(&key(1), key(2).fingerprint(), NOW - 10)]);
    let list = Chain::parse(&list.to_bytes()).unwrap();
    let mut revoked = Revocations::new();
    revoked.add_chain(&list, &ring, NOW).unwrap();
    assert_eq!(revoked.iter().collect::<Vec<_>>(), [key(2).fingerprint()]);
    assert_eq!(
        chain.verify(&ring, &revoked, NOW).unwrap_err().to_string(),
        "key `0202030405060708` (chain element 1) has been revoked"
    );
    // A revoked root is not trusted at all.
    let mut root_revoked = Revocations::new();
    root_revoked.insert(key(1).fingerprint());
    assert!(matches!(
        chain.verify(&ring, &root_revoked, NOW),
        Err(UcertError::Revoked { element: 1, .. })
    ));
}

#[test]
fn revocation_list_rules() {
    let ring = keyring(&[&key(1)]);
    // Not yet in force: skipped, not an error.
    let future = Chain::new(vec![issue_revoke(&key(1), key(2).fingerprint(), NOW + 1)]);
    let mut revoked = Revocations::new();
    revoked.add_chain(&future, &ring, NOW).unwrap();
    assert!(revoked.is_empty());
    // Signed by an untrusted key.
    let forged = Chain::new(vec![issue_revoke(&key(9), key(2).fingerprint(), 0)]);
    assert!(matches!(
        revoked.add_chain(&forged, &ring, NOW),
        Err(UcertError::UnknownKey { element: 1, .. })
    ));
    // An auth certificate is not a revocation.
    let auth = Chain::new(vec![
        issue_auth(&key(1), &key(2).public_key(), 0, NOW).unwrap(),
    ]);
    assert_eq!(
        revoked.add_chain(&auth, &ring, NOW).unwrap_err(),
        UcertError::WrongType {
            element: 1,
            found: CERTTYPE_AUTH,
            expected: CERTTYPE_REVOKE
        }
    );
    // A final signature is not a revocation either.
    let stray = Chain::new(vec![Element::final_signature(&key(1).sign(b"x"))]);
    assert!(matches!(
        revoked.add_chain(&stray, &ring, NOW),
        Err(UcertError::NotACertificate { element: 1 })
    ));
}

#[test]
fn rejects_revoke_cert_inside_a_chain() {
    let chain = Chain::new(vec![
        issue_revoke(&key(1), key(2).fingerprint(), 0),
        Element::final_signature(&key(1).sign(b"m")),
    ]);
    let err = chain
        .verify(&keyring(&[&key(1)]), &Revocations::new(), NOW)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "chain element 1 has certtype 2, expected 1"
    );
}

#[test]
fn rejects_forged_certificate() {
    let mut bytes = signed_chain(b"m").to_bytes();
    // The last byte of `expiresat` (its value ends 4 bytes before the `pubkey` attribute).
    let pubkey_at = bytes.windows(8).position(|w| w == b"\0\x06pubkey").unwrap();
    bytes[pubkey_at - 5] ^= 1;
    let chain = Chain::parse(&bytes).unwrap();
    let err = chain
        .verify(&keyring(&[&key(1)]), &Revocations::new(), NOW)
        .unwrap_err();
    assert!(
        matches!(err, UcertError::BadSignature { element: 1, .. }),
        "{err}"
    );
}

#[test]
fn rejects_certificate_from_wrong_issuer() {
    // Element 2 claims to be certified by the chain key but was signed by the root.
    let root = key(1);
    let chain = Chain::new(vec![
        issue_auth(&root, &key(2).public_key(), 0, NOW + DAY).unwrap(),
        issue_auth(&root, &key(3).public_key(), 0, NOW + DAY).unwrap(),
    ]);
    let err = chain
        .verify(&keyring(&[&root]), &Revocations::new(), NOW)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "signature of chain element 2 does not verify"
    );
}

#[test]
fn two_level_chain_uses_the_earliest_expiry() {
    let root = key(1);
    let intermediate = key(2);
    let leaf = key(3);
    let chain = Chain::new(vec![
        issue_auth(&root, &intermediate.public_key(), 0, NOW + 9 * DAY).unwrap(),
        issue_auth(&intermediate, &leaf.public_key(), 0, NOW + 2 * DAY).unwrap(),
        Element::final_signature(&leaf.sign(b"m")),
    ]);
    let verified = chain
        .verify(&keyring(&[&root]), &Revocations::new(), NOW)
        .unwrap();
    assert_eq!(verified.key(), &leaf.public_key());
    assert_eq!(verified.expires_at(), Some(NOW + 2 * DAY));
    verified.verify_message(b"m").unwrap();
}

#[test]
fn rejects_signature_before_the_end_and_missing_final_signature() {
    let root = key(1);
    let chain = Chain::new(vec![
        Element::final_signature(&root.sign(b"m")),
        issue_auth(&root, &key(2).public_key(), 0, NOW + DAY).unwrap(),
    ]);
    assert_eq!(
        chain
            .verify(&keyring(&[&root]), &Revocations::new(), NOW)
            .unwrap_err(),
        UcertError::SignatureNotLast { element: 1 }
    );
    let only_cert = Chain::new(vec![
        issue_auth(&root, &key(2).public_key(), 0, NOW + DAY).unwrap(),
    ]);
    let verified = only_cert
        .verify(&keyring(&[&root]), &Revocations::new(), NOW)
        .unwrap();
    assert_eq!(
        verified.verify_message(b"m").unwrap_err().to_string(),
        "the chain has no final signature over the message"
    );
    assert!(
        Chain::new(Vec::new())
            .verify(&keyring(&[&root]), &Revocations::new(), NOW)
            .is_err()
    );
}

#[test]
fn every_proper_prefix_fails() {
    let bytes = signed_chain(b"m").to_bytes();
    let first_len = Chain::new(vec![signed_chain(b"m").elements()[0].clone()])
        .to_bytes()
        .len();
    for len in 0..bytes.len() {
        let result = Chain::parse(&bytes[..len]);
        // Cutting exactly after the first element leaves a valid one-element chain.
        if len == first_len {
            assert!(result.is_ok(), "prefix {len}");
        } else {
            assert!(result.is_err(), "prefix {len}");
        }
    }
    assert_eq!(Chain::parse(b"").unwrap_err(), UcertError::Empty);
}

#[test]
fn rejects_too_large_file() {
    assert_eq!(
        Chain::parse(&[0; MAX_FILE_LEN + 1])
            .unwrap_err()
            .to_string(),
        "ucert file is 4096 bytes, more than the limit of 4095 bytes"
    );
}

#[test]
fn rejects_framing_errors() {
    let good = signed_chain(b"m").to_bytes();
    // Length below the header size.
    assert_eq!(
        Chain::parse(&[0, 0, 0, 3]).unwrap_err(),
        UcertError::BadLength { offset: 0, len: 3 }
    );
    // Extended top-level attribute.
    let mut bytes = good.clone();
    bytes[0] |= 0x80;
    assert!(matches!(
        Chain::parse(&bytes),
        Err(UcertError::UnexpectedAttribute {
            offset: 0,
            id: 0,
            ..
        })
    ));
    // Non-zero padding after the signature file (151 bytes, one byte of padding).
    let mut bytes = good.clone();
    bytes[8 + 151] = 1;
    assert_eq!(
        Chain::parse(&bytes).unwrap_err(),
        UcertError::NonZeroPadding { offset: 159 }
    );
    // An element without signature.
    let mut empty_element = Vec::new();
    put_attr(&mut empty_element, 0, false, &[]);
    assert_eq!(
        Chain::parse(&empty_element).unwrap_err().to_string(),
        "chain element 1 has no signature"
    );
    // Payload before signature.
    let element = signed_chain(b"m").elements()[0].clone();
    let mut inner = Vec::new();
    put_attr(
        &mut inner,
        ATTR_PAYLOAD,
        false,
        element.cert().unwrap().payload(),
    );
    put_attr(&mut inner, ATTR_SIGNATURE, false, element.signature_file());
    let mut bytes = Vec::new();
    put_attr(&mut bytes, 0, false, &inner);
    assert!(matches!(
        Chain::parse(&bytes),
        Err(UcertError::UnexpectedAttribute { id: 1, .. })
    ));
    // A signature attribute that is not a usign signature.
    let mut inner = Vec::new();
    put_attr(&mut inner, ATTR_SIGNATURE, false, b"not a signature");
    let mut bytes = Vec::new();
    put_attr(&mut bytes, 0, false, &inner);
    assert!(matches!(
        Chain::parse(&bytes),
        Err(UcertError::SignatureFile { element: 1, .. })
    ));
}

/// An element whose payload is the `ucert` table holding `fields`, signed by key 1.
fn element_with_fields(fields: &[u8]) -> Vec<u8> {
    let mut payload = Vec::new();
    put_blobmsg(&mut payload, BLOBMSG_TABLE, PAYLOAD_NAME, fields);
    let signature = key(1).sign(&payload).to_file();
    let mut inner = Vec::new();
    put_attr(&mut inner, ATTR_SIGNATURE, false, signature.as_bytes());
    put_attr(&mut inner, ATTR_PAYLOAD, false, &payload);
    let mut bytes = Vec::new();
    put_attr(&mut bytes, 0, false, &inner);
    bytes
}

#[test]
fn rejects_bad_payload_fields() {
    let certtype = |value: u32| {
        let mut out = Vec::new();
        put_blobmsg(&mut out, BLOBMSG_INT32, "certtype", &value.to_be_bytes());
        out
    };
    let validfrom = {
        let mut out = Vec::new();
        put_blobmsg(&mut out, BLOBMSG_INT64, "validfrom", &0_i64.to_be_bytes());
        out
    };
    let parse = |fields: &[u8]| Chain::parse(&element_with_fields(fields)).unwrap_err();

    assert_eq!(
        parse(&validfrom),
        UcertError::MissingField {
            element: 1,
            field: "certtype"
        }
    );
    assert_eq!(
        parse(&[certtype(1), validfrom.clone()].concat()).to_string(),
        "chain element 1 lacks the field `expiresat`"
    );
    assert_eq!(
        parse(&[certtype(2), validfrom.clone()].concat()),
        UcertError::MissingField {
            element: 1,
            field: "fingerprint"
        }
    );
    assert_eq!(
        parse(&[certtype(2), certtype(2), validfrom.clone()].concat()).to_string(),
        "field `certtype` occurs twice in chain element 1"
    );
    let mut wrong_type = Vec::new();
    put_blobmsg(&mut wrong_type, BLOBMSG_INT32, "validfrom", &[0; 4]);
    assert_eq!(
        parse(&[certtype(2), wrong_type].concat()).to_string(),
        "field `validfrom` of chain element 1 is not a 64-bit integer"
    );
    let mut unterminated = Vec::new();
    put_blobmsg(
        &mut unterminated,
        BLOBMSG_STRING,
        "fingerprint",
        b"0102030405060708",
    );
    assert!(matches!(
        parse(&[certtype(2), validfrom.clone(), unterminated].concat()),
        UcertError::BadField {
            field: "fingerprint",
            ..
        }
    ));
    let mut bad_fingerprint = Vec::new();
    put_blobmsg(
        &mut bad_fingerprint,
        BLOBMSG_STRING,
        "fingerprint",
        b"xyz\0",
    );
    assert_eq!(
        parse(&[certtype(2), validfrom.clone(), bad_fingerprint].concat()).to_string(),
        "field `fingerprint` of chain element 1 is `xyz`, not 16 hex digits"
    );
    let mut expires = Vec::new();
    put_blobmsg(
        &mut expires,
        BLOBMSG_INT64,
        "expiresat",
        &1_i64.to_be_bytes(),
    );
    let mut bad_key = Vec::new();
    put_blobmsg(
        &mut bad_key,
        BLOBMSG_STRING,
        "pubkey",
        b"untrusted comment: x\nAAAA\n\0",
    );
    assert!(matches!(
        parse(&[certtype(1), validfrom.clone(), expires, bad_key].concat()),
        UcertError::BadPublicKey { element: 1, .. }
    ));
    // A field that is not blobmsg (no extended bit).
    let mut plain = Vec::new();
    put_attr(&mut plain, BLOBMSG_INT32, false, &[0; 4]);
    assert!(matches!(
        parse(&plain),
        UcertError::UnexpectedAttribute {
            within: "the `ucert` table",
            ..
        }
    ));
}

#[test]
fn keeps_unknown_fields_and_certtypes() {
    let mut fields = Vec::new();
    put_blobmsg(&mut fields, BLOBMSG_INT32, "certtype", &7_u32.to_be_bytes());
    put_blobmsg(&mut fields, BLOBMSG_INT32, "certid", &1_u32.to_be_bytes());
    put_blobmsg(
        &mut fields,
        BLOBMSG_INT64,
        "validfrom",
        &5_i64.to_be_bytes(),
    );
    let bytes = element_with_fields(&fields);
    let chain = Chain::parse(&bytes).unwrap();
    let cert = chain.elements()[0].cert().unwrap();
    assert_eq!(cert.body(), &CertBody::Other { certtype: 7 });
    assert_eq!(cert.valid_from(), 5);
    assert_eq!(chain.to_bytes(), bytes);
}

#[test]
fn rejects_payload_that_is_not_one_ucert_table() {
    let mut other_name = Vec::new();
    put_blobmsg(&mut other_name, BLOBMSG_TABLE, "other", &[]);
    let signature = key(1).sign(&other_name).to_file();
    let mut inner = Vec::new();
    put_attr(&mut inner, ATTR_SIGNATURE, false, signature.as_bytes());
    put_attr(&mut inner, ATTR_PAYLOAD, false, &other_name);
    let mut bytes = Vec::new();
    put_attr(&mut bytes, 0, false, &inner);
    assert_eq!(
        Chain::parse(&bytes).unwrap_err().to_string(),
        "payload of chain element 1 is not one `ucert` table"
    );
    // A name whose length runs past the attribute.
    let mut broken = Vec::new();
    put_attr(&mut broken, BLOBMSG_TABLE, true, &[0, 200, b'u']);
    let mut inner = Vec::new();
    put_attr(&mut inner, ATTR_SIGNATURE, false, signature.as_bytes());
    put_attr(&mut inner, ATTR_PAYLOAD, false, &broken);
    let mut bytes = Vec::new();
    put_attr(&mut bytes, 0, false, &inner);
    assert!(matches!(
        Chain::parse(&bytes),
        Err(UcertError::BadName { .. })
    ));
}

#[test]
fn refuses_to_issue_empty_window() {
    assert_eq!(
        issue_auth(&key(1), &key(2).public_key(), NOW, NOW)
            .unwrap_err()
            .to_string(),
        "certificate window is empty: valid from Sun Dec 06 11:45:00 UTC 2026 but expires at \
         Sun Dec 06 11:45:00 UTC 2026"
    );
    let long = key(2).public_key().with_comment(&"c".repeat(500)).unwrap();
    assert!(matches!(
        issue_auth(&key(1), &long, 0, 1),
        Err(UcertError::PublicKeyTooLong { .. })
    ));
}

/// ucert's own test certificate, rebuilt from its dump: `ucert -D -c inputs/key-build.ucert` in
/// <https://github.com/openwrt/ucert/blob/00b921d80ac0dc47339305d803f865ff43c56d63/tests/cram/test_ucert.t>
/// prints the signature file and the payload fields of a self-signed auth certificate made by
/// `ucert -I`. Encoding those fields our way must give the very bytes ucert signed, so the
/// signature from the dump verifies; a single byte of layout difference would make it fail.
#[test]
fn ucerts_own_certificate_verifies_over_our_encoding() {
    let pubkey = "untrusted comment: Local build key\n\
                  RWSEv8iKFxZld6vicE1icWhYNfEV9PM7C9MKUKl+YNEKB+PdAWGDF5Z9\n";
    let signature_file = "untrusted comment: signed by key 84bfc88a17166577\n\
                          RWSEv8iKFxZld+bQ+NTqCdDlHOuVYNw5Qw7Q8shjfMgFJcTqrzaqO0bysjIQhTadmcwvWiWvHlyMcwAXSix2BYdfghz/zhDjvgU=\n";
    let mut fields = Vec::new();
    put_blobmsg(&mut fields, BLOBMSG_INT32, "certtype", &1_u32.to_be_bytes());
    put_blobmsg(
        &mut fields,
        BLOBMSG_INT64,
        "validfrom",
        &1_546_188_410_i64.to_be_bytes(),
    );
    put_blobmsg(
        &mut fields,
        BLOBMSG_INT64,
        "expiresat",
        &1_577_724_410_i64.to_be_bytes(),
    );
    put_blobmsg(
        &mut fields,
        BLOBMSG_STRING,
        "pubkey",
        &nul_terminated(pubkey),
    );
    let mut payload = Vec::new();
    put_blobmsg(&mut payload, BLOBMSG_TABLE, PAYLOAD_NAME, &fields);
    let key = PublicKey::parse(pubkey.as_bytes()).unwrap();
    let signature = Signature::parse(signature_file.as_bytes()).unwrap();
    key.verify(&payload, &signature).unwrap();

    // The whole file as `ucert -I` writes it parses and verifies against that key, inside its
    // window, and not after it.
    let mut inner = Vec::new();
    put_attr(&mut inner, ATTR_SIGNATURE, false, signature_file.as_bytes());
    put_attr(&mut inner, ATTR_PAYLOAD, false, &payload);
    let mut file = Vec::new();
    put_attr(&mut file, 0, false, &inner);
    let chain = Chain::parse(&file).unwrap();
    let mut trusted = Keyring::new();
    trusted.add(key.clone());
    let verified = chain
        .verify(&trusted, &Revocations::new(), 1_560_000_000)
        .unwrap();
    assert_eq!(verified.key(), &key);
    assert!(matches!(
        chain.verify(&trusted, &Revocations::new(), 1_577_724_410),
        Err(UcertError::Expired { .. })
    ));
}
