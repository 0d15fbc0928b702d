//! `attendant-server streams ...`: the channel builds as simplestreams, managed with the verbs
//! and flags of MAAS's `meph2-util` (the work is in [`crate::streams::ops`]).
//!
//! Exit codes: 0 done (also when nothing changed); 1 failed (the error and a hint are printed);
//! 2 usage error.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::config::Config;
use crate::state::now;
use crate::streams::filter::parse_all;
use crate::streams::format::{check_token, check_version_name, rfc2822};
use crate::streams::ops::{self, Publishing, SyncOptions};
use crate::streams::orphans::parse_age;
use crate::streams::sync::parse_rebuild;
use crate::streams::tree::Signer;

/// `streams --help`'s examples.
pub(super) const EXAMPLES: &str = "\
Examples:
  attendant-server streams sync out.d                      # what changed in the channels
  attendant-server streams insert out.d /srv/streams/daily
  attendant-server streams promote --label rc /srv/streams/daily/streams/v1/index.json /srv/streams/released 00000007 target=ath79
  attendant-server streams clean-md --max 3 /srv/streams/daily
  attendant-server streams find-orphans orphans.json /srv/streams/data /srv/streams/daily/streams/v1/index.json /srv/streams/released/streams/v1/index.json
  attendant-server streams reap-orphans --older 3d orphans.json /srv/streams/data
  attendant-server streams query /srv/streams/daily 'release~^24' --max 1 -o '%(product_name)s %(version_name)s %(path)s'

Filters are simplestreams': key=value, key!=value, key~regex, key!~regex, ANDed over each item's
flattened attributes. Sites mirror a stream with the stock tools:
  sstream-mirror --keyring=streams.gpg https://upgrade.example.org/streams/daily/ mirror/ 'target=ath79' --max=1
Exit codes: 0 done (also when nothing changed), 1 failed, 2 usage error.";

/// The default of `query --output-format`.
const DEFAULT_QUERY_FORMAT: &str = "%(product_name)s %(version_name)s %(item_name)s %(item_url)s";

/// Options of `streams`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The streams command.
    #[command(subcommand)]
    pub command: StreamsCommand,
}

