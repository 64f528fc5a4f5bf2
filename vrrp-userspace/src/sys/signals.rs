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

/// The signals the daemon acts on, by what they ask for.
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

/// The daemon's signals as one stream, read by a task of their own: the main loop then waits
/// on one receiver instead of eight, and an advert's wakeup polls none of them.
pub fn listen() -> std::io::Result<tokio::sync::mpsc::Receiver<Asked>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut quit = signal(SignalKind::quit())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    let mut json = signal(SignalKind::from_raw(json()))?;
    let mut clear = signal(SignalKind::from_raw(stats_clear()))?;
    // Room for one of each: tokio coalesces a signal until it is read, so this never fills.
    let (tx, rx) = tokio::sync::mpsc::channel(8);
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
            if tx.send(asked).await.is_err() {
                return;
            }
        }
    });
    Ok(rx)
}
