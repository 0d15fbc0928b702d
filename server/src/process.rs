//! Running the ImageBuilder's `make` (and other tools) as a child process, safely.
//!
//! [`run`] never involves a shell: the program gets an argument vector, so request strings can
//! never become shell syntax (ASU's command injection through package names,
//! <https://nvd.nist.gov/vuln/detail/CVE-2024-54143>). It also:
//!
//! - clears the environment and sets only `PATH` ([`CHILD_PATH`]), `HOME` and `TMPDIR` (both the
//!   working directory), `LC_ALL=C` (the error texts we parse are English), then the caller's
//!   variables;
//! - gives the child `/dev/null` as stdin and starts it in a process group of its own, under
//!   `setpriv --pdeathsig TERM` and `timeout` where installed, so that the whole group stops
//!   when the server dies, even by `SIGKILL`;
//! - reads stdout and stderr concurrently, so neither pipe can fill up and deadlock the child;
//! - keeps at most [`Invocation::output_cap`] bytes of each stream: the first half and the last
//!   half of what was written, with a line `[attendant: N bytes omitted]` between them, so both
//!   the start of a build log and the final error survive;
//! - on the wall-clock limit, kills the whole process group (`make` and everything it started)
//!   with `SIGKILL`; after a normal exit it kills the group too, so a stray background process
//!   cannot hold the pipes open or outlive the build; and so does dropping the future of
//!   [`run`] (an aborted worker).

use std::{
    collections::VecDeque,
    fmt, io,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex, OnceLock, PoisonError},
    time::Duration,
};

use rustix::io::Errno;
use rustix::process::{Pid, Signal, kill_process_group as kill_process_group_now};
use tokio::{
    io::{AsyncRead, AsyncReadExt},
    process::Command,
};

/// The `PATH` a child process gets.
pub const CHILD_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// How long the output readers may take to finish after the process group was killed; a
/// process that escaped the group (`setsid`) could otherwise hold a pipe open for ever.
pub const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// How much longer than our own limit the `timeout` supervisor allows, and how long it waits
/// after `SIGTERM` before `SIGKILL` (see `supervisors`).
const SUPERVISOR_SLACK: Duration = Duration::from_secs(5);

/// Read size for the output pipes.
const READ_CHUNK: usize = 16 * 1024;

/// What to run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Invocation {
    /// The program: a name looked up in [`CHILD_PATH`], or a path.
    pub program: String,
    /// Its arguments, passed as they are (no shell, no splitting).
    pub args: Vec<String>,
    /// Working directory; also `HOME` and `TMPDIR`.
    pub cwd: PathBuf,
    /// Extra environment variables, applied after the defaults.
    pub env: Vec<(String, String)>,
    /// Wall-clock limit; the process group is killed when it runs out.
    pub timeout: Duration,
    /// Bytes kept of each of stdout and stderr (half from the start, half from the end).
    pub output_cap: usize,
}

impl Invocation {
    /// An invocation of `program` with `args` in `cwd`, no extra environment, a 10-minute limit
    /// and 1 MiB of output kept per stream.
    pub fn new(
        program: impl Into<String>,
        args: impl IntoIterator<Item = impl Into<String>>,
        cwd: impl Into<PathBuf>,
    ) -> Self {
        Self {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            cwd: cwd.into(),
            env: Vec::new(),
            timeout: Duration::from_secs(600),
            output_cap: 1 << 20,
        }
    }
}

/// What a finished process left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Output {
    /// The exit code; `None` when the process was ended by a signal.
    pub status: Option<i32>,
    /// Standard output, lossily decoded as UTF-8, capped as described in the module docs.
    pub stdout: String,
    /// Standard error, likewise.
    pub stderr: String,
    /// True when either stream was cut.
    pub truncated: bool,
}

impl Output {
    /// True when the process exited with code 0.
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }
}

/// Why a process could not be run to completion.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The program could not be started (not found, not executable, bad working directory).
    #[error("could not start `{program}`: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// The wall-clock limit ran out; the process group was killed.
    #[error(
        "`{program}` did not finish within {}; it was killed with everything it started",
        humantime::format_duration(*after)
    )]
    Timeout {
        /// The program.
        program: String,
        /// The limit.
        after: Duration,
        /// What it wrote before it was killed.
        output: Output,
    },
    /// Waiting for the process or reading its output failed.
    #[error("could not {op} `{program}`: {source}")]
    Io {
        /// The program.
        program: String,
        /// What we were doing.
        op: &'static str,
        /// The operating system's error.
        source: io::Error,
    },
}

