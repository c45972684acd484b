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
}

pub fn main(cmd: StoreCmd) -> ExitCode {
    let result = match cmd {
        StoreCmd::Usage { dir, json } => usage(&dir, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("heatnet store: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn usage(dir: &Path, json: bool) -> anyhow::Result<()> {
    let (kind, identity) = Store::owner_of(dir).with_context(|| {
        format!(
            "{} holds no heatnet store (no marker file): give the data directory of a gateway, the optimizer or the simulator",
            dir.display()
        )
    })?;
    let began = std::time::Instant::now();
    let store = Store::open(
        dir,
        &StoreConfig {
            kind: kind.clone(),
            identity: identity.clone(),
            cache_bytes: 256 << 20,
        },
    )?;
    let opened_s = began.elapsed().as_secs_f64();
    let mut rows = store.usage()?;
    rows.sort_by_key(|r| std::cmp::Reverse(r.key_bytes + r.value_bytes));
    let live: u64 = rows.iter().map(|r| r.key_bytes + r.value_bytes).sum();
    let files = dir_bytes(dir)?;
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

/// Bytes of the files under `dir`.
fn dir_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}
