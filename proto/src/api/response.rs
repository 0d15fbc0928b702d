//! Build responses and error bodies of ASU's API v1 (<https://github.com/openwrt/asu/blob/main/asu/routers/api.py>).
//!
//! - `200`: [`BuildResponse`], the finished build: the ImageBuilder's `profiles.json` flattened
//!   for the built profile ([`BuildResponse::from_profile`]), plus `manifest`, `bin_dir`,
//!   `build_cmd`, ... Unknown fields are kept in `extra` so a client tolerates additions (newer
//!   ImageBuilders, newer servers); our `signing_key` and `images[].signature` are typed.
//! - `202` and `500`: [`BuildStatusBody`]: `detail`, `queue_position`, `imagebuilder_status`,
//!   `stdout`/`stderr` on failure.
//! - `400`, `404`, `529`: [`ErrorBody`], built from [`BadRequest`] or the constructors.
//! - The `500` `detail` texts of the worker are [`crate::api::BuildFailure`]'s.
//!
//! Headers [`HEADER_IMAGEBUILDER_STATUS`] and [`HEADER_QUEUE_POSITION`] go on every build
//! response; `HEAD` requests get only them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::body::{BodyError, decode};
use crate::api::hash::RequestHash;
use crate::api::request::BuildRequest;
use crate::api::wire_enum::wire_enum;
use crate::upstream::{
    FlatProfile, ImageInfo, LinuxKernel, SourceDateEpoch, Title, UnsupportedProfile,
};

/// Response header with the build stage ([`ImagebuilderStatus`] wire string), on every build
/// response (`GET`, `HEAD`, `POST`).
pub const HEADER_IMAGEBUILDER_STATUS: &str = "X-Imagebuilder-Status";
/// Response header with the 0-based queue position as a decimal string (`0` unless queued).
pub const HEADER_QUEUE_POSITION: &str = "X-Queue-Position";

/// Largest build response accepted, in bytes (it carries the build's stdout and stderr).
pub const MAX_BUILD_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
/// Largest error body (`400`/`404`/`529`) accepted, in bytes.
pub const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// The `200` body of a finished build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildResponse {
    /// Always `200`.
    pub status: u16,
    /// Always `done`.
    #[serde(default)]
    pub detail: String,
    /// The hash the client polls with.
    pub request_hash: RequestHash,
    /// When the job was queued (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enqueued_at: Option<String>,
    /// Always `done`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imagebuilder_status: Option<ImagebuilderStatus>,
    /// The validated request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<BuildRequest>,
    /// The `make image` command as an argument list.
    #[serde(default)]
    pub build_cmd: Vec<String>,
    /// The `PACKAGES=` list of the build command.
    #[serde(default)]
    pub build_cmd_packages: Vec<String>,
    /// Output of the last command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    /// Error output of the last command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
    /// Directory under `/store/` holding the images: `<server>/store/<bin_dir>/<images[i].name>`.
    /// Untrusted: check it is a single path component before joining it to a path.
    pub bin_dir: String,
    /// Every installed package → version.
    #[serde(default)]
    pub manifest: BTreeMap<String, String>,
    /// The profile id that was built.
    #[serde(default)]
    pub id: String,
    /// `source_date_epoch` of the ImageBuilder, formatted (not the build time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_at: Option<String>,
    /// Package architecture, e.g. `mips_24kc`.
    #[serde(default)]
    pub arch_packages: String,
    /// Target default packages.
    #[serde(default)]
    pub default_packages: Vec<String>,
    /// Profile packages.
    #[serde(default)]
    pub device_packages: Vec<String>,
    /// Common prefix of the image names.
    #[serde(default)]
    pub image_prefix: String,
    /// The built images.
    pub images: Vec<ImageInfo>,
    /// `profiles.json` format version (1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_version: Option<u32>,
    /// Reproducible-build timestamp of the ImageBuilder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_date_epoch: Option<SourceDateEpoch>,
    /// Board names / DT compatibles the images are for.
    #[serde(default)]
    pub supported_devices: Vec<String>,
    /// `target/subtarget`.
    #[serde(default)]
    pub target: String,
    /// Device names.
    #[serde(default)]
    pub titles: Vec<Title>,
    /// Revision, e.g. `r28959-29397011cc`.
    #[serde(default)]
    pub version_code: String,
    /// Version, e.g. `24.10.6`.
    #[serde(default)]
    pub version_number: String,
    /// Kernel triple (newer ImageBuilders).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linux_kernel: Option<LinuxKernel>,
    /// Fingerprint of the usign key that signed the images (our servers, when they sign).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<String>,
    /// Any other field, kept verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// The keys [`BuildResponse`] types beyond a [`FlatProfile`]'s; an unknown profile key of the
