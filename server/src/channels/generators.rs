//! The importer's generators: each turns one configured input into a part of the next build of
//! a device — a `version_detail` pair that says what the input is now, plus what the build
//! needs from it (an OpenWrt release, a recipe, a prebuilt image, another channel's build).
//!
//! | generator | `version_detail` | gives |
//! | --- | --- | --- |
//! | `upstream` | `openwrt=<version>`, `revision=<version_code>` | the newest release of a branch (or `stable`, `oldstable`, `SNAPSHOT`) on the upstream mirror, from its `.versions.json` and the target's `profiles.json` |
//! | `recipe` | `<name>=<12 hex digits of the recipe's SHA-256>` | packages added and removed, a uci-defaults script, the root size |
//! | `http` | `<name>=<monitor text>` or `<name>=<12 hex of the image's SHA-256>` | a prebuilt image downloaded from a URL (size-limited, checked against `sha256` when given) |
//! | `channel` | `<name>=<channel>/<build>` | the latest ready build of another channel of this server (promotion) |
//! | `version` | nothing | the embedded `/etc/attendant/channel.json` (required) |
//!
//! The pairs are computed first and cheaply (the `http` monitor is one small request); the
//! importer compares them with the latest build's and fetches images only when something
//! changed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::channels::model::{Build, BuildState, Channel, DeviceId, Recipe};
use crate::metadata::MetadataError;
use crate::state::AppState;

/// Largest monitor answer read, in bytes.
pub const MAX_MONITOR_BYTES: usize = 1024;

