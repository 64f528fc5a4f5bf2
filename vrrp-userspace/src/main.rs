//! The `vrrpd` binary: the command line (clap) and `anyhow` live only here.

mod cli;
mod install;
mod pcap;
mod watch;

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    cli::init_logging(&args);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // Capabilities are per thread: each runtime thread catches up with the daemon's drop
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
