//! Running scripts with keepalived's semantics: `vrrp_script` checks (interval, timeout, rise,
//! fall, init_fail) that report [`TrackEvent`]s to the daemon's single event loop, and notify
//! scripts run in order per instance. The arithmetic is pure, in `protocol::track`.

use std::{path::Path, process::Stdio, time::Duration};

use tokio::{process::Command, sync::mpsc};
use tracing::{debug, error, info, warn};

use crate::{
    config,
    protocol::{
        fsm::State,
        track::{ScriptState, TrackEvent},
    },
};

/// Who a script runs as.
#[derive(Clone, Debug, Default)]
pub struct RunAs {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub name: String,
}

impl RunAs {
    /// keepalived's rule (lib/notify.c): the script's `user`, else global `script_user`, else
    /// keepalived_script when that user exists, else root, which `enable_script_security`
    /// forbids. None: the script must not run (the user it names does not exist, or only root
    /// is left and security is on); keepalived drops such a script.
    pub fn resolve(
        user: Option<&(String, Option<String>)>,
        global: &config::Global,
    ) -> Option<Self> {
        let exists = |n: &str| nix::unistd::User::from_name(n).ok().flatten();
        let chosen = user.or(global.script_user.as_ref()).cloned().or_else(|| {
            exists("keepalived_script").map(|_| ("keepalived_script".to_owned(), None))
        });
        let Some((name, group)) = chosen else {
            if global.enable_script_security {
                warn!(
                    "enable_script_security, no script_user and no keepalived_script user: the script is not run as root"
                );
                return None;
            }
            return Some(Self {
                uid: None,
                gid: None,
                name: "root".to_owned(),
            });
        };
        let Some(u) = exists(&name) else {
            warn!("script user {name} does not exist: the script is not run");
            return None;
        };
        let gid = match group {
            None => u.gid.as_raw(),
            Some(g) => match nix::unistd::Group::from_name(&g).ok().flatten() {
                Some(g) => g.gid.as_raw(),
                None => {
                    warn!("script group {g} does not exist: the script is not run");
                    return None;
                }
            },
        };
        Some(Self {
            uid: (u.uid.as_raw() != 0).then_some(u.uid.as_raw()),
            gid: (gid != 0).then_some(gid),
            name,
        })
    }
}

/// Shell metacharacters: a command line with any of them runs through /bin/sh -c.
const SHELL_CHARS: &[char] = &[
    '|', '&', ';', '<', '>', '$', '`', '*', '?', '(', ')', '~', '\\', '\n', '[', '{',
];

/// Splits a command line as keepalived does (whitespace, double quotes), or hands it to the
/// shell when it needs one.
pub fn argv(command: &str) -> Vec<String> {
    if command.contains(SHELL_CHARS) {
        return vec!["/bin/sh".to_owned(), "-c".to_owned(), command.to_owned()];
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in command.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            c => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// How a script run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Exited(i32),
    Signalled,
    TimedOut,
    /// It could not be started at all: the path and the reason.
    CannotRun(String),
}

impl Outcome {
    pub fn success(&self) -> bool {
        matches!(self, Self::Exited(0))
    }
}

/// At most this many health checks run at once: a thousand instances must not fork a
/// thousand processes. The others wait their turn.
pub const MAX_SCRIPTS: usize = 32;
/// Notify scripts have their own slots, so that hung ones never starve the health checks.
pub const MAX_NOTIFIES: usize = 16;
static CHECKS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_SCRIPTS);
static NOTIFIES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_NOTIFIES);

/// A notify script still running after this long is killed (its whole process group) so
/// that the transitions queued behind it get theirs. keepalived has no limit because it runs
/// notifies concurrently and never waits for them; vrrpd runs an instance's notifies in the
/// order of its transitions, so one that hangs must not hold the rest for ever.
pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(60);

/// Bytes of a script's stdout and of its stderr kept for the log; the rest is read and
/// discarded (a script's output never grows the daemon, and it never blocks on a full pipe).
pub const MAX_OUTPUT: usize = 16 * 1024;

