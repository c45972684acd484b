//! `heatnet season`: a heating season through the whole distributed stack,
//! twice on the same weather, forecast errors and faults: once with the
//! optimizer, once with the fixed weather-compensated curve most networks still
//! run. Each run is a real `heatnet up` (simulator, optimizer, one process per
//! gateway) on the simulator's lockstep clock; the scorecard comes from the
//! simulated truth (`GetScorecard`), the alarms from the optimizer. Writes
//! `report.json`, `report.md` and SVG plots into `--out`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use model::Network;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use proto::v1;
use proto::v1::control_room_service_client::ControlRoomServiceClient;
use proto::v1::simulator_service_client::SimulatorServiceClient;
use serde::{Deserialize, Serialize};
use serde_json::json;
use simulator::scenario::Scenario;
use tonic::transport::Channel;

/// The scenario shipped with `heatnet season`: a cold wave, a plant tripping
/// for a day, a leak, a stuck valve and a gateway crash, on `city`.
pub const DEFAULT_SCENARIO: &str = include_str!("../../../sim/simulator/scenarios/season.toml");
/// Liveness in a season run, real ms: 127 gateway processes, the simulator
/// and the optimizer share two cores flat out, and a scan can wait seconds for
/// a core; a tighter timeout turns that into storms of lost gateways and
/// local fallbacks that have nothing to do with the control being judged. A
/// crashed gateway is still found within this.
const SEASON_HEARTBEAT_TIMEOUT_MS: u64 = 15_000;
const SEASON_FALLBACK_AFTER_MS: u64 = 120_000;
/// A run whose network clock stands still this long (real time) has failed.
const STALL_LIMIT: Duration = Duration::from_secs(180);
const POLL: Duration = Duration::from_secs(2);
/// How often the progress shows the scorecard so far (real time).
const CARD_EVERY: Duration = Duration::from_secs(300);
/// After the clock stops, at most this long (real time) for the gateways to
/// deliver the telemetry still in their outboxes: the lockstep clock waits for
/// their actuator writes, not for their telemetry, and on the city the
/// optimizer falls hours of network time behind (its detectors then never see
/// the faults of the run's last hours).
const DRAIN_LIMIT: Duration = Duration::from_secs(900);
/// The drain is given up when the optimizer's oldest reading has not moved
/// for this long (a node that stays offline).
const DRAIN_STALL: Duration = Duration::from_secs(60);

#[derive(Args, Clone, Debug)]
pub struct SeasonArgs {
    /// Sample network (city, demo, ring) or a network file.
    #[arg(long, default_value = "city")]
    pub network: String,
    /// Scenario file (faults, weather, gateway crashes); default: the shipped
    /// season scenario for `city` (sim/simulator/scenarios/season.toml).
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Where the report goes; `heatnet up`'s dashboard shows
    /// `<data-dir>/season/report.json`.
    #[arg(long, default_value = "heatnet-data/season")]
    pub out: PathBuf,
    /// Length of the season, days.
    #[arg(long, default_value_t = 120.0)]
    pub days: f64,
    /// Start this many days after the network's own start (15 November for
    /// the samples): e.g. 45 for a run in the January cold. Scenario times
    /// count from the shifted start.
    #[arg(long, default_value_t = 0.0)]
    pub start_day: f64,
    /// Physics step of the simulator, network seconds; each step waits for
    /// every gateway (lockstep).
    #[arg(long, default_value_t = 300.0)]
    pub step_s: f64,
    /// First loopback port of the runs.
    #[arg(long, default_value_t = 23_000)]
    pub base_port: u16,
    /// Which runs: both (default), optimizer, or baseline.
    #[arg(long, value_enum, default_value_t = Runs::Both)]
    pub runs: Runs,
    /// Continue the runs in `--out` where they stopped (`--until-day`,
    /// Ctrl-C, a machine that went down) instead of starting them afresh:
    /// every process resumes from its own saved state, runs already finished
    /// are kept. The settings must be those the runs started with.
    #[arg(long)]
    pub resume: bool,
    /// End this sitting when the season reaches this day (counted from its
    /// start), leaving the run to be continued with `--resume`: a 120-day
    /// pair on `city` takes about 4.5 h on two cores.
    #[arg(long)]
    pub until_day: Option<f64>,
    /// Substations per gateway (`heatnet up --sites-per-gateway`): 1, an
    /// edge box at every substation, or runs of them on one gateway: far
    /// fewer processes, a faster season. A scenario's gateway crash then
    /// kills the gateway that hosts the named substation.
    #[arg(long, default_value_t = 1)]
    pub sites_per_gateway: usize,
    /// Free disk space under `--out`, GiB, below which a sitting is not
    /// started and a running one ends (resumable) while every store is
    /// whole: the processes' own stores stop writing at 256 MiB free. A
    /// `city` run's stores take about 0.2 GB a network day.
    #[arg(long, default_value_t = 2.0)]
    pub min_free_gib: f64,
}

/// Refuses to go on with less than `min_free_bytes` free on the disk of
/// `dir` (a disk whose free space cannot be read is not refused).
fn check_room(dir: &Path, min_free_bytes: u64) -> anyhow::Result<()> {
    match store::disk_free_bytes(dir) {
        Ok(free) if free < min_free_bytes => anyhow::bail!(
            "disk nearly full under {}: {:.2} GiB free, a season needs {:.2} GiB (--min-free-gib): free space, then continue with --resume",
            dir.display(),
            free as f64 / GIB,
            min_free_bytes as f64 / GIB
        ),
        _ => Ok(()),
    }
}

const GIB: f64 = (1u64 << 30) as f64;

/// Resolves with [`check_room`]'s refusal once the disk of `dir` has less
/// than `min_free_bytes` free; looks every few seconds.
async fn disk_fills(dir: &Path, min_free_bytes: u64) -> anyhow::Error {
    loop {
        if let Err(e) = check_room(dir, min_free_bytes) {
            return e;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Runs {
    Both,
    Optimizer,
    Baseline,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Optimizer,
    Baseline,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Optimizer => "optimizer",
            Mode::Baseline => "baseline",
        }
    }
    /// `heatnet up --optimizer-mode` value.
    fn optimizer_mode(self) -> &'static str {
        match self {
            Mode::Optimizer => "optimizing",
            Mode::Baseline => "fixed-curve",
        }
    }
}

/// One day of a run, from the simulated truth.
#[derive(Clone, Debug, Serialize)]
pub struct DayRow {
    pub day_start_ms: i64,
    pub outdoor_mean_c: f64,
    pub outdoor_min_c: f64,
    pub comfort_share: f64,
    pub min_room_temp_c: f64,
    pub mean_room_temp_c: f64,
    pub heat_produced_gj: f64,
    pub heat_cost_yuan: f64,
    pub peak_load_mw: f64,
    pub overheated_building_hours: f64,
}

/// How a fault of the scenario was met by the alarms.
#[derive(Clone, Debug, Serialize)]
pub struct FaultOutcome {
    pub kind: String,
    pub device: String,
    pub injected_at_ms: i64,
    pub cleared_at_ms: Option<i64>,
    /// The first alarm that answers the fault, if any.
    pub detected_by: Option<String>,
    /// Network minutes from the fault to that alarm.
    pub detected_after_min: Option<f64>,
    /// Gateway crashes: real seconds from the kill to the alarm (liveness is
    /// judged on real time, whatever the clock of the network).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detected_after_wall_s: Option<f64>,
    /// Pipe faults: the section the leak alarm named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub located_pipe: Option<String>,
    /// Pipe faults: pipes between the named section (or the nearest of its
    /// alternatives) and the faulty one; 0 is the right section.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub located_pipes_away: Option<usize>,
}

/// Pipes between two pipes of `net` (0: the same pipe, 1: they share a
/// junction), or `None` if either is unknown or they are not connected.
fn pipes_apart(net: &Network, a: &str, b: &str) -> Option<usize> {
    if a == b {
        return net.pipes.iter().any(|p| p.id.as_str() == a).then_some(0);
    }
    let ends = |id: &str| {
        net.pipes
            .iter()
            .find(|p| p.id.as_str() == id)
            .map(|p| [p.from.as_str(), p.to.as_str()])
    };
    let (from, to) = (ends(a)?, ends(b)?);
    // Breadth-first over junctions, from `a`'s ends: junction hops + 1.
    let mut dist: BTreeMap<&str, usize> = from.iter().map(|j| (*j, 0)).collect();
    let mut queue: std::collections::VecDeque<&str> = from.into_iter().collect();
    while let Some(j) = queue.pop_front() {
        let d = dist[j];
        if to.contains(&j) {
            return Some(d + 1);
        }
        for p in &net.pipes {
            let next = if p.from.as_str() == j {
                p.to.as_str()
            } else if p.to.as_str() == j {
                p.from.as_str()
            } else {
                continue;
            };
            if !dist.contains_key(next) {
                dist.insert(next, d + 1);
                queue.push_back(next);
            }
        }
    }
    None
}

/// A gateway killed by the season runner.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Crash {
    /// The gateway killed.
    pub gateway: String,
    /// The substation the scenario named, when another gateway hosts it
    /// (`--sites-per-gateway`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub named: Option<String>,
    /// Network time of the kill, Unix ms.
    pub at_ms: i64,
    /// Real time of the kill, Unix ms.
    pub killed_wall_ms: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub mode: Mode,
    pub wall_s: f64,
    pub steps: u64,
    pub network_days: f64,
    /// Network time over real time.
    pub realtime_factor: f64,
    pub comfort_share: f64,
    pub comfort_share_all: f64,
    pub exposed_flat_comfort_share: f64,
    pub overheated_building_hours: f64,
    pub overheated_share: f64,
    pub min_room_temp_c: f64,
    pub coldest_building: String,
    pub coldest_at_ms: i64,
    pub mean_room_temp_c: f64,
    pub heat_produced_gj: f64,
    pub heat_delivered_gj: f64,
    pub heat_lost_gj: f64,
    pub heat_cost_yuan: f64,
    pub peak_load_mw: f64,
    pub peak_at_ms: i64,
    pub plant_heat_gj: BTreeMap<String, f64>,
    pub worst_energy_residual: f64,
    pub alarms_by_kind: BTreeMap<String, usize>,
    pub faults: Vec<FaultOutcome>,
    pub gateway_crashes: Vec<Crash>,
    pub days: Vec<DayRow>,
}

