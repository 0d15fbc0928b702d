//! Property tests for the API types: valid requests round-trip through the validating parser,
//! the canonical hash ignores what ASU ignores, and no parser panics on arbitrary bytes.

use std::collections::BTreeMap;

use attendant_proto::api::{
    BuildRequest, CanonicalRequest, Filesystem, RepositoriesMode, RequestLimits,
    parse_build_request, parse_build_response, parse_error_body, parse_overview, parse_status_body,
    request_hash,
};
use proptest::prelude::*;

fn identifier() -> impl Strategy<Value = String> {
    "[a-z0-9_.,-]{0,20}"
}

fn build_request() -> impl Strategy<Value = BuildRequest> {
    (
        (
            identifier(),
            identifier(),
            "[a-z0-9_]{1,10}/[a-z0-9_]{1,10}",
            identifier(),
        ),
        proptest::collection::vec("[a-z0-9_.-]{1,16}", 0..12),
        proptest::collection::btree_map("[a-z0-9_-]{1,12}", "[a-z0-9.~+-]{0,12}", 0..4),
        any::<bool>(),
        proptest::option::of("\\PC{0,64}"),
        proptest::option::of(1u32..=1024),
        proptest::option::of(proptest::sample::select(Filesystem::ALL.to_vec())),
        proptest::collection::btree_map(
            "[a-z0-9_.-]{1,12}",
            "https://[a-z]{1,10}\\.example/[a-z/]{0,12}",
            0..3,
        ),
        any::<bool>(),
        proptest::collection::vec("[A-Za-z0-9+/=]{1,60}", 0..3),
        proptest::option::of("[a-z]{1,8}/[0-9.]{1,8}"),
    )
        .prop_map(
            |(
                (version, version_code, target, profile),
                packages,
                packages_versions,
                diff_packages,
                defaults,
                rootfs_size_mb,
                filesystem,
                repositories,
                append,
                repository_keys,
                client,
            )| {
                let mut request = BuildRequest::new(version, target, profile);
                request.version_code = version_code;
                request.packages = packages;
                request.packages_versions = packages_versions;
                request.diff_packages = diff_packages;
                request.defaults = defaults;
                request.rootfs_size_mb = rootfs_size_mb;
                request.filesystem = filesystem;
                request.repositories = repositories;
                request.repositories_mode = if append {
                    RepositoriesMode::Append
                } else {
                    RepositoriesMode::Replace
                };
                request.repository_keys = repository_keys;
                request.client = client;
                request
            },
        )
}

proptest! {
    #[test]
    fn valid_requests_round_trip_through_the_validating_parser(request in build_request()) {
        let bytes = serde_json::to_vec(&request).unwrap();
        let parsed = parse_build_request(&bytes, &RequestLimits::default());
        prop_assert_eq!(parsed.unwrap(), request);
    }

    #[test]
    fn hash_ignores_package_order_and_duplicates(request in build_request(), seed in any::<u64>()) {
        let mut shuffled = request.clone();
        let len = shuffled.packages.len();
        if len > 1 {
            let steps = usize::try_from(seed % 7).unwrap();
            shuffled.packages.rotate_left(steps % len);
            let first = shuffled.packages[0].clone();
            shuffled.packages.push(first);
        }
        prop_assert_eq!(
            request_hash(&CanonicalRequest::from_request(&request)),
            request_hash(&CanonicalRequest::from_request(&shuffled))
        );
    }

    #[test]
    fn request_parser_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_build_request(&bytes, &RequestLimits::default());
    }

    #[test]
    fn request_parser_never_panics_on_json_shapes(
        fields in proptest::collection::btree_map(
            proptest::sample::select(vec![
                "distro", "version", "version_code", "target", "profile", "packages",
                "packages_versions", "diff_packages", "defaults", "rootfs_size_mb", "filesystem",
                "repositories", "repositories_mode", "repository_keys", "client", "other",
            ]),
            json_value(),
            0..10,
        )
    ) {
        let body: BTreeMap<&str, serde_json::Value> = fields;
        let bytes = serde_json::to_vec(&body).unwrap();
        if let Err(errors) = parse_build_request(&bytes, &RequestLimits::default()) {
            prop_assert!(!errors.detail.is_empty());
            for error in &errors.detail {
                prop_assert!(!error.msg.is_empty());
            }
        }
    }

    #[test]
    fn response_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_build_response(&bytes);
        let _ = parse_status_body(&bytes);
        let _ = parse_error_body(&bytes);
        let _ = parse_overview(&bytes);
    }
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        "\\PC{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map("[a-z]{0,4}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}
