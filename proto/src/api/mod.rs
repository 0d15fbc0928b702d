//! The Attended SysUpgrade (ASU) HTTP API v1 on the wire, shared by the server and the agent.
//!
//! Everything here follows openwrt/asu (<https://github.com/openwrt/asu>, the API served at
//! <https://sysupgrade.openwrt.org/docs>), so
//! that owut, auc, LuCI and the firmware selector work against our server and our agent works
//! against sysupgrade.openwrt.org:
//!
//! | module | what |
//! | --- | --- |
//! | [`request`] | [`BuildRequest`]: the `POST /api/v1/build` body with ASU's defaults, and [`RequestLimits`] |
//! | [`parse`] | [`parse_build_request`]: validating a body with ASU's rules and pydantic's 422 errors |
//! | [`validation`] | [`ValidationErrors`]: the list-shaped 422 body, word for word as FastAPI/pydantic v2 write it |
//! | [`hash`] | [`RequestHash`], [`CanonicalRequest`], [`request_hash`] and the package-list rules (`diff_packages`) |
//! | [`fixups`] | [`apply_fixups`]: ASU's per-release edits of the package list before a build |
//! | [`response`] | the 200 [`BuildResponse`], 202/500 [`BuildStatusBody`], 400/404/529 [`ErrorBody`], the exact 400/500 texts, status header names |
//! | [`overview`] | `overview.json`, `latest.json`, `branches.json`, `revision` |
//! | [`repository`] | [`AllowList`]: extra repositories read strictly and admitted by whole-segment prefix |
//! | [`body`] | [`BodyError`]: size-checked JSON decoding of the bodies above |
//! | [`imagebuilder`] | parsers for ImageBuilder output: `make info`, manifests, package errors |
//!
//! Where ASU is sloppy we keep the wire and fix the behaviour: the request hash is a full
//! SHA-256 over an unambiguous encoding computed after alias resolution, and every list, string
//! and body has a limit ([`RequestLimits`]).
//!
//! ```
//! use attendant_proto::api::{parse_build_request, RequestLimits};
//!
//! let body = br#"{"version": "24.10.6", "target": "ath79/generic", "profile": "tplink,archer-c7-v5"}"#;
//! let request = parse_build_request(body, &RequestLimits::default()).unwrap();
//! assert_eq!(request.distro, "openwrt");
//!
//! let errors = parse_build_request(b"{}", &RequestLimits::default()).unwrap_err();
//! assert_eq!(errors.detail[0].msg, "Field required");
//! ```

pub mod body;
pub mod fixups;
pub mod hash;
pub mod imagebuilder;
pub mod overview;
pub mod parse;
pub mod repository;
pub mod request;
pub mod response;
pub mod validation;
pub(crate) mod wire_enum;

pub use body::BodyError;
pub use fixups::{Fixed, Fixup, apply_fixups};
pub use hash::{
    CanonicalRequest, RequestHash, RequestHashError, diff_packages, normalized_packages,
    request_hash, sanitize_profile,
};
pub use imagebuilder::{BuildFailure, ImagebuilderInfo, PackageErrors, manifest_entry};
pub use overview::{
    Branch, Latest, Overview, PackageChange, Revision, ServerInfo, parse_branches, parse_latest,
    parse_overview,
};
pub use parse::parse_build_request;
pub use repository::{AllowList, RepositoryError, RepositoryUrl};
pub use request::{BuildRequest, Filesystem, RepositoriesMode, RequestLimits};
pub use response::{
    BadRequest, BuildResponse, BuildStatusBody, ErrorBody, HEADER_IMAGEBUILDER_STATUS,
    HEADER_QUEUE_POSITION, ImagebuilderStatus, parse_build_response, parse_error_body,
    parse_status_body,
};
pub use validation::{LocItem, ValidationError, ValidationErrors, parse_validation_errors};

pub use crate::upstream::{ImageInfo, ImageType};