/// Runs the season(s) and writes the report.
pub async fn run(args: SeasonArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.days > 0.0 && args.days <= 366.0,
        "--days {} is outside (0, 366]",
        args.days
    );
    anyhow::ensure!(
        (10.0..=3600.0).contains(&args.step_s),
        "--step-s {} is outside 10..3600",
        args.step_s
    );
    anyhow::ensure!(
        (0.0..=366.0).contains(&args.start_day),
        "--start-day {} is outside 0..366",
        args.start_day
    );
    anyhow::ensure!(
        args.min_free_gib.is_finite() && (0.0..=1e6).contains(&args.min_free_gib),
        "--min-free-gib {} is outside 0..1000000",
        args.min_free_gib
    );
    if let Some(d) = args.until_day {
        anyhow::ensure!(
            d > 0.0 && d <= args.days,
            "--until-day {d} is outside (0, {}] (the season's --days)",
            args.days
        );
    }
    let mut net = Network::load(&args.network)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    // Both runs play the same network file, its start shifted if asked.
    net.start_time_ms += (args.start_day * 86_400_000.0).round() as i64;
    let network_file = std::fs::canonicalize(&args.out)?.join("network.json");
    std::fs::write(&network_file, serde_json::to_vec_pretty(&net)?)
        .with_context(|| format!("writing {}", network_file.display()))?;
    let scenario_path = match &args.scenario {
        Some(p) => std::fs::canonicalize(p).with_context(|| format!("scenario {}", p.display()))?,
        None => {
            let p = args.out.join("scenario.toml");
            std::fs::write(&p, DEFAULT_SCENARIO)?;
            std::fs::canonicalize(&p)?
        }
    };
    let scenario = Scenario::load(&scenario_path)?;
    scenario
        .validate(&simulator::World::new(net.clone()))
        .with_context(|| format!("scenario {}", scenario_path.display()))?;
    let modes: Vec<Mode> = match args.runs {
        Runs::Both => vec![Mode::Optimizer, Mode::Baseline],
        Runs::Optimizer => vec![Mode::Optimizer],
        Runs::Baseline => vec![Mode::Baseline],
    };
    println!(
        "heatnet season: {} days of {} ({} substations) in {} s lockstep steps, scenario {:?}, runs: {}",
        args.days,
        net.name,
        net.substations.len(),
        args.step_s,
        scenario.name,
        modes
            .iter()
            .map(|m| m.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let scenario_toml = std::fs::read_to_string(&scenario_path)
        .with_context(|| format!("reading {}", scenario_path.display()))?;
    let mut reports = Vec::new();
    for mode in modes {
        let settings = RunSettings {
            network: net.name.clone(),
            start_ms: net.start_time_ms,
            stop_ms: net.start_time_ms + (args.days * 86_400_000.0).round() as i64,
            step_s: args.step_s,
            scenario_toml: scenario_toml.clone(),
            sites_per_gateway: args.sites_per_gateway,
        };
        let state_path = run_dir(&args, mode).join(RunState::FILE);
        let report_path = args.out.join(format!("{}.json", mode.name()));
        if args.resume
            && let Some(earlier) = RunState::read(&state_path)?
            && earlier.finished
            && earlier.settings == settings
            && report_path.exists()
        {
            println!(
                "  [{}] finished in an earlier sitting: {}",
                mode.name(),
                report_path.display()
            );
            continue;
        }
        let sitting = run_one(
            &args,
            &net,
            &network_file,
            &scenario,
            &scenario_path,
            settings,
            mode,
        )
        .await
        .with_context(|| format!("the {} run", mode.name()))?;
        match sitting {
            Sitting::Ended { day, state, so_far } => {
                println!(
                    "  [{}] sitting ended at day {day:.1} of {}: continue with the same command and --resume",
                    mode.name(),
                    args.days
                );
                state.write(&state_path)?;
                if let Some(report) = so_far {
                    std::fs::write(
                        so_far_path(&args, mode),
                        serde_json::to_vec_pretty(&report)?,
                    )?;
                    write_so_far(&args, &net, &scenario)?;
                }
                return Ok(());
            }
            Sitting::Finished { report, mut state } => {
                std::fs::write(&report_path, serde_json::to_vec_pretty(&report)?)?;
                state.finished = true;
                state.write(&state_path)?;
                // The whole run supersedes its report so far.
                let _ = std::fs::remove_file(so_far_path(&args, mode));
                reports.push(*report);
            }
        }
    }
    // Runs left from before (`--runs`, or finished in an earlier sitting)
    // complete the pair.
    let mut earlier = Vec::new();
    for mode in [Mode::Optimizer, Mode::Baseline] {
        if reports.iter().all(|r| r.mode != mode) {
            let path = args.out.join(format!("{}.json", mode.name()));
            if let Ok(bytes) = std::fs::read(&path)
                && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes)
            {
                println!(
                    "using the earlier {} run in {}",
                    mode.name(),
                    path.display()
                );
                earlier.push((mode, v));
            }
        }
    }
    write_report(&args, &net, &scenario, &reports, earlier)?;
    Ok(())
}

fn run_dir(args: &SeasonArgs, mode: Mode) -> PathBuf {
    args.out.join("runs").join(mode.name())
}

/// What a run must keep to be resumed: it is resumed only with these.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct RunSettings {
    network: String,
    start_ms: i64,
    stop_ms: i64,
    step_s: f64,
    scenario_toml: String,
    #[serde(default = "one")]
    sites_per_gateway: usize,
}

fn one() -> usize {
    1
}

impl RunSettings {
    /// What differs from `other`, for a refusal.
    fn differences(&self, other: &RunSettings) -> Vec<String> {
        let mut out = Vec::new();
        if self.network != other.network {
            out.push(format!(
                "network {:?} (now {:?})",
                self.network, other.network
            ));
        }
        if self.start_ms != other.start_ms {
            out.push(format!(
                "start {} (now {}): --start-day",
                self.start_ms, other.start_ms
            ));
        }
        if self.stop_ms != other.stop_ms {
            out.push(format!(
                "end {} (now {}): --days",
                self.stop_ms, other.stop_ms
            ));
        }
        if self.step_s != other.step_s {
            out.push(format!("--step-s {} (now {})", self.step_s, other.step_s));
        }
        if self.scenario_toml != other.scenario_toml {
            out.push("another scenario".into());
        }
        if self.sites_per_gateway != other.sites_per_gateway {
            out.push(format!(
                "--sites-per-gateway {} (now {})",
                self.sites_per_gateway, other.sites_per_gateway
            ));
        }
        out
    }
}

/// The season runner's own part of a run, in `runs/<mode>/driver.json`
/// (the simulator, the optimizer and the gateways keep theirs in their own
/// stores): written at the start, on every progress line, on every gateway it
/// kills and at the end of each sitting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct RunState {
    settings: RunSettings,
    /// Real seconds spent in the sittings before this one.
    wall_s: f64,
    /// Gateways killed so far (the scenario's crashes).
    crashes: Vec<Crash>,
    /// Sittings ended before the run's end.
    sittings_ended: u32,
    /// Steps the clock took in those sittings (each simulator counts its own).
    #[serde(default)]
    steps: u64,
    /// Steps taken so far in the sitting under way (added to `steps` when
    /// the next one starts: a sitting may end without a word, by Ctrl-C).
    #[serde(default)]
    sitting_steps: u64,
    finished: bool,
}

impl RunState {
    const FILE: &'static str = "driver.json";

    fn new(settings: RunSettings) -> Self {
        RunState {
            settings,
            wall_s: 0.0,
            crashes: Vec::new(),
            sittings_ended: 0,
            steps: 0,
            sitting_steps: 0,
            finished: false,
        }
    }

    fn read(path: &Path) -> anyhow::Result<Option<RunState>> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).with_context(|| {
                format!(
                    "{} is damaged: start the run afresh (without --resume)",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow::Error::from(e).context(format!("reading {}", path.display()))),
        }
    }

    /// Written whole to a temporary file, then renamed over the old one.
    fn write(&self, path: &Path) -> anyhow::Result<()> {
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// The scenario's crashes still to come: those not killed yet.
    fn crashes_due(&self, scheduled: &[(i64, String)]) -> Vec<(i64, String)> {
        scheduled
            .iter()
            .filter(|(due_ms, g)| {
                !self
                    .crashes
                    .iter()
                    .any(|c| c.named.as_ref().unwrap_or(&c.gateway) == g && c.at_ms >= *due_ms)
            })
            .cloned()
            .collect()
    }
}

/// How one sitting of a run ended.
enum Sitting {
    /// At `--until-day`, the run resumable; with its report so far.
    Ended {
        day: f64,
        state: RunState,
        so_far: Option<Box<RunReport>>,
    },
    Finished {
        report: Box<RunReport>,
        state: RunState,
    },
}

async fn connect(addr: &str) -> anyhow::Result<Channel> {
    Ok(observe::grpc::endpoint(addr)?
        .timeout(Duration::from_secs(20))
        .connect_lazy())
}