/// Why an input could not give its part; the device gets no build this run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GeneratorError {
    /// Upstream metadata could not be read.
    #[error("upstream metadata")]
    Metadata(#[from] MetadataError),
    /// The tracked release does not exist upstream.
    #[error("upstream has no release for `{track}`")]
    NoRelease {
        /// What was tracked.
        track: String,
    },
    /// The release has no such target.
    #[error("OpenWrt {version} has no target `{target}`")]
    NoTarget {
        /// The release.
        version: String,
        /// The target.
        target: String,
    },
    /// An HTTP request failed or was refused.
    #[error("`{url}`: {reason}")]
    Http {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A monitor URL answered something other than one short line.
    #[error("monitor `{url}` did not answer one non-empty line of printable text")]
    Monitor {
        /// The URL.
        url: String,
    },
    /// The downloaded image is not the configured one.
    #[error("`{url}` has SHA-256 {actual}, expected {expected}")]
    Checksum {
        /// The URL.
        url: String,
        /// The configured digest.
        expected: String,
        /// The downloaded file's.
        actual: String,
    },
    /// The server has no such file (404).
    #[error("`{url}`: answered 404 Not Found")]
    Missing {
        /// The URL.
        url: String,
    },
    /// The downloaded file is not as long as the signed index says.
    #[error("`{url}` is {actual} bytes long, the signed index says {expected}")]
    Size {
        /// The URL.
        url: String,
        /// The size the index gives.
        expected: u64,
        /// The downloaded length.
        actual: u64,
    },
    /// A downloaded file cannot be written.
    #[error("cannot write `{path}`")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A pinned root key of a `remote-channel` input cannot be read.
    #[error("cannot read the pinned root key `{path}`: {reason}")]
    RootKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A remote channel file failed a check of the chain of trust (signature, delegation,
    /// revocation, expiry, serial, device).
    #[error("`{url}` is refused ({code})", code = source.code())]
    Untrusted {
        /// The file.
        url: String,
        /// The check it failed.
        #[source]
        source: attendant_proto::channel::trust::TrustError,
    },
    /// A remote channel file is not a valid channel file.
    #[error("`{url}` is not a valid channel file")]
    Format {
        /// The file.
        url: String,
        /// The rule it breaks.
        #[source]
        source: attendant_proto::channel::ChannelFormatError,
    },
    /// The remote tree does not offer what the input names.
    #[error("the remote tree at `{url}` {what}")]
    RemoteMissing {
        /// The remote's base URL.
        url: String,
        /// What it lacks.
        what: String,
    },
    /// A remote build's uci-defaults script cannot be carried over.
    #[error("`{url}`: the uci-defaults script of build {number} {reason}")]
    RemoteDefaults {
        /// The remote index.
        url: String,
        /// The build in the remote channel.
        number: u64,
        /// What is wrong with the script.
        reason: String,
    },
    /// The source channel has nothing to promote.
    #[error("channel `{channel}` has no ready build of this device")]
    NoSourceBuild {
        /// The source channel.
        channel: String,
    },
    /// A local file could not be read.
    #[error("cannot read `{path}`")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A local file is too large.
    #[error("`{path}` is larger than {max} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        max: u64,
    },
}

/// The newest release of `track` and its revision for the device's target.
pub(crate) async fn upstream(
    state: &AppState,
    track: &str,
    device: &DeviceId,
) -> Result<(String, String), GeneratorError> {
    let versions = state.metadata.versions().await?;
    let version = match track {
        "stable" => Some(versions.stable_version.clone()),
        "oldstable" => Some(versions.oldstable_version.clone()),
        "SNAPSHOT" => Some("SNAPSHOT".to_owned()),
        branch => newest_of_branch(&versions.versions_list, branch),
    }
    .filter(|version| !version.is_empty())
    .ok_or_else(|| GeneratorError::NoRelease {
        track: track.to_owned(),
    })?;
    let branches = &state.config.branches;
    let branch = branches
        .get(&crate::build::branch_of(&version, branches))
        .ok_or_else(|| GeneratorError::NoRelease {
            track: track.to_owned(),
        })?;
    let path = branch.path.replace("{version}", &version);
    let target = device.target_path();
    let profiles = state
        .metadata
        .profiles(&path, &target)
        .await?
        .ok_or_else(|| GeneratorError::NoTarget {
            version: version.clone(),
            target,
        })?;
    Ok((version, profiles.version_code.clone()))
}

/// The newest `branch.N` release in upstream's list (numerically: `24.10.10` after `24.10.9`);
/// release candidates only when the branch has nothing else.
fn newest_of_branch(versions: &[String], branch: &str) -> Option<String> {
    let prefix = format!("{branch}.");
    let key = |version: &str| -> (bool, Vec<u64>) {
        let rest = version.strip_prefix(&prefix).unwrap_or(version);
        let final_release = !rest.contains('-');
        let numbers = rest
            .split(['.', '-'])
            .map(|part| {
                part.trim_start_matches(|c: char| !c.is_ascii_digit())
                    .parse()
                    .unwrap_or(0)
            })
            .collect();
        (final_release, numbers)
    };
    versions
        .iter()
        .filter(|version| version.starts_with(&prefix))
        .max_by_key(|version| key(version))
        .cloned()
}

/// A recipe's identity: 12 hex digits of the SHA-256 of its canonical form.
pub(crate) fn recipe_digest(recipe: &Recipe) -> String {
    let text = serde_json::to_string(recipe).unwrap_or_default();
    hex::encode(Sha256::digest(text.as_bytes()))
        .chars()
        .take(12)
        .collect()
}

/// Reads a uci-defaults script, at most `max` bytes.
pub(crate) fn read_defaults(path: &Path, max: u64) -> Result<String, GeneratorError> {
    let read = |source| GeneratorError::Read {
        path: path.to_owned(),
        source,
    };
    let length = std::fs::metadata(path).map_err(read)?.len();
    if length > max {
        return Err(GeneratorError::TooLarge {
            path: path.to_owned(),
            max,
        });
    }
    std::fs::read_to_string(path).map_err(read)
}

/// The monitor's one line: the image's current version.
pub(crate) async fn monitor(
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
) -> Result<String, GeneratorError> {
    let body = fetch(client, url, timeout, MAX_MONITOR_BYTES as u64).await?;
    let text = String::from_utf8(body).map_err(|_| GeneratorError::Monitor {
        url: url.to_owned(),
    })?;
    let line = text.trim();
    let printable = !line.is_empty()
        && !line.contains('\n')
        && line
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b',' && b != b'=');
    if printable {
        Ok(line.to_owned())
    } else {
        Err(GeneratorError::Monitor {
            url: url.to_owned(),
        })
    }
}