/// Which slots a script takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    Check,
    Notify,
}

impl Pool {
    fn semaphore(self) -> &'static tokio::sync::Semaphore {
        match self {
            Self::Check => &CHECKS,
            Self::Notify => &NOTIFIES,
        }
    }
}

/// Health checks running now.
pub fn scripts_running() -> usize {
    MAX_SCRIPTS - CHECKS.available_permits()
}

/// Notify scripts running now.
pub fn notifies_running() -> usize {
    MAX_NOTIFIES - NOTIFIES.available_permits()
}

/// Reads `r` to its end, keeping the first `MAX_OUTPUT` bytes.
async fn read_bounded(r: Option<impl tokio::io::AsyncRead + Unpin>) -> Vec<u8> {
    use tokio::io::AsyncReadExt as _;
    let mut kept = Vec::new();
    let Some(mut r) = r else {
        return kept;
    };
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = MAX_OUTPUT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

/// Runs one command line to completion (or until `timeout`, then kills its process group),
/// as `run_as`, logging its output at debug level. Waits for a slot of its `pool` first; the
/// timeout counts from the start of the script.
pub async fn run_once(
    command: &str,
    run_as: &RunAs,
    timeout: Option<Duration>,
    pool: Pool,
    label: &str,
) -> Outcome {
    let Ok(_slot) = pool.semaphore().acquire().await else {
        return Outcome::CannotRun("the script limiter is closed".to_owned());
    };
    let args = argv(command);
    let Some(program) = args.first() else {
        return Outcome::CannotRun("empty command".to_owned());
    };
    let spawn = |argv: &[String]| {
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        if let Some(gid) = run_as.gid {
            cmd.gid(gid);
        }
        if let Some(uid) = run_as.uid {
            cmd.uid(uid);
        }
        cmd.spawn()
    };
    let child = match spawn(&args) {
        Ok(c) => c,
        Err(e) if e.raw_os_error() == Some(libc::ENOEXEC) => {
            // No "#!" line. execvp(3) would hand such a file to /bin/sh; do the same, unless
            // its first line is a shebang that lost its '#' ("!/bin/bash", as in the seed's
            // check_web.sh), in which case that interpreter is plainly what was meant.
            let interpreter =
                lost_shebang(Path::new(program)).unwrap_or_else(|| "/bin/sh".to_owned());
            warn!(
                "{label}: {program} has no '#!' line: running it with {interpreter}; add '#!{interpreter}' as its first line"
            );
            let mut with = vec![interpreter];
            with.extend(args.iter().cloned());
            match spawn(&with) {
                Ok(c) => c,
                Err(e) => return Outcome::CannotRun(format!("{program}: {e}")),
            }
        }
        Err(e) => return Outcome::CannotRun(format!("{program}: {e}")),
    };
    let mut child = child;
    let pid = child.id();
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let wait = async {
        let (out, err, status) =
            tokio::join!(read_bounded(stdout), read_bounded(stderr), child.wait());
        status.map(|status| std::process::Output {
            status,
            stdout: out,
            stderr: err,
        })
    };
    let output = match timeout {
        Some(t) => {
            if let Ok(r) = tokio::time::timeout(t, wait).await {
                r
            } else {
                // The whole process group: a shell script's children must not outlive it.
                if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                return Outcome::TimedOut;
            }
        }
        None => wait.await,
    };
    match output {
        Ok(out) => {
            for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
                for line in String::from_utf8_lossy(bytes)
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                {
                    debug!("{label} {stream}: {line}");
                }
            }
            out.status
                .code()
                .map_or(Outcome::Signalled, Outcome::Exited)
        }
        Err(e) => Outcome::CannotRun(format!("{program}: {e}")),
    }
}