async fn run_one(
    args: &SeasonArgs,
    net: &Network,
    network_file: &Path,
    scenario: &Scenario,
    scenario_path: &Path,
    settings: RunSettings,
    mode: Mode,
) -> anyhow::Result<Sitting> {
    let dir = run_dir(args, mode);
    let state_path = dir.join(RunState::FILE);
    let resumed = match (args.resume, RunState::read(&state_path)?) {
        (true, Some(state)) => {
            let differences = state.settings.differences(&settings);
            anyhow::ensure!(
                differences.is_empty(),
                "the run in {} was started with {}: resume it with those settings, or start it afresh without --resume",
                dir.display(),
                differences.join(", ")
            );
            Some(state)
        }
        (true, None) if dir.exists() => anyhow::bail!(
            "{} holds a run without {} (not started by this heatnet, or damaged): it cannot be resumed; start it afresh without --resume",
            dir.display(),
            RunState::FILE
        ),
        _ => None,
    };
    let mut state = match resumed {
        Some(mut state) => {
            state.steps += std::mem::take(&mut state.sitting_steps);
            // Its pids are of processes long gone: no kill may read them.
            let _ = std::fs::remove_file(crate::layout::up_file(&dir));
            println!(
                "  [{}] resuming the run in {} ({} sittings so far, {:.0} s)",
                mode.name(),
                dir.display(),
                state.sittings_ended,
                state.wall_s
            );
            state
        }
        None => {
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("clearing {}", dir.display()))?;
            }
            std::fs::create_dir_all(&dir)?;
            RunState::new(settings)
        }
    };
    state.write(&state_path)?;
    let start_ms = net.start_time_ms;
    let stop_ms = state.settings.stop_ms;
    let sitting_stop_ms = args
        .until_day
        .map(|d| start_ms + (d * 86_400_000.0).round() as i64)
        .map_or(stop_ms, |t| t.min(stop_ms));
    let min_free_bytes = (args.min_free_gib * GIB) as u64;
    check_room(&dir, min_free_bytes)?;
    let exe = std::env::current_exe().context("locating the heatnet binary")?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("up.log"))?;
    let network_arg = network_file.display().to_string();
    let mut child = tokio::process::Command::new(&exe)
        .args([
            "up",
            "--network",
            &network_arg,
            "--data-dir",
            &dir.display().to_string(),
            "--base-port",
            &args.base_port.to_string(),
            "--lockstep",
            "--step-s",
            &args.step_s.to_string(),
            "--stop-at-ms",
            &sitting_stop_ms.to_string(),
            "--scenario",
            &scenario_path.display().to_string(),
            "--optimizer-mode",
            mode.optimizer_mode(),
            "--heartbeat-timeout-ms",
            &SEASON_HEARTBEAT_TIMEOUT_MS.to_string(),
            "--fallback-after-ms",
            &SEASON_FALLBACK_AFTER_MS.to_string(),
            "--sites-per-gateway",
            &args.sites_per_gateway.to_string(),
        ])
        .stdout(log.try_clone()?)
        .stderr(log)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting heatnet up")?;
    let up_pid = child.id().unwrap_or(0);
    // SIGTERM (or Ctrl-C) to this process alone must not orphan the stack:
    // it is stopped below as at the end of a sitting, its state saved for
    // `--resume` (found when a season killed with `pkill` left its run
    // holding the ports).
    let result = tokio::select! {
        r = drive(
            args,
            net,
            scenario,
            mode,
            &dir,
            (start_ms, sitting_stop_ms, stop_ms),
            &mut state,
            &mut child,
        ) => r,
        () = crate::shutdown_signal() => Err(anyhow::anyhow!(
            "interrupted: continue it with --resume"
        )),
        // Stopped while every store is whole (sled 0.34 does not survive
        // running out of space mid-write).
        e = disk_fills(&dir, min_free_bytes) => Err(e),
    };
    // Ctrl-C for the whole stack, then wait for it to save and stop.
    if up_pid != 0 {
        let _ = kill(Pid::from_raw(up_pid as i32), Signal::SIGINT);
    }
    if tokio::time::timeout(Duration::from_secs(90), child.wait())
        .await
        .is_err()
    {
        eprintln!(
            "heatnet season: the {} run did not stop within 90 s: killing it",
            mode.name()
        );
        let _ = child.kill().await;
    }
    Ok(match result? {
        DriveEnd::Stopped {
            report,
            finished: true,
        } => Sitting::Finished { report, state },
        end => {
            state.sittings_ended += 1;
            Sitting::Ended {
                day: (sitting_stop_ms - start_ms) as f64 / 86_400_000.0,
                state,
                so_far: match end {
                    DriveEnd::Stopped { report, .. } => Some(report),
                    DriveEnd::NoReport => None,
                },
            }
        }
    })
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    args: &SeasonArgs,
    net: &Network,
    scenario: &Scenario,
    mode: Mode,
    dir: &Path,
    (start_ms, sitting_stop_ms, stop_ms): (i64, i64, i64),
    state: &mut RunState,
    child: &mut tokio::process::Child,
) -> anyhow::Result<DriveEnd> {
    let sim_addr = format!("127.0.0.1:{}", args.base_port);
    let opt_addr = format!("127.0.0.1:{}", args.base_port + 1);
    let mut sim = SimulatorServiceClient::new(connect(&sim_addr).await?);
    let state_path = dir.join(RunState::FILE);
    let began = Instant::now();
    let wall_before_s = state.wall_s;
    let scheduled: Vec<(i64, String)> = scenario
        .events
        .iter()
        .filter_map(|e| {
            e.crash_gateway.as_ref().map(|g| {
                (
                    start_ms + (e.at_h * 3_600_000.0).round() as i64,
                    g.to_string(),
                )
            })
        })
        .collect();
    let mut crashes_due = state.crashes_due(&scheduled);
    let hosts: BTreeMap<String, String> =
        crate::configs::substation_hosts(net, args.sites_per_gateway)?
            .into_iter()
            .map(|(s, g)| (s.to_string(), g.to_string()))
            .collect();
    // Network time this sitting began at (a resumed run starts later).
    let mut sitting_from_ms = None;
    let mut last_answer = Instant::now();
    let (mut last_time, mut last_change) = (i64::MIN, Instant::now());
    let mut last_print = Instant::now() - Duration::from_secs(60);
    let mut last_card = Instant::now();
    let clock = loop {
        if let Ok(Some(status)) = child.try_wait() {
            anyhow::bail!(
                "heatnet up stopped ({status}); see {} and {}",
                dir.join("up.log").display(),
                dir.join("logs").display()
            );
        }
        tokio::time::sleep(POLL).await;
        let Ok(c) = sim.get_clock(v1::GetClockRequest {}).await else {
            if last_answer.elapsed() > STALL_LIMIT {
                anyhow::bail!(
                    "no answer from the simulator at {sim_addr} for {STALL_LIMIT:?}; see {}",
                    dir.join("logs/sim.log").display()
                );
            }
            continue;
        };
        last_answer = Instant::now();
        let c = c.into_inner();
        state.sitting_steps = c.steps;
        if c.time_ms != last_time {
            last_time = c.time_ms;
            last_change = Instant::now();
        } else if last_change.elapsed() > STALL_LIMIT && !(c.paused && c.time_ms >= sitting_stop_ms)
        {
            anyhow::bail!(
                "the network clock stood still for {STALL_LIMIT:?} at {} ({} gateways attached); see {}",
                c.time_ms,
                c.attached_gateways,
                dir.join("logs").display()
            );
        }
        let sitting_from_ms = *sitting_from_ms.get_or_insert(c.time_ms);
        state.wall_s = wall_before_s + began.elapsed().as_secs_f64();
        // Gateway crashes of the scenario: kill -9, `up` restarts them. Not
        // before `up` has written the pids of this sitting.
        let mut i = 0;
        while i < crashes_due.len() {
            if c.time_ms >= crashes_due[i].0 && crate::layout::up_file(dir).exists() {
                let (_, named) = crashes_due.remove(i);
                // The gateway that hosts the named substation (itself,
                // one gateway a substation).
                let g = hosts.get(&named).cloned().unwrap_or_else(|| named.clone());
                match crate::layout::read_up_file(dir)
                    .and_then(|_| read_pid(dir, &format!("gateway-{g}")))
                {
                    Some(pid) => {
                        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
                        println!("  [{}] kill -9 of gateway {g} (pid {pid})", mode.name());
                        state.crashes.push(Crash {
                            named: (g != named).then_some(named),
                            gateway: g,
                            at_ms: c.time_ms,
                            killed_wall_ms: wall_ms(),
                        });
                        state.write(&state_path)?;
                    }
                    None => eprintln!("  [{}] gateway {g}: no pid in up.json to kill", mode.name()),
                }
            } else {
                i += 1;
            }
        }
        let at_end = c.paused && c.time_ms >= sitting_stop_ms;
        let done = ((c.time_ms - start_ms) as f64 / (stop_ms - start_ms) as f64).clamp(0.0, 1.0);
        if last_print.elapsed() >= Duration::from_secs(30) || at_end {
            last_print = Instant::now();
            state.write(&state_path)?;
            // Speed and what is left, from this sitting alone.
            let wall = began.elapsed().as_secs_f64();
            let done_here = (c.time_ms - sitting_from_ms) as f64;
            let eta = if done_here > 0.0 {
                wall * (sitting_stop_ms - c.time_ms) as f64 / done_here
            } else {
                f64::NAN
            };
            println!(
                "  [{}] day {:.1}/{} ({:.0} %), in step: {} gateways and feed, {} planner, ×{:.0} real time, ETA {}",
                mode.name(),
                (c.time_ms - start_ms) as f64 / 86_400_000.0,
                args.days,
                done * 100.0,
                c.attached_gateways,
                c.attached_planners,
                done_here / 1000.0 / wall.max(1e-9),
                human_duration(eta)
            );
            if last_card.elapsed() >= CARD_EVERY {
                last_card = Instant::now();
                // A glance at the truth so far; a slow answer is skipped.
                if let Ok(Ok(card)) = tokio::time::timeout(
                    Duration::from_secs(5),
                    sim.get_scorecard(v1::GetScorecardRequest {}),
                )
                .await
                {
                    let card = card.into_inner();
                    println!(
                        "  [{}] so far: comfort {:.2} % of healthy building-hours, coldest room {:.1} °C, heat {:.0} GJ, cost {:.0} yuan, peak {:.1} MW",
                        mode.name(),
                        card.comfort_share * 100.0,
                        card.min_room_temp_c,
                        card.heat_produced_gj,
                        card.heat_cost_yuan,
                        card.peak_load_w / 1e6
                    );
                }
            }
        }
        if at_end {
            break c;
        }
    };
    state.wall_s = wall_before_s + began.elapsed().as_secs_f64();
    state.write(&state_path)?;
    let finished = clock.time_ms >= stop_ms;
    let clock = v1::ClockState {
        steps: state.steps + clock.steps,
        ..clock
    };
    let report = run_so_far(args, net, mode, &opt_addr, &mut sim, &clock, state).await;
    match report {
        Ok(report) => Ok(DriveEnd::Stopped {
            report: Box::new(report),
            finished,
        }),
        // The run itself is saved and resumable: only its report is missing.
        Err(e) if !finished => {
            eprintln!(
                "  [{}] no report of the run so far ({e:#}): the next sitting writes one",
                mode.name()
            );
            Ok(DriveEnd::NoReport)
        }
        Err(e) => Err(e),
    }
}

