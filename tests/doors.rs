//! Issue 16, "limits on every door": 5,000 idle connections to the control socket and 5,000 to
//! the metrics endpoint of the master. Scripts keep running, the VIP never moves, the daemon's
//! descriptors stay bounded, and a real `vrrpd status` still gets its answer while the idle
//! connections are held (they are the ones that make room).

use std::{
    fs,
    net::{Ipv4Addr, SocketAddr, TcpStream},
    os::unix::net::UnixStream,
    time::Duration,
};

use vrrp::northbound::status::Status;
use vrrpd_lab::{
    Host, Lab, fixtures,
    observer::{HolderObserver, holder_stats},
    require_root, wait_until,
};

const VRRPD: &str = env!("CARGO_BIN_EXE_vrrpd");
const VIP: &str = "10.0.0.3";
const IDLE: usize = 5_000;

fn seed(name: &str) -> String {
    fs::read_to_string(fixtures().join("seed").join(name)).expect("seed fixture")
}

fn open_fds(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

#[test]
fn five_thousand_idle_connections_to_each_door_move_nothing() {
    if !require_root("five_thousand_idle_connections_to_each_door_move_nothing") {
        return;
    }
    // Two sets of 5,000 descriptors in this process.
    let (_, hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).expect("rlimit");
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard, hard)
        .expect("raise RLIMIT_NOFILE");
    assert!(
        hard >= 2 * IDLE as u64 + 500,
        "RLIMIT_NOFILE hard limit {hard} is too low"
    );
    let lab = Lab::seed();
    let ran = lab.dir().join("script-runs");
    let conf = seed("ch4-lb01.conf").replace(
        "vrrp_instance VI_1 {",
        &format!(
            "vrrp_script ticks {{\n  script \"/bin/sh -c 'echo x >> {}'\"\n  interval 1\n}}\n\nvrrp_instance VI_1 {{\n    track_script {{\n      ticks\n    }}",
            ran.display()
        ),
    );
    let observer = HolderObserver::start(
        &[lab.ns(Host::Lb01), lab.ns(Host::Lb02)],
        VIP.parse().expect("vip"),
        Duration::from_millis(5),
    );
    let lb01 = lab.vrrpd_with(VRRPD, Host::Lb01, &conf, &["--metrics", "127.0.0.1:9650"]);
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &seed("ch4-lb02.conf"));
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)
            && !lab.holds(Host::Lb02, VIP)
            && fs::metadata(&ran).is_ok()),
        "{}",
        lb01.logs()
    );
    std::thread::sleep(Duration::from_secs(2));
    let from = observer.now();
    let fds_before = open_fds(lb01.pid());

    let socket = lab.control_socket(Host::Lb01);
    let unix: Vec<UnixStream> = (0..IDLE)
        .filter_map(|_| UnixStream::connect(&socket).ok())
        .collect();
    // A TCP socket belongs to the namespace it was made in.
    let metrics = SocketAddr::from((Ipv4Addr::LOCALHOST, 9650));
    let tcp: Vec<TcpStream> = lab.in_ns(Host::Lb01, move || {
        (0..IDLE)
            .filter_map(|_| TcpStream::connect_timeout(&metrics, Duration::from_secs(2)).ok())
            .collect()
    });
    eprintln!(
        "held {} control and {} metrics connections; lb01 has {} descriptors (was {fds_before})",
        unix.len(),
        tcp.len(),
        open_fds(lb01.pid())
    );
    assert!(unix.len() + tcp.len() > IDLE, "the flood did not connect");
    let fds = open_fds(lb01.pid());
    assert!(
        fds < fds_before + 300,
        "lb01 holds {fds} descriptors with the flood connected (was {fds_before}): the doors are not bounded"
    );
    let runs_before = fs::read_to_string(&ran).unwrap_or_default().lines().count();
    // A real client gets its answer while the idle ones are held.
    let st: Status = lab
        .ask_json(VRRPD, Host::Lb01, &["status"])
        .unwrap_or_else(|e| panic!("status during the flood: {e}\n{}", lb01.logs()));
    assert_eq!(st.instances[0].state, vrrp::protocol::fsm::State::Master);
    std::thread::sleep(Duration::from_secs(5));
    let runs = fs::read_to_string(&ran).unwrap_or_default().lines().count() - runs_before;
    assert!(
        runs >= 3,
        "the script ran {runs} times in 5 s at interval 1"
    );
    let fds = open_fds(lb01.pid());
    assert!(
        fds < fds_before + 300,
        "lb01 holds {fds} descriptors (was {fds_before}): the doors are not bounded"
    );
    drop(unix);
    drop(tcp);

    let (timeline, end) = observer.stop();
    let stats = holder_stats(&timeline, from, end, &[]);
    assert_eq!(
        (stats.two_total, stats.none_total),
        (Duration::ZERO, Duration::ZERO),
        "the VIP moved: {timeline:?}\n{}\n{}",
        lb01.logs(),
        lb02.logs()
    );
    assert!(lab.holds(Host::Lb01, VIP));
}