/// Run `invocation` to completion (see the module docs for the rules).
///
/// A non-zero exit is not an error: it is in [`Output::status`] for the caller to interpret.
pub async fn run(invocation: Invocation) -> Result<Output, RunError> {
    let Invocation {
        program,
        args,
        cwd,
        env,
        timeout,
        output_cap,
    } = invocation;
    let executable = find_program(&program).ok_or_else(|| RunError::Spawn {
        program: program.clone(),
        source: io::Error::new(
            io::ErrorKind::NotFound,
            if program.starts_with('/') {
                "no such executable file".to_owned()
            } else {
                format!("not found in `{CHILD_PATH}`")
            },
        ),
    })?;
    let mut command = match supervisors() {
        Some((setpriv, timeout_program)) => {
            // Outlasts our own limit, which kills the group first and reports the timeout.
            let limit = timeout.saturating_add(SUPERVISOR_SLACK);
            let mut command = Command::new(setpriv);
            command
                .args(["--pdeathsig", "TERM", "--"])
                .arg(timeout_program)
                .arg(format!("--kill-after={}s", SUPERVISOR_SLACK.as_secs()))
                .arg(format!("{}s", limit.as_secs().max(1)))
                .arg(&executable);
            command
        }
        None => Command::new(&executable),
    };
    command
        .args(&args)
        .current_dir(&cwd)
        .env_clear()
        .env("PATH", CHILD_PATH)
        .env("HOME", &cwd)
        .env("TMPDIR", &cwd)
        .env("LC_ALL", "C")
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|source| RunError::Spawn {
        program: program.clone(),
        source,
    })?;
    // The child leads its own process group, so its pid is the group id.
    let group = child.id();
    // Should this future be dropped (the worker aborted at the shutdown deadline, its lease
    // lost), the whole group dies with it, not only `make`.
    let mut guard = GroupGuard(group);

    let stdout = Arc::new(Mutex::new(Capture::new(output_cap)));
    let stderr = Arc::new(Mutex::new(Capture::new(output_cap)));
    let readers = [
        child
            .stdout
            .take()
            .map(|pipe| tokio::spawn(drain(pipe, Arc::clone(&stdout)))),
        child
            .stderr
            .take()
            .map(|pipe| tokio::spawn(drain(pipe, Arc::clone(&stderr)))),
    ];

    let waited = tokio::time::timeout(timeout, child.wait()).await;
    if let Some(group) = guard.0.take() {
        kill_process_group(group);
    }
    let status = match waited {
        Ok(status) => Some(status.map_err(|source| RunError::Io {
            program: program.clone(),
            op: "wait for",
            source,
        })?),
        Err(_elapsed) => {
            // The group kill above already sent SIGKILL; reap the leader.
            child.kill().await.map_err(|source| RunError::Io {
                program: program.clone(),
                op: "kill",
                source,
            })?;
            None
        }
    };

    for reader in readers.into_iter().flatten() {
        let abort = reader.abort_handle();
        if tokio::time::timeout(DRAIN_GRACE, reader).await.is_err() {
            tracing::warn!(%program, "output pipe still open after the process group was killed");
            abort.abort();
        }
    }
    let (stdout, stdout_cut) = finish(&stdout);
    let (stderr, stderr_cut) = finish(&stderr);
    let output = Output {
        status: status.and_then(|status| status.code()),
        stdout,
        stderr,
        truncated: stdout_cut || stderr_cut,
    };
    match status {
        Some(_) => Ok(output),
        None => Err(RunError::Timeout {
            program,
            after: timeout,
            output,
        }),
    }
}

/// Kills the process group it names when dropped, unless it was emptied first.
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(group) = self.0.take() {
            kill_process_group(group);
        }
    }
}

