//! The upgrade engine: what every command does, without printing.
//!
//! The CLI, the rpcd bridge and the tests drive the same [`Engine`]: it reads the device and its
//! configuration, asks the server, plans ([`Engine::check`]), builds ([`Engine::build`]),
//! downloads ([`Engine::download`]), verifies ([`Engine::verify`]) and installs
//! ([`Engine::install`]), reporting progress as [`Event`]s to a callback instead of writing to a
//! terminal. [`Engine::fetch`] is the fetch pipeline — verdict, build and save the build record,
//! download, verify — for a check's plan, reporting each [`Step`] as it starts; every step keeps
//! the state file up to date so an interrupted run resumes. Every failure is an [`Error`].
//!
//! The server's `overview.json` is fetched once per engine ([`Engine::overview`]), so a caller
//! that shows the offer and then runs [`Engine::check`] asks the server once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use attendant_proto::api::{self, BodyError, BuildRequest, BuildResponse, ImageInfo, Overview};
use attendant_proto::ucert::Revocations;
use attendant_proto::usign::{Fingerprint, Keyring};
use serde::Serialize;

use crate::atomic::{read_small, write_atomic};
use crate::build::{self, BuildProgress};
use crate::channel::attended::{self, ChannelRoute};
use crate::channel::{self, ChannelPlan, ChannelRequest, Channels};
use crate::check::{self, Check, Verdict};
use crate::client::{self, Client, ClientOptions, MAX_JSON_LEN};
use crate::config::{self, Settings};
use crate::download::{self, DownloadLimits, Downloaded};
use crate::error::Error;
use crate::facts::Device;
use crate::hint::Finding;
use crate::install::{self, InstallOptions, Installed};
use crate::options::PlanOptions;
use crate::state::{Stage, State, StateFile};
use crate::verify::{self, Expectations, Verification};

/// Largest usign signature file fetched.
pub const MAX_SIGNATURE_FILE_LEN: u64 = 2048;

/// Largest trusted key file read.
const MAX_KEY_FILE_LEN: u64 = 4096;

/// Progress reported while the engine works.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A step started or something worth telling happened.
    Note {
        /// The text.
        message: String,
    },
    /// A step of [`Engine::fetch`] starts.
    Step {
        /// Which one.
        step: Step,
    },
    /// Build progress.
    Build(BuildProgress),
    /// Download progress.
    Download {
        /// Bytes on disk.
        bytes: u64,
        /// Total, when known.
        total: Option<u64>,
    },
}

/// The steps of [`Engine::fetch`], in order; each is reported once, as it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Requesting the build and polling it until the server has the image.
    Build,
    /// Downloading the image (resuming a partial one).
    Download,
    /// Checking the image's hash, signature, trailer and manifest.
    Verify,
}

/// What `download` saves beside the image for `verify` and `install`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SavedBuild {
    /// The server that built it.
    #[serde(default)]
    pub server: String,
    /// The request we sent.
    pub request: BuildRequest,
    /// The image chosen from the build.
    pub image: ImageInfo,
    /// The server's build response.
    pub response: BuildResponse,
}

impl SavedBuild {
    /// `<image>.build.json`.
    pub fn path_for(image: &Path) -> PathBuf {
        let mut name = image.as_os_str().to_owned();
        name.push(".build.json");
        PathBuf::from(name)
    }

    /// The build's image matching the planned image's type and filesystem.
    pub fn new(request: BuildRequest, planned: &ImageInfo, response: BuildResponse) -> Self {
        let image = response
            .images
            .iter()
            .find(|i| i.image_type == planned.image_type && i.filesystem == planned.filesystem)
            .cloned()
            .unwrap_or_else(|| planned.clone());
        Self {
            server: String::new(),
            request,
            image,
            response,
        }
    }
}

/// How `upgrade`/`install` flash.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlashOptions {
    /// `--no-keep-settings` inverted.
    pub keep_settings: bool,
    /// `--force-flash`.
    pub force_flash: bool,
    /// `--dry-run`.
    pub dry_run: bool,
    /// `--pre-install`.
    pub pre_install: Option<PathBuf>,
}

