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
