//! The signals keepalived users send, by keepalived's numbers (lib/signals.h), and the rest of
//! the ones whose default would end the process.

use tokio::signal::unix::{Signal, SignalKind, signal};

/// keepalived's SIGJSON: write keepalived.json.
pub fn json() -> i32 {
    libc::SIGRTMIN() + 2
}

/// keepalived's SIGSTATS_CLEAR: write keepalived.stats, then clear the counters.
pub fn stats_clear() -> i32 {
    libc::SIGRTMAX() - 1
}

/// `keepalived --signum NAME`: the signal for one of keepalived's functions.
pub fn by_function(name: &str) -> Option<i32> {
    Some(match name {
        "STOP" => libc::SIGTERM,
        "RELOAD" => libc::SIGHUP,
        "DATA" => libc::SIGUSR1,
        "STATS" => libc::SIGUSR2,
        "STATS_CLEAR" => stats_clear(),
        "JSON" => json(),
        _ => return None,
    })
}

/// Handlers for every signal whose default action ends the process and that the daemon has
/// no use for: they are counted by tokio and otherwise do nothing. Keep the result alive.
/// (SIGKILL and SIGSTOP cannot be caught; SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP
/// and SIGSYS report faults of the process itself and keep their defaults.)
pub fn absorb() -> std::io::Result<Vec<Signal>> {
    let handled = [
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGHUP,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGCHLD,
        json(),
        stats_clear(),
    ];
    let mut fatal = vec![
        libc::SIGALRM,
        libc::SIGVTALRM,
        libc::SIGPROF,
        libc::SIGIO,
        libc::SIGPWR,
        libc::SIGSTKFLT,
        libc::SIGXCPU,
        libc::SIGXFSZ,
        libc::SIGPIPE,
    ];
    fatal.extend(libc::SIGRTMIN()..=libc::SIGRTMAX());
    fatal
        .into_iter()
        .filter(|s| !handled.contains(s))
        .map(|s| signal(SignalKind::from_raw(s)))
        .collect()
}

/// The signals the daemon acts on, by what they ask for, in the order the loop serves them
/// when several are pending: a stop first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Asked {
    Term,
    Int,
    Quit,
    Hup,
    Usr1,
    Usr2,
    Json,
    StatsClear,
}

impl Asked {
    const ALL: [Self; 8] = [
        Self::Term,
        Self::Int,
        Self::Quit,
        Self::Hup,
        Self::Usr1,
        Self::Usr2,
        Self::Json,
        Self::StatsClear,
    ];

    fn bit(self) -> u16 {
        1 << self as u16
    }

    /// The signal's name, for the log.
    pub fn name(self) -> &'static str {
        match self {
            Self::Term => "SIGTERM",
            Self::Int => "SIGINT",
            Self::Quit => "SIGQUIT",
            Self::Hup => "SIGHUP",
            Self::Usr1 => "SIGUSR1",
            Self::Usr2 => "SIGUSR2",
            Self::Json => "SIGJSON",
            Self::StatsClear => "SIGSTATS_CLEAR",
        }
    }
}

/// The daemon's signals, read by a task of their own, so that the main loop waits on one
/// wakeup instead of eight signal streams and an advert's wakeup polls none of them. Pending
/// signals are a set, not a queue: ten SIGHUPs during a reload ask for one more reload, as
/// they did when the loop read the streams itself, and a SIGTERM is served before them.
pub struct Signals {
    pending: std::sync::Arc<std::sync::atomic::AtomicU16>,
    notify: std::sync::Arc<tokio::sync::Notify>,
}

impl Signals {
    /// Installs the handlers and starts the task.
    pub fn listen() -> std::io::Result<Self> {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut quit = signal(SignalKind::quit())?;
        let mut hup = signal(SignalKind::hangup())?;
        let mut usr1 = signal(SignalKind::user_defined1())?;
        let mut usr2 = signal(SignalKind::user_defined2())?;
        let mut json = signal(SignalKind::from_raw(json()))?;
        let mut clear = signal(SignalKind::from_raw(stats_clear()))?;
        let pending = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(0));
        let notify = std::sync::Arc::new(tokio::sync::Notify::new());
        let (p, n) = (
            std::sync::Arc::clone(&pending),
            std::sync::Arc::clone(&notify),
        );
        tokio::spawn(async move {
            loop {
                let asked = tokio::select! {
                    _ = term.recv() => Asked::Term,
                    _ = int.recv() => Asked::Int,
                    _ = quit.recv() => Asked::Quit,
                    _ = hup.recv() => Asked::Hup,
                    _ = usr1.recv() => Asked::Usr1,
                    _ = usr2.recv() => Asked::Usr2,
                    _ = json.recv() => Asked::Json,
                    _ = clear.recv() => Asked::StatsClear,
                };
                p.fetch_or(asked.bit(), std::sync::atomic::Ordering::Relaxed);
                n.notify_one();
            }
        });
        Ok(Self { pending, notify })
    }

    /// Waits until a signal is pending.
    pub async fn wait(&self) {
        self.notify.notified().await;
    }

    /// The pending signals, each once, a stop first; none pending afterwards.
    pub fn take(&self) -> Vec<Asked> {
        let bits = self.pending.swap(0, std::sync::atomic::Ordering::Relaxed);
        Asked::ALL
            .into_iter()
            .filter(|a| bits & a.bit() != 0)
            .collect()
    }
}