/// How `drive` ended.
enum DriveEnd {
    /// At the sitting's or the run's end, with the report of the run so far.
    Stopped {
        report: Box<RunReport>,
        finished: bool,
    },
    /// At the sitting's end, its report unreadable.
    NoReport,
}

/// The report of a run up to the clock's present time (its end, or a
/// sitting's): telemetry drained, scorecard, faults and alarms read.
async fn run_so_far(
    args: &SeasonArgs,
    net: &Network,
    mode: Mode,
    opt_addr: &str,
    sim: &mut SimulatorServiceClient<Channel>,
    clock: &v1::ClockState,
    state: &RunState,
) -> anyhow::Result<RunReport> {
    let wall_s = state.wall_s;
    let mut opt = proto::control_room_client(connect(opt_addr).await?);
    drain(&mut opt, mode, clock.time_ms, (args.step_s * 1000.0) as i64).await;
    let card = sim
        .get_scorecard(v1::GetScorecardRequest {})
        .await
        .context("reading the scorecard")?
        .into_inner();
    let faults = sim
        .list_faults(v1::ListFaultsRequest {})
        .await
        .context("reading the faults")?
        .into_inner()
        .faults;
    let alarms = opt
        .list_alarms(v1::ListAlarmsRequest {
            include_cleared: true,
        })
        .await
        .context("reading the optimizer's alarms")?
        .into_inner()
        .alarms;
    Ok(build_report(
        net,
        mode,
        wall_s,
        clock,
        &card,
        &faults,
        &alarms,
        state.crashes.clone(),
    ))
}