/// `program` itself if it is a path, else the first executable file of that name in
/// [`CHILD_PATH`]. Looked up here rather than by the child so that a missing program stays a
/// [`RunError::Spawn`] when `setpriv` starts it.
fn find_program(program: &str) -> Option<PathBuf> {
    // Checked here, not left to the exec: under the supervisors a missing program would only
    // show as `timeout`'s exit status 127, not as the spawn error it is.
    if program.starts_with('/') {
        let path = PathBuf::from(program);
        return is_executable(&path).then_some(path);
    }
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    CHILD_PATH
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// The supervisors every command runs under where both are installed, so that no build
/// outlives a server killed with `SIGKILL` (which no handler of ours can see):
///
/// * util-linux's `setpriv --pdeathsig TERM` sets the parent-death signal
///   (`PR_SET_PDEATHSIG`, <https://man7.org/linux/man-pages/man2/pr_set_pdeathsig.2const.html>)
///   and executes
/// * coreutils' `timeout`, which on `SIGTERM` sends `SIGTERM` to its whole process group and
///   `SIGKILL` [`SUPERVISOR_SLACK`] later
///   (<https://www.gnu.org/software/coreutils/manual/html_node/timeout-invocation.html>), and
///   runs the program.
///
/// `make` alone is not enough: it passes `SIGTERM` on to its direct children, but the shells
/// of its recipes do not, and a sub-`make` below a shell kept running in tests. Without the
/// two (not Linux, a minimal image) the sweep of dead attempts at the next start kills what is
/// left (`worker/attempts.rs`).
///
/// The parent-death signal is tied to the thread that started the child; ours are the
/// runtime's worker threads, which live as long as the server.
fn supervisors() -> Option<(&'static Path, &'static Path)> {
    static FOUND: OnceLock<Option<(PathBuf, PathBuf)>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let found = find_program("setpriv").zip(find_program("timeout"));
            if found.is_none() {
                tracing::warn!(
                    "`setpriv` (util-linux) or `timeout` (coreutils) is not installed: build \
                     processes of a server killed by SIGKILL run on until the next start"
                );
            }
            found
        })
        .as_ref()
        .map(|(setpriv, timeout)| (setpriv.as_path(), timeout.as_path()))
}

/// Send `SIGKILL` to every process in the group `group` (`killpg(2)`), so `make`'s children die
/// with it. `ESRCH` (the group is already empty) is the usual case after a clean exit and is not
/// an error.
fn kill_process_group(group: u32) {
    let Some(pid) = i32::try_from(group).ok().and_then(Pid::from_raw) else {
        tracing::warn!(group, "not a process group id; nothing was killed");
        return;
    };
    match kill_process_group_now(pid, Signal::KILL) {
        Ok(()) | Err(Errno::SRCH) => {}
        Err(error) => tracing::warn!(group, "could not kill the process group: {error}"),
    }
}

/// Read `pipe` to its end into `capture`.
async fn drain(mut pipe: impl AsyncRead + Unpin, capture: Arc<Mutex<Capture>>) {
    let mut buffer = vec![0u8; READ_CHUNK];
    loop {
        match pipe.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => {
                if let Some(chunk) = buffer.get(..read) {
                    lock(&capture).push(chunk);
                }
            }
        }
    }
}

fn lock(capture: &Mutex<Capture>) -> std::sync::MutexGuard<'_, Capture> {
    // A capture is plain bytes; a panic elsewhere cannot leave it inconsistent.
    capture.lock().unwrap_or_else(PoisonError::into_inner)
}

fn finish(capture: &Mutex<Capture>) -> (String, bool) {
    lock(capture).render()
}

/// The first and last bytes of a stream, at most `cap` in all.
struct Capture {
    head: Vec<u8>,
    head_cap: usize,
    tail: VecDeque<u8>,
    tail_cap: usize,
    omitted: u64,
}

impl fmt::Debug for Capture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Capture")
            .field("head", &self.head.len())
            .field("tail", &self.tail.len())
            .field("omitted", &self.omitted)
            .finish()
    }
}

impl Capture {
    fn new(cap: usize) -> Self {
        let head_cap = cap / 2;
        Self {
            head: Vec::new(),
            head_cap,
            tail: VecDeque::new(),
            tail_cap: cap.saturating_sub(head_cap),
            omitted: 0,
        }
    }

    fn push(&mut self, mut chunk: &[u8]) {
        let room = self.head_cap.saturating_sub(self.head.len());
        if room > 0 {
            let (now, rest) = chunk.split_at(room.min(chunk.len()));
            self.head.extend_from_slice(now);
            chunk = rest;
        }
        // Only the last `tail_cap` bytes of the chunk can survive.
        let keep = chunk.len().min(self.tail_cap);
        let (skipped, kept) = chunk.split_at(chunk.len().saturating_sub(keep));
        self.omitted = self
            .omitted
            .saturating_add(u64::try_from(skipped.len()).unwrap_or(u64::MAX));
        for byte in kept {
            if self.tail.len() == self.tail_cap {
                self.tail.pop_front();
                self.omitted = self.omitted.saturating_add(1);
            }
            self.tail.push_back(*byte);
        }
    }

