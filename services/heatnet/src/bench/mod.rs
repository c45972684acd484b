//! Benchmarks on the real optimizer process: `heatnet bench ingest` and
//! `heatnet bench fanout`. Both start a real optimizer (`heatnet optimizer`, as
//! `heatnet up` does) on loopback and drive it with synthetic gateways that
//! speak the real agent protocol (Register, then the Session stream).
//!
//! Shared here: the optimizer child process, synthetic gateway descriptors and
//! readings, percentiles and the open-files limit.

pub mod fanout;
pub mod ingest;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use proto::v1;
use tonic::transport::Channel;

/// A real optimizer process on loopback, stopped (SIGINT, then SIGKILL) on drop.
pub struct OptimizerProc {
    child: Child,
    pub addr: String,
    pub log: PathBuf,
}

impl OptimizerProc {
    /// Starts `<exe> optimizer` with an empty data directory `dir/optimizer`
    /// on `127.0.0.1:port`; waits until it accepts connections.
    pub async fn start(
        exe: &Path,
        dir: &Path,
        port: u16,
        heartbeat_timeout_ms: u64,
    ) -> anyhow::Result<Self> {
        let data_dir = dir.join("optimizer");
        let _ = std::fs::remove_dir_all(&data_dir);
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let addr = format!("127.0.0.1:{port}");
        let log = dir.join("optimizer.log");
        let out =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(exe)
            .arg("optimizer")
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--listen", &addr])
            .args(["--heartbeat-timeout-ms", &heartbeat_timeout_ms.to_string()])
            .env_remove("HEATNET_OTLP_ENDPOINT")
            .env_remove("HEATNET_METRICS_LISTEN")
            .stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(out))
            .spawn()
            .with_context(|| format!("starting {} optimizer", exe.display()))?;
        let mut proc = Self { child, addr, log };
        let started = Instant::now();
        loop {
            if tokio::net::TcpStream::connect(&proc.addr).await.is_ok() {
                return Ok(proc);
            }
            if let Ok(Some(status)) = proc.child.try_wait() {
                anyhow::bail!(
                    "the optimizer exited ({status}) before serving; see {}",
                    proc.log.display()
                );
            }
            if started.elapsed() > Duration::from_secs(30) {
                anyhow::bail!(
                    "the optimizer did not open {} within 30 s; see {}",
                    proc.addr,
                    proc.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for OptimizerProc {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGINT);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Raises the soft open-files limit towards `want` (at most the hard limit);
/// returns the soft limit in force. Children started afterwards inherit it.
pub fn raise_nofile(want: u64) -> anyhow::Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).context("reading RLIMIT_NOFILE")?;
    if soft >= want {
        return Ok(soft);
    }
    let new = want.min(hard);
    setrlimit(Resource::RLIMIT_NOFILE, new, hard).context("raising RLIMIT_NOFILE")?;
    Ok(new)
}

/// `n` gRPC channels to `addr`, each its own HTTP/2 (TCP) connection.
pub async fn channels(addr: &str, n: usize) -> anyhow::Result<Vec<Channel>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(
            observe::grpc::endpoint(addr)?
                .connect()
                .await
                .with_context(|| format!("connecting to the optimizer at {addr}"))?,
        );
    }
    Ok(out)
}

/// A synthetic substation gateway: one substation actor and its buildings.
pub fn substation_actors(sub: &str, group: &str, buildings: usize) -> Vec<v1::ActorDescriptor> {
    let (lo, hi) = model::network::SECONDARY_SUPPLY_LIMITS_C;
    let mut out = vec![v1::ActorDescriptor {
        actor_id: sub.to_string(),
        kind: v1::NodeKind::Substation as i32,
        parent_id: String::new(),
        group: group.to_string(),
        min_supply_temp_c: lo,
        max_supply_temp_c: hi,
        default_curve: Some(curve(0.0)),
    }];
    for b in 0..buildings {
        out.push(v1::ActorDescriptor {
            actor_id: format!("{sub}-b{:02}", b + 1),
            kind: v1::NodeKind::Building as i32,
            parent_id: sub.to_string(),
            group: String::new(),
            min_supply_temp_c: 0.0,
            max_supply_temp_c: 0.0,
            default_curve: None,
        });
    }
    out
}

