//! The other API bodies the agent reads from a server: `api::parse_status_body` (202/500),
//! `api::parse_error_body` (400/404/529), `api::parse_overview`, `api::parse_branches` and
//! `api::parse_latest`. Every input goes to all five. Invariant: each accepted body written back
//! as JSON parses to the same value.
#![no_main]

use std::fmt::{Debug, Display};

use attendant_fuzz::{assert_error_text, assert_roundtrip, fail};
use attendant_proto::api::{
    parse_branches, parse_error_body, parse_latest, parse_overview, parse_status_body,
};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;

fuzz_target!(|data: &[u8]| {
    check("status body", data, parse_status_body);
    check("error body", data, parse_error_body);
    check("overview.json", data, parse_overview);
    check("branches.json", data, parse_branches);
    check("latest.json", data, parse_latest);
});

fn check<T, E>(what: &str, data: &[u8], parse: fn(&[u8]) -> Result<T, E>)
where
    T: Serialize + PartialEq + Debug,
    E: Display,
{
    match parse(data) {
        Ok(value) => match serde_json::to_vec(&value) {
            Ok(json) => assert_roundtrip(what, &value, &json, parse(&json)),
            Err(error) => fail(&format!("a parsed {what} cannot be written: {error}")),
        },
        Err(error) => assert_error_text(&error),
    }
}