/// same name is dropped, so a response never carries a key twice.
const BUILD_RESPONSE_KEYS: [&str; 13] = [
    "status",
    "detail",
    "request_hash",
    "enqueued_at",
    "imagebuilder_status",
    "request",
    "build_cmd",
    "build_cmd_packages",
    "stdout",
    "stderr",
    "bin_dir",
    "manifest",
    "signing_key",
];

impl BuildResponse {
    /// A finished build of `profile`: `status` 200, `detail` and `imagebuilder_status` `done`,
    /// `bin_dir` the request hash, and the profile's fields; the build's own fields (`manifest`,
    /// `build_cmd`, `request`, output, ...) start empty for the builder to fill in.
    pub fn from_profile(request_hash: RequestHash, profile: FlatProfile) -> Self {
        let mut extra = profile.extra;
        extra.retain(|key, _| !BUILD_RESPONSE_KEYS.contains(&key.as_str()));
        Self {
            status: 200,
            detail: "done".to_owned(),
            request_hash,
            enqueued_at: None,
            imagebuilder_status: Some(ImagebuilderStatus::Done),
            request: None,
            build_cmd: Vec::new(),
            build_cmd_packages: Vec::new(),
            stdout: None,
            stderr: None,
            bin_dir: request_hash.to_string(),
            manifest: BTreeMap::new(),
            id: profile.id,
            build_at: profile.build_at,
            arch_packages: profile.arch_packages,
            default_packages: profile.default_packages,
            device_packages: profile.device_packages,
            image_prefix: profile.image_prefix,
            images: profile.images,
            metadata_version: Some(profile.metadata_version),
            source_date_epoch: Some(profile.source_date_epoch),
            supported_devices: profile.supported_devices,
            target: profile.target,
            titles: profile.titles,
            version_code: profile.version_code,
            version_number: profile.version_number,
            linux_kernel: profile.linux_kernel,
            signing_key: None,
            extra,
        }
    }
}

wire_enum! {
    /// `imagebuilder_status` and the `X-Imagebuilder-Status` header. Client progress tables
    /// (LuCI, the firmware selector) key on these strings, including the older ones.
    pub enum ImagebuilderStatus {
        /// `queued` (header only: the job waits in the queue)
        Queued = "queued",
        /// `init`
        Init = "init",
        /// `container_setup`
        ContainerSetup = "container_setup",
        /// `validate_revision`
        ValidateRevision = "validate_revision",
        /// `validate_manifest`
        ValidateManifest = "validate_manifest",
        /// `building_image`
        BuildingImage = "building_image",
        /// `signing_images`
        SigningImages = "signing_images",
        /// `done`
        Done = "done",
        /// `failed`
        Failed = "failed",
        /// `download_imagebuilder` (older servers)
        DownloadImagebuilder = "download_imagebuilder",
        /// `unpack_imagebuilder` (older servers)
        UnpackImagebuilder = "unpack_imagebuilder",
        /// `calculate_packages_hash` (older servers)
        CalculatePackagesHash = "calculate_packages_hash",
    }
}

