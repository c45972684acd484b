//! `heatnet store usage DIR`: what a process's sled store holds, by table and
//! key prefix, against the bytes it takes on disk (sled 0.34 reuses the space
//! of removed entries only slowly: the gap is its overhead).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use store::{PrefixUsage, Store, StoreConfig};

#[derive(Subcommand, Clone, Debug)]
pub enum StoreCmd {
    /// Entries and bytes by table and key prefix, and the size on disk. The
    /// store's process must be stopped (sled locks its directory).
    Usage {
        /// The store's directory (e.g. heatnet-data/optimizer).
        dir: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Rewrite the store into fresh files holding only its live entries and
    /// swap them in (sled reuses the space of pruned data slowly). The
    /// store's process must be stopped; free disk for the live data is needed.
    Compact {
        /// The store's directory (e.g. heatnet-data/optimizer).
        dir: PathBuf,
    },
}

pub fn main(cmd: StoreCmd) -> ExitCode {
    let result = match cmd {
        StoreCmd::Usage { dir, json } => usage(&dir, json),
        StoreCmd::Compact { dir } => compact(&dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("heatnet store: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The configuration that opens the store in `dir` as its owner.
fn owner_config(dir: &Path) -> anyhow::Result<StoreConfig> {
    let (kind, identity) = Store::owner_of(dir).with_context(|| {
        format!(
            "{} holds no heatnet store (no marker file): give the data directory of a gateway, the optimizer or the simulator",
            dir.display()
        )
    })?;
    Ok(StoreConfig {
        kind,
        identity,
        cache_bytes: 256 << 20,
        ..Default::default()
    })
}

fn compact(dir: &Path) -> anyhow::Result<()> {
    let cfg = owner_config(dir)?;
    let began = std::time::Instant::now();
    let mut last = std::time::Instant::now();
    println!(
        "compacting the store of {} {:?} in {}",
        cfg.kind,
        cfg.identity,
        dir.display()
    );
    let c = store::compact(dir, &cfg, |entries| {
        if last.elapsed().as_secs() >= 10 {
            last = std::time::Instant::now();
            println!(
                "  {entries} entries copied ({:.0} s)",
                began.elapsed().as_secs_f64()
            );
        }
    })?;
    let mb = |b: u64| b as f64 / 1e6;
    println!(
        "{} entries, {:.1} MB live: files {:.1} MB → {:.1} MB in {:.0} s",
        c.entries,
        mb(c.live_bytes),
        mb(c.files_before),
        mb(c.files_after),
        began.elapsed().as_secs_f64()
    );
    Ok(())
}

fn usage(dir: &Path, json: bool) -> anyhow::Result<()> {
    let cfg = owner_config(dir)?;
    let (kind, identity) = (cfg.kind.clone(), cfg.identity.clone());
    let began = std::time::Instant::now();
    let store = Store::open(dir, &cfg)?;
    let opened_s = began.elapsed().as_secs_f64();
    let mut rows = store.usage()?;
    rows.sort_by_key(|r| std::cmp::Reverse(r.key_bytes + r.value_bytes));
    let live: u64 = rows.iter().map(|r| r.key_bytes + r.value_bytes).sum();
    let files = store::dir_bytes(dir).with_context(|| format!("reading {}", dir.display()))?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "dir": dir,
                "kind": kind,
                "identity": identity,
                "live_bytes": live,
                "files_bytes": files,
                "sled_size_on_disk_bytes": store.size_on_disk(),
                "prefixes": rows,
            }))?
        );
        return Ok(());
    }
    println!(
        "{kind} {identity:?} in {} (opened in {opened_s:.1} s, read in {:.1} s)",
        dir.display(),
        began.elapsed().as_secs_f64() - opened_s
    );
    println!(
        "{:<24} {:<28} {:>12} {:>12} {:>12}",
        "table", "key prefix", "entries", "MB", "B/entry"
    );
    for r in &rows {
        print_row(r);
    }
    let mb = |b: u64| b as f64 / 1e6;
    println!(
        "live data {:.1} MB; files {:.1} MB ({:.1}× the live data)",
        mb(live),
        mb(files),
        files as f64 / (live.max(1)) as f64
    );
    Ok(())
}

fn print_row(r: &PrefixUsage) {
    let bytes = r.key_bytes + r.value_bytes;
    println!(
        "{:<24} {:<28} {:>12} {:>12.1} {:>12.0}",
        r.table,
        r.prefix,
        r.entries,
        bytes as f64 / 1e6,
        bytes as f64 / r.entries.max(1) as f64
    );
}
