//! `GET /openapi.json`: the public API as an OpenAPI 3.1 document
//! (<https://spec.openapis.org/oas/v3.1.0>), built from [`ROUTES`], one entry per route the
//! router serves. `tests/e2e/openapi.rs` holds the two in step: every documented path and
//! method answers (neither the fallback's 404 nor a 405), and every `.route(...)` of `http/`
//! is documented.
//!
//! A catch-all route (`/store/{*path}`) is written `/store/{path}` here, as OpenAPI has no
//! catch-all; its description says the parameter may hold slashes.

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use crate::http::stats::MAX_QUERY_VALUE_CHARS;
use crate::state::AppState;
use crate::stats::{MAX_ERRORS, MAX_TOP};

/// The document route.
pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/openapi.json", get(|| async { Json(document()) }))
}

/// A documented route: the path as OpenAPI writes it, and its operations.
#[derive(Debug)]
pub(crate) struct Route {
    /// `/api/v1/build/{request_hash}`.
    pub(crate) path: &'static str,
    /// Its operations.
    pub(crate) operations: &'static [Operation],
}

/// One method on a route.
#[derive(Debug)]
pub(crate) struct Operation {
    /// `get` or `post` (a `get` answers `HEAD` too).
    pub(crate) method: &'static str,
    /// What it does.
    pub(crate) summary: &'static str,
    /// Path and query parameters.
    pub(crate) parameters: &'static [Parameter],
    /// Whether it takes a build request body.
    pub(crate) build_request_body: bool,
    /// Status, content type, description.
    pub(crate) responses: &'static [(u16, &'static str, &'static str)],
}

/// A path or query parameter.
#[derive(Debug)]
pub(crate) struct Parameter {
    name: &'static str,
    location: &'static str,
    description: &'static str,
    /// `Some(max)`: an integer from 0 (larger values are capped to `max`); `None`: a string.
    integer_max: Option<u32>,
}

const JSON: &str = "application/json";
const TEXT: &str = "text/plain";
const HTML: &str = "text/html";
const BINARY: &str = "application/octet-stream";

const fn path_parameter(name: &'static str, description: &'static str) -> Parameter {
    Parameter {
        name,
        location: "path",
        description,
        integer_max: None,
    }
}

const BRANCH: Parameter = Parameter {
    name: "branch",
    location: "query",
    description: "Only versions starting with this, e.g. `24.10`",
    integer_max: None,
};
const N_TOP: Parameter = Parameter {
    name: "n",
    location: "query",
    description: "How many entries (default 30, capped)",
    integer_max: Some(MAX_TOP),
};
const N_ERRORS: Parameter = Parameter {
    name: "n",
    location: "query",
    description: "How many failures (default 100, capped)",
    integer_max: Some(MAX_ERRORS),
};
const REQUEST_HASH: Parameter = Parameter {
    name: "request_hash",
    location: "query",
    description: "Only the images of this build",
    integer_max: None,
};

const INVALID_QUERY: (u16, &str, &str) = (422, JSON, "A query parameter is malformed");

const fn get_op(
    summary: &'static str,
    parameters: &'static [Parameter],
    responses: &'static [(u16, &'static str, &'static str)],
) -> Operation {
    Operation {
        method: "get",
        summary,
        parameters,
        build_request_body: false,
        responses,
    }
}

/// The answers of the admin API (`Authorization: Bearer <token>` from `admin_tokens`).
const ADMIN_RESPONSES: &[(u16, &str, &str)] = &[
    (
        200,
        JSON,
        "Done; with `\"dry_run\": true`, what would change",
    ),
    (401, JSON, "No bearer token"),
    (403, JSON, "The token is not one of `admin_tokens`"),
    (404, JSON, "No such channel, device or build"),
    (
        409,
        JSON,
        "The operation breaks a channel rule (named in `detail`)",
    ),
    (422, JSON, "The body is malformed"),
];

const fn admin_post(summary: &'static str) -> Operation {
    Operation {
        method: "post",
        summary,
        parameters: &[],
        build_request_body: false,
        responses: ADMIN_RESPONSES,
    }
}

/// The answers of the remote worker API (`Authorization: Bearer <token>` of `workers add`).
const WORKER_RESPONSES: &[(u16, &str, &str)] = &[
    (200, JSON, "Done; the body says what the server holds"),
    (401, JSON, "No token, or one of no active worker"),
    (
        409,
        JSON,
        "The attempt no longer holds the lease: stop (or: declare first, send the rest first)",
    ),
    (413, JSON, "A body or file larger than its limit"),
    (422, JSON, "The declaration or the files break a rule"),
];