/// The engine for one router.
#[derive(Debug)]
pub struct Engine {
    pub(crate) root: PathBuf,
    pub(crate) settings: Settings,
    /// The server's `overview.json` once fetched, and the server it came from.
    overview: Mutex<Option<(String, Arc<Overview>)>>,
    /// The run lock, once taken; held until the engine is dropped.
    lock: Mutex<Option<std::fs::File>>,
}

impl Engine {
    /// An engine for the router whose files are under `root`, with `settings` (usually
    /// [`Settings::load`] plus command-line overrides).
    pub fn new(root: &Path, settings: Settings) -> Self {
        Self {
            root: root.to_owned(),
            settings,
            overview: Mutex::new(None),
            lock: Mutex::new(None),
        }
    }

    /// Where the router's files are (`/` on a router).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The settings in use.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The router's state file.
    pub fn state_file(&self) -> StateFile {
        StateFile::new(&self.root)
    }

    /// A path on the router, under the root.
    pub fn router_path(&self, absolute: &Path) -> PathBuf {
        config::router_path(&self.root, absolute)
    }

    /// Runs every pre-build check and prepares the build request ([`crate::check`]).
    pub fn check(&self, options: &PlanOptions) -> Result<Check, Error> {
        let device = self.device()?;
        let client = self.client()?;
        let overview = self.overview(&client)?;
        check::run(
            device,
            &client,
            &overview,
            self.settings.keep_settings,
            options,
        )
    }

    /// Plans an upgrade through a release channel for `device` ([`channel::plan`]).
    pub fn channel_plan(
        &self,
        device: &Device,
        request: &ChannelRequest,
    ) -> Result<ChannelPlan, Error> {
        let client = self.client()?;
        Ok(channel::plan(
            &client,
            &self.root,
            self.settings.channel.as_deref(),
            device,
            request,
        )?)
    }

    /// How the next build of `plan` reaches this router ([`channel::attended`]): the published
    /// image when the router has no packages beyond the build's recipe (or `prebuilt_only`),
    /// else an image built for it; `None` when the plan has nothing to flash.
    ///
    /// Comparing the packages takes the build API (its `profiles.json` and package lists), so
    /// a server that only publishes channel files needs `prebuilt_only`.
    pub fn channel_route(
        &self,
        plan: &ChannelPlan,
        device: &Device,
        prebuilt_only: bool,
    ) -> Result<Option<ChannelRoute>, Error> {
        let Some(build) = plan.next_hop() else {
            return Ok(None);
        };
        let published = channel::image_file(build, device).is_some();
        if prebuilt_only {
            return if published {
                Ok(Some(ChannelRoute::Prebuilt))
            } else {
                Err(channel::ChannelError::no_image(&plan.name, build.version, device).into())
            };
        }
        let stamp = attended::stamp(plan, build, &self.settings.server);
        // A script known only by its digest matters only when an image must be built.
        let recipe_script = attended::recipe_script(&plan.name, build);
        let script =
            attended::defaults_script(&stamp, recipe_script.as_ref().ok().copied().flatten());
        let check = self.check(&attended::plan_options(build, script))?;
        let extra = attended::extra_packages(&check, build);
        if extra.is_empty() && published {
            return Ok(Some(ChannelRoute::Prebuilt));
        }
        recipe_script?;
        if self.overview(&self.client()?)?.server.allow_defaults == Some(false) {
            return Err(channel::ChannelError::ScriptsRefused {
                channel: plan.name.clone(),
                build: build.version,
                extra,
            }
            .into());
        }
        Ok(Some(ChannelRoute::Attended {
            check: Box::new(check),
            extra,
        }))
    }

    /// The channels that have `device` ([`channel::list`]); hidden ones only with `all`.
    pub fn channels(&self, device: &Device, all: bool) -> Result<Channels, Error> {
        let client = self.client()?;
        Ok(channel::list(
            &client,
            &self.root,
            self.settings.channel.as_deref(),
            device,
            all,
        )?)
    }

    /// Reads the device facts.
    pub fn device(&self) -> Result<Device, Error> {
        Ok(Device::read(&self.root)?)
    }

    /// A client for the configured server.
    pub fn client(&self) -> Result<Client, Error> {
        let mut options = ClientOptions::new(&self.settings.server);
        options.ca_file = self.settings.ca_file.clone();
        options.read_timeout = Duration::from_secs(self.settings.timeout_s);
        options.metadata_deadline = Duration::from_secs(self.settings.metadata_timeout_s);
        Ok(Client::new(options)?)
    }

