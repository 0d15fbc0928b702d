//! Requesting a build and following it until the image is ready.
//!
//! `POST /api/v1/build`, then status checks on `/api/v1/build/{request_hash}` as owut does them
//! (<https://github.com/efahl/owut>): the first after 500 ms, then every poll interval; `HEAD`
//! first, reading `X-Queue-Position` and `X-Imagebuilder-Status` from a `202`; a `405` switches to
//! `GET` for good; a `200` (or any other status) is fetched with `GET` for its body. Each check
//! reports the queue position or build stage and the elapsed time to a callback. A build that
//! was started earlier (same request, recorded in the state file) is followed by its hash instead
//! of being posted again.

use std::thread;
use std::time::{Duration, Instant};

use attendant_proto::api::{self, BodyError, BuildResponse, ImagebuilderStatus};
use serde::Serialize;

use crate::client::{Client, ClientError, Reply};
use crate::hint::{Hint, HintCode};

/// Delay before the first status check after the POST.
pub const FIRST_POLL_DELAY: Duration = Duration::from_millis(500);

/// Longest a build is followed before giving up (ASU's job timeout is 10 minutes; a long
/// queue adds to it).
pub const MAX_BUILD_WAIT: Duration = Duration::from_secs(60 * 60);

/// Progress of a build, reported at every status check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum BuildProgress {
    /// The request was accepted under this hash.
    Accepted {
        /// The server's request hash.
        request_hash: String,
    },
    /// Waiting in the queue.
    Queued {
        /// Jobs ahead of this one.
        position: Option<u64>,
        /// Seconds since the request.
        elapsed_secs: u64,
    },
    /// Building.
    Building {
        /// The ImageBuilder stage (a stage this version does not know is kept as sent).
        stage: ImagebuilderStatus,
        /// Seconds since the request.
        elapsed_secs: u64,
    },
}

/// Why the build did not produce an image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The server refused or failed the build.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The server's answer is not an ASU build response.
    #[error("the build server's answer is not understood: {0}")]
    Body(#[from] BodyError),
    /// A `202` without a request hash.
    #[error("the build server accepted the request but sent no request hash")]
    NoRequestHash,
    /// The build took longer than [`MAX_BUILD_WAIT`].
    #[error("the build did not finish within {} minutes", MAX_BUILD_WAIT.as_secs() / 60)]
    TimedOut,
}

impl BuildError {
    /// The way out, if there is one.
    pub fn hint(&self) -> Option<Hint> {
        match self {
            Self::Client(error) => error.hint(),
            Self::TimedOut => Some(Hint::coded(
                HintCode::TryLater,
                "run the same command again later; the build is followed by its request hash",
            )),
            _ => None,
        }
    }
}

/// Posts `body` (or follows `resume_hash`) and waits for the finished build.
pub fn build(
    client: &Client,
    body: &[u8],
    resume_hash: Option<&str>,
    poll_interval: Duration,
    progress: &mut dyn FnMut(&BuildProgress),
) -> Result<BuildResponse, BuildError> {
    let started = Instant::now();
    let resumed = match resume_hash {
        Some(hash) => match client.get_build(hash) {
            Ok(reply) => Some(reply),
            Err(ClientError::NotFound { .. }) => {
                log::info!("the earlier build `{hash}` has expired; requesting it again");
                None
            }
            Err(error) => return Err(error.into()),
        },
        None => None,
    };
    let reply = match resumed {
        Some(reply) => reply,
        None => client.post_build(body)?,
    };
    if reply.status == 200 {
        return Ok(api::parse_build_response(&reply.body)?);
    }
    let status = api::parse_status_body(&reply.body)?;
    let request_hash = status
        .request_hash
        .map(|hash| hash.to_string())
        .ok_or(BuildError::NoRequestHash)?;
    progress(&BuildProgress::Accepted {
        request_hash: request_hash.clone(),
    });
    report(&reply, status.queue_position, started, progress);

    let mut use_get = false;
    let mut delay = FIRST_POLL_DELAY;
    loop {
        if started.elapsed() > MAX_BUILD_WAIT {
            return Err(BuildError::TimedOut);
        }
        thread::sleep(delay);
        delay = poll_interval;
        if !use_get {
            let head = client.head_build(&request_hash)?;
            match head.status {
                202 => {
                    report(&head, None, started, progress);
                    continue;
                }
                405 => {
                    log::debug!("the server does not answer HEAD; polling with GET");
                    use_get = true;
                }
                _ => {}
            }
        }
        let reply = client.get_build(&request_hash)?;
        if reply.status == 200 {
            return Ok(api::parse_build_response(&reply.body)?);
        }
        let body = api::parse_status_body(&reply.body)?;
        report(&reply, body.queue_position, started, progress);
    }
}

fn report(
    reply: &Reply,
    body_position: Option<u64>,
    started: Instant,
    progress: &mut dyn FnMut(&BuildProgress),
) {
    let elapsed_secs = started.elapsed().as_secs();
    let position = reply.queue_position.or(body_position);
    match &reply.imagebuilder_status {
        None | Some(ImagebuilderStatus::Queued) => progress(&BuildProgress::Queued {
            position,
            elapsed_secs,
        }),
        Some(stage) => progress(&BuildProgress::Building {
            stage: stage.clone(),
            elapsed_secs,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reported(stage: Option<ImagebuilderStatus>) -> BuildProgress {
        let reply = Reply {
            status: 202,
            queue_position: None,
            imagebuilder_status: stage,
            body: Vec::new(),
        };
        let mut seen = Vec::new();
        report(&reply, Some(2), Instant::now(), &mut |p| {
            seen.push(p.clone())
        });
        seen.pop().unwrap()
    }

    #[test]
    fn a_queued_or_missing_stage_is_queued_and_any_other_is_building() {
        for queued in [None, Some(ImagebuilderStatus::Queued)] {
            assert!(matches!(
                reported(queued),
                BuildProgress::Queued {
                    position: Some(2),
                    ..
                }
            ));
        }
        let building = reported(Some(ImagebuilderStatus::BuildingImage));
        assert!(matches!(
            &building,
            BuildProgress::Building {
                stage: ImagebuilderStatus::BuildingImage,
                ..
            }
        ));
        // A stage from a newer server is shown as sent, and written as sent in `--json`.
        let newer = reported(Some(ImagebuilderStatus::from_wire("compressing")));
        let json = serde_json::to_value(&newer).unwrap();
        assert_eq!(json["state"], "building");
        assert_eq!(json["stage"], "compressing");
    }
}
