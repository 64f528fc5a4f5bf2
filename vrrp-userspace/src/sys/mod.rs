//! What touches the kernel, other than the eBPF data path: rtnetlink (`netlink`), the raw VRRP
//! sockets (`socket`), gratuitous ARP / NA (`announce`), the real-time advert thread
//! (`advert_thread`), script execution (`scripts`), capabilities (`caps`), the cgroup's CPU
//! accounting (`cpu`), the clock (`clock`), ICMP echo for the diagnosis (`ping`), signals (`signals`), files
//! others can read (`files`) and the named network namespace it runs in (`netns`).

pub mod advert_thread;
pub mod announce;
pub mod caps;
pub mod clock;
pub mod cpu;
pub mod files;
pub mod netlink;
pub mod netns;
pub mod nft;
pub mod ping;
pub mod scripts;
pub mod signals;
pub mod socket;
pub mod track_file;
pub mod track_process;