    /// Takes the run lock (`/var/run/attendant/lock`) for the rest of this engine's life, or
    /// fails when another run holds it. Every step that writes the image, the build record or
    /// the state takes it first: two runs sharing `/tmp/firmware.bin` (a shell and LuCI, or two
    /// shells) could otherwise flash an image the other run replaced after it was verified.
    pub fn lock(&self) -> Result<(), Error> {
        let mut held = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        if held.is_some() {
            return Ok(());
        }
        let path = attendant_proto::wire::under_root(&self.root, LOCK_PATH);
        let io = |source| Error::Write {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {
                *held = Some(file);
                Ok(())
            }
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::Busy { path }),
            Err(std::fs::TryLockError::Error(source)) => Err(io(source)),
        }
    }

    /// The server's `overview.json`, fetched once per engine and server: the offer a caller
    /// shows and the one [`Engine::check`] plans from are the same document.
    pub fn overview(&self, client: &Client) -> Result<Arc<Overview>, Error> {
        let mut cached = self.overview.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((server, overview)) = cached.as_ref()
            && server == client.server()
        {
            return Ok(overview.clone());
        }
        let url = client.url("/json/v1/overview.json");
        let bytes = client.get_bytes(&url, MAX_JSON_LEN)?;
        let overview = api::parse_overview(&bytes).map_err(|error| Error::Document {
            what: "overview.json",
            message: match error {
                // Not JSON at all: say what came instead (a login page, a web server's index),
                // which tells a wrong `--server` from a broken one.
                BodyError::Json { source, .. } if source.is_syntax() => {
                    format!("`{url}` is not JSON: {}", client::body_excerpt(&bytes))
                }
                BodyError::Json { source, .. } => format!("`{url}`: {source}"),
                other => format!("`{url}`: {other}"),
            },
        })?;
        let overview = Arc::new(overview);
        *cached = Some((client.server().to_owned(), overview.clone()));
        Ok(overview)
    }

    /// Builds `check.request`, resuming the build recorded in the state file when it is the same
    /// request.
    pub fn build(
        &self,
        check: &Check,
        poll_interval: Duration,
        on_event: &mut dyn FnMut(&Event),
    ) -> Result<BuildResponse, Error> {
        let client = self.client()?;
        let body = serde_json::to_vec(&check.request).map_err(|error| Error::Document {
            what: "build request",
            message: error.to_string(),
        })?;
        let body_sha256 =
            download::hex(ring::digest::digest(&ring::digest::SHA256, &body).as_ref());
        let state_file = self.state_file();
        let previous = state_file.load()?;
        let resume = previous
            .as_ref()
            .filter(|s| s.request_sha256 == body_sha256 && s.server == client.server())
            .map(|s| s.request_hash.clone());
        if let Some(hash) = &resume {
            on_event(&Event::Note {
                message: format!("resuming the build `{hash}`"),
            });
        }
        let mut accepted = None;
        let response = build::build(&client, &body, resume.as_deref(), poll_interval, &mut |p| {
            if let BuildProgress::Accepted { request_hash } = p {
                accepted = Some(request_hash.clone());
            }
            on_event(&Event::Build(p.clone()));
        })?;
        let hash = accepted.unwrap_or_else(|| response.request_hash.to_string());
        let mut state = State::new(client.server(), &hash, &body_sha256, &check.target.version);
        if let Some(previous) = previous.filter(|p| p.request_hash == hash) {
            state = previous;
        }
        state.stage = state.stage.max_stage(Stage::Downloading);
        state.touch();
        state_file.save(&state)?;
        Ok(response)
    }

    /// Downloads the image `saved.image` to `path`, resuming a partial file of the same image.
    pub fn download(
        &self,
        saved: &SavedBuild,
        path: &Path,
        on_event: &mut dyn FnMut(&Event),
    ) -> Result<Downloaded, Error> {
        self.lock()?;
        let client = self.client()?;
        let built = &saved.image;
        let url = client.url(&format!("/store/{}/{}", saved.response.bin_dir, built.name));
        let state_file = self.state_file();
        let mut state = state_file.load()?;
        // Continue a partial file only when the state file says it is this very image.
        let same_image = state.as_ref().is_some_and(|s| {
            s.image_url.as_deref() == Some(url.as_str()) && s.image_path.as_deref() == Some(path)
        });
        if !same_image {
            download::remove(path)?;
            download::remove(&signature_path(path))?;
        }
        if let Some(state) = state.as_mut() {
            state.image_url = Some(url.clone());
            state.image_path = Some(path.to_owned());
            state.image_sha256 = Some(built.sha256.clone());
            state.stage = Stage::Downloading;
            state_file.save(state)?;
        }
        on_event(&Event::Note {
            message: format!("downloading `{url}` to `{}`", path.display()),
        });
        let limits = DownloadLimits {
            stated_len: built.size,
            reserve: self.settings.download_reserve_kib.saturating_mul(1024),
            min_rate: self.settings.min_download_rate,
            rate_window: Duration::from_secs(self.settings.min_download_rate_window_s),
            ..DownloadLimits::new()
        };
        let downloaded = download::download(&client, &url, path, &limits, &mut |bytes, total| {
            on_event(&Event::Download { bytes, total });
        })?;
        if let Some(mut state) = state {
            state.downloaded_bytes = downloaded.len;
            state.total_bytes = Some(downloaded.len);
            state.stage = Stage::Downloaded;
            state.touch();
            state_file.save(&state)?;
        }
        Ok(downloaded)
    }

    /// Fetches the signature the server publishes for `image_url` into [`signature_path`] of
    /// `path`; without one, removes a stale file.
    fn save_signature(&self, image_url: &str, path: &Path) -> Result<Option<Vec<u8>>, Error> {
        let file = signature_path(path);
        let signature = self.signature(image_url)?;
        match &signature {
            Some(bytes) => write_atomic(&file, bytes).map_err(|source| Error::Write {
                path: file.clone(),
                source,
            })?,
            None => download::remove(&file)?,
        }
        Ok(signature)
    }

    /// The detached signature the server publishes beside `image_url`, if any.
    pub fn signature(&self, image_url: &str) -> Result<Option<Vec<u8>>, Error> {
        let client = self.client()?;
        Ok(client.get_optional(&format!("{image_url}.sig"), MAX_SIGNATURE_FILE_LEN)?)
    }

    /// The trusted keys from the configured directory (under the root).
    pub fn keyring(&self) -> Result<Keyring, Error> {
        let mut keyring = Keyring::new();
        for path in self.key_files()? {
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                continue;
            };
            // A revoked key is a dangling symlink: it cannot be read and is never trusted.
            let Ok(bytes) = read_small(&path, MAX_KEY_FILE_LEN) else {
                continue;
            };
            if let Err(error) = keyring.add_file(&name, &bytes) {
                log::debug!("ignoring `{}`: {error}", path.display());
            }
        }
        Ok(keyring)
    }

    /// The entries of the configured key directory (none when it does not exist).
    fn key_files(&self) -> Result<Vec<PathBuf>, Error> {
        let dir = self.router_path(&self.settings.keys_dir);
        match std::fs::read_dir(&dir) {
            Ok(entries) => Ok(entries.flatten().map(|entry| entry.path()).collect()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(source) => Err(Error::Io { path: dir, source }),
        }
    }

    /// Keys revoked in the configured key directory: what `ucert -R` leaves there, a dangling
    /// symbolic link named after the revoked key's fingerprint.
    pub fn revocations(&self) -> Result<Revocations, Error> {
        let mut revoked = Revocations::new();
        for path in self.key_files()? {
            let dangling = path
                .symlink_metadata()
                .is_ok_and(|m| m.file_type().is_symlink())
                && !path.exists();
            if let (true, Some(Ok(fingerprint))) = (
                dangling,
                path.file_name()
                    .and_then(|name| name.to_str())
                    .map(Fingerprint::from_hex),
            ) {
                revoked.insert(fingerprint);
            }
        }
        Ok(revoked)
    }

    /// Verifies `path`, the image `saved.image` of the build `saved.response` requested with
    /// `saved.request`: hash, signature, trailer, compatibility with `device`, manifest.
    pub fn verify(
        &self,
        device: &Device,
        saved: &SavedBuild,
        path: &Path,
        flash: &FlashOptions,
    ) -> Result<Verification, Error> {
        self.lock()?;
        let server = if saved.server.is_empty() {
            &self.settings.server
        } else {
            &saved.server
        };
        let url = format!(
            "{server}/store/{}/{}",
            saved.response.bin_dir, saved.image.name
        );
        // The first verification fetches the signature and keeps it beside the image (OpenWrt's
        // `<image>.sig`; a new download removes it), so a later `verify` or `install` works
        // when the server is gone or has expired the build.
        let signature = match read_small(&signature_path(path), MAX_SIGNATURE_FILE_LEN) {
            Ok(bytes) => Some(bytes),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                self.save_signature(&url, path)?
            }
            Err(source) => {
                return Err(Error::Io {
                    path: signature_path(path),
                    source,
                });
            }
        };
        let keyring = self.keyring()?;
        let revoked = self.revocations()?;
        let compat = device.compat();
        let expectations = Expectations {
            sha256: Some(saved.image.sha256.as_str()),
            sha256_unsigned: Some(saved.image.sha256_unsigned.as_str()),
            signature: signature.as_deref(),
            keyring: &keyring,
            revoked: &revoked,
            now: unix_now(),
            require_signature: self.settings.require_signature,
            device: &compat,
            keep_settings: flash.keep_settings,
            force_flash: flash.force_flash,
        };
        let verification = match verify::verify_image(path, &expectations) {
            // Bytes that are not the image are of no use to a resumed download (a proxy's page
            // would stay in front of every retry): the next download starts over.
            Err(error) if error.discards_image() => {
                download::remove(path)?;
                download::remove(&signature_path(path))?;
                return Err(error.into());
            }
            result => result?,
        };
        let request = &saved.request;
        let requested: BTreeMap<String, Option<String>> = if request.packages_versions.is_empty() {
            request.packages.iter().map(|p| (p.clone(), None)).collect()
        } else {
            request
                .packages_versions
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect()
        };
        verify::check_manifest(
            &requested,
            Some(request.version_code.as_str()),
            &saved.response.version_code,
            &saved.response.manifest,
        )?;
        let state_file = self.state_file();
        if let Some(mut state) = state_file.load()? {
            state.verified_sha256 = Some(verification.sha256.clone());
            state.stage = Stage::Verified;
            state.touch();
            state_file.save(&state)?;
        }
        Ok(verification)
    }

    /// Saves what `verify` and `install` need beside the image: `<image>.build.json`.
    pub fn save_build(&self, path: &Path, saved: &SavedBuild) -> Result<(), Error> {
        let file = SavedBuild::path_for(path);
        let bytes = serde_json::to_vec_pretty(saved).map_err(|error| Error::Document {
            what: "build record",
            message: error.to_string(),
        })?;
        write_atomic(&file, &bytes).map_err(|source| Error::Write { path: file, source })
    }

    /// Loads the record `download` saved beside the image.
    pub fn load_build(&self, path: &Path) -> Result<SavedBuild, Error> {
        let file = SavedBuild::path_for(path);
        let bytes = read_small(&file, MAX_JSON_LEN).map_err(|source| Error::Io {
            path: file.clone(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|error| Error::Document {
            what: "build record",
            message: format!("`{}`: {error}", file.display()),
        })
    }

    /// The fetch pipeline: builds, downloads and verifies the upgrade `check` planned, into
    /// `path`, reporting each [`Step`] as it starts and progress within it.
    ///
    /// This is the one place where the upgrade sequence lives: the CLI prints its events, the
    /// rpcd bridge turns them into job states. Refuses a blocked check; returns `None` when the
    /// check found nothing to do.
    pub fn fetch(
        &self,
        check: &Check,
        path: &Path,
        poll_interval: Duration,
        flash: &FlashOptions,
        on_event: &mut dyn FnMut(&Event),
    ) -> Result<Option<Verification>, Error> {
        self.lock()?;
        let Some(planned) = planned_image(check, on_event)? else {
            return Ok(None);
        };
        on_event(&Event::Step { step: Step::Build });
        let saved = self.build_and_save(check, planned, path, poll_interval, on_event)?;
        on_event(&Event::Step {
            step: Step::Download,
        });
        self.download(&saved, path, on_event)?;
        on_event(&Event::Step { step: Step::Verify });
        note(on_event, "verifying the image".to_owned());
        let verification = self.verify(&check.device, &saved, path, flash)?;
        note(
            on_event,
            format!(
                "verified: SHA-256 {}, {}, {}",
                verification.sha256,
                verification
                    .signed_by
                    .as_deref()
                    .map_or_else(|| "unsigned".to_owned(), |k| format!("signed by `{k}`")),
                verification.compatibility
            ),
        );
        Ok(Some(verification))
    }

    /// The pipeline's build step: builds `check.request` and saves the build record beside
    /// `path` for `verify` and `install`.
    fn build_and_save(
        &self,
        check: &Check,
        planned: &ImageInfo,
        path: &Path,
        poll_interval: Duration,
        on_event: &mut dyn FnMut(&Event),
    ) -> Result<SavedBuild, Error> {
        note(
            on_event,
            format!(
                "requesting {} for `{}` from {}",
                check.target.version, check.profile, check.server
            ),
        );
        let response = self.build(check, poll_interval, on_event)?;
        note(
            on_event,
            format!(
                "build succeeded: {} ({})",
                response.version_number, response.version_code
            ),
        );
        let mut saved = SavedBuild::new(check.request.clone(), planned, response);
        saved.server = check.server.clone();
        self.save_build(path, &saved)?;
        Ok(saved)
    }

    /// The install pipeline for an image fetched earlier: verifies `path` again against the
    /// build record beside it (the file may have changed since), then installs it. The CLI's
    /// `install` and the rpcd bridge's install job both run this.
    pub fn verify_and_install(
        &self,
        path: &Path,
        flash: &FlashOptions,
        on_event: &mut dyn FnMut(&Event),
    ) -> Result<(Verification, Installed), Error> {
        let device = self.device()?;
        let saved = self.load_build(path)?;
        let verification = self.verify(&device, &saved, path, flash)?;
        note(on_event, "the image passed every check".to_owned());
        let installed = self.install(path, flash, on_event)?;
        Ok((verification, installed))
    }

    /// Runs the hook, `sysupgrade --test` and sysupgrade on `path`.
    pub fn install(
        &self,
        path: &Path,
        flash: &FlashOptions,
        on_event: &mut dyn FnMut(&Event),
    ) -> Result<Installed, Error> {
        self.lock()?;
        let options = InstallOptions {
            keep_settings: flash.keep_settings,
            force_flash: flash.force_flash,
            dry_run: flash.dry_run,
            pre_install: flash.pre_install.clone(),
        };
        let state_file = self.state_file();
        if !flash.dry_run
            && let Some(mut state) = state_file.load()?
        {
            state.stage = Stage::Installing;
            state.touch();
            state_file.save(&state)?;
        }
        Ok(install::install(path, &options, &mut |message| {
            on_event(&Event::Note {
                message: message.to_owned(),
            });
        })?)
    }
}

impl Stage {
    /// The later of two stages.
    fn max_stage(self, other: Stage) -> Stage {
        let rank = |stage: Stage| match stage {
            Stage::Building => 0,
            Stage::Downloading => 1,
            Stage::Downloaded => 2,
            Stage::Verified => 3,
            Stage::Installing => 4,
        };
        if rank(self) >= rank(other) {
            self
        } else {
            other
        }
    }
}

/// The run lock.
pub const LOCK_PATH: &str = attendant_proto::wire::LOCK_PATH;

/// The clock as ucert reads it (`time(NULL)`); a clock before 1970 reads as 0.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

/// Where the signature of the image at `path` is kept: `<image>.sig`.
pub fn signature_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".sig");
    PathBuf::from(name)
}

/// The pipeline's verdict step: the image to fetch, `None` when the check found nothing to do,
/// or the check's problems as an error.
fn planned_image<'a>(
    check: &'a Check,
    on_event: &mut dyn FnMut(&Event),
) -> Result<Option<&'a ImageInfo>, Error> {
    match check.verdict {
        Verdict::Blocked => Err(Error::Blocked(check.problems.clone())),
        Verdict::UpToDate => {
            note(
                on_event,
                "There are no changes; the firmware is up to date (`--force` builds anyway)"
                    .to_owned(),
            );
            Ok(None)
        }
        Verdict::UpgradeAvailable => match &check.image {
            Some(planned) => Ok(Some(planned)),
            None => Err(Error::Blocked(vec![Finding::new("no image to install")])),
        },
    }
}

fn note(on_event: &mut dyn FnMut(&Event), message: String) {
    on_event(&Event::Note { message });
}
