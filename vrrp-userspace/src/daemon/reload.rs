//! SIGHUP: re-read the config, resolve it, and let the router compute what is kept, changed,
//! removed and added (by name and by interface, family and VRID). A config that does not load
//! is refused whole: the running one stays.

use tracing::{error, info, warn};

use super::Daemon;
use crate::{config, protocol::router::Input, sys::clock};

impl Daemon {
    pub(super) async fn reload(&mut self) {
        info!("SIGHUP: reloading {}", self.opts.config.display());
        let (config, diags) = match config::load_checked(&self.opts.config, &self.opts.load) {
            Ok(c) => c,
            Err(e) => {
                error!("reload refused, keeping the running config:\n{e}");
                return;
            }
        };
        for d in &diags.0 {
            warn!("{d}");
        }
        let plan = match self.plan(&config, false).await {
            Ok(p) => p,
            Err(e) => {
                error!("reload refused, keeping the running config: {e}");
                return;
            }
        };
        self.config = config;
        self.trackers
            .sync(&plan, &self.config, &self.io.netlink, &self.track_tx);
        self.handle(clock::now(), Input::Configure(plan)).await;
        info!(instances = self.router.len(), "reload done");
    }
}