/// Waits until the optimizer holds every node's telemetry up to the last
/// step before `stop_ms` (or the drain stalls or times out), printing the lag.
async fn drain(
    opt: &mut ControlRoomServiceClient<Channel>,
    mode: Mode,
    stop_ms: i64,
    step_ms: i64,
) {
    let began = Instant::now();
    let (mut oldest_seen, mut moved) = (i64::MIN, Instant::now());
    let mut last_print = Instant::now() - Duration::from_secs(60);
    loop {
        let oldest = match opt.get_network_state(v1::GetNetworkStateRequest {}).await {
            Ok(s) => s
                .into_inner()
                .nodes
                .iter()
                .map(|n| n.reading_time_ms)
                .min()
                .unwrap_or(stop_ms),
            // A busy optimizer may not answer in time: that is no progress.
            Err(e) => {
                if last_print.elapsed() >= Duration::from_secs(30) {
                    last_print = Instant::now();
                    eprintln!(
                        "  [{}] optimizer state unreadable while draining (retrying): {e}",
                        mode.name()
                    );
                }
                if began.elapsed() > DRAIN_LIMIT || moved.elapsed() > DRAIN_STALL {
                    eprintln!(
                        "  [{}] gave up draining: the optimizer does not answer",
                        mode.name()
                    );
                    return;
                }
                tokio::time::sleep(POLL).await;
                continue;
            }
        };
        let lag_min = (stop_ms - oldest) as f64 / 60_000.0;
        if oldest >= stop_ms - step_ms {
            if began.elapsed() > POLL {
                println!(
                    "  [{}] optimizer caught up with the clock after {:.0} s",
                    mode.name(),
                    began.elapsed().as_secs_f64()
                );
            }
            return;
        }
        if oldest > oldest_seen {
            (oldest_seen, moved) = (oldest, Instant::now());
        }
        if began.elapsed() > DRAIN_LIMIT || moved.elapsed() > DRAIN_STALL {
            eprintln!(
                "  [{}] the optimizer's telemetry still lags the clock by {lag_min:.0} min of network time: its alarms miss the run's end",
                mode.name()
            );
            return;
        }
        if last_print.elapsed() >= Duration::from_secs(30) {
            last_print = Instant::now();
            println!(
                "  [{}] clock stopped; the optimizer's telemetry lags it by {lag_min:.0} min of network time: draining the gateways' outboxes",
                mode.name()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn read_pid(dir: &Path, process: &str) -> Option<u32> {
    let text = std::fs::read_to_string(crate::layout::up_file(dir)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("pids")?.get(process)?.as_u64().map(|p| p as u32)
}

fn human_duration(s: f64) -> String {
    if !s.is_finite() {
        return "?".into();
    }
    let s = s.round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// Alarm kinds that answer a fault kind.
fn answers(fault_kind: v1::FaultKind) -> &'static [&'static str] {
    use v1::FaultKind as K;
    match fault_kind {
        K::SupplyLeak | K::ReturnLeak | K::PipeBurst => &["leak_suspected"],
        K::PlantTrip | K::PlantDerate => &["plant_trip"],
        K::PumpTrip => &["pump_trip"],
        K::StuckValve => &["valve_stuck", "room_below_18c", "control_saturated"],
        K::SensorFrozen | K::SensorOffset | K::SensorDrift | K::SensorNoise | K::SensorDropout => {
            &["sensor_implausible"]
        }
        K::IllegalDraining => &["leak_suspected", "pump_trip"],
        _ => &[],
    }
}

/// Network time an alarm was raised (the optimizer stamps the network time
/// of the sample that decided).
fn alarm_time_ms(a: &v1::Alarm) -> i64 {
    a.raised_network_ms
}

#[allow(clippy::too_many_arguments)]
fn build_report(
    net: &Network,
    mode: Mode,
    wall_s: f64,
    clock: &v1::ClockState,
    card: &v1::Scorecard,
    faults: &[v1::FaultState],
    alarms: &[v1::Alarm],
    crashes: Vec<Crash>,
) -> RunReport {
    let mut alarms_by_kind = BTreeMap::new();
    for a in alarms {
        *alarms_by_kind.entry(a.kind.clone()).or_insert(0usize) += 1;
    }
    let mut outcomes: Vec<FaultOutcome> = faults
        .iter()
        .filter_map(|f| {
            let fault = f.fault.as_ref()?;
            let kind = v1::FaultKind::try_from(fault.kind).unwrap_or(v1::FaultKind::Unspecified);
            let until = if f.cleared_at_ms > 0 {
                f.cleared_at_ms + 3_600_000
            } else {
                i64::MAX
            };
            let wanted = answers(kind);
            let pipe = matches!(
                kind,
                v1::FaultKind::SupplyLeak | v1::FaultKind::ReturnLeak | v1::FaultKind::PipeBurst
            );
            let hit = alarms
                .iter()
                .filter(|a| wanted.contains(&a.kind.as_str()))
                .filter(|a| {
                    pipe || a.node_id == fault.device_id
                        || a.node_id.starts_with(&format!("{}-", fault.device_id))
                })
                .filter(|a| alarm_time_ms(a) >= f.injected_at_ms && alarm_time_ms(a) <= until)
                .min_by_key(|a| alarm_time_ms(a));
            Some(FaultOutcome {
                kind: kind
                    .as_str_name()
                    .trim_start_matches("FAULT_KIND_")
                    .to_lowercase(),
                device: fault.device_id.clone(),
                injected_at_ms: f.injected_at_ms,
                cleared_at_ms: (f.cleared_at_ms > 0).then_some(f.cleared_at_ms),
                detected_by: hit.map(|a| a.kind.clone()),
                detected_after_min: hit
                    .map(|a| (alarm_time_ms(a) - f.injected_at_ms) as f64 / 60_000.0),
                detected_after_wall_s: None,
                located_pipe: hit
                    .filter(|_| pipe)
                    .and_then(|a| a.leak.as_ref())
                    .map(|l| l.pipe_id.clone()),
                located_pipes_away: hit.filter(|_| pipe).and_then(|a| a.leak.as_ref()).and_then(
                    |l| {
                        std::iter::once(&l.pipe_id)
                            .chain(&l.alternatives)
                            .filter_map(|named| pipes_apart(net, named, &fault.device_id))
                            .min()
                    },
                ),
            })
        })
        .collect();
    for c in &crashes {
        let hit = alarms
            .iter()
            .filter(|a| {
                a.kind == "gateway_lost"
                    && a.node_id == c.gateway
                    && a.raised_at_ms >= c.killed_wall_ms
            })
            .min_by_key(|a| a.raised_at_ms);
        outcomes.push(FaultOutcome {
            kind: "gateway_crash".into(),
            device: c.gateway.clone(),
            injected_at_ms: c.at_ms,
            cleared_at_ms: None,
            detected_by: hit.map(|a| a.kind.clone()),
            detected_after_min: None,
            detected_after_wall_s: hit.map(|a| (a.raised_at_ms - c.killed_wall_ms) as f64 / 1000.0),
            located_pipe: None,
            located_pipes_away: None,
        });
    }
    let mut plant_heat_gj = BTreeMap::new();
    for d in &card.days {
        for (p, gj) in card.plants.iter().zip(&d.plant_heat_gj) {
            *plant_heat_gj.entry(p.clone()).or_insert(0.0) += gj;
        }
    }
    let network_days = (card.time_ms - card.start_ms) as f64 / 86_400_000.0;
    RunReport {
        mode,
        wall_s,
        steps: clock.steps,
        network_days,
        realtime_factor: network_days * 86_400.0 / wall_s.max(1e-9),
        comfort_share: card.comfort_share,
        comfort_share_all: card.comfort_share_all,
        exposed_flat_comfort_share: card.exposed_flat_comfort_share,
        overheated_building_hours: card.overheated_building_hours,
        overheated_share: card.overheated_building_hours / card.building_hours.max(1e-9),
        min_room_temp_c: card.min_room_temp_c,
        coldest_building: card.coldest_building.clone(),
        coldest_at_ms: card.coldest_at_ms,
        mean_room_temp_c: card.mean_room_temp_c,
        heat_produced_gj: card.heat_produced_gj,
        heat_delivered_gj: card.heat_delivered_gj,
        heat_lost_gj: card.heat_lost_gj,
        heat_cost_yuan: card.heat_cost_yuan,
        peak_load_mw: card.peak_load_w / 1e6,
        peak_at_ms: card.peak_at_ms,
        plant_heat_gj,
        worst_energy_residual: card.worst_energy_residual,
        alarms_by_kind,
        faults: outcomes,
        gateway_crashes: crashes,
        days: card
            .days
            .iter()
            .map(|d| DayRow {
                day_start_ms: d.day_start_ms,
                outdoor_mean_c: d.outdoor_mean_c,
                outdoor_min_c: d.outdoor_min_c,
                comfort_share: d.comfort_share,
                min_room_temp_c: d.min_room_temp_c,
                mean_room_temp_c: d.mean_room_temp_c,
                heat_produced_gj: d.heat_produced_gj,
                heat_cost_yuan: d.heat_cost_yuan,
                peak_load_mw: d.peak_load_w / 1e6,
                overheated_building_hours: d.overheated_building_hours,
            })
            .collect(),
    }
}

/// The days on which both runs kept comfort (each day's share of healthy
/// building-hours at or above 18 °C at least [`TARGET_COMFORT`]), and the
/// heat and cost of each run on them: the target's "same weather, same
/// comfort" comparison, which the whole season's totals are not where the
/// fixed curve let rooms go cold (it then made less heat for it).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SameComfort {
    pub days: usize,
    /// Of the days both runs have.
    pub of_days: usize,
    pub heat_optimizer_gj: f64,
    pub heat_baseline_gj: f64,
    pub cost_optimizer_yuan: f64,
    pub cost_baseline_yuan: f64,
    pub heat_saving_share: f64,
    pub cost_saving_share: f64,
}

/// One day of one run, as the same-comfort comparison needs it.
#[derive(Clone, Copy)]
struct DayTotals {
    comfort: f64,
    heat_gj: f64,
    cost_yuan: f64,
}

fn same_comfort_days(runs: &BTreeMap<&str, serde_json::Value>) -> Option<SameComfort> {
    let days = |run: &str| -> BTreeMap<i64, DayTotals> {
        runs.get(run)
            .and_then(|r| r["days"].as_array())
            .into_iter()
            .flatten()
            .filter_map(|d| {
                Some((
                    d["day_start_ms"].as_i64()?,
                    DayTotals {
                        comfort: d["comfort_share"].as_f64()?,
                        heat_gj: d["heat_produced_gj"].as_f64()?,
                        cost_yuan: d["heat_cost_yuan"].as_f64()?,
                    },
                ))
            })
            .collect()
    };
    let (o, b) = (days("optimizer"), days("baseline"));
    let both: Vec<(DayTotals, DayTotals)> = o
        .iter()
        .filter_map(|(t, x)| Some((*x, *b.get(t)?)))
        .collect();
    if both.is_empty() {
        return None;
    }
    let kept: Vec<&(DayTotals, DayTotals)> = both
        .iter()
        .filter(|(x, y)| x.comfort >= TARGET_COMFORT && y.comfort >= TARGET_COMFORT)
        .collect();
    let (ho, hb): (f64, f64) = (
        kept.iter().map(|p| p.0.heat_gj).sum(),
        kept.iter().map(|p| p.1.heat_gj).sum(),
    );
    let (co, cb): (f64, f64) = (
        kept.iter().map(|p| p.0.cost_yuan).sum(),
        kept.iter().map(|p| p.1.cost_yuan).sum(),
    );
    let share = |o: f64, b: f64| if b > 0.0 { 1.0 - o / b } else { 0.0 };
    Some(SameComfort {
        days: kept.len(),
        of_days: both.len(),
        heat_optimizer_gj: ho,
        heat_baseline_gj: hb,
        cost_optimizer_yuan: co,
        cost_baseline_yuan: cb,
        heat_saving_share: share(ho, hb),
        cost_saving_share: share(co, cb),
    })
}

/// Targets of the scorecard (issue 5).
const TARGET_COMFORT: f64 = 0.995;
const TARGET_HEAT_SAVING: f64 = 0.10;
const TARGET_COST_SAVING: f64 = 0.15;

fn write_report(
    args: &SeasonArgs,
    net: &Network,
    scenario: &Scenario,
    fresh: &[RunReport],
    earlier: Vec<(Mode, serde_json::Value)>,
) -> anyhow::Result<()> {
    let mut runs: BTreeMap<&str, serde_json::Value> = fresh
        .iter()
        .map(|r| Ok((r.mode.name(), serde_json::to_value(r)?)))
        .collect::<anyhow::Result<_>>()?;
    for (m, v) in earlier {
        runs.insert(m.name(), v);
    }
    write_paired(&args.out, args, net, scenario, runs, None)?;
    // The whole season supersedes the report of its first days.
    let so_far = args.out.join(SO_FAR_DIR);
    if so_far.exists() {
        std::fs::remove_dir_all(&so_far)
            .with_context(|| format!("removing {}", so_far.display()))?;
    }
    Ok(())
}

/// Where the paired report over the days covered so far goes, in `--out`.
const SO_FAR_DIR: &str = "so-far";

/// The report of a run up to the end of its last sitting.
fn so_far_path(args: &SeasonArgs, mode: Mode) -> PathBuf {
    args.out.join(format!("{}.so-far.json", mode.name()))
}

/// The paired report over the whole days every run has covered, in
/// `<out>/so-far/`: written at the end of each sitting, so a season spread
/// over sittings shows where it stands before its runs are done. Each run is
/// read from its whole report if it has one, else from its report so far.
fn write_so_far(args: &SeasonArgs, net: &Network, scenario: &Scenario) -> anyhow::Result<()> {
    let mut runs = BTreeMap::new();
    for mode in [Mode::Optimizer, Mode::Baseline] {
        let whole = args.out.join(format!("{}.json", mode.name()));
        for path in [whole, so_far_path(args, mode)] {
            if let Ok(bytes) = std::fs::read(&path)
                && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes)
            {
                runs.insert(mode.name(), v);
                break;
            }
        }
    }
    let days = whole_days_of_all(&runs, net.start_time_ms);
    if days.is_empty() {
        println!("so far: no whole day that every run has covered yet; no report so far");
        return Ok(());
    }
    let runs = runs
        .into_iter()
        .map(|(mode, run)| (mode, over_days(&run, &days)))
        .collect();
    let dir = args.out.join(SO_FAR_DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let so_far = json!({ "days": days.len(), "of_days": args.days });
    write_paired(&dir, args, net, scenario, runs, Some(so_far))
}

const DAY_MS: i64 = 86_400_000;

/// Starts (Unix ms) of the days that each of `runs` covered whole.
fn whole_days_of_all(
    runs: &BTreeMap<&str, serde_json::Value>,
    start_ms: i64,
) -> std::collections::BTreeSet<i64> {
    let whole = |run: &serde_json::Value| -> std::collections::BTreeSet<i64> {
        let end_ms =
            start_ms + (run["network_days"].as_f64().unwrap_or(0.0) * DAY_MS as f64).round() as i64;
        run["days"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["day_start_ms"].as_i64())
            // A second of slack for the clock's rounding.
            .filter(|t| t + DAY_MS <= end_ms + 1_000)
            .collect()
    };
    let mut sets = runs.values().map(whole);
    let first = sets.next().unwrap_or_default();
    sets.fold(first, |all, s| all.intersection(&s).copied().collect())
}

/// `run` (a [`RunReport`] as JSON) cut to `days`: totals recomputed from the
/// day rows (heat, cost and overheated hours summed, comfort the mean of the
/// days' shares, the coldest room and the peak the extremes), faults injected
/// before the last day's end. What day rows cannot give (plant shares, heat
/// delivered and lost, alarms, wall time) is left out.
fn over_days(run: &serde_json::Value, days: &std::collections::BTreeSet<i64>) -> serde_json::Value {
    let rows: Vec<&serde_json::Value> = run["days"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| {
            d["day_start_ms"]
                .as_i64()
                .is_some_and(|t| days.contains(&t))
        })
        .collect();
    let values = |key: &'static str| rows.iter().filter_map(move |d| d[key].as_f64());
    let n = rows.len().max(1) as f64;
    let end_ms = days.last().map_or(i64::MIN, |t| t + DAY_MS);
    let faults: Vec<&serde_json::Value> = run["faults"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["injected_at_ms"].as_i64().is_some_and(|t| t < end_ms))
        .collect();
    json!({
        "mode": run["mode"],
        "network_days": rows.len(),
        "comfort_share": values("comfort_share").sum::<f64>() / n,
        "min_room_temp_c": values("min_room_temp_c").fold(f64::INFINITY, f64::min),
        "mean_room_temp_c": values("mean_room_temp_c").sum::<f64>() / n,
        "overheated_building_hours": values("overheated_building_hours").sum::<f64>(),
        "heat_produced_gj": values("heat_produced_gj").sum::<f64>(),
        "heat_cost_yuan": values("heat_cost_yuan").sum::<f64>(),
        "peak_load_mw": values("peak_load_mw").fold(f64::NEG_INFINITY, f64::max),
        "faults": faults,
        "days": rows,
    })
}

/// Writes `report.json`, `report.md` and the plots of `runs` into `dir`;
/// `so_far` marks a report over the first days of the season only.
fn write_paired(
    dir: &Path,
    args: &SeasonArgs,
    net: &Network,
    scenario: &Scenario,
    runs: BTreeMap<&str, serde_json::Value>,
    so_far: Option<serde_json::Value>,
) -> anyhow::Result<()> {
    let num = |run: &str, key: &str| {
        runs.get(run)
            .and_then(|r| r.get(key))
            .and_then(|v| v.as_f64())
    };
    let saving = |key: &str| match (num("optimizer", key), num("baseline", key)) {
        (Some(o), Some(b)) if b > 0.0 => Some(1.0 - o / b),
        _ => None,
    };
    let same = same_comfort_days(&runs);
    let comparison = json!({
        "same_comfort": same,
        "comfort_share_optimizer": num("optimizer", "comfort_share"),
        "comfort_share_baseline": num("baseline", "comfort_share"),
        "heat_saving_share": saving("heat_produced_gj"),
        "cost_saving_share": saving("heat_cost_yuan"),
        "peak_saving_share": saving("peak_load_mw"),
        "targets": {
            "comfort_share": TARGET_COMFORT,
            "heat_saving_share": TARGET_HEAT_SAVING,
            "cost_saving_share": TARGET_COST_SAVING,
        },
        "met": {
            "comfort": num("optimizer", "comfort_share").map(|c| c >= TARGET_COMFORT),
            "heat": saving("heat_produced_gj").map(|s| s >= TARGET_HEAT_SAVING),
            "cost": saving("heat_cost_yuan").map(|s| s >= TARGET_COST_SAVING),
        },
    });
    // Day-by-day series as [time_ms, value] pairs (the dashboard draws them).
    let series = |run: &str, key: &str| -> Vec<[f64; 2]> {
        runs.get(run)
            .and_then(|r| r.get("days"))
            .and_then(|d| d.as_array())
            .map(|days| {
                days.iter()
                    .filter_map(|d| Some([d.get("day_start_ms")?.as_f64()?, d.get(key)?.as_f64()?]))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut daily = serde_json::Map::new();
    for key in [
        "heat_produced_gj",
        "heat_cost_yuan",
        "comfort_share",
        "min_room_temp_c",
        "peak_load_mw",
        "outdoor_mean_c",
    ] {
        for run in runs.keys() {
            daily.insert(format!("{run}_{key}"), json!(series(run, key)));
        }
    }
    let report = json!({
        "network": net.name,
        "substations": net.substations.len(),
        "buildings": net.substations.iter().map(|s| s.buildings.len()).sum::<usize>(),
        "days": args.days,
        "start_ms": net.start_time_ms,
        "step_s": args.step_s,
        "scenario": scenario.name,
        "so_far": so_far,
        "comparison": comparison,
        "runs": runs,
        "daily": daily,
    });
    let out = dir;
    std::fs::write(out.join("report.json"), serde_json::to_vec_pretty(&report)?)?;
    let plots = [
        (
            "heat.svg",
            "Heat produced per day",
            "GJ",
            "heat_produced_gj",
        ),
        ("cost.svg", "Heat cost per day", "yuan", "heat_cost_yuan"),
        (
            "comfort.svg",
            "Healthy building-hours at or above 18 °C",
            "share",
            "comfort_share",
        ),
        (
            "min-room.svg",
            "Coldest room of the day",
            "°C",
            "min_room_temp_c",
        ),
        (
            "outdoor.svg",
            "Outdoor temperature (daily mean)",
            "°C",
            "outdoor_mean_c",
        ),
    ];
    for (file, title, unit, key) in plots {
        let lines: Vec<(String, &str, Vec<[f64; 2]>)> = ["optimizer", "baseline"]
            .iter()
            .zip(["#c0392b", "#2c3e50"])
            .filter(|(r, _)| runs.contains_key(**r))
            .map(|(r, colour)| (r.to_string(), colour, series(r, key)))
            .collect();
        std::fs::write(out.join(file), svg_chart(title, unit, &lines))?;
    }
    std::fs::write(out.join("report.md"), markdown(&report, &runs))?;
    println!(
        "report: {} (and report.md, *.svg)",
        out.join("report.json").display()
    );
    if let (Some(c), Some(h), Some(k)) = (
        num("optimizer", "comfort_share"),
        saving("heat_produced_gj"),
        saving("heat_cost_yuan"),
    ) {
        let over = match report["so_far"]["days"].as_u64() {
            Some(n) => format!(" over the first {n} days (so far)"),
            None => String::new(),
        };
        println!(
            "optimizer vs fixed curve{over}: comfort {:.2} %, heat {:+.1} %, cost {:+.1} %",
            c * 100.0,
            -h * 100.0,
            -k * 100.0
        );
    }
    Ok(())
}

fn markdown(report: &serde_json::Value, runs: &BTreeMap<&str, serde_json::Value>) -> String {
    let f = |run: &str, key: &str| -> String {
        runs.get(run)
            .and_then(|r| r.get(key))
            .map(|v| match v.as_f64() {
                Some(x) if x.abs() >= 1000.0 => format!("{x:.0}"),
                Some(x) => format!("{x:.3}"),
                None => v.to_string().trim_matches('"').to_string(),
            })
            .unwrap_or_else(|| "–".into())
    };
    let mut md = format!(
        "# Season report: {} ({} substations, {} buildings), {} days\n\nScenario: {}\n\n",
        report["network"].as_str().unwrap_or(""),
        report["substations"],
        report["buildings"],
        report["days"],
        report["scenario"].as_str().unwrap_or("")
    );
    if let Some(n) = report["so_far"]["days"].as_u64() {
        md += &format!(
            "**So far**: the first {n} whole days of {}, which every run has covered. Totals are sums of the day rows, comfort the mean of the days' shares; what needs the whole run is left blank (–).\n\n",
            report["so_far"]["of_days"]
        );
    }
    md += "| | optimizer | fixed curve |\n|---|---|---|\n";
    for (label, key) in [
        ("healthy building-hours ≥ 18 °C (share)", "comfort_share"),
        ("all building-hours ≥ 18 °C (share)", "comfort_share_all"),
        (
            "exposed flats ≥ 18 °C (share)",
            "exposed_flat_comfort_share",
        ),
        ("building-hours above 22 °C", "overheated_building_hours"),
        ("coldest room, °C", "min_room_temp_c"),
        ("coldest building", "coldest_building"),
        ("mean room, °C", "mean_room_temp_c"),
        ("heat produced, GJ", "heat_produced_gj"),
        ("heat delivered to the substations, GJ", "heat_delivered_gj"),
        ("heat lost in the network, GJ", "heat_lost_gj"),
        ("heat cost, yuan", "heat_cost_yuan"),
        ("peak load, MW", "peak_load_mw"),
        ("wall time, s", "wall_s"),
        ("real-time factor", "realtime_factor"),
    ] {
        md += &format!(
            "| {label} | {} | {} |\n",
            f("optimizer", key),
            f("baseline", key)
        );
    }
    // What the network's water gave up over the run (delivered and lost
    // beyond what the plants made): a run that ends with its water colder
    // made less heat for it, which a short run shows as a saving.
    let drawn = |run: &str| -> String {
        let n = |k: &str| runs.get(run).and_then(|r| r[k].as_f64());
        match (
            n("heat_delivered_gj"),
            n("heat_lost_gj"),
            n("heat_produced_gj"),
        ) {
            (Some(d), Some(l), Some(p)) => format!("{:.0}", d + l - p),
            _ => "–".into(),
        }
    };
    md += &format!(
        "| heat drawn from the network's water, GJ | {} | {} |\n",
        drawn("optimizer"),
        drawn("baseline")
    );
    let plants: std::collections::BTreeSet<&str> = runs
        .values()
        .filter_map(|r| r["plant_heat_gj"].as_object())
        .flat_map(|m| m.keys().map(String::as_str))
        .collect();
    for plant in plants {
        let share = |run: &str| -> String {
            let r = runs.get(run);
            let q = r.and_then(|r| r["plant_heat_gj"][plant].as_f64());
            let all = r.and_then(|r| r["heat_produced_gj"].as_f64());
            match (q, all) {
                (Some(q), Some(a)) if a > 0.0 => format!("{q:.0} ({:.1} %)", 100.0 * q / a),
                _ => "–".into(),
            }
        };
        md += &format!(
            "| heat made by `{plant}`, GJ | {} | {} |\n",
            share("optimizer"),
            share("baseline")
        );
    }
    let c = &report["comparison"];
    md += &format!(
        "\nHeat saving: {}; cost saving: {} (targets: comfort ≥ 99.5 %, heat ≥ 10 %, cost ≥ 15 %).\n",
        pct(&c["heat_saving_share"]),
        pct(&c["cost_saving_share"])
    );
    if let Some(d) = c["same_comfort"]["days"].as_u64() {
        md += &format!(
            "
On the {d} of {} days on which both runs kept comfort (≥ 99.5 % of the day's healthy building-hours at or above 18 °C: the target's \"same comfort\"), heat saving: {}; cost saving: {}.\n",
            c["same_comfort"]["of_days"].as_u64().unwrap_or(0),
            pct(&c["same_comfort"]["heat_saving_share"]),
            pct(&c["same_comfort"]["cost_saving_share"])
        );
    }
    md += "\n## Faults and how long they took to detect\n\nGateway crashes are judged on real time (liveness), the rest on network time. A leak's location: the section the alarm named, and how many pipes it or the nearest of its alternatives is from the leaking one.\n\n| run | fault | device | injected (network) | detected by | after | located |\n|---|---|---|---|---|---|---|\n";
    for (run, r) in runs {
        for fo in r["faults"].as_array().into_iter().flatten() {
            let after = match (
                fo["detected_after_min"].as_f64(),
                fo["detected_after_wall_s"].as_f64(),
            ) {
                (Some(m), _) => format!("{m:.0} min"),
                (None, Some(s)) => format!("{s:.1} s (real)"),
                _ => "–".into(),
            };
            let located = match (
                fo["located_pipe"].as_str(),
                fo["located_pipes_away"].as_u64(),
            ) {
                (Some(p), Some(0)) if Some(p) == fo["device"].as_str() => format!("{p} (right)"),
                (Some(p), Some(0)) => format!("{p} (the leaking pipe among its alternatives)"),
                (Some(p), Some(n)) => format!("{p} ({n} pipes away)"),
                (Some(p), None) => p.to_string(),
                _ => "–".into(),
            };
            md += &format!(
                "| {run} | {} | {} | {} | {} | {after} | {located} |\n",
                fo["kind"].as_str().unwrap_or(""),
                fo["device"].as_str().unwrap_or(""),
                fo["injected_at_ms"],
                fo["detected_by"].as_str().unwrap_or("not detected"),
            );
        }
    }
    md += "\n![heat](heat.svg)\n![cost](cost.svg)\n![comfort](comfort.svg)\n![coldest room](min-room.svg)\n![outdoor](outdoor.svg)\n";
    md
}

fn pct(v: &serde_json::Value) -> String {
    v.as_f64()
        .map_or("–".into(), |x| format!("{:.1} %", x * 100.0))
}

/// A plain SVG line chart: days on x, one line per run.
pub fn svg_chart(title: &str, unit: &str, lines: &[(String, &str, Vec<[f64; 2]>)]) -> String {
    let (w, h, left, right, top, bottom) = (800.0, 320.0, 70.0, 20.0, 40.0, 40.0);
    let pts = lines.iter().flat_map(|l| l.2.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for p in pts {
        x0 = x0.min(p[0]);
        x1 = x1.max(p[0]);
        y0 = y0.min(p[1]);
        y1 = y1.max(p[1]);
    }
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{left}\" y=\"22\" font-size=\"15\">{}</text>\n",
        xml(title)
    );
    if x0 > x1 || !y0.is_finite() {
        svg += "<text x=\"70\" y=\"160\">no data</text>\n</svg>\n";
        return svg;
    }
    if (y1 - y0).abs() < 1e-9 {
        y0 -= 1.0;
        y1 += 1.0;
    }
    let pad = (y1 - y0) * 0.05;
    let (y0, y1) = (y0 - pad, y1 + pad);
    let xs = |x: f64| left + (x - x0) / (x1 - x0).max(1.0) * (w - left - right);
    let ys = |y: f64| top + (y1 - y) / (y1 - y0) * (h - top - bottom);
    for i in 0..=4 {
        let y = y0 + (y1 - y0) * i as f64 / 4.0;
        svg += &format!(
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
            w - right,
            ys(y),
            ys(y),
            left - 6.0,
            ys(y) + 4.0,
            short(y)
        );
    }
    let days = ((x1 - x0) / 86_400_000.0).round().max(1.0);
    svg += &format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">days (0 – {days:.0}) · {}</text>\n",
        w - right,
        h - 10.0,
        xml(unit)
    );
    for (k, (name, colour, pts)) in lines.iter().enumerate() {
        let path: Vec<String> = pts
            .iter()
            .map(|p| format!("{:.1},{:.1}", xs(p[0]), ys(p[1])))
            .collect();
        svg += &format!(
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.8\" points=\"{}\"/>\n<text x=\"{}\" y=\"22\" fill=\"{colour}\">{}</text>\n",
            path.join(" "),
            w - right - 160.0 + 90.0 * k as f64,
            xml(name)
        );
    }
    svg += "</svg>\n";
    svg
}

fn short(y: f64) -> String {
    if y.abs() >= 1000.0 {
        format!("{:.0}", y)
    } else if y.abs() >= 10.0 {
        format!("{:.1}", y)
    } else {
        format!("{:.3}", y)
    }
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_season_is_refused_with_too_little_disk_and_says_what_to_do() {
        let dir = std::env::temp_dir();
        let e = check_room(&dir, u64::MAX).unwrap_err().to_string();
        assert!(e.contains(&dir.display().to_string()), "{e}");
        assert!(e.contains("free space, then continue with --resume"), "{e}");
        check_room(&dir, 0).unwrap();
    }

    /// A run as JSON with one row per day: (comfort, coldest room, heat GJ).
    fn run_of_days(
        start_ms: i64,
        network_days: f64,
        rows: &[(f64, f64, f64)],
    ) -> serde_json::Value {
        let days: Vec<serde_json::Value> = rows
            .iter()
            .enumerate()
            .map(|(i, (comfort, min_c, heat))| {
                json!({
                    "day_start_ms": start_ms + i as i64 * DAY_MS,
                    "comfort_share": comfort,
                    "min_room_temp_c": min_c,
                    "mean_room_temp_c": 20.0 + i as f64,
                    "heat_produced_gj": heat,
                    "heat_cost_yuan": heat * 30.0,
                    "peak_load_mw": 100.0 + i as f64,
                    "overheated_building_hours": 2.0,
                })
            })
            .collect();
        json!({
            "mode": "x",
            "network_days": network_days,
            "days": days,
            "faults": [
                { "kind": "supply_leak", "injected_at_ms": start_ms + DAY_MS / 2 },
                { "kind": "stuck_valve", "injected_at_ms": start_ms + 2 * DAY_MS + 1 },
            ],
        })
    }

    #[test]
    fn the_report_so_far_compares_only_the_whole_days_both_runs_covered() {
        let t0 = 1_794_672_000_000;
        // The optimizer finished 3 days; the baseline stopped at day 2.5, its
        // third day half done.
        let runs: BTreeMap<&str, serde_json::Value> = [
            (
                "optimizer",
                run_of_days(
                    t0,
                    3.0,
                    &[(1.0, 18.5, 100.0), (0.99, 17.0, 120.0), (1.0, 19.0, 90.0)],
                ),
            ),
            (
                "baseline",
                run_of_days(
                    t0,
                    2.5,
                    &[(0.98, 17.5, 110.0), (0.96, 16.0, 130.0), (1.0, 19.0, 40.0)],
                ),
            ),
        ]
        .into();
        let days = whole_days_of_all(&runs, t0);
        assert_eq!(days.into_iter().collect::<Vec<_>>(), vec![t0, t0 + DAY_MS]);

        let days = whole_days_of_all(&runs, t0);
        let o = over_days(&runs["optimizer"], &days);
        let b = over_days(&runs["baseline"], &days);
        assert_eq!(o["network_days"], 2);
        // Sums, means and extremes of the two days, by hand.
        assert!(
            (o["heat_produced_gj"].as_f64().unwrap() - 220.0).abs() < 1e-9,
            "{o}"
        );
        assert!(
            (b["heat_produced_gj"].as_f64().unwrap() - 240.0).abs() < 1e-9,
            "{b}"
        );
        assert!(
            (b["heat_cost_yuan"].as_f64().unwrap() - 7200.0).abs() < 1e-9,
            "{b}"
        );
        assert!(
            (o["comfort_share"].as_f64().unwrap() - 0.995).abs() < 1e-12,
            "{o}"
        );
        assert!(
            (b["comfort_share"].as_f64().unwrap() - 0.97).abs() < 1e-12,
            "{b}"
        );
        assert_eq!(b["min_room_temp_c"].as_f64(), Some(16.0));
        assert_eq!(o["mean_room_temp_c"].as_f64(), Some(20.5));
        assert_eq!(o["peak_load_mw"].as_f64(), Some(101.0));
        assert_eq!(o["overheated_building_hours"].as_f64(), Some(4.0));
        // The fault of the third day is not in the first two.
        let kinds: Vec<&str> = o["faults"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| f["kind"].as_str())
            .collect();
        assert_eq!(kinds, vec!["supply_leak"]);
        // Nothing the day rows cannot give.
        assert!(o.get("plant_heat_gj").is_none() && o.get("wall_s").is_none());

        // A run without a whole day leaves nothing to compare.
        let short: BTreeMap<&str, serde_json::Value> =
            [("baseline", run_of_days(t0, 0.3, &[(1.0, 19.0, 10.0)]))].into();
        assert!(whole_days_of_all(&short, t0).is_empty());
    }

    #[test]
    fn the_report_so_far_says_so_above_its_table() {
        let runs: BTreeMap<&str, serde_json::Value> =
            [("optimizer", json!({ "heat_produced_gj": 220.0 }))].into();
        let md = markdown(
            &json!({ "comparison": {}, "so_far": { "days": 2, "of_days": 120.0 } }),
            &runs,
        );
        assert!(
            md.contains("**So far**: the first 2 whole days of 120"),
            "{md}"
        );
        let whole = markdown(&json!({ "comparison": {} }), &runs);
        assert!(!whole.contains("So far"), "{whole}");
    }

    #[test]
    fn the_report_shows_each_plants_share_and_the_heat_drawn_from_the_networks_water() {
        let run = |produced: f64, boiler: f64| {
            serde_json::json!({
                "heat_produced_gj": produced,
                "heat_delivered_gj": 950.0,
                "heat_lost_gj": 60.0,
                "plant_heat_gj": { "boiler-south": boiler, "chp-west": produced - boiler },
            })
        };
        let runs: BTreeMap<&str, serde_json::Value> = [
            ("optimizer", run(1000.0, 100.0)),
            ("baseline", run(1010.0, 250.0)),
        ]
        .into();
        let md = markdown(&serde_json::json!({ "comparison": {} }), &runs);
        // 950 + 60 delivered and lost against 1,000 made: 10 GJ from the water.
        assert!(
            md.contains("| heat drawn from the network's water, GJ | 10 | 0 |"),
            "{md}"
        );
        assert!(
            md.contains("| heat made by `boiler-south`, GJ | 100 (10.0 %) | 250 (24.8 %) |"),
            "{md}"
        );
        assert!(
            md.contains("| heat made by `chp-west`, GJ | 900 (90.0 %) | 760 (75.2 %) |"),
            "{md}"
        );
    }

    #[test]
    fn the_same_comfort_saving_counts_only_days_on_which_both_runs_kept_comfort() {
        let day = |t: i64, comfort: f64, heat: f64, cost: f64| {
            serde_json::json!({
                "day_start_ms": t,
                "comfort_share": comfort,
                "heat_produced_gj": heat,
                "heat_cost_yuan": cost,
            })
        };
        let runs: BTreeMap<&str, serde_json::Value> = [
            (
                "optimizer",
                serde_json::json!({ "days": [
                    day(0, 1.0, 90.0, 900.0),
                    day(1, 0.999, 85.0, 800.0),
                    day(2, 1.0, 120.0, 1300.0),
                    day(3, 0.99, 100.0, 1000.0),
                ]}),
            ),
            (
                "baseline",
                serde_json::json!({ "days": [
                    day(0, 0.995, 100.0, 1000.0),
                    day(1, 1.0, 100.0, 1000.0),
                    // The fixed curve let rooms go cold: it made less heat.
                    day(2, 0.90, 100.0, 1000.0),
                    day(3, 1.0, 100.0, 1000.0),
                ]}),
            ),
        ]
        .into();
        let s = same_comfort_days(&runs).unwrap();
        assert_eq!((s.days, s.of_days), (2, 4));
        assert_eq!((s.heat_optimizer_gj, s.heat_baseline_gj), (175.0, 200.0));
        assert!((s.heat_saving_share - 0.125).abs() < 1e-12);
        assert!((s.cost_saving_share - 0.15).abs() < 1e-12);
        let md = markdown(
            &serde_json::json!({ "comparison": { "same_comfort": s } }),
            &runs,
        );
        assert!(
            md.contains("On the 2 of 4 days on which both runs kept comfort")
                && md.contains("heat saving: 12.5 %; cost saving: 15.0 %"),
            "{md}"
        );
        // One run alone: nothing to compare.
        let one: BTreeMap<&str, serde_json::Value> =
            [("optimizer", runs["optimizer"].clone())].into();
        assert_eq!(same_comfort_days(&one), None);
    }

    fn settings() -> RunSettings {
        RunSettings {
            network: "city".into(),
            start_ms: 1_000,
            stop_ms: 1_000 + 120 * 86_400_000,
            step_s: 300.0,
            scenario_toml: "name = \"s\"\n".into(),
            sites_per_gateway: 1,
        }
    }

    #[test]
    fn a_resumed_run_kills_only_the_gateways_it_has_not_killed_yet() {
        let mut state = RunState::new(settings());
        let scheduled = vec![
            (10_000, "c0050".to_string()),
            (20_000, "c0050".to_string()),
            (15_000, "c0007".to_string()),
        ];
        assert_eq!(state.crashes_due(&scheduled), scheduled);
        // The first crash of c0050 happened (a poll after it was due).
        state.crashes.push(Crash {
            gateway: "c0050".into(),
            named: None,
            at_ms: 12_000,
            killed_wall_ms: 5,
        });
        assert_eq!(
            state.crashes_due(&scheduled),
            vec![(20_000, "c0050".to_string()), (15_000, "c0007".to_string())]
        );
        state.crashes.push(Crash {
            gateway: "c0050".into(),
            named: None,
            at_ms: 20_000,
            killed_wall_ms: 9,
        });
        assert_eq!(
            state.crashes_due(&scheduled),
            vec![(15_000, "c0007".to_string())]
        );
        // With substations grouped on gateways, the crash of c0007 killed
        // the gateway hosting it: done all the same.
        state.crashes.push(Crash {
            gateway: "edge-c0001-c0008".into(),
            named: Some("c0007".into()),
            at_ms: 15_000,
            killed_wall_ms: 7,
        });
        assert_eq!(state.crashes_due(&scheduled), vec![]);
    }

    #[test]
    fn a_run_is_resumed_only_with_the_settings_it_started_with_and_says_which_differ() {
        let a = settings();
        assert!(a.differences(&a.clone()).is_empty());
        let b = RunSettings {
            stop_ms: a.stop_ms + 86_400_000,
            step_s: 600.0,
            scenario_toml: "name = \"t\"\n".into(),
            sites_per_gateway: 8,
            ..a.clone()
        };
        let d = a.differences(&b);
        assert_eq!(d.len(), 4, "{d:?}");
        assert_eq!(d[3], "--sites-per-gateway 1 (now 8)");
        assert!(d[0].contains("--days"), "{d:?}");
        assert!(d[1].contains("--step-s 300 (now 600)"), "{d:?}");
        assert_eq!(d[2], "another scenario");
    }

    #[test]
    fn the_run_state_survives_a_round_trip_and_a_damaged_file_is_refused() {
        let dir = std::env::temp_dir().join(format!("heatnet-run-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(RunState::FILE);
        assert!(RunState::read(&path).unwrap().is_none());
        let mut state = RunState::new(settings());
        state.wall_s = 1234.5;
        state.sittings_ended = 2;
        state.crashes.push(Crash {
            gateway: "c0050".into(),
            named: None,
            at_ms: 7,
            killed_wall_ms: 8,
        });
        state.crashes.push(Crash {
            gateway: "edge-c0049-c0056".into(),
            named: Some("c0050".into()),
            at_ms: 9,
            killed_wall_ms: 10,
        });
        state.write(&path).unwrap();
        assert_eq!(RunState::read(&path).unwrap(), Some(state));
        std::fs::write(&path, b"{\"settings\": ").unwrap();
        let err = format!("{:#}", RunState::read(&path).unwrap_err());
        assert!(
            err.contains("is damaged") && err.contains("without --resume"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_leak_surveys_fit_the_city_with_eight_leaks_one_at_a_time() {
        let world = simulator::World::new(Network::sample("city").unwrap());
        for text in [
            include_str!("../../../sim/simulator/scenarios/leak-survey.toml"),
            include_str!("../../../sim/simulator/scenarios/leak-survey-held-out.toml"),
        ] {
            let s = Scenario::from_toml(text).unwrap();
            s.validate(&world).unwrap();
            let mut opened: Vec<f64> = s
                .events
                .iter()
                .filter(|e| e.inject.is_some())
                .map(|e| e.at_h)
                .collect();
            opened.sort_by(f64::total_cmp);
            assert_eq!(opened.len(), 8);
            // Five hours and more between one leak's repair and the next.
            assert!(opened.windows(2).all(|w| w[1] - w[0] >= 6.0), "{opened:?}");
        }
    }

    #[test]
    fn the_shipped_scenarios_fit_the_city() {
        let net = Network::sample("city").unwrap();
        for text in [
            DEFAULT_SCENARIO,
            include_str!("../../../sim/simulator/scenarios/season-week.toml"),
            include_str!("../../../sim/simulator/scenarios/season-midwinter.toml"),
        ] {
            let s = Scenario::from_toml(text).unwrap();
            s.validate(&simulator::World::new(net.clone())).unwrap();
            assert!(s.events.iter().any(|e| e.crash_gateway.is_some()));
            assert!(s.events.iter().any(|e| e.weather_offset_k.is_some()));
            let kinds: Vec<_> = s
                .events
                .iter()
                .filter_map(|e| e.inject.as_ref())
                .map(|f| f.kind)
                .collect();
            for k in [
                simulator::FaultKind::SupplyLeak,
                simulator::FaultKind::PlantTrip,
                simulator::FaultKind::StuckValve,
            ] {
                assert!(kinds.contains(&k), "{} lacks {k:?}", s.name);
            }
        }
    }

    #[test]
    fn a_leak_location_is_graded_in_pipes_from_the_leaking_one() {
        let net = Network::sample("city").unwrap();
        let p = &net.pipes[10];
        assert_eq!(pipes_apart(&net, p.id.as_str(), p.id.as_str()), Some(0));
        // Every pipe meeting one of its ends is one pipe away; the pipes
        // meeting those, two (unless they also meet p).
        let touching: Vec<&model::network::Pipe> = net
            .pipes
            .iter()
            .filter(|q| {
                q.id != p.id
                    && [&q.from, &q.to]
                        .iter()
                        .any(|j| **j == p.from || **j == p.to)
            })
            .collect();
        assert!(!touching.is_empty());
        for q in &touching {
            assert_eq!(pipes_apart(&net, p.id.as_str(), q.id.as_str()), Some(1));
            assert_eq!(pipes_apart(&net, q.id.as_str(), p.id.as_str()), Some(1));
        }
        let far = net
            .pipes
            .iter()
            .filter_map(|q| pipes_apart(&net, p.id.as_str(), q.id.as_str()))
            .max()
            .unwrap();
        assert!(far >= 3, "{far}");
        assert_eq!(pipes_apart(&net, p.id.as_str(), "no-such-pipe"), None);
    }

    #[test]
    fn charts_scale_to_their_data_and_survive_none() {
        let svg = svg_chart(
            "heat",
            "GJ",
            &[(
                "optimizer".into(),
                "#c00",
                vec![[0.0, 10.0], [86_400_000.0, 20.0]],
            )],
        );
        assert!(svg.contains("<polyline"));
        // The first point sits at the left edge, the highest at the top margin band.
        assert!(svg.contains("70.0,"), "{svg}");
        assert!(svg_chart("x", "y", &[]).contains("no data"));
    }

    #[test]
    fn faults_are_matched_to_the_alarm_that_answers_them() {
        let net = Network::sample("demo").unwrap();
        let card = v1::Scorecard::default();
        let clock = v1::ClockState::default();
        let fault = |kind: v1::FaultKind, device: &str, at: i64| v1::FaultState {
            fault_id: 1,
            fault: Some(v1::Fault {
                kind: kind as i32,
                device_id: device.into(),
                metric: 0,
                magnitude: 1.0,
            }),
            active: false,
            injected_at_ms: at,
            cleared_at_ms: at + 86_400_000,
        };
        let alarm = |kind: &str, node: &str, at: i64| v1::Alarm {
            kind: kind.into(),
            node_id: node.into(),
            raised_network_ms: at,
            ..Default::default()
        };
        let r = build_report(
            &net,
            Mode::Optimizer,
            10.0,
            &clock,
            &card,
            &[
                fault(v1::FaultKind::PlantTrip, "plant-a", 1_000_000),
                fault(v1::FaultKind::SupplyLeak, "s03.pipe", 2_000_000),
                fault(v1::FaultKind::PumpTrip, "s01", 3_000_000),
            ],
            &[
                // Before the trip: not an answer.
                alarm("plant_trip", "plant-a", 900_000),
                alarm("plant_trip", "plant-a", 1_300_000),
                v1::Alarm {
                    leak: Some(v1::LeakSection {
                        pipe_id: "s02.pipe".into(),
                        ..Default::default()
                    }),
                    ..alarm("leak_suspected", "s02", 2_480_000)
                },
                alarm("pump_trip", "s02", 3_100_000),
            ],
            vec![],
        );
        assert_eq!(r.faults[0].detected_after_min, Some(5.0));
        assert_eq!(r.faults[1].detected_by.as_deref(), Some("leak_suspected"));
        assert_eq!(r.faults[1].detected_after_min, Some(8.0));
        assert_eq!(r.faults[1].located_pipe.as_deref(), Some("s02.pipe"));
        assert_eq!(r.faults[0].located_pipe, None);
        // A pump trip elsewhere does not count.
        assert_eq!(r.faults[2].detected_by, None);
        assert_eq!(r.alarms_by_kind["plant_trip"], 2);
    }
}