const JOB_PARAMETERS: &[Parameter] = &[
    path_parameter("request_hash", "The job"),
    path_parameter(
        "attempt",
        "The attempt number from the claim: the fencing token",
    ),
];

const fn worker_op(
    method: &'static str,
    summary: &'static str,
    parameters: &'static [Parameter],
) -> Operation {
    Operation {
        method,
        summary,
        parameters,
        build_request_body: false,
        responses: WORKER_RESPONSES,
    }
}

/// Every public route.
pub(crate) const ROUTES: &[Route] = &[
    Route {
        path: "/api/v1/build",
        operations: &[Operation {
            method: "post",
            summary: "Request a build (ASU's build API); identical requests share one build",
            parameters: &[],
            build_request_body: true,
            responses: &[
                (200, JSON, "Finished: the result with its images"),
                (
                    202,
                    JSON,
                    "Queued or building; poll `/api/v1/build/{request_hash}`",
                ),
                (
                    400,
                    JSON,
                    "The request names something this server does not build",
                ),
                (413, JSON, "The body is larger than the limit"),
                (
                    422,
                    JSON,
                    "The body breaks the request model, or names unknown packages",
                ),
                (500, JSON, "The build failed (cached)"),
                (529, JSON, "The queue is full"),
            ],
        }],
    },
    Route {
        path: "/api/v1/build/{request_hash}",
        operations: &[get_op(
            "Poll a build",
            &[path_parameter(
                "request_hash",
                "The hash from the POST answer",
            )],
            &[
                (200, JSON, "Finished: the result with its images"),
                (202, JSON, "Queued or building"),
                (404, JSON, "No build with this hash"),
                (500, JSON, "The build failed"),
            ],
        )],
    },
    Route {
        path: "/api/v1/latest",
        operations: &[get_op(
            "Legacy: redirects to `/json/v1/latest.json`",
            &[],
            &[(301, JSON, "Moved")],
        )],
    },
    Route {
        path: "/api/v1/overview",
        operations: &[get_op(
            "Legacy: redirects to `/json/v1/overview.json`",
            &[],
            &[(301, JSON, "Moved")],
        )],
    },
    Route {
        path: "/overview",
        operations: &[get_op(
            "Legacy: redirects to `/json/v1/overview.json`",
            &[],
            &[(301, JSON, "Moved")],
        )],
    },
    Route {
        path: "/api/v1/revision/{version}/{target}/{subtarget}",
        operations: &[get_op(
            "The revision (`version_code`) upstream builds a version and target from",
            &[
                path_parameter("version", "e.g. `24.10.5`"),
                path_parameter("target", "e.g. `x86`"),
                path_parameter("subtarget", "e.g. `64`"),
            ],
            &[
                (200, JSON, "`{\"revision\": ...}`"),
                (400, JSON, "Unknown version or target"),
            ],
        )],
    },
    Route {
        path: "/json/v1/latest.json",
        operations: &[get_op(
            "The latest release of every branch",
            &[],
            &[(200, JSON, "`{\"latest\": [...]}`")],
        )],
    },
    Route {
        path: "/json/v1/overview.json",
        operations: &[get_op(
            "Branches, latest releases, upstream and server",
            &[],
            &[(200, JSON, "The overview")],
        )],
    },
    Route {
        path: "/json/v1/branches.json",
        operations: &[get_op(
            "The branches this server builds",
            &[],
            &[(200, JSON, "A list of branches")],
        )],
    },
    Route {
        path: "/json/v1/{path}",
        operations: &[get_op(
            "Upstream metadata by path: profiles, package indexes",
            &[path_parameter(
                "path",
                "e.g. `releases/24.10.5/targets/x86/64/index.json`; may hold slashes",
            )],
            &[(200, JSON, "The document"), (404, JSON, "No such document")],
        )],
    },
    Route {
        path: "/store/{path}",
        operations: &[get_op(
            "A built image (`<request_hash>/<name>`), with byte ranges; `<request_hash>/` is the build's page for clients accepting `text/html`",
            &[path_parameter(
                "path",
                "`<request_hash>/<name>`; may hold slashes",
            )],
            &[
                (200, BINARY, "The file (or the build's HTML page)"),
                (206, BINARY, "The requested byte range"),
                (404, JSON, "No such file"),
                (416, BINARY, "The range is outside the file"),
            ],
        )],
    },
    Route {
        path: "/channels/{path}",
        operations: &[get_op(
            "The published channel tree: `channels.json`, per-device indexes, `pool/` images, `keys/`; each with its `.sig`",
            &[path_parameter(
                "path",
                "A path inside the tree, e.g. `channels.json`; may hold slashes",
            )],
            &[
                (200, BINARY, "The file"),
                (206, BINARY, "The requested byte range"),
                (304, BINARY, "Unchanged since the `If-None-Match` tag"),
                (404, JSON, "No such file"),
                (416, BINARY, "The range is outside the file"),
            ],
        )],
    },
    Route {
        path: "/keys/{fingerprint}",
        operations: &[get_op(
            "The usign public key that signs the images",
            &[path_parameter("fingerprint", "16 hex digits")],
            &[
                (200, TEXT, "The key file"),
                (404, JSON, "Not this server's key"),
            ],
        )],
    },
    Route {
        path: "/api/v1/stats",
        operations: &[get_op(
            "Queue length",
            &[],
            &[(200, JSON, "`{\"queue_length\": n}`")],
        )],
    },
    Route {
        path: "/api/v1/stats/summary",
        operations: &[get_op(
            "Queue, running builds and builds in the last 24 hours",
            &[],
            &[(
                200,
                JSON,
                "`{\"builds_24h\", \"queue_length\", \"running\"}`",
            )],
        )],
    },
    Route {
        path: "/api/v1/builds-per-day",
        operations: &[get_op(
            "Requests, cache hits and failures per day, 30 days (chart data)",
            &[],
            &[(200, JSON, "`{\"labels\", \"datasets\"}`")],
        )],
    },
    Route {
        path: "/api/v1/builds-by-version",
        operations: &[get_op(
            "Builds per week per branch, or per version of `branch`, 26 weeks (chart data)",
            &[BRANCH],
            &[(200, JSON, "`{\"labels\", \"datasets\"}`"), INVALID_QUERY],
        )],
    },
    Route {
        path: "/api/v1/top-packages",
        operations: &[get_op(
            "The packages most often built, 30 days",
            &[BRANCH, N_TOP],
            &[
                (
                    200,
                    JSON,
                    "`{\"packages\": [{\"name\", \"count\"}], \"branch\", \"days\"}`",
                ),
                INVALID_QUERY,
            ],
        )],
    },
    Route {
        path: "/api/v1/top-targets",
        operations: &[get_op(
            "The targets most often built, 30 days",
            &[N_TOP],
            &[
                (200, JSON, "`{\"targets\": [...], \"days\"}`"),
                INVALID_QUERY,
            ],
        )],
    },
    Route {
        path: "/api/v1/top-profiles",
        operations: &[get_op(
            "The profiles most often built, 30 days",
            &[N_TOP],
            &[
                (200, JSON, "`{\"profiles\": [...], \"days\"}`"),
                INVALID_QUERY,
            ],
        )],
    },
    Route {
        path: "/api/v1/top-clients",
        operations: &[get_op(
            "Build requests per client, 30 days",
            &[N_TOP],
            &[
                (200, JSON, "`{\"clients\": [...], \"days\"}`"),
                INVALID_QUERY,
            ],
        )],
    },
    Route {
        path: "/api/v1/downloads",
        operations: &[get_op(
            "The most downloaded images",
            &[REQUEST_HASH, N_TOP],
            &[
                (
                    200,
                    JSON,
                    "`{\"downloads\": [{\"request_hash\", \"image\", \"count\"}]}`",
                ),
                INVALID_QUERY,
            ],
        )],
    },
    Route {
        path: "/api/v1/build-errors",
        operations: &[get_op(
            "The most recent build failures, anonymised",
            &[N_ERRORS],
            &[(200, TEXT, "One failure per line"), INVALID_QUERY],
        )],
    },
    Route {
        path: "/api/v1/report",
        operations: &[
            get_op(
                "The salt routers hash their machine-id with in outcome reports",
                &[],
                &[
                    (200, JSON, "`{\"salt\": ...}`, the same for every router"),
                    (404, JSON, "Outcome reports are disabled on this server"),
                ],
            ),
            Operation {
                method: "post",
                summary: "A router's outcome report of one upgrade to a channel build",
                parameters: &[],
                build_request_body: false,
                responses: &[
                    (
                        202,
                        JSON,
                        "Accepted; a repeated report replaces the earlier one",
                    ),
                    (400, JSON, "The report is malformed (the field is named)"),
                    (
                        404,
                        JSON,
                        "No such channel, device or build, or reports are disabled",
                    ),
                    (413, JSON, "The body is larger than 4096 bytes"),
                ],
            },
        ],
    },
    Route {
        path: "/metrics",
        operations: &[get_op(
            "Prometheus metrics (text format 0.0.4)",
            &[],
            &[(200, TEXT, "The metrics")],
        )],
    },
    Route {
        path: "/",
        operations: &[get_op("Status page", &[], &[(200, HTML, "The page")])],
    },
    Route {
        path: "/stats",
        operations: &[get_op(
            "Statistics page with charts",
            &[BRANCH, N_TOP],
            &[(200, HTML, "The page"), INVALID_QUERY],
        )],
    },
    Route {
        path: "/openapi.json",
        operations: &[get_op("This document", &[], &[(200, JSON, "OpenAPI 3.1")])],
    },
    Route {
        path: "/api/v1/admin/channels/create",
        operations: &[admin_post("Create a channel")],
    },
    Route {
        path: "/api/v1/admin/channels/remove",
        operations: &[admin_post("Remove a channel")],
    },
    Route {
        path: "/api/v1/admin/channels/hide",
        operations: &[admin_post("Hide a channel")],
    },
    Route {
        path: "/api/v1/admin/channels/show",
        operations: &[admin_post("Show a hidden channel")],
    },
    Route {
        path: "/api/v1/admin/channels/rename",
        operations: &[admin_post("Rename a channel (the old name redirects)")],
    },
    Route {
        path: "/api/v1/admin/channels/alias",
        operations: &[admin_post("Create or re-target an alias channel")],
    },
    Route {
        path: "/api/v1/admin/channels/redirect",
        operations: &[admin_post("Redirect a channel, or one of its devices")],
    },
    Route {
        path: "/api/v1/admin/channels/device/add",
        operations: &[admin_post("Add a device to a channel")],
    },
    Route {
        path: "/api/v1/admin/channels/device/remove",
        operations: &[admin_post("Remove a device from a channel")],
    },
    Route {
        path: "/api/v1/admin/channels/build",
        operations: &[admin_post(
            "Build the next channel build through the build queue",
        )],
    },
    Route {
        path: "/api/v1/admin/channels/import",
        operations: &[admin_post(
            "Import a prebuilt image (the request body) as the next build",
        )],
    },
    Route {
        path: "/api/v1/admin/channels/phase",
        operations: &[admin_post(
            "Read or set the latest build's phased percentage",
        )],
    },
    Route {
        path: "/api/v1/admin/channels/tag",
        operations: &[admin_post("Tag the latest build (a new build number)")],
    },
    Route {
        path: "/api/v1/admin/channels/copy",
        operations: &[admin_post(
            "Copy a build to a channel: revert or promote (a new build number)",
        )],
    },
    Route {
        path: "/api/v1/admin/channels/remove-build",
        operations: &[admin_post("Remove a build")],
    },
    Route {
        path: "/api/v1/admin/channels/rollout",
        operations: &[admin_post(
            "Set a channel's auto-halt and auto-advance from outcome reports",
        )],
    },
    Route {
        path: "/api/v1/admin/settle",
        operations: &[admin_post(
            "Move finished channel builds' images into the pool",
        )],
    },
    Route {
        path: "/api/v1/admin/channels",
        operations: &[get_op(
            "The channel tree (admin token)",
            &[],
            ADMIN_RESPONSES,
        )],
    },
    Route {
        path: "/api/v1/admin/channels/images",
        operations: &[get_op(
            "A device's builds, image files and outcome report counts (admin token)",
            &[],
            ADMIN_RESPONSES,
        )],
    },
    Route {
        path: "/api/v1/admin/audit",
        operations: &[get_op(
            "The audit log of channel changes (admin token)",
            &[],
            ADMIN_RESPONSES,
        )],
    },
    Route {
        path: "/api/v1/worker/claim",
        operations: &[worker_op(
            "post",
            "Claim a job (remote worker token); `wait` seconds of long poll (at most 60), 204 when none came",
            &[Parameter {
                name: "wait",
                location: "query",
                description: "Seconds to wait for a job (default 0, at most 60)",
                integer_max: Some(60),
            }],
        )],
    },
    Route {
        path: "/api/v1/worker/jobs/{request_hash}/{attempt}/heartbeat",
        operations: &[worker_op(
            "post",
            "Renew the attempt's lease and record its stage; 409 when it was lost",
            JOB_PARAMETERS,
        )],
    },
    Route {
        path: "/api/v1/worker/jobs/{request_hash}/{attempt}/result",
        operations: &[worker_op(
            "post",
            "Declare how the attempt ended: a failure, or the result and each file's size and SHA-256",
            JOB_PARAMETERS,
        )],
    },
    Route {
        path: "/api/v1/worker/jobs/{request_hash}/{attempt}/files/{name}",
        operations: &[worker_op(
            "put",
            "Upload (part of) a declared file, `Content-Range: bytes START-END/TOTAL` to resume; `name` may hold slashes",
            &[
                path_parameter("request_hash", "The job"),
                path_parameter("attempt", "The attempt number from the claim"),
                path_parameter("name", "The declared file's path"),
            ],
        )],
    },
    Route {
        path: "/api/v1/worker/imagebuilders/{path}",
        operations: &[worker_op(
            "get",
            "An ImageBuilder file for a remote worker: `sha256sums` and its signature as the upstream has them, or the archive from the verified cache; one byte `Range` to resume",
            &[path_parameter(
                "path",
                "`<version_path>/targets/<target>/<subtarget>/<file>`, as under the upstream",
            )],
        )],
    },
    Route {
        path: "/api/v1/worker/jobs/{request_hash}/{attempt}/complete",
        operations: &[worker_op(
            "post",
            "Check the files against the declaration, sign, publish and finish the job",
            JOB_PARAMETERS,
        )],
    },
];

