//! Adverts in: the XDP ring's records become one `RxAdvert` each, are noted by the
//! observation and streamed to subscribers, and (with elections from the wire, the default)
//! go to the router. With `--elections socket` the socket readers' adverts go there instead
//! (see `instances::read_socket`).

use super::{Daemon, Elections};
use crate::{
    northbound::control::stream_line,
    protocol::{event::RxAdvert, router::Input},
    sys::clock,
    wire::record::WireRecord,
};

impl Daemon {
    pub(super) async fn on_records(&mut self, batch: &mut Vec<WireRecord>) {
        let now = clock::now();
        for w in batch.drain(..) {
            let rx = RxAdvert::from_wire(&w);
            let ifname = self.io.datapath.ifname(w.ifindex).unwrap_or("?");
            self.observe.note_wire(&rx, ifname);
            if !self.subscribers.is_empty() {
                let line = stream_line(ifname, &w);
                // A subscriber that falls behind loses records; one that left is forgotten.
                self.subscribers.retain(|s| {
                    !matches!(
                        s.try_send(line.clone()),
                        Err(tokio::sync::mpsc::error::TrySendError::Closed(_))
                    )
                });
            }
            // A flooded interface's elections hear its socket instead (see `flood`).
            if self.flood.note_record(w.ifindex) && self.opts.elections == Elections::Wire {
                let at = clock::now();
                self.rx_latency.record(at.0.saturating_sub(w.ktime_ns));
                self.handle(at, Input::Advert(rx)).await;
            }
        }
        if self.opts.elections == Elections::Wire && self.flood.check_due(now) {
            self.check_flood(now);
        }
    }
}
