//! Build responses and error bodies of ASU's API v1 (asu-server.md §2.3, §2.4).
//!
//! - `200`: [`BuildResponse`], the finished build: the ImageBuilder's `profiles.json` flattened
//!   for the built profile, plus `manifest`, `bin_dir`, `build_cmd`, ... Unknown fields are kept
//!   in `extra` so a client tolerates additions (our `signature` fields, newer ImageBuilders).
//! - `202` and `500`: [`BuildStatusBody`]: `detail`, `queue_position`, `imagebuilder_status`,
//!   `stdout`/`stderr` on failure.
//! - `400`, `404`, `529`: [`ErrorBody`], built from [`BadRequest`] or the constructors.
//! - The `500` `detail` texts of the worker: [`BuildFailure`].
//!
//! Headers [`HEADER_IMAGEBUILDER_STATUS`] and [`HEADER_QUEUE_POSITION`] go on every build
//! response; `HEAD` requests get only them.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::api::body::{BodyError, decode};
use crate::api::hash::RequestHash;
use crate::api::request::BuildRequest;
use crate::upstream::{LinuxKernel, SourceDateEpoch, Title};

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
    /// Any other field, kept verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// One built image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// Root filesystem: `squashfs`, `ext4`, `initramfs`, ...
    pub filesystem: String,
    /// File name under `bin_dir`.
    pub name: String,
    /// SHA-256 of the file as served (what a router verifies).
    pub sha256: String,
    /// SHA-256 before the signature trailer was attached (what rebuilders compare).
    #[serde(default)]
    pub sha256_unsigned: String,
    /// Image type.
    #[serde(rename = "type")]
    pub image_type: ImageType,
}

/// Generates a string enum whose unknown wire values are kept, not rejected.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $wire:literal, )* }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A value this version does not know, kept as sent.
            Unknown(String),
        }

        impl $name {
            /// The wire string.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $wire, )*
                    Self::Unknown(other) => other,
                }
            }

            /// The value for a wire string; never fails.
            pub fn from_wire(value: &str) -> Self {
                match value {
                    $( $wire => Self::$variant, )*
                    other => Self::Unknown(other.to_owned()),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Ok(Self::from_wire(&text))
            }
        }
    };
}

wire_enum! {
    /// `images[].type` (router-side.md §8).
    pub enum ImageType {
        /// `sysupgrade`
        Sysupgrade = "sysupgrade",
        /// `factory`
        Factory = "factory",
        /// `combined`
        Combined = "combined",
        /// `combined-efi`
        CombinedEfi = "combined-efi",
        /// `sdcard`
        Sdcard = "sdcard",
        /// `kernel`
        Kernel = "kernel",
        /// `rootfs`
        Rootfs = "rootfs",
        /// `nand-sysupgrade`
        NandSysupgrade = "nand-sysupgrade",
        /// `nand-factory`
        NandFactory = "nand-factory",
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

/// The `400`/`404`/`529` body: `{"status", "title"?, "detail"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The HTTP status.
    pub status: u16,
    /// Short title (`404`, `529` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What went wrong.
    pub detail: String,
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
        }
    }

    /// `404 {"status": 404, "title": "Not Found", "detail": "could not find provided request hash"}`.
    pub fn not_found() -> Self {
        Self {
            status: 404,
            title: Some("Not Found".to_owned()),
            detail: NOT_FOUND_DETAIL.to_owned(),
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

/// Why a build failed; `Display` is the message, [`BuildFailure::detail`] the `500` `detail`
/// (`Error: ` + message), both exactly as ASU's worker writes them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildFailure {
    /// The ImageBuilder for the version/target does not exist (yet).
    #[error(
        "Image not found: {image}. If this version was just released, please try again in a few hours as it may take some time to become fully available."
    )]
    ImageNotFound {
        /// The ImageBuilder that was looked for.
        image: String,
    },
    /// Preparing a snapshot ImageBuilder failed.
    #[error("Could not set up ImageBuilder (returncode={returncode})")]
    ImagebuilderSetup {
        /// Exit status of the setup.
        returncode: i32,
    },
    /// The ImageBuilder's revision differs from `version_code`.
    #[error("Received incorrect version {actual} (requested {requested})")]
    IncorrectVersion {
        /// Revision the ImageBuilder reports.
        actual: String,
        /// Revision the request asked for.
        requested: String,
    },
    /// `make manifest` failed; the packages named in its errors.
    #[error("{0}")]
    ImpossiblePackageSelection(crate::api::imagebuilder::PackageErrors),
    /// A `packages_versions` package is not in the manifest.
    #[error("Impossible package selection: {package} not in manifest")]
    NotInManifest {
        /// The package.
        package: String,
    },
    /// A `packages_versions` package has another version in the manifest.
    #[error(
        "Impossible package selection: {package} version not as requested: {requested} vs. {actual}"
    )]
    VersionMismatch {
        /// The package.
        package: String,
        /// Version asked for.
        requested: String,
        /// Version in the manifest.
        actual: String,
    },
    /// The image does not fit the device (`is too big` / `out of space?`).
    #[error("Selected packages exceed device storage")]
    ExceedsStorage,
    /// `make image` failed otherwise.
    #[error("Error while building firmware. See stdout/stderr")]
    BuildFailed,
    /// No `profiles.json` in the output.
    #[error("No JSON file found")]
    NoJsonFile,
    /// The profile is missing from the output `profiles.json`.
    #[error("Profile not found in JSON file")]
    ProfileNotFound,
}

