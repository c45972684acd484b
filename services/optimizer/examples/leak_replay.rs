//! Replays an optimizer's stored telemetry through the leak detector and
//! prints every leak it raises, locates and clears: how the leak survey's
//! numbers in `docs/alarms.md` were taken from season runs.
//!
//! ```sh
//! cargo run --release -p optimizer --example leak_replay -- \
//!     DIR/runs/optimizer/optimizer DIR/network.json [FROM_MS TO_MS]
//! ```
//!
//! The store is opened as the optimizer opens it (copy it first if the run
//! may still be going); the network is the `network.json` a season run
//! writes next to its report. Snapshots are fed in network-time order, each
//! node's plant or substation kind taken from the network. With
//! `LEAK_REPLAY_WITHHOLD_ALL=1` every location is withheld, which prints the
//! survey's mark and noise floor for every leak.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Context as _;
use model::{Network, NodeKind};
use optimizer::detect::{Layout, LeakConfig, LeakDetector, LeakEvent};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [store_dir, network, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: leak_replay STORE_DIR NETWORK_JSON [FROM_MS TO_MS]");
    };
    let (from_ms, to_ms) = match rest {
        [] => (i64::MIN, i64::MAX),
        [f, t] => (
            f.parse().context("FROM_MS: Unix milliseconds")?,
            t.parse().context("TO_MS: Unix milliseconds")?,
        ),
        _ => anyhow::bail!("give both FROM_MS and TO_MS, or neither"),
    };
    let text = std::fs::read_to_string(network).with_context(|| format!("reading {network}"))?;
    let net = Network::from_json(&text).with_context(|| format!("parsing {network}"))?;
    let plants: BTreeSet<String> = net.plants.iter().map(|p| p.id.to_string()).collect();
    let subs: BTreeSet<String> = net.substations.iter().map(|s| s.id.to_string()).collect();
    if !Path::new(store_dir).join("db").is_file() {
        anyhow::bail!(
            "no optimizer store in {store_dir} (a season run keeps it in OUT/runs/optimizer/optimizer)"
        );
    }
    let store = store::Store::open(
        Path::new(store_dir),
        &store::StoreConfig {
            kind: "optimizer".into(),
            identity: "central".into(),
            cache_bytes: 64 << 20,
            ..Default::default()
        },
    )
    .with_context(|| format!("opening the optimizer's store in {store_dir}"))?;
    let table = store.table("telemetry")?;
    let mut snaps = Vec::new();
    for entry in table.scan_prefix(b"b/") {
        let (_, v) = entry?;
        for s in proto::decode_batch(&v)?.snapshots {
            if s.time_ms < from_ms || s.time_ms > to_ms {
                continue;
            }
            let id = s.actor_id.to_string();
            let kind = if plants.contains(&id) {
                NodeKind::Plant
            } else if subs.contains(&id) {
                NodeKind::Substation
            } else {
                continue;
            };
            snaps.push((s.time_ms, kind == NodeKind::Plant, id, kind, s));
        }
    }
    // Network time, substations before plants at the same instant (a plant's
    // sample is what the detector evaluates on).
    snaps.sort_by(|x, y| (x.0, x.1, &x.2).cmp(&(y.0, y.1, &y.2)));
    let mut cfg = LeakConfig::default();
    if std::env::var("LEAK_REPLAY_WITHHOLD_ALL").is_ok_and(|v| v == "1") {
        cfg.locate_margin = f64::INFINITY;
    }
    let mut det = LeakDetector::new(cfg, Some(Layout::of(&net)));
    println!(
        "{} snapshots of {} plants and {} substations",
        snaps.len(),
        plants.len(),
        subs.len()
    );
    for (t, _, _, kind, s) in &snaps {
        match det.observe(&s.actor_id, *kind, *t, &s.readings) {
            Some(LeakEvent::Raise {
                network_ms,
                leak_kg_s,
                section,
                withheld,
                locating,
            }) => println!(
                "raised at {network_ms}: {leak_kg_s:.2} kg/s\n  section {section:?}\n  withheld {withheld:?}\n  locating {locating:?}"
            ),
            Some(LeakEvent::Located {
                network_ms,
                section,
                withheld,
                ..
            }) => {
                println!("located at {network_ms}\n  section {section:?}\n  withheld {withheld:?}")
            }
            Some(LeakEvent::Clear { network_ms }) => println!("cleared at {network_ms}"),
            None => {}
        }
    }
    Ok(())
}
