//! The three kinds of heatnet process, runnable from their own binaries
//! (`heatnet-sim`, `heatnet-optimizer`, `heatnet-gateway`, as deployed) or as
//! `heatnet sim|optimizer|gateway` subcommands (what `heatnet up` starts).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

/// Plays the physical network and serves synthetic hardware over gRPC.
#[derive(Args, Clone, Debug)]
pub struct SimArgs {
    /// Sample network name (demo) or a path to a network file (.toml, .json).
    #[arg(long, default_value = "demo")]
    pub network: String,
    /// Local state directory of the simulator.
    #[arg(long, default_value = "heatnet-data/sim")]
    pub data_dir: PathBuf,
    #[arg(long, default_value = "127.0.0.1:7400")]
    pub listen: SocketAddr,
    /// Network seconds per real second.
    #[arg(long, default_value_t = 60.0)]
    pub speed: f64,
    /// Physics step, network seconds.
    #[arg(long, default_value_t = 10.0)]
    pub step_s: f64,
    /// Play the weather of an EPW file instead of the network's synthetic weather.
    #[arg(long)]
    pub epw: Option<PathBuf>,
    /// Also serve every site over Modbus TCP, on consecutive ports from this one.
    #[arg(long)]
    pub modbus_base_port: Option<u16>,
    /// Scenario file: faults and weather changes at given network times
    /// (see `sim/simulator/src/scenario.rs` and `docs/scenarios.md`).
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Lockstep clock: each step waits for every attached gateway's actuator
    /// writes, as fast as they allow (`--speed` is then ignored).
    #[arg(long)]
    pub lockstep: bool,
    /// Lockstep: gateways the first step waits for (up to 2 minutes).
    #[arg(long, default_value_t = 0)]
    pub expect_gateways: usize,
    /// Lockstep: planners (an optimizer run with `--lockstep-simulator`) the
    /// first step waits for (up to 2 minutes). Each step then waits for them
    /// to plan on what the gateways reported.
    #[arg(long, default_value_t = 0)]
    pub expect_planners: usize,
    /// Pause the clock when network time reaches this, Unix ms.
    #[arg(long)]
    pub stop_at_ms: Option<i64>,
    /// Free disk space, MiB, below which the simulator stops saving
    /// snapshots (it keeps running; the last snapshot stands whole).
    #[arg(long, default_value_t = store::DEFAULT_MIN_FREE_BYTES >> 20)]
    pub min_free_mib: u64,
}

pub fn sim(args: SimArgs) -> ExitCode {
    crate::run_process("heatnet-sim", "sim", 2, || async move {
        let network = model::Network::load(&args.network)?;
        let dir = args.data_dir.clone();
        observe::gauge_fn(
            "heatnet.store.size_bytes",
            "size of the sled store on disk, bytes",
            move || observe::prom::dir_size_bytes(&dir).map(|b| b as f64),
        );
        simulator::run(
            simulator::SimConfig {
                network,
                data_dir: args.data_dir,
                listen: args.listen,
                speed: args.speed,
                step_s: args.step_s,
                epw: args.epw,
                modbus_base_port: args.modbus_base_port,
                scenario: args.scenario,
                lockstep: args.lockstep,
                expect_gateways: args.expect_gateways,
                expect_planners: args.expect_planners,
                stop_at_ms: args.stop_at_ms,
                min_free_bytes: args.min_free_mib << 20,
            },
            crate::shutdown_signal(),
        )
        .await
    })
}

/// `heatnet sim …`: run the simulator, or compute a design steady state.
#[derive(Subcommand, Clone, Debug)]
pub enum SimCmd {
    /// Run the simulator process (as `heatnet-sim`).
    Run(SimArgs),
    /// Design calculation: solve a steady state (hydraulics and temperatures)
    /// and print every junction's pressures and temperatures, every pipe's
    /// flows and outlet temperatures, and every plant's and substation's duty.
    Steady(SteadyArgs),
    /// A whole heating season standalone, as fast as possible, under a fixed
    /// weather-compensated curve controlled in-process (the baseline and the
    /// simulator's speed benchmark). Prints a table, or JSON with --json.
    Season(SeasonArgs),
    /// Write a generated city network (meshed, three plants 20:12:12) to stdout
    /// or --out, for 1 to 3,323 substations.
    Generate(GenerateArgs),
}

