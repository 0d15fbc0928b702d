//! `api::parse_build_request` on a `POST /api/v1/build` body (the server's most exposed parser).
//! Invariants:
//! - a refused body gets at least one error, and the 422 body serialises;
//! - an accepted request has a deterministic canonical encoding and request hash;
//! - the request as echoed in a build response (`serde_json`) reads back unchanged, and is
//!   accepted again by `parse_build_request` as the same request.
#![no_main]

use attendant_fuzz::{assert_roundtrip, fail};
use attendant_proto::api::{
    BuildRequest, CanonicalRequest, RequestLimits, parse_build_request, request_hash,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = RequestLimits::default();
    let request = match parse_build_request(data, &limits) {
        Ok(request) => request,
        Err(errors) => {
            assert!(!errors.detail.is_empty(), "a refused body has no errors");
            if let Err(error) = serde_json::to_vec(&errors) {
                fail(&format!("the 422 body cannot be written: {error}"));
            }
            let _ = errors.to_string();
            return;
        }
    };
    let canonical = CanonicalRequest::from_request(&request);
    assert_eq!(
        canonical.encode(),
        CanonicalRequest::from_request(&request).encode()
    );
    assert_eq!(request_hash(&canonical), request_hash(&canonical));

    let json = match serde_json::to_vec(&request) {
        Ok(json) => json,
        Err(error) => fail(&format!("an accepted request cannot be written: {error}")),
    };
    let echoed = serde_json::from_slice::<BuildRequest>(&json);
    assert_roundtrip("echoed build request", &request, &json, echoed);
    if json.len() <= limits.max_body_bytes {
        let again = parse_build_request(&json, &limits);
        assert_roundtrip("resubmitted build request", &request, &json, again);
    }
});
