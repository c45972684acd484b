//! The optimizer's Prometheus gauges, read at scrape time.

use std::sync::{Arc, Weak};

use store::Store;

use crate::core::Core;

/// Registers the optimizer's gauges (the first optimizer of a process wins).
pub fn register(store: &Store, core: &Arc<Core>) {
    let s = store.clone();
    observe::gauge_fn(
        "heatnet.store.size_bytes",
        "size of the sled store on disk, bytes",
        move || Some(s.size_on_disk() as f64),
    );
    let network = |core: &Weak<Core>| core.upgrade().and_then(|c| c.network().ok());
    let c: Weak<Core> = Arc::downgrade(core);
    observe::gauge_fn(
        "heatnet.optimizer.sessions_open",
        "gateways with an open session stream",
        move || network(&c).map(|n| n.gateways.iter().filter(|g| g.online).count() as f64),
    );
    let c: Weak<Core> = Arc::downgrade(core);
    observe::gauge_fn(
        "heatnet.optimizer.gateways_known",
        "gateways that ever registered",
        move || network(&c).map(|n| n.gateways.len() as f64),
    );
    let c: Weak<Core> = Arc::downgrade(core);
    observe::gauge_fn(
        "heatnet.optimizer.active_alarms",
        "alarms raised or acknowledged, not cleared",
        move || network(&c).map(|n| n.active_alarms as f64),
    );
}