/// The `202` (queued/started) and `500` (failed) body of a build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildStatusBody {
    /// `202` or `500`, equal to the HTTP status.
    pub status: u16,
    /// `queued`, `started`, or on failure `Error: ...` / `failed`.
    pub detail: String,
    /// The hash the client polls with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_hash: Option<RequestHash>,
    /// 0-based position while queued; LuCI tells "queued" from "building" by its presence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<u64>,
    /// Current stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imagebuilder_status: Option<ImagebuilderStatus>,
    /// When the job was queued (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enqueued_at: Option<String>,
    /// The validated request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<BuildRequest>,
    /// The command that ran last, as an argument list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_cmd: Option<Vec<String>>,
    /// Output of the last command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    /// Error output of the last command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
    /// Any other field, kept verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// The `400`/`404`/`529` body: `{"status", "title"?, "detail"}`; read by a client, also the
/// text fields of a `500` (`stdout`, `stderr`).
///
/// A client reads every error answer with a string `detail` through this type: FastAPI's own
/// errors (an unknown route, a proxy in front of ASU speaking FastAPI) carry only `detail`, so
/// `status` may be missing, and a failed build's `500` adds the build output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The HTTP status; `0` when the body does not say (FastAPI's `{"detail": ...}`).
    #[serde(default)]
    pub status: u16,
    /// Short title (`404`, `529` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What went wrong.
    pub detail: String,
    /// Output of the command that failed (`500` of a failed build only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    /// Error output of the command that failed (`500` of a failed build only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
}

/// The `detail` of a `404` for an unknown or expired request hash.
pub const NOT_FOUND_DETAIL: &str = "could not find provided request hash";
/// The `500` `detail` when a job failed before reporting a reason.
pub const FAILED_DETAIL: &str = "failed";

impl ErrorBody {
    /// `400 {"detail": <message>, "status": 400}`.
    pub fn bad_request(reason: &BadRequest) -> Self {
        Self {
            status: 400,
            title: None,
            detail: reason.to_string(),
            stdout: None,
            stderr: None,
        }
    }

    /// `404 {"status": 404, "title": "Not Found", "detail": "could not find provided request hash"}`.
    pub fn not_found() -> Self {
        Self {
            status: 404,
            title: Some("Not Found".to_owned()),
            detail: NOT_FOUND_DETAIL.to_owned(),
            stdout: None,
            stderr: None,
        }
    }

    /// `529`: the queue holds `queue_length` jobs, more than the server accepts.
    pub fn overloaded(queue_length: u64) -> Self {
        Self {
            status: 529,
            title: Some("Server overloaded".to_owned()),
            detail: format!(
                "server overload, queue contains too many build requests: {queue_length}"
            ),
            stdout: None,
            stderr: None,
        }
    }
}

/// The `400` reasons, in the order ASU checks them; `Display` is the exact ASU `detail`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BadRequest {
    /// Non-empty `defaults` while the server does not allow them.
    #[error("Handling `defaults` not enabled on server")]
    DefaultsNotEnabled,
    /// A repository URL outside the allow-list.
    #[error("Repository not allowed: {url}")]
    RepositoryNotAllowed {
        /// The refused URL.
        url: String,
    },
    /// A repository URL refused by a named rule of the allow-list
    /// ([`crate::api::repository`]).
    #[error("Repository not allowed: {url}: {cause}")]
    RepositoryRefused {
        /// The refused URL, shortened.
        url: String,
        /// The rule it broke.
        cause: crate::api::RepositoryError,
    },
    /// `distro` other than `openwrt`.
    #[error("Unsupported distro: {distro}")]
    UnsupportedDistro {
        /// The requested distro.
        distro: String,
    },
    /// The branch of `version` is not configured.
    #[error("Unsupported branch: {version}")]
    UnsupportedBranch {
        /// The requested version.
        version: String,
    },
    /// `version` is not offered.
    #[error("Unsupported version: {version}")]
    UnsupportedVersion {
        /// The requested version.
        version: String,
    },
    /// `target` does not exist for the version.
    #[error(
        "Unsupported target: {target}. The requested target was either dropped, is still being built or is not supported by the selected version. Please check the forums or try again later."
    )]
    UnsupportedTarget {
        /// The requested target.
        target: String,
    },
    /// `profile` matches no profile or alias of the target.
    #[error(
        "Unsupported profile: {profile}. The requested profile was either dropped or never existed. Please check the forums for more information."
    )]
    UnsupportedProfile {
        /// The requested (sanitised) profile.
        profile: String,
    },
}