/// The OpenAPI document of [`ROUTES`].
pub(crate) fn document() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let mut item = Map::new();
        for operation in route.operations {
            item.insert(operation.method.to_owned(), operation_object(operation));
        }
        paths.insert(route.path.to_owned(), Value::Object(item));
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Attendant image server",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Firmware images built on demand for OpenWrt, wire-compatible with the Attended SysUpgrade server (https://github.com/openwrt/asu).",
            "license": {"name": "GPL-2.0-only", "identifier": "GPL-2.0-only"}
        },
        "paths": paths,
        "components": {"schemas": {"BuildRequest": build_request_schema()}}
    })
}

fn operation_object(operation: &Operation) -> Value {
    let parameters: Vec<Value> = operation
        .parameters
        .iter()
        .map(|parameter| {
            let schema = match parameter.integer_max {
                Some(max) => json!({"type": "integer", "minimum": 0, "maximum": max}),
                None if parameter.location == "query" => {
                    json!({"type": "string", "maxLength": MAX_QUERY_VALUE_CHARS})
                }
                None => json!({"type": "string"}),
            };
            json!({
                "name": parameter.name,
                "in": parameter.location,
                "required": parameter.location == "path",
                "description": parameter.description,
                "schema": schema,
            })
        })
        .collect();
    let mut responses = Map::new();
    for (status, content_type, description) in operation.responses {
        responses.insert(
            status.to_string(),
            json!({"description": description, "content": {*content_type: {}}}),
        );
    }
    let mut object = json!({
        "summary": operation.summary,
        "parameters": parameters,
        "responses": responses,
    });
    if operation.build_request_body
        && let Some(fields) = object.as_object_mut()
    {
        fields.insert(
            "requestBody".to_owned(),
            json!({"required": true, "content": {JSON: {"schema": {"$ref": "#/components/schemas/BuildRequest"}}}}),
        );
    }
    object
}

/// The build request's fields as ASU's request model defines them.
fn build_request_schema() -> Value {
    let strings = json!({"type": "array", "items": {"type": "string"}});
    json!({
        "type": "object",
        "required": ["version", "target", "profile"],
        "properties": {
            "distro": {"type": "string", "default": "openwrt"},
            "version": {"type": "string", "examples": ["24.10.5"]},
            "version_code": {"type": "string"},
            "target": {"type": "string", "examples": ["x86/64"]},
            "profile": {"type": "string", "examples": ["generic"]},
            "packages": strings,
            "packages_versions": {"type": "object", "additionalProperties": {"type": "string"}},
            "diff_packages": {"type": "boolean", "default": false},
            "defaults": {"type": ["string", "null"]},
            "rootfs_size_mb": {"type": ["integer", "null"]},
            "filesystem": {"type": ["string", "null"], "enum": ["squashfs", "ext4", "ubifs", "erofs", null]},
            "repositories": {"type": "object", "additionalProperties": {"type": "string"}},
            "repositories_mode": {"type": "string", "enum": ["append", "replace"], "default": "append"},
            "repository_keys": strings,
            "client": {"type": ["string", "null"], "examples": ["owut/2024.07"]}
        }
    })
}