/// "!/bin/bash" on the first line: the interpreter, if it exists.
fn lost_shebang(path: &Path) -> Option<String> {
    let text = std::fs::read(path).ok()?;
    let first = String::from_utf8_lossy(text.split(|b| *b == b'\n').next()?)
        .trim()
        .to_owned();
    let interp = first
        .strip_prefix('!')?
        .split_whitespace()
        .next()?
        .to_owned();
    (interp.starts_with('/') && Path::new(&interp).exists()).then_some(interp)
}

/// Where a script's program is: itself when it names a path, else found on PATH (as
/// keepalived resolves a bare name, and as exec will).
pub fn resolve_program(program: &str) -> Option<std::path::PathBuf> {
    if program.contains('/') {
        return Some(std::path::PathBuf::from(program));
    }
    if program.is_empty() {
        return None;
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_else(|| {
            vec![
                "/usr/sbin".into(),
                "/usr/bin".into(),
                "/sbin".into(),
                "/bin".into(),
            ]
        })
        .into_iter()
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// keepalived's `enable_script_security`: a script that a non-root user could change must
/// not run as root. Checked: every component of the path as written (a directory a user can
/// write lets them swap what follows, a symlink included) and, when a symlink leads
/// elsewhere, every component of where it leads; a component that does not exist is
/// insecure (whoever creates it decides what runs). A shell line (`/bin/sh -c ...`) is
/// checked word by word: the program of each of its commands; a line whose commands vrrpd
/// cannot tell (command substitution, a variable or a glob as a command, `eval`) is refused.
/// Returns why, or None when it is safe.
pub fn insecure_script(command: &str) -> Option<String> {
    let args = argv(command);
    if args.len() == 3 && args[0] == "/bin/sh" && args[1] == "-c" {
        return insecure_shell_line(&args[2]);
    }
    let program = args.first()?;
    insecure_program(program)
}

/// The program named by a word: a path, or a bare name found on PATH.
fn insecure_program(program: &str) -> Option<String> {
    if !program.contains('/') {
        return match resolve_program(program) {
            Some(found) => insecure_path(&found),
            None => Some(format!("{program} is not found on PATH")),
        };
    }
    let path = Path::new(program);
    if !path.is_absolute() {
        return Some(format!("{program} is not an absolute path"));
    }
    insecure_path(path)
}

/// Shell words that start no program of their own.
const SHELL_KEYWORDS: &[&str] = &[
    "!", "if", "then", "else", "elif", "fi", "while", "until", "do", "done", "for", "case", "esac",
    "in", "{", "}", "[", "[[", "test", "true", "false", "exit", "return", "echo", "printf", ":",
    "cd", "read", "set", "shift", "export", "local", "wait",
];

fn insecure_shell_line(line: &str) -> Option<String> {
    if let Some(why) = insecure_path(Path::new("/bin/sh")) {
        return Some(why);
    }
    for construct in ["$(", "`", "eval ", ". ", "source ", "exec "] {
        if line.contains(construct) {
            return Some(format!(
                "the shell line {line:?} uses {construct:?}, which enable_script_security cannot check: put it in a script file"
            ));
        }
    }
    for segment in line.split(['|', '&', ';', '\n', '(', ')']) {
        // Redirections and assignments before the command do not name it.
        let word = segment.split_whitespace().find(|w| {
            !w.contains('=')
                && !w.starts_with(['<', '>'])
                && !w
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '>' || c == '<')
        });
        let Some(word) = word else {
            continue;
        };
        let word = word.trim_matches(['"', '\'']);
        if SHELL_KEYWORDS.contains(&word) {
            continue;
        }
        if word.contains(['$', '*', '?', '[', '~']) {
            return Some(format!(
                "the shell line {line:?} runs {word:?}, which enable_script_security cannot check: put it in a script file"
            ));
        }
        if let Some(why) = insecure_program(word) {
            return Some(why);
        }
    }
    None
}

/// Every component of `path` and, through symlinks, of what it leads to.
fn insecure_path(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt as _;
    let mut to_check: Vec<std::path::PathBuf> = path.ancestors().map(Path::to_path_buf).collect();
    match std::fs::canonicalize(path) {
        Ok(real) if real != path => to_check.extend(real.ancestors().map(Path::to_path_buf)),
        Ok(_) => {}
        Err(e) => {
            return Some(format!(
                "{}: {e}: a missing file is not a safe one",
                path.display()
            ));
        }
    }
    for cur in &to_check {
        if cur.as_os_str().is_empty() {
            continue;
        }
        // The component itself (a symlink's own owner counts: lchown), not what it points to.
        let meta = match std::fs::symlink_metadata(cur) {
            Ok(m) => m,
            Err(e) => {
                return Some(format!(
                    "{}: {e}: a missing component is not a safe one",
                    cur.display()
                ));
            }
        };
        if meta.file_type().is_symlink() {
            // A symlink's mode means nothing; its owner and its directory (checked as an
            // ancestor) decide who can change it.
            if meta.uid() != 0 {
                return Some(format!(
                    "{} is a symlink owned by uid {}: a non-root user could change what runs as root",
                    cur.display(),
                    meta.uid()
                ));
            }
            continue;
        }
        // A sticky directory (/tmp) is writable by others but protects what is in it.
        let sticky = meta.is_dir() && meta.mode() & 0o1000 != 0;
        let writable_by_others = meta.mode() & 0o022 != 0 && !sticky;
        if meta.uid() != 0 || writable_by_others {
            return Some(format!(
                "{} is {} (mode {:o}, owner uid {}): a non-root user could change what runs as root",
                cur.display(),
                if meta.uid() == 0 {
                    "writable by group or others"
                } else {
                    "not owned by root"
                },
                meta.mode() & 0o7777,
                meta.uid()
            ));
        }
    }
    None
}

/// Runs a vrrp_script every `interval` and reports its state changes.
pub fn spawn_script(
    script: config::Script,
    run_as: RunAs,
    tx: mpsc::Sender<TrackEvent>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let label = format!("VRRP_Script({})", script.name);
        let mut state = ScriptState::new(script.init_fail);
        let timeout = Some(
            script
                .timeout
                .unwrap_or(script.interval)
                .max(Duration::from_millis(100)),
        );
        let mut ticker = tokio::time::interval(script.interval.max(Duration::from_millis(10)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reported_cannot_run = false;
        let mut first = true;
        loop {
            ticker.tick().await;
            let outcome = run_once(&script.command, &run_as, timeout, Pool::Check, &label).await;
            match &outcome {
                Outcome::CannotRun(why) if !reported_cannot_run => {
                    error!("{label}: cannot run the script: {why}");
                    reported_cannot_run = true;
                }
                Outcome::TimedOut => {
                    warn!("{label} timed out after {timeout:?}: killed, counts as a failure")
                }
                _ => {}
            }
            let changed = state.update(outcome.success(), script.rise, script.fall);
            if first && changed.is_none() {
                // With init_fail a first failure changes nothing; say where it stands anyway.
                info!(
                    "{label} {}",
                    if state.ok == Some(true) {
                        "succeeded"
                    } else {
                        "failed"
                    }
                );
            }
            first = false;
            if let Some(ok) = changed {
                info!("{label} {}", if ok { "succeeded" } else { "failed" });
                if tx
                    .send(TrackEvent::Script {
                        name: script.name.clone(),
                        ok,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    })
}

/// Runs notify scripts one after another, in the order of the transitions, without making
/// the state machine wait (keepalived runs them concurrently, so they can overtake each other).
/// The worker task starts with the first scripts to run: most instances have none, and a
/// thousand idle tasks would be a thousand futures held for nothing.
pub struct Notifier {
    queue: std::sync::OnceLock<NotifyQueue>,
    finished: bool,
    label: String,
}

/// A notifier's worker: where its transitions' scripts are queued, and the task that runs them.
type NotifyQueue = (
    mpsc::Sender<Vec<(String, RunAs)>>,
    tokio::task::JoinHandle<()>,
);

/// Transitions whose notify scripts may wait behind a slow one; beyond that the newest are
/// dropped, with a warning, rather than queued without end.
const NOTIFY_QUEUE: usize = 64;

impl Notifier {
    /// A notifier with no worker yet: it is spawned with the first scripts to run.
    pub fn spawn(label: String) -> Self {
        Self {
            queue: std::sync::OnceLock::new(),
            finished: false,
            label,
        }
    }

    fn worker(label: String) -> NotifyQueue {
        let (tx, mut rx) = mpsc::channel::<Vec<(String, RunAs)>>(NOTIFY_QUEUE);
        let worker = tokio::spawn(async move {
            while let Some(commands) = rx.recv().await {
                for (c, run_as) in commands {
                    // Boxed: the script's output buffer lives only while a script runs.
                    let run = Box::pin(run_once(
                        &c,
                        &run_as,
                        Some(NOTIFY_TIMEOUT),
                        Pool::Notify,
                        &label,
                    ));
                    match run.await {
                        Outcome::TimedOut => warn!(
                            "{label}: {c}: still running after {NOTIFY_TIMEOUT:?}: killed, so that the next notifications run"
                        ),
                        Outcome::Exited(0) => debug!("{label}: {c}: done"),
                        other => warn!("{label}: {c}: {other:?}"),
                    }
                }
            }
        });
        (tx, worker)
    }

    /// Queues one transition's scripts, each with the user it runs as.
    pub fn send(&self, commands: Vec<(String, RunAs)>) {
        if commands.is_empty() || self.finished {
            return;
        }
        let (tx, _) = self.queue.get_or_init(|| Self::worker(self.label.clone()));
        if let Err(mpsc::error::TrySendError::Full(c)) = tx.try_send(commands) {
            warn!(
                "{}: {NOTIFY_QUEUE} transitions already wait for their notify scripts (one is stuck?): not running {:?}",
                self.label,
                c.iter().map(|(c, _)| c).collect::<Vec<_>>()
            );
        }
    }

    /// Lets the queued scripts (notify_stop at shutdown) finish, for at most `limit`.
    pub async fn finish(&mut self, limit: Duration) {
        self.finished = true;
        let Some((tx, worker)) = self.queue.take() else {
            return;
        };
        // Without its sender the worker ends once the queue is empty.
        drop(tx);
        if tokio::time::timeout(limit, worker).await.is_err() {
            warn!("notify scripts still running after {limit:?}: not waiting for them");
        }
    }
}

/// Who a notification is about, as keepalived's notify arguments name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notified {
    Instance,
    Group,
}

impl Notified {
    pub const fn word(self) -> &'static str {
        match self {
            Self::Instance => "INSTANCE",
            Self::Group => "GROUP",
        }
    }
}

/// A state as keepalived's notify scripts are told it: INIT is STOP there.
pub const fn notify_word(state: State) -> &'static str {
    match state {
        State::Initialize => "STOP",
        other => other.keepalived_name(),
    }
}

/// The notify scripts for a transition, with keepalived's arguments: the state script as
/// written, and the generic `notify` with `INSTANCE|GROUP name state priority` appended.
pub fn notify_commands(
    n: &config::Notify,
    kind: Notified,
    name: &str,
    state: State,
    priority: u8,
) -> Vec<(String, Option<config::RunUser>)> {
    let specific = match state {
        State::Master => &n.master,
        State::Backup => &n.backup,
        State::Fault => &n.fault,
        State::Initialize => &n.stop,
    };
    let mut out: Vec<(String, Option<config::RunUser>)> = specific
        .iter()
        .map(|s| (s.command.clone(), s.user.clone()))
        .collect();
    if let Some(g) = &n.generic {
        out.push((
            format!(
                "{} {} \"{name}\" {} {priority}",
                g.command,
                kind.word(),
                notify_word(state)
            ),
            g.user.clone(),
        ));
    }
    out
}

/// keepalived's notify_fifo line: `INSTANCE "VI_1" MASTER 150`.
pub fn fifo_line(kind: Notified, name: &str, state: State, priority: u8) -> String {
    format!(
        "{} \"{name}\" {} {priority}\n",
        kind.word(),
        notify_word(state)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_splits_or_uses_the_shell() {
        assert_eq!(
            argv("/server/scripts/check_web.sh"),
            ["/server/scripts/check_web.sh"]
        );
        assert_eq!(
            argv(r#"/bin/echo "became master" now"#),
            ["/bin/echo", "became master", "now"]
        );
        assert_eq!(
            argv("pidof nginx || exit 1"),
            ["/bin/sh", "-c", "pidof nginx || exit 1"]
        );
    }

    #[test]
    fn notify_arguments_are_keepalived_s() {
        let script = |c: &str| {
            Some(config::NotifyScript {
                command: c.to_owned(),
                user: None,
            })
        };
        let n = config::Notify {
            master: script("/bin/m"),
            generic: script("/bin/n"),
            ..Default::default()
        };
        let commands = |state| {
            notify_commands(&n, Notified::Instance, "VI_1", state, 150)
                .into_iter()
                .map(|(c, _)| c)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            commands(State::Master),
            ["/bin/m", "/bin/n INSTANCE \"VI_1\" MASTER 150"]
        );
        assert_eq!(
            commands(State::Backup),
            ["/bin/n INSTANCE \"VI_1\" BACKUP 150"]
        );
        assert_eq!(
            fifo_line(Notified::Group, "VG_1", State::Fault, 0),
            "GROUP \"VG_1\" FAULT 0\n"
        );
    }

    #[tokio::test]
    async fn run_once_reports_exit_timeout_and_missing_script() {
        let root = RunAs::default();
        assert_eq!(
            run_once("/bin/true", &root, None, Pool::Check, "t").await,
            Outcome::Exited(0)
        );
        assert_eq!(
            run_once("/bin/sh -c \"exit 3\"", &root, None, Pool::Check, "t").await,
            Outcome::Exited(3)
        );
        assert_eq!(
            run_once(
                "/bin/sleep 5",
                &root,
                Some(Duration::from_millis(100)),
                Pool::Check,
                "t"
            )
            .await,
            Outcome::TimedOut
        );
        match run_once("/nonexistent/check.sh", &root, None, Pool::Check, "t").await {
            Outcome::CannotRun(why) => assert!(
                why.starts_with("/nonexistent/check.sh: ") && why.contains("No such file"),
                "{why}"
            ),
            other => panic!("{other:?}"),
        }
    }

    /// A script that writes without end is read to its end (it is not blocked, nor killed by
    /// SIGPIPE) and what is kept is bounded.
    #[tokio::test]
    async fn a_scripts_output_is_bounded() {
        use tokio::io::AsyncReadExt as _;
        let out = read_bounded(Some(tokio::io::repeat(b'x').take(10 * 1024 * 1024))).await;
        assert_eq!(out.len(), MAX_OUTPUT);
        assert_eq!(
            run_once(
                "/bin/sh -c \"head -c 20000000 /dev/zero; exit 4\"",
                &RunAs::default(),
                Some(Duration::from_secs(20)),
                Pool::Check,
                "t"
            )
            .await,
            Outcome::Exited(4),
            "20 MB of output, then its own exit code"
        );
    }

    /// Hung notify scripts take notify slots only: a health check still runs at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hung_notifies_do_not_starve_the_checks() {
        let hung: Vec<_> = (0..MAX_NOTIFIES + 4)
            .map(|_| {
                tokio::spawn(async {
                    run_once(
                        "/bin/sleep 3",
                        &RunAs::default(),
                        Some(Duration::from_secs(2)),
                        Pool::Notify,
                        "n",
                    )
                    .await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(notifies_running(), MAX_NOTIFIES);
        let check = tokio::time::timeout(
            Duration::from_secs(1),
            run_once("/bin/true", &RunAs::default(), None, Pool::Check, "c"),
        )
        .await;
        assert_eq!(check.ok(), Some(Outcome::Exited(0)), "the check waited");
        for h in hung {
            h.abort();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scripts_run_at_most_max_scripts_at_once() {
        let root = RunAs::default();
        let all: Vec<_> = (0..MAX_SCRIPTS + 8)
            .map(|_| {
                let r = root.clone();
                tokio::spawn(
                    async move { run_once("/bin/sleep 0.5", &r, None, Pool::Check, "t").await },
                )
            })
            .collect();
        let mut peak = 0;
        for _ in 0..20 {
            peak = peak.max(scripts_running());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(peak, MAX_SCRIPTS, "the limit is reached and never passed");
        for h in all {
            assert_eq!(h.await.ok(), Some(Outcome::Exited(0)));
        }
        // Other tests in this process may run a script of their own for a moment.
        for _ in 0..100 {
            if scripts_running() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("slots not given back: {} still taken", scripts_running());
    }

    #[test]
    fn script_security_refuses_scripts_others_can_change() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("vrrpd-sec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let script = dir.join("check.sh");
        std::fs::write(&script, "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        if nix::unistd::geteuid().is_root() {
            assert_eq!(insecure_script(&script.display().to_string()), None);
        }
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let why = insecure_script(&script.display().to_string())
            .expect("a world-writable script is refused");
        assert!(
            why.contains("check.sh is")
                && why.contains("a non-root user could change what runs as root"),
            "{why}"
        );
        assert!(
            insecure_script("relative/check.sh")
                .is_some_and(|w| w.contains("not an absolute path"))
        );
        if nix::unistd::geteuid().is_root() {
            assert_eq!(
                insecure_script("pidof nginx || exit 1"),
                None,
                "a shell line's programs are checked: pidof is root's"
            );
            // A shell line that runs the world-writable script.
            let line = format!("{} && exit 0", script.display());
            assert!(insecure_script(&line).is_some_and(|w| w.contains("check.sh is")));
            // What the shell would decide at run time cannot be checked.
            for line in [
                "$(cat /etc/x) || exit 1",
                "`which nginx` | true",
                "$CMD; exit 1",
            ] {
                assert!(
                    insecure_script(line).is_some_and(|w| w.contains("cannot check")),
                    "{line}"
                );
            }
            // A missing component is not safe.
            let missing = dir.join("nope").join("check.sh");
            assert!(
                insecure_script(&missing.display().to_string())
                    .is_some_and(|w| w.contains("missing"))
            );
            // A root-owned symlink in a safe place, to a script in a directory a user owns.
            let user_dir = dir.join("user");
            std::fs::create_dir_all(&user_dir).expect("dir");
            let target = user_dir.join("real.sh");
            std::fs::write(&target, "#!/bin/sh\n").expect("write");
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
                .expect("chmod");
            nix::unistd::chown(&user_dir, Some(nix::unistd::Uid::from_raw(65534)), None)
                .expect("chown");
            let link = dir.join("link.sh");
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&target, &link).expect("symlink");
            let why = insecure_script(&link.display().to_string())
                .expect("the symlink's target is in a user's directory");
            assert!(
                why.contains("user") && why.contains("not owned by root"),
                "{why}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_shebang_without_its_hash_runs_with_the_named_interpreter() {
        let dir = std::env::temp_dir().join(format!("vrrpd-track-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let script = dir.join("check.sh");
        // bash-only syntax: /bin/sh (dash) would fail on [[.
        std::fs::write(
            &script,
            "!/bin/bash\nx=0\nif [[ ${x} == 0 ]]\nthen\n  exit 7\nfi\n",
        )
        .expect("write");
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        assert_eq!(
            run_once(
                &script.display().to_string(),
                &RunAs::default(),
                None,
                Pool::Check,
                "t"
            )
            .await,
            Outcome::Exited(7)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