/// Parses a `200` build body (at most [`MAX_BUILD_RESPONSE_BYTES`]).
pub fn parse_build_response(bytes: &[u8]) -> Result<BuildResponse, BodyError> {
    decode("build response", bytes, MAX_BUILD_RESPONSE_BYTES)
}

/// Parses a `202`/`500` build body (at most [`MAX_BUILD_RESPONSE_BYTES`]).
pub fn parse_status_body(bytes: &[u8]) -> Result<BuildStatusBody, BodyError> {
    decode("build status", bytes, MAX_BUILD_RESPONSE_BYTES)
}

/// Parses a `400`/`404`/`529` body (at most [`MAX_ERROR_BODY_BYTES`]).
pub fn parse_error_body(bytes: &[u8]) -> Result<ErrorBody, BodyError> {
    decode("error body", bytes, MAX_ERROR_BODY_BYTES)
}

impl BuildFailure {
    /// The `500` `detail`: `Error: <message>`.
    pub fn detail(&self) -> String {
        format!("Error: {self}")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::imagebuilder::PackageErrors;

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
    fn build_failure_details_are_asu_exact() {
        let cases = [
            (
                BuildFailure::ImageNotFound {
                    image: "ghcr.io/openwrt/imagebuilder:lantiq-xrx200-v24.10.1".into(),
                },
                "Error: Image not found: ghcr.io/openwrt/imagebuilder:lantiq-xrx200-v24.10.1. If this version was just released, please try again in a few hours as it may take some time to become fully available.",
            ),
            (
                BuildFailure::ImagebuilderSetup { returncode: 2 },
                "Error: Could not set up ImageBuilder (returncode=2)",
            ),
            (
                BuildFailure::IncorrectVersion {
                    actual: "r12647-cb44ab4f5d".into(),
                    requested: "some-bad-version-code".into(),
                },
                "Error: Received incorrect version r12647-cb44ab4f5d (requested some-bad-version-code)",
            ),
            (
                BuildFailure::ImpossiblePackageSelection(PackageErrors {
                    missing: ["a".to_owned(), "b".to_owned()].into(),
                    conflicts: ["c".to_owned(), "d".to_owned()].into(),
                }),
                "Error: Impossible package selection: missing (a, b) conflicts (c, d)",
            ),
            (
                BuildFailure::ImpossiblePackageSelection(PackageErrors::default()),
                "Error: Impossible package selection",
            ),
            (
                BuildFailure::NotInManifest {
                    package: "test3".into(),
                },
                "Error: Impossible package selection: test3 not in manifest",
            ),
            (
                BuildFailure::VersionMismatch {
                    package: "test1".into(),
                    requested: "0.0".into(),
                    actual: "1.0".into(),
                },
                "Error: Impossible package selection: test1 version not as requested: 0.0 vs. 1.0",
            ),
            (
                BuildFailure::ExceedsStorage,
                "Error: Selected packages exceed device storage",
            ),
            (
                BuildFailure::BuildFailed,
                "Error: Error while building firmware. See stdout/stderr",
            ),
            (BuildFailure::NoJsonFile, "Error: No JSON file found"),
            (
                BuildFailure::ProfileNotFound,
                "Error: Profile not found in JSON file",
            ),
        ];
        for (failure, detail) in cases {
            assert_eq!(failure.detail(), detail);
        }
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
}