/// Downloads `url` into `file` as it arrives (at most `max` bytes, hashed on the way, nothing
/// held in memory), returning its SHA-256; checked against `expected` and `expected_size` when
/// given. A partial file is left for the caller, who removes its work directory either way.
pub(crate) async fn download(
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
    max: u64,
    expected: Option<&str>,
    expected_size: Option<u64>,
    file: &Path,
) -> Result<String, GeneratorError> {
    use tokio::io::AsyncWriteExt as _;
    let failed = |reason: String| GeneratorError::Http {
        url: url.to_owned(),
        reason,
    };
    let write_error = |source| GeneratorError::Write {
        path: file.to_owned(),
        source,
    };
    let max = expected_size.map_or(max, |size| size.min(max));
    let work = async {
        let response = send(client, url, max).await?;
        let mut out = tokio::fs::File::create(file).await.map_err(write_error)?;
        let mut hasher = Sha256::new();
        let mut length: u64 = 0;
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|error| failed(error.to_string()))?;
            length = length.saturating_add(chunk.len() as u64);
            if length > max {
                return Err(failed(format!("is larger than {max} bytes")));
            }
            hasher.update(&chunk);
            out.write_all(&chunk).await.map_err(write_error)?;
        }
        out.sync_all().await.map_err(write_error)?;
        Ok((hex::encode(hasher.finalize()), length))
    };
    let (actual, length) = tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| failed(no_answer(timeout)))??;
    if let Some(size) = expected_size
        && size != length
    {
        return Err(GeneratorError::Size {
            url: url.to_owned(),
            expected: size,
            actual: length,
        });
    }
    if let Some(expected) = expected
        && !expected.eq_ignore_ascii_case(&actual)
    {
        return Err(GeneratorError::Checksum {
            url: url.to_owned(),
            expected: expected.to_owned(),
            actual,
        });
    }
    Ok(actual)
}

/// The latest ready build of `device` in `source`.
pub(crate) fn latest_ready<'a>(
    source: Option<&'a Channel>,
    channel: &str,
    device: &str,
) -> Result<&'a Build, GeneratorError> {
    source
        .and_then(|source| source.devices.get(device))
        .and_then(|device| {
            device
                .builds
                .iter()
                .rev()
                .find(|build| build.state == BuildState::Ready)
        })
        .ok_or_else(|| GeneratorError::NoSourceBuild {
            channel: channel.to_owned(),
        })
}

/// The body of `url`, at most `max` bytes.
pub(crate) async fn fetch(
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
    max: u64,
) -> Result<Vec<u8>, GeneratorError> {
    fetch_optional(client, url, timeout, max)
        .await?
        .ok_or_else(|| GeneratorError::Http {
            url: url.to_owned(),
            reason: format!("answered {}", reqwest::StatusCode::NOT_FOUND),
        })
}

/// The body of `url`, at most `max` bytes, or `None` when the server says it has no such file
/// (404): for files a publisher may leave out, such as a revocation list.
pub(crate) async fn fetch_optional(
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
    max: u64,
) -> Result<Option<Vec<u8>>, GeneratorError> {
    let failed = |reason: String| GeneratorError::Http {
        url: url.to_owned(),
        reason,
    };
    let work = async {
        let response = match send(client, url, max).await {
            Err(GeneratorError::Missing { .. }) => return Ok(None),
            other => other?,
        };
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|error| failed(error.to_string()))?;
            if body.len() as u64 + chunk.len() as u64 > max {
                return Err(failed(format!("is larger than {max} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Some(body))
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| failed(no_answer(timeout)))?
}

/// Sends the request; a success whose announced length fits in `max`, or the error
/// ([`GeneratorError::Missing`] for a 404).
async fn send(
    client: &reqwest::Client,
    url: &str,
    max: u64,
) -> Result<reqwest::Response, GeneratorError> {
    let failed = |reason: String| GeneratorError::Http {
        url: url.to_owned(),
        reason,
    };
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|error| failed(error.to_string()))?;
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return Err(GeneratorError::Missing {
            url: url.to_owned(),
        });
    }
    if !response.status().is_success() {
        return Err(failed(format!("answered {}", response.status())));
    }
    if response.content_length().is_some_and(|length| length > max) {
        return Err(failed(format!("is larger than {max} bytes")));
    }
    Ok(response)
}

fn no_answer(timeout: Duration) -> String {
    format!("no answer within {}", humantime::format_duration(timeout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_release_of_a_branch_is_found_numerically() {
        let list: Vec<String> = [
            "24.10.9",
            "24.10.10",
            "24.10.0-rc1",
            "23.05.5",
            "25.12.0-rc2",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        assert_eq!(
            newest_of_branch(&list, "24.10").as_deref(),
            Some("24.10.10")
        );
        assert_eq!(
            newest_of_branch(&list, "25.12").as_deref(),
            Some("25.12.0-rc2")
        );
        assert_eq!(newest_of_branch(&list, "22.03"), None);
    }

    #[test]
    fn a_recipe_digest_changes_with_the_recipe() {
        let mut recipe = Recipe::default();
        let empty = recipe_digest(&recipe);
        assert_eq!(empty.len(), 12);
        recipe.add.push("luci".to_owned());
        assert_ne!(recipe_digest(&recipe), empty);
    }
}
