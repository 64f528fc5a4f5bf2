//! Time: the router owns the protocol's deadlines; this sleeps until the earliest of them (or
//! the next observation sample) and, before telling the router the time has come, drains the
//! ring, so that adverts that arrived while the daemon slept (and prove a master alive, by
//! their kernel stamps) are heard first.

use std::time::Duration;

use super::Daemon;
use crate::{protocol::router::Input, sys::clock, time::Instant, wire::record::WireRecord};

impl Daemon {
    /// How long the main loop may sleep from `now`.
    pub(super) fn sleep_until(&self, now: Instant) -> Duration {
        let next = [
            self.router.next_deadline(),
            Some(self.observe.next_wake(now, self.io.adverts.sending())),
            self.replan_at,
            self.delayed.as_ref().map(|(at, _)| *at),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now);
        next.since(now)
    }

    pub(super) async fn on_timer(&mut self, batch: &mut Vec<WireRecord>) {
        self.io.datapath.drain(batch, &mut self.observe.bad_records);
        self.on_records(batch).await;
        // A flooded interface's socket too: the master's advert may wait there.
        let waiting: Vec<_> = self.flood.waiting().collect();
        for a in waiting {
            self.on_fallback_advert(a).await;
        }
        self.handle(clock::now(), Input::Timer).await;
    }
}