/// A valid secondary supply curve (the demo's shape), shifted by `shift_k`.
pub fn curve(shift_k: f64) -> v1::SupplyCurve {
    let (lo, hi) = model::network::SECONDARY_SUPPLY_LIMITS_C;
    v1::SupplyCurve {
        points: [(-20.0, 75.0), (0.0, 60.0), (15.0, 40.0)]
            .into_iter()
            .map(|(o, s)| v1::CurvePoint {
                outdoor_temp_c: o,
                supply_temp_c: s + shift_k,
            })
            .collect(),
        min_supply_temp_c: lo,
        max_supply_temp_c: hi,
    }
}

/// What a substation actor reports each scan (13 readings).
const SUBSTATION_READINGS: [(v1::Metric, f64); 13] = [
    (v1::Metric::SupplyTempC, 95.0),
    (v1::Metric::ReturnTempC, 50.0),
    (v1::Metric::FlowKgS, 3.2),
    (v1::Metric::HeatW, 600_000.0),
    (v1::Metric::SecondarySupplyTempC, 58.0),
    (v1::Metric::SecondaryReturnTempC, 42.0),
    (v1::Metric::SecondaryFlowKgS, 9.0),
    (v1::Metric::OutdoorTempC, -3.0),
    (v1::Metric::ValvePosition, 0.6),
    (v1::Metric::SetpointC, 58.0),
    (v1::Metric::DiffPressurePa, 120_000.0),
    (v1::Metric::PumpRunning, 1.0),
    (v1::Metric::SecondaryDiffPressurePa, 40_000.0),
];

/// What a building actor reports each scan (4 readings).
const BUILDING_READINGS: [(v1::Metric, f64); 4] = [
    (v1::Metric::RoomTempC, 20.5),
    (v1::Metric::BuildingFlowKgS, 0.45),
    (v1::Metric::BuildingReturnTempC, 41.0),
    (v1::Metric::ValvePosition, 0.5),
];

/// A batch of `scans` scans of every actor of a synthetic substation gateway,
/// values varied by `seq` so no two batches encode alike.
pub fn telemetry_batch(
    actors: &[v1::ActorDescriptor],
    seq: u64,
    scans: usize,
    time_ms: i64,
) -> v1::TelemetryBatch {
    // Below 0.1 so fractions (valve positions) stay in 0..1.
    let wiggle = (seq % 97) as f64 * 0.001;
    let mut snapshots = Vec::with_capacity(actors.len() * scans);
    for scan in 0..scans {
        for a in actors {
            let readings: &[(v1::Metric, f64)] = if a.kind == v1::NodeKind::Substation as i32 {
                &SUBSTATION_READINGS
            } else {
                &BUILDING_READINGS
            };
            snapshots.push(v1::ActorSnapshot {
                actor_id: a.actor_id.clone(),
                time_ms: time_ms + scan as i64 * 1000,
                mode: v1::Mode::Optimizer as i32,
                readings: readings
                    .iter()
                    .map(|&(m, v)| v1::Reading {
                        metric: m as i32,
                        value: if m == v1::Metric::PumpRunning {
                            v
                        } else {
                            v + wiggle
                        },
                    })
                    .collect(),
            });
        }
    }
    v1::TelemetryBatch { seq, snapshots }
}

/// Readings in a batch.
pub fn samples(batch: &v1::TelemetryBatch) -> usize {
    batch.snapshots.iter().map(|s| s.readings.len()).sum()
}

/// The `p`-quantile (0..=1) of sorted values, nearest rank; 0 when empty.
pub fn quantile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Median of values (sorted here); 0 when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    quantile(&v, 0.5)
}

/// The path of this executable, to start `heatnet optimizer` from.
pub fn default_exe() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("locating the heatnet executable")
}

/// Progress on stderr (the table or JSON goes to stdout).
pub fn progress(msg: impl std::fmt::Display) {
    eprintln!("  {msg}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert_eq!(quantile(&[7.0], 0.99), 7.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    }

    #[test]
    fn a_substation_batch_converts_and_counts_its_readings() {
        let actors = substation_actors("s0001", "g1", 20);
        assert_eq!(actors.len(), 21);
        let b = telemetry_batch(&actors, 3, 2, 1_700_000_000_000);
        // (13 + 20 × 4) readings per scan, two scans.
        assert_eq!(samples(&b), 2 * (13 + 80));
        let m = model::TelemetryBatch::try_from(&b).unwrap();
        assert_eq!(m.sample_count(), 186);
        assert_eq!(m.seq, 3);
        let c = proto::convert::supply_curve(
            "curve",
            Some(&curve(2.0)),
            model::network::SECONDARY_SUPPLY_LIMITS_C,
        );
        assert!(c.is_ok(), "{c:?}");
    }
}