impl From<UnsupportedProfile> for BadRequest {
    fn from(error: UnsupportedProfile) -> Self {
        BadRequest::UnsupportedProfile {
            profile: error.profile,
        }
    }
}

/// Parses a `200` build body (at most [`MAX_BUILD_RESPONSE_BYTES`]).
pub fn parse_build_response(bytes: &[u8]) -> Result<BuildResponse, BodyError> {
    decode("build response", bytes, MAX_BUILD_RESPONSE_BYTES)
}

/// Parses a `202`/`500` build body (at most [`MAX_BUILD_RESPONSE_BYTES`]).
pub fn parse_status_body(bytes: &[u8]) -> Result<BuildStatusBody, BodyError> {
    decode("build status", bytes, MAX_BUILD_RESPONSE_BYTES)
}

/// Parses a `400`/`404`/`529` body, or the `detail`, `stdout` and `stderr` of any other error
/// answer whose `detail` is a string (at most [`MAX_ERROR_BODY_BYTES`]). A `422` whose
/// `detail` is a list is [`crate::api::parse_validation_errors`]'s.
pub fn parse_error_body(bytes: &[u8]) -> Result<ErrorBody, BodyError> {
    decode("error body", bytes, MAX_ERROR_BODY_BYTES)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::upstream::ImageType;

    #[test]
    fn bad_request_texts_are_asu_exact() {
        let cases = [
            (
                BadRequest::DefaultsNotEnabled,
                "Handling `defaults` not enabled on server",
            ),
            (
                BadRequest::RepositoryNotAllowed {
                    url: "https://evil.example/x".into(),
                },
                "Repository not allowed: https://evil.example/x",
            ),
            (
                BadRequest::RepositoryRefused {
                    url: "https://a@evil.example/x".into(),
                    cause: crate::api::RepositoryError::UserInfo,
                },
                "Repository not allowed: https://a@evil.example/x: the URL has user information \
                 before the host (`…@`)",
            ),
            (
                BadRequest::UnsupportedDistro {
                    distro: "lede".into(),
                },
                "Unsupported distro: lede",
            ),
            (
                BadRequest::UnsupportedBranch {
                    version: "10.10.10".into(),
                },
                "Unsupported branch: 10.10.10",
            ),
            (
                BadRequest::UnsupportedVersion {
                    version: "24.10.99".into(),
                },
                "Unsupported version: 24.10.99",
            ),
            (
                BadRequest::UnsupportedTarget {
                    target: "foo/bar".into(),
                },
                "Unsupported target: foo/bar. The requested target was either dropped, is still being built or is not supported by the selected version. Please check the forums or try again later.",
            ),
            (
                BadRequest::UnsupportedProfile {
                    profile: "foo_bar".into(),
                },
                "Unsupported profile: foo_bar. The requested profile was either dropped or never existed. Please check the forums for more information.",
            ),
        ];
        for (reason, text) in cases {
            assert_eq!(reason.to_string(), text);
            assert_eq!(
                serde_json::to_value(ErrorBody::bad_request(&reason)).unwrap(),
                json!({"detail": text, "status": 400})
            );
        }
    }

    #[test]
    fn not_found_and_overloaded_bodies_are_asu_exact() {
        assert_eq!(
            serde_json::to_value(ErrorBody::not_found()).unwrap(),
            json!({"status": 404, "title": "Not Found", "detail": "could not find provided request hash"})
        );
        assert_eq!(
            serde_json::to_value(ErrorBody::overloaded(201)).unwrap(),
            json!({"status": 529, "title": "Server overloaded", "detail": "server overload, queue contains too many build requests: 201"})
        );
    }

    #[test]
    fn status_and_image_type_keep_unknown_values() {
        for wire in [
            "queued",
            "init",
            "container_setup",
            "validate_revision",
            "validate_manifest",
            "building_image",
            "signing_images",
            "done",
            "failed",
            "download_imagebuilder",
            "unpack_imagebuilder",
            "calculate_packages_hash",
        ] {
            let status = ImagebuilderStatus::from_wire(wire);
            assert!(!matches!(status, ImagebuilderStatus::Unknown(_)), "{wire}");
            assert_eq!(serde_json::to_value(&status).unwrap(), json!(wire));
        }
        let status: ImagebuilderStatus = serde_json::from_value(json!("compressing")).unwrap();
        assert_eq!(status, ImagebuilderStatus::Unknown("compressing".into()));
        assert_eq!(status.to_string(), "compressing");
        let kind: ImageType = serde_json::from_value(json!("combined-efi")).unwrap();
        assert_eq!(kind, ImageType::CombinedEfi);
        let kind: ImageType = serde_json::from_value(json!("tftp")).unwrap();
        assert_eq!(kind, ImageType::Unknown("tftp".into()));
    }

    #[test]
    fn finished_build_from_a_profile_round_trips() {
        let profile = FlatProfile {
            id: "generic".into(),
            arch_packages: "x86_64".into(),
            default_packages: vec!["base-files".into()],
            device_packages: Vec::new(),
            image_prefix: "openwrt-x86-64-generic".into(),
            images: Vec::new(),
            metadata_version: 1,
            source_date_epoch: SourceDateEpoch::Seconds(1_714_513_535),
            build_at: Some("2024-04-30T21:45:35.000000Z".into()),
            supported_devices: Vec::new(),
            target: "x86/64".into(),
            titles: Vec::new(),
            version_code: "r1-a".into(),
            version_number: "24.10.5".into(),
            linux_kernel: None,
            extra: [
                ("artifacts".to_owned(), json!({})),
                ("manifest".to_owned(), json!("not ours")),
            ]
            .into(),
        };
        let hash = RequestHash([7; 32]);
        let response = BuildResponse::from_profile(hash, profile);
        assert_eq!(response.bin_dir, hash.to_string());
        assert_eq!(response.imagebuilder_status, Some(ImagebuilderStatus::Done));
        assert!(response.extra.contains_key("artifacts"));
        assert!(
            !response.extra.contains_key("manifest"),
            "a typed key twice"
        );
        let bytes = serde_json::to_vec(&response).unwrap();
        assert_eq!(parse_build_response(&bytes).unwrap(), response);
    }

    #[test]
    fn queued_status_body_round_trips() {
        let body = json!({
            "status": 202, "detail": "queued", "queue_position": 3,
            "imagebuilder_status": "queued",
            "request_hash": "0000000000000000000000000000000000000000000000000000000000000000",
            "enqueued_at": "2026-05-01T10:00:00.123456+00:00"
        });
        let parsed: BuildStatusBody = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(parsed.queue_position, Some(3));
        assert_eq!(parsed.imagebuilder_status, Some(ImagebuilderStatus::Queued));
        assert_eq!(serde_json::to_value(&parsed).unwrap(), body);
    }

    #[test]
    fn error_body_reads_fastapi_plain_details_and_build_output() {
        // FastAPI's own errors (an unknown route) carry only `detail`.
        let plain = parse_error_body(br#"{"detail": "Not Found"}"#).unwrap();
        assert_eq!((plain.status, plain.detail.as_str()), (0, "Not Found"));
        let failed = parse_error_body(
            br#"{"status": 500, "detail": "Error: Impossible package selection", "stdout": "out"}"#,
        )
        .unwrap();
        assert_eq!(failed.stdout.as_deref(), Some("out"));
        assert_eq!(failed.stderr, None);
        // What the server sends is unchanged: no output keys on a 400/404/529.
        assert_eq!(
            serde_json::to_value(ErrorBody::not_found()).unwrap(),
            json!({"status": 404, "title": "Not Found", "detail": NOT_FOUND_DETAIL})
        );
        assert!(matches!(
            parse_error_body(br#"{"detail": ["a list"]}"#),
            Err(BodyError::Json { .. })
        ));
    }
}
