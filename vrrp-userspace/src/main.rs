//! The `vrrpd` binary: the command line (clap) and `anyhow` live only here.

mod cli;
mod install;
mod pcap;
mod watch;

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    cli::init_logging(&args);
    // One thread: the daemon's loop is one task, and the other tasks (scripts, the diagnosis,
    // the control socket) wait on I/O. On the main thread the reactor is the loop's own epoll,
    // so an advert's record wakes the thread that elects on it, once; with worker threads a
    // worker's epoll woke first and then unparked the loop, a second wakeup that cost, at
    // advert_int 0.01, p99 1.5 ms from the kernel stamp to the election under stress-ng
    // against 0.1 ms on one thread (`cargo xtask bench latency`, docs/bench/report.md).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        // Capabilities are per thread: a blocking-pool thread catches up with the daemon's drop
        // (vrrp::caps::drop_all_but) when it starts or wakes.
        .on_thread_start(vrrp::sys::caps::apply_pending)
        .on_thread_unpark(vrrp::sys::caps::apply_pending)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vrrpd: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vrrpd: error: {}", chain(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line. The library's errors include their cause in their
/// own message (so that log lines are whole); a cause already said is not repeated.
fn chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}
