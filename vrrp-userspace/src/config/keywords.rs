//! Every keyword keepalived 2.2.7 knows (keepalived/vrrp/vrrp_parser.c, core/global_parser.c,
//! check/check_parser.c, bfd/bfd_parser.c, trackers/track_file.c), by the block it belongs to,
//! with what vrrpd does with it: exactly one of acted on, warned about (once, at its file:line,
//! saying what vrrpd does instead), skipped as a block of a feature vrrpd does not have (one
//! warning per block), or refused (keepalived 2.2.7's `-t` rejects it too, or vrrpd cannot run
//! it safely). A keyword that is in no table is unknown, an error, as it is for keepalived.
//! tests/config.rs checks these tables against keepalived's own list
//! (keywords-2.2.7.tsv beside this file), and that every keyword marked acted on
//! changes the parsed config.

/// What vrrpd does with a keyword.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// vrrpd does what keepalived does with it.
    Acted,
    /// Parsed and checked, not acted on: the warning says what vrrpd does instead.
    Warned(&'static str),
    /// A block of a keepalived feature vrrpd does not have: its keywords are checked, the
    /// block is skipped with one warning.
    Skipped(&'static str),
    /// An error, with why.
    Refused(&'static str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keyword {
    pub name: &'static str,
    pub disposition: Disposition,
    /// Whether it opens a block (`{ ... }`).
    pub block: bool,
}

const fn line(name: &'static str, disposition: Disposition) -> Keyword {
    Keyword {
        name,
        disposition,
        block: false,
    }
}

const fn block(name: &'static str, disposition: Disposition) -> Keyword {
    Keyword {
        name,
        disposition,
        block: true,
    }
}

use Disposition::{Acted, Refused, Skipped, Warned};

const LVS: Disposition = Skipped(
    "keepalived's LVS (IPVS) load balancer and health checkers, which vrrpd does not do: run keepalived's checker or another LVS manager beside vrrpd",
);
const BFD: Disposition = Skipped("BFD, which vrrpd does not do");
const EMAIL: Disposition =
    Warned("vrrpd sends no e-mail: use notify scripts or the metrics endpoint");
const SNMP: Disposition = Warned(
    "vrrpd has no SNMP agent: use `vrrpd run --metrics` (Prometheus) and `vrrpd status --json`",
);
const DBUS: Disposition =
    Warned("vrrpd has no D-Bus interface: use the control socket (`vrrpd status --json`)");
const PROCESS: Disposition = Warned(
    "vrrpd is one process: its advert thread runs SCHED_FIFO where permitted; set limits in its systemd unit",
);
const LVS_GLOBAL: Disposition =
    Warned("keepalived's LVS and checker settings: vrrpd has no LVS part");
const BFD_GLOBAL: Disposition = Warned("keepalived's BFD process settings: vrrpd has no BFD");
const NETLINK_BUFS: Disposition = Warned("vrrpd sizes its netlink and socket buffers itself");
const RELOAD: Disposition = Warned(
    "keepalived's reload machinery: vrrpd re-reads the whole config on SIGHUP and refuses a broken one",
);

/// Root level.
pub const ROOT: &[Keyword] = &[
    block("global_defs", Acted),
    block("vrrp_instance", Acted),
    block("vrrp_sync_group", Acted),
    block("vrrp_script", Acted),
    block("vrrp_track_process", Acted),
    block("track_file", Acted),
    block("vrrp_track_file", Acted),
    block("bfd_instance", BFD),
    block("virtual_server", LVS),
    block("virtual_server_group", LVS),
    block("SSL", LVS),
    block(
        "static_ipaddress",
        Skipped(
            "vrrpd does not manage static addresses: configure them with the system's network configuration",
        ),
    ),
    block(
        "static_routes",
        Skipped(
            "vrrpd does not manage static routes: configure them with the system's network configuration",
        ),
    ),
    block(
        "static_rules",
        Skipped(
            "vrrpd does not manage static rules: configure them with the system's network configuration",
        ),
    ),
    block(
        "track_group",
        Skipped("track_group serves static_ipaddress/routes/rules, which vrrpd does not manage"),
    ),
    block(
        "garp_group",
        Skipped(
            "vrrpd spaces gratuitous ARPs per instance (garp_* and vrrp_garp_interval), not per garp_group",
        ),
    ),
    block(
        "linkbeat_interfaces",
        Skipped("vrrpd follows link state through netlink on every interface"),
    ),
    block(
        "interface_up_down_delays",
        Skipped("vrrpd acts on link changes at once"),
    ),
    line(
        "linkbeat_use_polling",
        Warned("vrrpd follows link state through netlink"),
    ),
    line(
        "net_namespace",
        Warned(
            "vrrpd runs in the network namespace it is started in: start it with `ip netns exec NAME vrrpd run ...`",
        ),
    ),
    line("net_namespace_ipvs", LVS_GLOBAL),
    line("namespace_with_ipsets", Warned("vrrpd uses no ipsets")),
    line(
        "use_pid_dir",
        Warned("vrrpd writes the pid file given with -p"),
    ),
    line(
        "instance",
        Warned("vrrpd names its control socket and pid file with --control and -p"),
    ),
    line("child_wait_time", PROCESS),
];

pub const GLOBAL_DEFS: &[Keyword] = &[
    line("router_id", Acted),
    line("vrrp_version", Acted),
    line("vrrp_mcast_group4", Acted),
    line("vrrp_mcast_group6", Acted),
    line("vrrp_garp_master_delay", Acted),
    line("vrrp_garp_master_repeat", Acted),
    line("vrrp_garp_master_refresh", Acted),
    line("vrrp_garp_master_refresh_repeat", Acted),
    line("vrrp_garp_interval", Acted),
    line("vrrp_gna_interval", Acted),
    line("vrrp_min_garp", Acted),
    line("script_user", Acted),
    line("enable_script_security", Acted),
    line("notify_fifo", Acted),
    line("vrrp_notify_fifo", Acted),
    line(
        "vrrp_strict",
        Warned(
            "of strict mode vrrpd applies its config checks, drops adverts with another address list and drops traffic to VIPs not accepted (nftables table inet vrrpd); it adds no rule of its own for VRRP",
        ),
    ),
    line("vrrp_garp_lower_prio_delay", Acted),
    line("vrrp_garp_lower_prio_repeat", Acted),
    line("vrrp_down_timer_adverts", Acted),
    line(
        "vrrp_garp_extra_if",
        Warned("vrrpd sends gratuitous ARPs on the instance's interface only"),
    ),
    line(
        "vrrp_vmac_garp_intvl",
        Refused("keepalived 2.2.7 refuses it too (deprecated): use vrrp_garp_extra_if"),
    ),
    line(
        "vrrp_lower_prio_no_advert",
        Warned(
            "a vrrpd master answers a lower-priority advert at once (at most once per quarter interval)",
        ),
    ),
    line(
        "vrrp_higher_prio_send_advert",
        Warned(
            "a vrrpd master that hears a higher priority becomes backup without sending an advert",
        ),
    ),
    line(
        "vrrp_iptables",
        Refused(
            "keepalived 2.2.7 as Debian builds it refuses it too (no iptables support): use nftables",
        ),
    ),
    line(
        "vrrp_ipsets",
        Refused("keepalived 2.2.7 as Debian builds it does not know it (no ipset support)"),
    ),
    line(
        "nftables",
        Warned(
            "vrrpd keeps its no_accept rules in table inet vrrpd (input, priority -1): this setting is not used",
        ),
    ),
    line(
        "nftables_priority",
        Warned(
            "vrrpd keeps its no_accept rules in table inet vrrpd (input, priority -1): this setting is not used",
        ),
    ),
    line(
        "nftables_ifindex",
        Warned(
            "vrrpd keeps its no_accept rules in table inet vrrpd (input, priority -1): this setting is not used",
        ),
    ),
    line(
        "nftables_counters",
        Warned(
            "vrrpd keeps its no_accept rules in table inet vrrpd (input, priority -1): this setting is not used",
        ),
    ),
    line("nftables_ipvs", LVS_GLOBAL),
    line("nftables_ipvs_priority", LVS_GLOBAL),
    line("nftables_ipvs_start_fwmark", LVS_GLOBAL),
    line("vrrp_check_unicast_src", Acted),
    line(
        "vrrp_skip_check_adv_addr",
        Warned(
            "vrrpd checks every advert's address list, and reports a difference without dropping the advert (strict mode drops it)",
        ),
    ),
    line("vrrp_priority", PROCESS),
    line(
        "vrrp_no_swap",
        Warned("vrrpd locks the advert thread's memory where permitted"),
    ),
    line("vrrp_rt_priority", Acted),
    line("vrrp_cpu_affinity", PROCESS),
    line("vrrp_rlimit_rttime", PROCESS),
    line("vrrp_rlimit_rtime", PROCESS),
    line(
        "notify_fifo_script",
        Warned(
            "vrrpd writes notify_fifo lines but runs no notify_fifo_script: read the FIFO with your own reader",
        ),
    ),
    line(
        "vrrp_notify_fifo_script",
        Warned(
            "vrrpd writes vrrp_notify_fifo lines but runs no vrrp_notify_fifo_script: read the FIFO with your own reader",
        ),
    ),
    line(
        "vrrp_notify_priority_changes",
        Warned("vrrpd writes no priority lines to the notify FIFO"),
    ),
    line(
        "fifo_write_vrrp_states_on_reload",
        Warned("vrrpd writes no FIFO lines on reload: unchanged instances keep their state"),
    ),
    line("lvs_notify_fifo", LVS_GLOBAL),
    line("lvs_notify_fifo_script", LVS_GLOBAL),
    line("vrrp_startup_delay", Acted),
    line(
        "log_unknown_vrids",
        Warned(
            "vrrpd always counts adverts for VRIDs it does not run (status: dropped unknown_vrid)",
        ),
    ),
    line("max_auto_priority", PROCESS),
    line("min_auto_priority_delay", PROCESS),
    line(
        "dynamic_interfaces",
        Warned("vrrpd needs the interfaces of its instances when it starts"),
    ),
    line(
        "default_interface",
        Warned("default_interface serves static_ipaddress, which vrrpd does not manage"),
    ),
    line(
        "disable_local_igmp",
        Warned("vrrpd leaves IGMP reporting to the kernel"),
    ),
    line("process_names", PROCESS),
    line("process_name", PROCESS),
    line("vrrp_process_name", PROCESS),
    line("checker_process_name", LVS_GLOBAL),
    line("lvs_process_name", LVS_GLOBAL),
    line("bfd_process_name", BFD_GLOBAL),
    line("notification_email_from", EMAIL),
    line("smtp_server", EMAIL),
    line("smtp_helo_name", EMAIL),
    line("smtp_connect_timeout", EMAIL),
    block("notification_email", EMAIL),
    line("smtp_alert", EMAIL),
    line("smtp_alert_vrrp", EMAIL),
    line("smtp_alert_checker", EMAIL),
    line("no_email_faults", EMAIL),
    line("checker_log_all_failures", LVS_GLOBAL),
    line("no_checker_emails", LVS_GLOBAL),
    line(
        "startup_script",
        Warned("vrrpd runs no startup script: use the unit's ExecStartPre="),
    ),
    line(
        "startup_script_timeout",
        Warned("vrrpd runs no startup script: use the unit's ExecStartPre="),
    ),
    line(
        "shutdown_script",
        Warned("vrrpd runs no shutdown script: use the unit's ExecStopPost="),
    ),
    line(
        "shutdown_script_timeout",
        Warned("vrrpd runs no shutdown script: use the unit's ExecStopPost="),
    ),
    line("lvs_timeouts", LVS_GLOBAL),
    line("lvs_flush", LVS_GLOBAL),
    line("lvs_flush_on_stop", LVS_GLOBAL),
    line("lvs_flush_onstop", LVS_GLOBAL),
    line("lvs_sync_daemon", LVS_GLOBAL),
    line("checker_priority", LVS_GLOBAL),
    line("checker_no_swap", LVS_GLOBAL),
    line("checker_rt_priority", LVS_GLOBAL),
    line("checker_cpu_affinity", LVS_GLOBAL),
    line("checker_rlimit_rttime", LVS_GLOBAL),
    line("checker_rlimit_rtime", LVS_GLOBAL),
    line("rs_init_notifies", LVS_GLOBAL),
    line("bfd_priority", BFD_GLOBAL),
    line("bfd_no_swap", BFD_GLOBAL),
    line("bfd_rt_priority", BFD_GLOBAL),
    line("bfd_cpu_affinity", BFD_GLOBAL),
    line("bfd_rlimit_rttime", BFD_GLOBAL),
    line("bfd_rlimit_rtime", BFD_GLOBAL),
    line("snmp_socket", SNMP),
    line("enable_traps", SNMP),
    line("enable_snmp_vrrp", SNMP),
    line("enable_snmp_keepalived", SNMP),
    line("enable_snmp_rfc", SNMP),
    line("enable_snmp_rfcv2", SNMP),
    line("enable_snmp_rfcv3", SNMP),
    line("enable_snmp_checker", SNMP),
    line("enable_dbus", DBUS),
    line("dbus_service_name", DBUS),
    line("vrrp_netlink_cmd_rcv_bufs", NETLINK_BUFS),
    line("vrrp_netlink_cmd_rcv_bufs_force", NETLINK_BUFS),
    line("vrrp_netlink_monitor_rcv_bufs", NETLINK_BUFS),
    line("vrrp_netlink_monitor_rcv_bufs_force", NETLINK_BUFS),
    line("process_monitor_rcv_bufs", NETLINK_BUFS),
    line("process_monitor_rcv_bufs_force", NETLINK_BUFS),
    line("lvs_netlink_cmd_rcv_bufs", LVS_GLOBAL),
    line("lvs_netlink_cmd_rcv_bufs_force", LVS_GLOBAL),
    line("lvs_netlink_monitor_rcv_bufs", LVS_GLOBAL),
    line("lvs_netlink_monitor_rcv_bufs_force", LVS_GLOBAL),
    line("vrrp_rx_bufs_policy", NETLINK_BUFS),
    line("vrrp_rx_bufs_multiplier", NETLINK_BUFS),
    line(
        "vmac_prefix",
        Warned("vrrpd names a VMAC vrrp.VRID unless use_vmac names it"),
    ),
    line(
        "vmac_addr_prefix",
        Warned("vrrpd makes no VMAC for addresses on other interfaces (use_vmac_addr)"),
    ),
    line(
        "umask",
        Warned("vrrpd creates its files with its own modes (0600)"),
    ),
    line(
        "random_seed",
        Warned("vrrpd's ${_RANDOM} is not seeded by the config (keepalived ignores it there too)"),
    ),
    line("reload_check_config", RELOAD),
    line("reload_time_file", RELOAD),
    line("reload_repeat", RELOAD),
    line("reload_file", RELOAD),
    line("include_check", Acted),
    line("config_save_dir", RELOAD),
    line("tmp_config_directory", RELOAD),
    line(
        "data_use_instance",
        Warned("vrrpd names its dump file with --dump-file"),
    ),
    // vrrpd's own, in keepalived releases after 2.2.7 (not in 2.2.7's parser).
    line("v3_checksum_as_v2", Acted),
];

pub const VRRP_INSTANCE: &[Keyword] = &[
    line("state", Acted),
    line("interface", Acted),
    line("virtual_router_id", Acted),
    line("priority", Acted),
    line("advert_int", Acted),
    line("version", Acted),
    line("native_ipv6", Acted),
    line("mcast_src_ip", Acted),
    line("unicast_src_ip", Acted),
    block("unicast_peer", Acted),
    block("authentication", Acted),
    block("virtual_ipaddress", Acted),
    block("virtual_ipaddress_excluded", Acted),
    block("track_interface", Acted),
    block("track_script", Acted),
    line("dont_track_primary", Acted),
    line("preempt", Acted),
    line("nopreempt", Acted),
    line("preempt_delay", Acted),
    line("notify_master", Acted),
    line("notify_backup", Acted),
    line("notify_fault", Acted),
    line("notify_stop", Acted),
    line("notify", Acted),
    line("garp_master_delay", Acted),
    line("garp_master_repeat", Acted),
    line("garp_master_refresh", Acted),
    line("garp_master_refresh_repeat", Acted),
    line("v3_checksum_as_v2", Acted),
    block("track_file", Acted),
    block("track_process", Acted),
    block(
        "track_bfd",
        Warned("vrrpd has no BFD: instances ignore track_bfd"),
    ),
    line("use_vmac", Acted),
    line(
        "use_vmac_addr",
        Warned(
            "vrrpd makes a VMAC for the instance's interface only: VIPs with another dev go there as they are",
        ),
    ),
    line("vmac_xmit_base", Acted),
    line(
        "use_ipvlan",
        Warned("vrrpd creates no ipvlan interface: the VIPs go on the instance's interface"),
    ),
    line("vrf", Warned("vrrpd runs its instances in the default VRF")),
    line("unicast_fault_no_peer", Acted),
    line("check_unicast_src", Acted),
    line(
        "old_unicast_checksum",
        Warned("vrrpd sends RFC 5798's checksum and accepts both forms"),
    ),
    line("unicast_ttl", Acted),
    line(
        "mcast_dst_ip",
        Warned("vrrpd sends to the global multicast group (vrrp_mcast_group4/6)"),
    ),
    line(
        "track_src_ip",
        Warned("vrrpd does not track the source address"),
    ),
    line("promote_secondaries", Acted),
    line(
        "linkbeat_use_polling",
        Refused("keepalived 2.2.7 refuses it too (deprecated): use the linkbeat_interfaces block"),
    ),
    block("virtual_routes", Acted),
    block("virtual_rules", Acted),
    line("accept", Acted),
    line("no_accept", Acted),
    line(
        "skip_check_adv_addr",
        Warned(
            "vrrpd checks every advert's address list, and reports a difference without dropping the advert (strict mode drops it)",
        ),
    ),
    line(
        "strict_mode",
        Warned(
            "of strict mode vrrpd applies its config checks, drops adverts with another address list and drops traffic to VIPs not accepted (nftables table inet vrrpd); it adds no rule of its own for VRRP",
        ),
    ),
    line("debug", Warned("vrrpd's log level is set with --log or -D")),
    line(
        "notify_deleted",
        Warned("vrrpd runs notify_stop when an instance is removed by a reload"),
    ),
    line("notify_master_rx_lower_pri", Acted),
    line("smtp_alert", EMAIL),
    line(
        "notify_priority_changes",
        Warned(
            "vrrpd logs priority changes (`Changing effective priority`) and writes no FIFO line for them",
        ),
    ),
    line(
        "lvs_sync_daemon_interface",
        Refused("keepalived 2.2.7 refuses it too (deprecated): use lvs_sync_daemon in global_defs"),
    ),
    line("garp_lower_prio_delay", Acted),
    line("garp_lower_prio_repeat", Acted),
    line("down_timer_adverts", Acted),
    line(
        "garp_extra_if",
        Warned("vrrpd sends gratuitous ARPs on the instance's interface only"),
    ),
    line(
        "vmac_garp_intvl",
        Refused("keepalived 2.2.7 refuses it too (deprecated): use garp_extra_if"),
    ),
    line(
        "lower_prio_no_advert",
        Warned(
            "a vrrpd master answers a lower-priority advert at once (at most once per quarter interval)",
        ),
    ),
    line(
        "higher_prio_send_advert",
        Warned(
            "a vrrpd master that hears a higher priority becomes backup without sending an advert",
        ),
    ),
    line("kernel_rx_buf_size", NETLINK_BUFS),
];

pub const AUTHENTICATION: &[Keyword] = &[line("auth_type", Acted), line("auth_pass", Acted)];

pub const VRRP_SYNC_GROUP: &[Keyword] = &[
    block("group", Acted),
    block("track_interface", Acted),
    block("track_script", Acted),
    line("notify_master", Acted),
    line("notify_backup", Acted),
    line("notify_fault", Acted),
    line("notify_stop", Acted),
    line("notify", Acted),
    line("sync_group_tracking_weight", Acted),
    block("track_file", Acted),
    block("track_process", Acted),
    block(
        "track_bfd",
        Warned("vrrpd has no BFD: the group ignores track_bfd"),
    ),
    line("smtp_alert", EMAIL),
    line(
        "global_tracking",
        Refused("keepalived 2.2.7 refuses it too (deprecated): use sync_group_tracking_weight"),
    ),
    line(
        "notify_priority_changes",
        Warned("vrrpd logs priority changes and writes no FIFO line for them"),
    ),
];

pub const VRRP_SCRIPT: &[Keyword] = &[
    line("script", Acted),
    line("interval", Acted),
    line("timeout", Acted),
    line("weight", Acted),
    line("rise", Acted),
    line("fall", Acted),
    line("user", Acted),
    line("init_fail", Acted),
];

/// The keywords of blocks whose block-level disposition says what happens to them: checked
/// for their names, not acted on.
const CHECKED: Disposition = Acted;

pub const VRRP_TRACK_PROCESS: &[Keyword] = &[
    line("process", CHECKED),
    line("param_match", CHECKED),
    line("weight", CHECKED),
    line("quorum", CHECKED),
    line("quorum_max", CHECKED),
    line("delay", CHECKED),
    line("terminate_delay", CHECKED),
    line("fork_delay", CHECKED),
    line("full_command", CHECKED),
];

pub const TRACK_FILE: &[Keyword] = &[
    line("file", Acted),
    line("weight", Acted),
    line("init_file", Acted),
];

pub const GARP_GROUP: &[Keyword] = &[
    line("garp_interval", CHECKED),
    line("gna_interval", CHECKED),
    line("interface", CHECKED),
    block("interfaces", CHECKED),
];

pub const BFD_INSTANCE: &[Keyword] = &[
    line("source_ip", CHECKED),
    line("neighbor_ip", CHECKED),
    line("neighbour_ip", CHECKED),
    line("min_rx", CHECKED),
    line("min_tx", CHECKED),
    line("idle_tx", CHECKED),
    line("multiplier", CHECKED),
    line("passive", CHECKED),
    line("ttl", CHECKED),
    line("hoplimit", CHECKED),
    line("max_hops", CHECKED),
    line("weight", CHECKED),
    line("vrrp", CHECKED),
    line("checker", CHECKED),
];

pub const TRACK_GROUP: &[Keyword] = &[block("group", CHECKED)];

/// keepalived 2.2.7's own keyword list, from its parsers (keepalived/vrrp/vrrp_parser.c,
/// core/global_parser.c, check/check_parser.c and the checkers', bfd/bfd_parser.c): one
/// `context<TAB>keyword<TAB>line|block` per line.
pub const KEEPALIVED_2_2_7: &str = include_str!("keywords-2.2.7.tsv");

/// LVS: the keywords of the block at `path` (`virtual_server/real_server/HTTP_GET`), for their
/// names only (the blocks are skipped): keepalived's list itself. None: not an LVS block.
pub fn lvs_keywords(path: &str) -> Option<&'static [&'static str]> {
    static LVS: std::sync::LazyLock<std::collections::BTreeMap<&str, Vec<&str>>> =
        std::sync::LazyLock::new(|| {
            let mut m: std::collections::BTreeMap<&str, Vec<&str>> =
                std::collections::BTreeMap::new();
            for line in KEEPALIVED_2_2_7.lines().skip(1) {
                let mut f = line.split('\t');
                if let (Some(context), Some(keyword)) = (f.next(), f.next())
                    && (context == "SSL" || context.starts_with("virtual_server"))
                {
                    m.entry(context).or_default().push(keyword);
                }
            }
            m
        });
    LVS.get(path).map(Vec::as_slice)
}

/// The table of a block, by the name of the block's keyword.
pub fn table(context: &str) -> Option<&'static [Keyword]> {
    Some(match context {
        "root" => ROOT,
        "global_defs" => GLOBAL_DEFS,
        "vrrp_instance" => VRRP_INSTANCE,
        "authentication" => AUTHENTICATION,
        "vrrp_sync_group" => VRRP_SYNC_GROUP,
        "vrrp_script" => VRRP_SCRIPT,
        "vrrp_track_process" => VRRP_TRACK_PROCESS,
        "track_file" | "vrrp_track_file" => TRACK_FILE,
        "garp_group" => GARP_GROUP,
        "bfd_instance" => BFD_INSTANCE,
        "track_group" => TRACK_GROUP,
        _ => return None,
    })
}

pub fn find(table: &[Keyword], name: &str) -> Option<Keyword> {
    table.iter().copied().find(|k| k.name == name)
}