/// The `streams` commands.
#[derive(Debug, Subcommand)]
pub enum StreamsCommand {
    /// Add every item of SRC_DIR's stream that DST_DIR lacks, with its file, and republish
    /// DST_DIR; never removes anything.
    Insert {
        /// The stream to take items from (a mirror root or its index file).
        src_dir: PathBuf,
        /// The stream to add them to (a mirror root; created when missing).
        dst_dir: PathBuf,
        /// Only items passing these filters (default: all).
        filters: Vec<String>,
        /// Print what would be added and change nothing (default: change).
        #[arg(long, short = 'n')]
        dry_run: bool,
        /// Publish without signatures (default: sign with the configured usign key, and GPG key
        /// if any).
        #[arg(long, short = 'u')]
        no_sign: bool,
    },
    /// Copy one version of SRC_INDEX's stream into DST_DIR's, each item labelled LABEL; no
    /// bytes are copied when both streams share a data directory.
    Promote {
        /// The label set on the promoted items, e.g. `rc` or `release` (default: `release`).
        #[arg(long, short = 'l', default_value = "release")]
        label: String,
        /// The source stream's index (or mirror root).
        src_index: PathBuf,
        /// The stream promoted into (a mirror root; created when missing).
        dst_dir: PathBuf,
        /// The version to promote, e.g. `00000007`.
        version: String,
        /// Only items passing these filters (default: all).
        filters: Vec<String>,
        /// Print what would be promoted and change nothing (default: change).
        #[arg(long, short = 'n')]
        dry_run: bool,
        /// Publish without signatures (default: sign).
        #[arg(long, short = 'u')]
        no_sign: bool,
    },
    /// Keep only the newest N versions of each product in DIR's stream; metadata only (the
    /// files stay until find-orphans and reap-orphans).
    CleanMd {
        /// Versions kept per product.
        #[arg(long)]
        max: usize,
        /// The stream (a mirror root).
        dir: PathBuf,
        /// Only products with an item passing these filters (default: all).
        filters: Vec<String>,
        /// Print what would be removed and change nothing (default: change).
        #[arg(long, short = 'n')]
        dry_run: bool,
        /// Publish without signatures (default: sign).
        #[arg(long, short = 'u')]
        no_sign: bool,
    },
    /// Record in ORPHANS_JSON every file under DATA_DIR that no INDEX references, keeping the
    /// first-seen times of earlier runs; deletes nothing.
    FindOrphans {
        /// The orphans file (`-`: print it instead).
        orphans_json: PathBuf,
        /// The data directory (shared by the streams of the indexes).
        data_dir: PathBuf,
        /// Every stream using DATA_DIR (default: DATA_DIR's own `streams/v1/index.json`).
        indexes: Vec<PathBuf>,
    },
    /// Delete the files of ORPHANS_JSON orphaned for longer than --older, never one that a
    /// given INDEX references, and report what was freed.
    ReapOrphans {
        /// Reap orphans first seen longer ago than this: `<n>d`, `h`, `m`, `s`, combinable (a bare
        /// number means days; `0` reaps all) (default: `3d`).
        #[arg(long, default_value = "3d")]
        older: String,
        /// Print what would be deleted and delete nothing (default: delete).
        #[arg(long, short = 'n')]
        dry_run: bool,
        /// The orphans file written by find-orphans.
        orphans_json: PathBuf,
        /// The data directory.
        data_dir: PathBuf,
        /// Streams whose files are never reaped (default: DATA_DIR's own, if any).
        indexes: Vec<PathBuf>,
    },
    /// Compare the channels' latest builds with the stream of `[streams] dir` and write to
    /// OUT_DIR the stream plus the products whose source changed, with only their files: the
    /// input of `insert`.
    Sync {
        /// The build-output tree to write.
        out_dir: PathBuf,
        /// Only items passing these filters (default: all).
        filters: Vec<String>,
        /// Take every latest build, changed or not (default: only changed ones).
        #[arg(long)]
        force: bool,
        /// Publish version OLD's build again as NEW, e.g. `00000007:00000007.1`.
        #[arg(long, value_name = "OLD:NEW")]
        rebuild: Option<String>,
        /// Print what would be taken and write nothing (default: write).
        #[arg(long, short = 'n')]
        dry_run: bool,
    },
    /// Print the items of a stream (any simplestreams mirror: ours, or one `sstream-mirror`
    /// wrote).
    Query {
        /// The index file, or a mirror root.
        index: PathBuf,
        /// Only items passing these filters (default: all).
        filters: Vec<String>,
        /// Only the newest N versions of each product (default: all).
        #[arg(long)]
        max: Option<usize>,
        /// Python `%(key)s` format of each line (default:
        /// `%(product_name)s %(version_name)s %(item_name)s %(item_url)s`).
        #[arg(long, short = 'o', conflicts_with = "json")]
        output_format: Option<String>,
        /// Print one JSON list of the flattened items instead (as `sstream-query --json`).
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(config: Config, args: Args) -> anyhow::Result<ExitCode> {
    let now = now() / 1000;
    let mut text = String::new();
    match args.command {
        StreamsCommand::Insert {
            src_dir,
            dst_dir,
            filters,
            dry_run,
            no_sign,
        } => {
            let filters = parse_all(&filters)?;
            let signer = signer(&config, no_sign, dry_run)?;
            let publishing = Publishing {
                signer: &signer,
                dry_run,
                now,
            };
            let report = ops::insert(&src_dir, &dst_dir, &filters, publishing).await?;
            for added in &report.added {
                let _ = writeln!(
                    text,
                    "{} {} {}",
                    added.content_id,
                    added.pedigree,
                    added.path.as_deref().unwrap_or("-")
                );
            }
            finish(&text, dry_run, report.serial, report.copied);
        }
        StreamsCommand::Promote {
            label,
            src_index,
            dst_dir,
            version,
            filters,
            dry_run,
            no_sign,
        } => {
            check_version_name(&version)?;
            check_token("label", &label)?;
            let filters = parse_all(&filters)?;
            let signer = signer(&config, no_sign, dry_run)?;
            let publishing = Publishing {
                signer: &signer,
                dry_run,
                now,
            };
            let report =
                ops::promote(&src_index, &dst_dir, &version, &label, &filters, publishing).await?;
            for added in &report.added {
                let _ = writeln!(text, "{} {} {}", added.content_id, added.pedigree, label);
            }
            finish(&text, dry_run, report.serial, report.copied);
        }
        StreamsCommand::CleanMd {
            max,
            dir,
            filters,
            dry_run,
            no_sign,
        } => {
            let filters = parse_all(&filters)?;
            let signer = signer(&config, no_sign, dry_run)?;
            let publishing = Publishing {
                signer: &signer,
                dry_run,
                now,
            };
            let report = ops::clean_md(&dir, max, &filters, publishing).await?;
            for removed in &report.removed {
                let _ = writeln!(text, "remove {} {}", removed.content_id, removed.pedigree);
            }
            finish(&text, dry_run, report.serial, 0);
        }
        StreamsCommand::FindOrphans {
            orphans_json,
            data_dir,
            indexes,
        } => {
            let (report, bytes) = ops::find_orphans(&orphans_json, &data_dir, &indexes, now)?;
            if orphans_json == std::path::Path::new("-") {
                print_bytes(&bytes);
            }
            eprintln!(
                "{} files, {} orphaned ({} newly)",
                report.files,
                report.orphans.len(),
                report.new
            );
        }
        StreamsCommand::ReapOrphans {
            older,
            dry_run,
            orphans_json,
            data_dir,
            indexes,
        } => {
            let older = parse_age(&older)?;
            let report =
                ops::reap_orphans(&orphans_json, &data_dir, &indexes, older, dry_run, now)?;
            let verb = if dry_run { "Would reap" } else { "Reaped" };
            for (path, seen) in &report.reaped {
                let _ = writeln!(text, "{verb} {path} orphaned on {}", rfc2822(*seen));
            }
            print_bytes(text.as_bytes());
            eprintln!(
                "{} {} files, {} bytes; {} orphans kept",
                if dry_run { "would free" } else { "freed" },
                report.reaped.len(),
                report.freed,
                report.kept
            );
        }
        StreamsCommand::Sync {
            out_dir,
            filters,
            force,
            rebuild,
            dry_run,
        } => {
            let filters = parse_all(&filters)?;
            let mut options = SyncOptions::from_config(&config);
            options.force = force;
            if force {
                tracing::warn!("--force: taking every latest build, changed or not");
            }
            options.rebuild = rebuild.as_deref().map(parse_rebuild).transpose()?;
            let report = ops::sync(&out_dir, &options, &filters, dry_run)?;
            for version in &report.new_versions {
                let _ = writeln!(text, "{version}");
            }
            print_bytes(text.as_bytes());
            if report.new_versions.is_empty() {
                eprintln!("nothing changed: no product to publish");
            } else if dry_run {
                eprintln!(
                    "dry run: {} new versions, nothing written",
                    report.new_versions.len()
                );
            } else {
                eprintln!(
                    "{} new versions, {} files written to `{}`; publish them with `attendant-server streams insert {} DST_DIR`",
                    report.new_versions.len(),
                    report.copied,
                    out_dir.display(),
                    out_dir.display()
                );
            }
        }
        StreamsCommand::Query {
            index,
            filters,
            max,
            output_format,
            json,
        } => {
            let filters = parse_all(&filters)?;
            let items = ops::query(&index, &filters, max)?;
            if json {
                let mut out = serde_json::to_string_pretty(&items)?;
                out.push('\n');
                print_bytes(out.as_bytes());
            } else {
                let format = output_format.as_deref().unwrap_or(DEFAULT_QUERY_FORMAT);
                for item in &items {
                    let _ = writeln!(text, "{}", ops::render(format, item));
                }
                print_bytes(text.as_bytes());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A dry run signs nothing, so it needs no key.
fn signer(config: &Config, no_sign: bool, dry_run: bool) -> anyhow::Result<Signer> {
    if dry_run {
        return Ok(Signer::default());
    }
    Ok(Signer::from_config(config, no_sign)?)
}

fn finish(text: &str, dry_run: bool, serial: Option<u64>, copied: usize) {
    print_bytes(text.as_bytes());
    if dry_run {
        eprintln!("dry run: nothing was changed");
    } else if let Some(serial) = serial {
        eprintln!("published serial {serial} ({copied} files copied)");
    } else {
        eprintln!("nothing changed");
    }
}

/// Command output: stdout is data. A closed pipe (`streams query | head`) is not an error.
fn print_bytes(bytes: &[u8]) {
    let _ = std::io::stdout().lock().write_all(bytes);
}