#[derive(Args, Clone, Debug)]
pub struct SeasonArgs {
    /// Sample network name (demo, ring, city) or a path to a network file.
    #[arg(long, default_value = "city")]
    pub network: String,
    /// Days of network time from the network's start time.
    #[arg(long, default_value_t = 120.0)]
    pub days: f64,
    /// Physics step, network seconds.
    #[arg(long, default_value_t = 300.0)]
    pub step_s: f64,
    /// Scenario file: faults and weather changes at given network times.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Clone, Debug)]
pub struct GenerateArgs {
    #[arg(long, default_value_t = model::generate::CITY_SUBSTATIONS)]
    pub substations: usize,
    #[arg(long, default_value_t = model::generate::CITY_SEED)]
    pub seed: u64,
    /// File to write (.toml or .json); stdout (TOML) when absent.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn season(args: &SeasonArgs) -> anyhow::Result<()> {
    use std::io::Write;
    let net = model::Network::load(&args.network)?;
    let buildings: usize = net.substations.iter().map(|s| s.buildings.len()).sum();
    eprintln!(
        "season: {} ({} plants, {} substations, {buildings} buildings), {} days in {} s steps",
        net.name,
        net.plants.len(),
        net.substations.len(),
        args.days,
        args.step_s
    );
    let started = std::time::Instant::now();
    let mut last_pct = -1i64;
    let scenario = args
        .scenario
        .as_deref()
        .map(simulator::scenario::Scenario::load)
        .transpose()?;
    let summary = simulator::season::run_season(
        &net,
        &simulator::season::SeasonOptions {
            days: args.days,
            step_s: args.step_s,
            scenario,
        },
        &mut |done| {
            let pct = (done * 100.0).floor() as i64;
            if pct / 5 != last_pct / 5 {
                last_pct = pct;
                let elapsed = started.elapsed().as_secs_f64();
                let eta = if done > 0.0 {
                    elapsed * (1.0 - done) / done
                } else {
                    0.0
                };
                eprint!(
                    "\r  {pct:>3} %  day {:>5.1}  {elapsed:>6.1} s elapsed  ~{eta:>5.0} s left ",
                    done * args.days
                );
                let _ = std::io::stderr().flush();
            }
        },
    )?;
    eprintln!();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    let s = &summary;
    println!(
        "season of {} under a fixed curve ({} days, {} s steps)",
        s.network, s.days, s.step_s
    );
    println!("  wall time                 {:>12.1} s", s.wall_s);
    println!("  real-time factor          {:>12.0} x", s.realtime_factor);
    println!("  per step                  {:>12.3} ms", s.ms_per_step);
    println!(
        "  building-hours >= 18 C    {:>12.2} %",
        100.0 * s.comfort_share
    );
    println!(
        "  exposed flats >= 18 C     {:>12.2} %",
        100.0 * s.exposed_flat_comfort_share
    );
    println!(
        "  mean / min room           {:>6.2} / {:>5.2} C ({} on day {:.1})",
        s.mean_room_temp_c,
        s.min_room_temp_c,
        s.coldest_building,
        (s.coldest_at_ms - net.start_time_ms) as f64 / 86_400_000.0
    );
    println!(
        "  heat produced             {:>12.0} GJ",
        s.heat_produced_gj
    );
    println!(
        "  heat delivered            {:>12.0} GJ",
        s.heat_delivered_gj
    );
    println!("  pipe losses               {:>12.0} GJ", s.heat_lost_gj);
    println!(
        "  heat cost                 {:>12.0} yuan",
        s.heat_cost_yuan
    );
    println!(
        "  worst step energy residual {:>11.2e}",
        s.worst_energy_residual
    );
    println!("  hydraulic failures        {:>12}", s.hydraulic_failures);
    Ok(())
}

fn generate(args: &GenerateArgs) -> anyhow::Result<()> {
    let net = model::generate::city(args.substations, args.seed)?;
    match &args.out {
        None => print!("{}", net.to_toml()),
        Some(path) => {
            let text = if path.extension().is_some_and(|e| e == "json") {
                serde_json::to_string_pretty(&net)?
            } else {
                net.to_toml()
            };
            std::fs::write(path, text)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            let buildings: usize = net.substations.iter().map(|s| s.buildings.len()).sum();
            eprintln!(
                "wrote {} ({} substations, {buildings} buildings, {} junctions, {} pipes) to {}",
                net.name,
                net.substations.len(),
                net.junctions.len(),
                net.pipes.len(),
                path.display()
            );
        }
    }
    Ok(())
}

#[derive(Args, Clone, Debug)]
pub struct SteadyArgs {
    /// Sample network name (demo, ring) or a path to a network file.
    #[arg(long, default_value = "demo")]
    pub network: String,
    /// Design conditions (TOML): plant supply temperatures and, per substation,
    /// `heat_w` with `return_temp_c` or `flow_kg_s`. Default: design heat at
    /// design temperatures.
    #[arg(long)]
    pub conditions: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

pub fn sim_cmd(cmd: SimCmd) -> ExitCode {
    match cmd {
        SimCmd::Run(args) => sim(args),
        SimCmd::Steady(args) => report("steady", crate::steady::run(&args)),
        SimCmd::Season(args) => report("season", season(&args)),
        SimCmd::Generate(args) => report("generate", generate(&args)),
    }
}

fn report(what: &str, result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("heatnet sim {what}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Registry, durable telemetry, live network state, curves, setpoints, alarms.
#[derive(Args, Clone, Debug)]
pub struct OptimizerArgs {
    /// Local state directory of the optimizer.
    #[arg(long, default_value = "heatnet-data/optimizer")]
    pub data_dir: PathBuf,
    #[arg(long, default_value = "127.0.0.1:7401")]
    pub listen: SocketAddr,
    /// A gateway silent this long is marked lost, ms.
    #[arg(long, default_value_t = 3000)]
    pub heartbeat_timeout_ms: u64,
    /// Network time between planning rounds, s.
    #[arg(long, default_value_t = 300)]
    pub plan_interval_s: u64,
    /// `optimizing` (trims, dispatch, delays, differential pressure) or
    /// `fixed-curve` (the baseline: plain curve setpoints, no dispatch).
    #[arg(long, value_enum, default_value_t = OptimizerMode::Optimizing)]
    pub mode: OptimizerMode,
    /// The network description (sample name or file): plant capacities,
    /// minimum loads, ramps and prices for the dispatch, pipes for the
    /// transport delays, the layout for locating leaks. Without it plants get
    /// supply temperatures only and leaks are raised unlocated.
    #[arg(long)]
    pub network: Option<String>,
    /// Differential pressure to hold at the critical substation, Pa.
    #[arg(long, default_value_t = 50_000.0)]
    pub dp_target_pa: f64,
    /// Plan on every step of the simulator's lockstep clock at this address
    /// (season runs and tests): each step then waits for the planning round
    /// due and its commands, so a run is replayed from its seed. The
    /// simulator must run with `--lockstep`, and its gateways must report a
    /// step only once the optimizer has stored their telemetry.
    #[arg(long)]
    pub lockstep_simulator: Option<String>,
    /// Raw telemetry is kept this many days of network time; older batches
    /// are folded into hourly aggregates per node and metric.
    #[arg(long, default_value_t = 14.0)]
    pub telemetry_raw_days: f64,
    /// Hourly aggregates are kept this many days of network time.
    #[arg(long, default_value_t = 400.0)]
    pub telemetry_hourly_days: f64,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptimizerMode {
    Optimizing,
    FixedCurve,
}

impl From<OptimizerMode> for optimizer::core::PlanMode {
    fn from(m: OptimizerMode) -> Self {
        match m {
            OptimizerMode::Optimizing => Self::Optimizing,
            OptimizerMode::FixedCurve => Self::FixedCurve,
        }
    }
}

pub fn optimizer(args: OptimizerArgs) -> ExitCode {
    crate::run_process("heatnet-optimizer", "central", 2, || async move {
        anyhow::ensure!(
            (500..=600_000).contains(&args.heartbeat_timeout_ms),
            "--heartbeat-timeout-ms {} is outside 500..600000",
            args.heartbeat_timeout_ms
        );
        anyhow::ensure!(
            (10..=86_400).contains(&args.plan_interval_s),
            "--plan-interval-s {} is outside 10..86400",
            args.plan_interval_s
        );
        anyhow::ensure!(
            args.dp_target_pa.is_finite() && (1.0e4..=5.0e5).contains(&args.dp_target_pa),
            "--dp-target-pa {} is outside 10000..500000",
            args.dp_target_pa
        );
        anyhow::ensure!(
            (1.0..=3_660.0).contains(&args.telemetry_raw_days),
            "--telemetry-raw-days {} is outside 1..3660",
            args.telemetry_raw_days
        );
        anyhow::ensure!(
            (args.telemetry_raw_days..=36_600.0).contains(&args.telemetry_hourly_days),
            "--telemetry-hourly-days {} is outside {}..36600 (at least the raw days)",
            args.telemetry_hourly_days,
            args.telemetry_raw_days
        );
        let network = match &args.network {
            Some(n) => Some(std::sync::Arc::new(
                model::Network::load(n).map_err(|e| anyhow::anyhow!("--network {n}: {e}"))?,
            )),
            None => None,
        };
        let layout = network.as_deref().map(optimizer::detect::Layout::of);
        optimizer::run(
            optimizer::OptimizerConfig {
                data_dir: args.data_dir,
                listen: args.listen,
                core: optimizer::core::CoreConfig {
                    heartbeat_timeout: Duration::from_millis(args.heartbeat_timeout_ms),
                    heartbeat_interval_ms: 1000,
                    plan_interval_ms: args.plan_interval_s as i64 * 1000,
                    mode: args.mode.into(),
                    network,
                    dp_target_pa: args.dp_target_pa,
                    layout,
                },
                lockstep_simulator: args.lockstep_simulator,
                retention: optimizer::retention::Retention {
                    raw_keep_ms: (args.telemetry_raw_days * 86_400_000.0) as i64,
                    hourly_keep_ms: (args.telemetry_hourly_days * 86_400_000.0) as i64,
                    ..Default::default()
                },
            },
            crate::shutdown_signal(),
        )
        .await
    })
}

/// Hosts a plant's or substation's actors next to the hardware.
#[derive(Subcommand, Clone, Debug)]
pub enum GatewayCmd {
    /// Run the gateway.
    Run {
        /// Gateway configuration (TOML).
        #[arg(long)]
        config: PathBuf,
    },
    /// Show what the outbox of a stopped gateway holds.
    Inspect {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

pub fn gateway(cmd: GatewayCmd) -> ExitCode {
    match cmd {
        GatewayCmd::Run { config } => {
            let cfg = match gateway::GatewayConfig::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("heatnet-gateway: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let id = cfg.gateway_id.to_string();
            // Two workers: the edge box is small.
            crate::run_process("heatnet-gateway", &id, 1, || async move {
                gateway::run(cfg, crate::shutdown_signal()).await
            })
        }
        GatewayCmd::Inspect { config, json } => {
            let result = gateway::GatewayConfig::load(&config)
                .map_err(anyhow::Error::from)
                .and_then(|cfg| gateway::run::inspect(&cfg));
            match result {
                Ok(info) if json => {
                    println!("{}", serde_json::to_string(&info).unwrap_or_default());
                    ExitCode::SUCCESS
                }
                Ok(info) => {
                    println!(
                        "next_seq {}  acked_seq {}  pending {}  (first {:?}, last {:?})",
                        info.next_seq,
                        info.acked_seq,
                        info.pending,
                        info.first_pending,
                        info.last_pending
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("heatnet-gateway: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