    /// The kept text and whether anything was cut.
    fn render(&self) -> (String, bool) {
        let mut bytes = self.head.clone();
        if self.omitted > 0 {
            bytes.extend_from_slice(
                format!("\n[attendant: {} bytes omitted]\n", self.omitted).as_bytes(),
            );
        }
        bytes.extend(self.tail.iter());
        (
            String::from_utf8_lossy(&bytes).into_owned(),
            self.omitted > 0,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invocation(program: &str, args: &[&str]) -> Invocation {
        let mut invocation = Invocation::new(program, args.iter().copied(), std::env::temp_dir());
        invocation.timeout = Duration::from_secs(20);
        invocation
    }

    #[test]
    fn capture_keeps_head_and_tail() {
        let mut capture = Capture::new(8);
        capture.push(b"abcdef");
        capture.push(b"ghijklmnop");
        assert_eq!(
            capture.render(),
            ("abcd\n[attendant: 8 bytes omitted]\nmnop".to_owned(), true)
        );
        let mut small = Capture::new(8);
        small.push(b"abc");
        small.push(b"defgh");
        assert_eq!(small.render(), ("abcdefgh".to_owned(), false));
    }

    #[tokio::test]
    async fn captures_stdout_stderr_and_status() {
        let output = run(invocation("sh", &["-c", "echo out; echo err >&2; exit 3"]))
            .await
            .unwrap();
        assert_eq!(output.status, Some(3));
        assert!(!output.success());
        assert_eq!(output.stdout, "out\n");
        assert_eq!(output.stderr, "err\n");
        assert!(!output.truncated);
    }

    #[tokio::test]
    async fn arguments_are_not_shell_syntax() {
        let output = run(invocation("echo", &["$(id)", "a b", ";", "`x`"]))
            .await
            .unwrap();
        assert_eq!(output.stdout, "$(id) a b ; `x`\n");
    }

    #[tokio::test]
    async fn caps_large_output() {
        let mut invocation = invocation("head", &["-c", "100000", "/dev/zero"]);
        invocation.output_cap = 1000;
        let output = run(invocation).await.unwrap();
        assert!(output.truncated);
        assert!(output.success());
        assert!(output.stdout.contains("[attendant: 99000 bytes omitted]"));
        assert_eq!(
            output.stdout.len(),
            1000 + "\n[attendant: 99000 bytes omitted]\n".len()
        );
    }

    #[tokio::test]
    async fn environment_is_clean() {
        // Cargo sets this for the test process; the child must not inherit it.
        assert!(std::env::var_os("CARGO_PKG_NAME").is_some());
        let mut invocation = invocation("env", &[]);
        invocation.env = vec![("OPENWRT_TEST".to_owned(), "1".to_owned())];
        let cwd = invocation.cwd.display().to_string();
        let output = run(invocation).await.unwrap();
        let mut lines: Vec<&str> = output.stdout.lines().collect();
        lines.sort_unstable();
        assert_eq!(
            lines,
            [
                format!("HOME={cwd}"),
                "LC_ALL=C".to_owned(),
                "OPENWRT_TEST=1".to_owned(),
                format!("PATH={CHILD_PATH}"),
                format!("TMPDIR={cwd}"),
            ]
        );
    }

    #[tokio::test]
    async fn missing_program_is_a_spawn_error() {
        let error = run(invocation("attendant-no-such-program", &[]))
            .await
            .unwrap_err();
        assert!(matches!(error, RunError::Spawn { .. }), "{error:?}");
        assert!(
            error
                .to_string()
                .starts_with("could not start `attendant-no-such-program`: "),
            "{error}"
        );
    }

    /// True when the process `pid` is gone or a zombie.
    fn is_dead(pid: &str) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        }
    }

    async fn assert_dies(pid: &str) {
        for _ in 0..100 {
            if is_dead(pid) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("process {pid} is still alive");
    }

    #[tokio::test]
    async fn timeout_kills_grandchildren() {
        let mut invocation = invocation("sh", &["-c", "sleep 100 & echo $!; wait"]);
        invocation.timeout = Duration::from_millis(500);
        let started = std::time::Instant::now();
        let error = run(invocation).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        let RunError::Timeout { output, .. } = &error else {
            panic!("expected a timeout, got {error:?}");
        };
        assert_eq!(
            error.to_string(),
            "`sh` did not finish within 500ms; it was killed with everything it started"
        );
        let grandchild = output.stdout.trim();
        assert!(!grandchild.is_empty());
        assert_dies(grandchild).await;
    }

    #[tokio::test]
    async fn background_leftovers_are_killed_after_exit() {
        let started = std::time::Instant::now();
        let output = run(invocation("sh", &["-c", "sleep 100 & echo $!"]))
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(output.success());
        assert_dies(output.stdout.trim()).await;
    }
}
