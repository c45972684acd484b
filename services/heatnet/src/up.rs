//! `heatnet up`: the whole system on one machine, one OS process per part.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use heatnet::configs::gateway_configs;
use heatnet::layout::{self, GatewayEntry, UpFile};
use model::Network;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::sync::watch;

/// The environment variable through which each child learns its metrics address.
const METRICS_ENV: &str = "HEATNET_METRICS_LISTEN";

#[derive(Args, Clone, Debug)]
pub struct UpArgs {
    /// Sample network (demo) or a network file (.toml, .json).
    #[arg(long, default_value = "demo")]
    network: String,
    /// Where every process keeps its state and logs.
    #[arg(long, default_value = layout::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// First of the loopback ports: simulator = base, optimizer = base+1, gateways from base+10.
    #[arg(long, default_value_t = layout::DEFAULT_BASE_PORT)]
    base_port: u16,
    /// Simulated seconds per real second.
    #[arg(long, default_value_t = 60.0)]
    speed: f64,
    /// Gateways fall back on their local curves after this much optimizer silence, ms.
    #[arg(long, default_value_t = 30_000)]
    fallback_after_ms: u64,
    /// Play the weather of an EPW file instead of the network's synthetic weather.
    #[arg(long)]
    epw: Option<PathBuf>,
    /// Scenario file: faults and weather changes at given network times.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// How gateways reach the simulated hardware.
    #[arg(long, value_enum, default_value_t = heatnet::configs::HardwareKind::Grpc)]
    hardware: heatnet::configs::HardwareKind,
    /// Port of the control-room web dashboard on loopback; default base+100.
    #[arg(long)]
    dashboard_port: Option<u16>,
    /// Physics step of the simulator, network seconds.
    #[arg(long, default_value_t = 10.0)]
    step_s: f64,
    /// Lockstep clock: every simulator step waits for all gateways' actuator
    /// writes and runs as fast as they allow (`--speed` is then ignored).
    #[arg(long)]
    lockstep: bool,
    /// Pause the simulator's clock when network time reaches this, Unix ms.
    #[arg(long)]
    stop_at_ms: Option<i64>,
    /// The optimizer marks a gateway lost after this much silence, real ms.
    #[arg(long, default_value_t = 3000)]
    heartbeat_timeout_ms: u64,
    /// How the optimizer plans: `optimizing`, or the `fixed-curve` baseline.
    #[arg(long, value_enum, default_value_t = heatnet::procs::OptimizerMode::Optimizing)]
    optimizer_mode: heatnet::procs::OptimizerMode,
    /// Substations per gateway: 1 (an edge box at every substation), or a
    /// run of them on one gateway (`edge-{first}-{last}`), as an edge server
    /// per district would: far fewer processes on one machine. Simulator
    /// hardware only.
    #[arg(long, default_value_t = 1)]
    sites_per_gateway: usize,
}

/// One supervised child process.
#[derive(Clone)]
struct Spec {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    /// Extra environment (the Prometheus endpoint's address).
    env: Vec<(String, String)>,
}

/// Shared view of the children, written to `up.json` on every change.
struct Book {
    file: UpFile,
    pids: BTreeMap<String, u32>,
    restarts: BTreeMap<String, u32>,
    path: PathBuf,
}

#[derive(serde::Serialize)]
struct UpJson<'a> {
    #[serde(flatten)]
    file: &'a UpFile,
    pids: &'a BTreeMap<String, u32>,
    restarts: &'a BTreeMap<String, u32>,
}

impl Book {
    fn write(&self) {
        let json = UpJson {
            file: &self.file,
            pids: &self.pids,
            restarts: &self.restarts,
        };
        let tmp = self.path.with_extension("json.tmp");
        let ok = serde_json::to_vec_pretty(&json)
            .ok()
            .and_then(|bytes| std::fs::write(&tmp, bytes).ok())
            .and_then(|_| std::fs::rename(&tmp, &self.path).ok());
        if ok.is_none() {
            tracing::warn!(path = %self.path.display(), "cannot write up.json");
        }
    }
}

/// Every child is this same executable, run as `heatnet sim|optimizer|gateway`.
fn this_exe() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("locating the heatnet binary")
}

async fn wait_for_port(addr: &str, what: &str, timeout: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("{what} did not open {addr} within {timeout:?}; see its log")
}

/// How long the simulator and the optimizer may take to open their stores
/// and listen: sled reads its whole log on opening, and an optimizer's store
/// 46 days into a `city` season (11 GB, before telemetry retention) took
/// more than 30 s.
const STORE_OPEN_LIMIT: Duration = Duration::from_secs(600);

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let net = Network::load(&args.network)?;
    physics::Engine::supports(&net).map_err(|e| anyhow::anyhow!(e))?;
    if let Some(path) = &args.scenario {
        // Refuse a broken scenario here, not in a simulator restarted forever.
        simulator::scenario::Scenario::load(path)?
            .validate(&simulator::World::new(net.clone()))
            .with_context(|| format!("scenario {}", path.display()))?;
    }
    let data_dir = args.data_dir.clone();
    std::fs::create_dir_all(data_dir.join("logs"))
        .with_context(|| format!("creating {}", data_dir.display()))?;
    std::fs::create_dir_all(data_dir.join("gateways"))?;
    let n_sites = net.plants.len() + net.substations.len();
    let span = heatnet::configs::port_offsets(n_sites).modbus as usize + n_sites;
    anyhow::ensure!(
        args.base_port as usize + span <= 65_535,
        "--base-port {} leaves no room for the {span} ports this network needs; pick one below {}",
        args.base_port,
        65_535 - span
    );
    let sim_addr = format!("127.0.0.1:{}", args.base_port);
    let opt_addr = format!("127.0.0.1:{}", args.base_port + 1);
    // Another run on the same ports would answer in this one's place (a
    // season would read the other run's clock): refuse before anything starts.
    for (addr, what) in [(&sim_addr, "simulator"), (&opt_addr, "optimizer")] {
        if let Err(e) = std::net::TcpListener::bind(addr.as_str()) {
            anyhow::bail!(
                "the {what}'s port {addr} is taken ({e}): another `heatnet up` or `heatnet season` may be running on this machine; stop it, or give this one another --base-port"
            );
        }
    }

    let mut configs = gateway_configs(
        &net,
        &data_dir,
        &opt_addr,
        &sim_addr,
        args.base_port,
        args.fallback_after_ms,
    )?;
    let modbus_port = heatnet::configs::modbus_base_port(args.base_port, configs.len());
    if args.sites_per_gateway != 1 {
        anyhow::ensure!(
            args.hardware != heatnet::configs::HardwareKind::Modbus,
            "--sites-per-gateway {} needs --hardware grpc: a Modbus gateway reads one site server",
            args.sites_per_gateway
        );
        configs =
            heatnet::configs::group_substations(configs, &net, args.sites_per_gateway, &data_dir)?;
    }
    if args.lockstep {
        heatnet::configs::use_lockstep(&mut configs, &sim_addr);
    }
    if args.hardware == heatnet::configs::HardwareKind::Modbus {
        heatnet::configs::use_modbus(
            &mut configs,
            std::net::Ipv4Addr::LOCALHOST.into(),
            modbus_port,
        );
    }
    let mut entries = Vec::new();
    for c in &configs {
        let path = layout::gateway_config_path(&data_dir, c.gateway_id.as_str());
        std::fs::write(&path, c.to_toml())
            .with_context(|| format!("writing {}", path.display()))?;
        entries.push(GatewayEntry {
            gateway_id: c.gateway_id.to_string(),
            config: path,
            health: c.health_listen.to_string(),
        });
    }

    let network_arg = if args.network.contains('/') || args.network.contains('.') {
        std::fs::canonicalize(&args.network)?.display().to_string()
    } else {
        args.network.clone()
    };
    let sim = Spec {
        name: "sim".into(),
        program: this_exe()?,
        args: vec![
            "sim".into(),
            "run".into(),
            "--network".into(),
            network_arg.clone(),
            "--data-dir".into(),
            data_dir.join("sim").display().to_string(),
            "--listen".into(),
            sim_addr.clone(),
            "--speed".into(),
            args.speed.to_string(),
            "--step-s".into(),
            args.step_s.to_string(),
        ]
        .into_iter()
        .chain(
            args.lockstep
                .then(|| {
                    [
                        "--lockstep".to_string(),
                        // The weather feed steps with the gateways.
                        "--expect-gateways".to_string(),
                        (configs.len() + 1).to_string(),
                        "--expect-planners".to_string(),
                        "1".to_string(),
                    ]
                })
                .into_iter()
                .flatten(),
        )
        .chain(
            args.stop_at_ms
                .iter()
                .flat_map(|t| ["--stop-at-ms".to_string(), t.to_string()]),
        )
        .chain(
            (args.hardware == heatnet::configs::HardwareKind::Modbus)
                .then(|| ["--modbus-base-port".to_string(), modbus_port.to_string()])
                .into_iter()
                .flatten(),
        )
        .chain(args.epw.iter().flat_map(|p| {
            [
                "--epw".to_string(),
                std::fs::canonicalize(p)
                    .unwrap_or(p.clone())
                    .display()
                    .to_string(),
            ]
        }))
        .chain(args.scenario.iter().flat_map(|p| {
            [
                "--scenario".to_string(),
                std::fs::canonicalize(p)
                    .unwrap_or(p.clone())
                    .display()
                    .to_string(),
            ]
        }))
        .collect(),
        env: Vec::new(),
    };
    let opt = Spec {
        name: "optimizer".into(),
        program: this_exe()?,
        args: vec![
            "optimizer".into(),
            "--data-dir".into(),
            data_dir.join("optimizer").display().to_string(),
            "--listen".into(),
            opt_addr.clone(),
            "--network".into(),
            network_arg.clone(),
            "--heartbeat-timeout-ms".into(),
            args.heartbeat_timeout_ms.to_string(),
            "--mode".into(),
            match args.optimizer_mode {
                heatnet::procs::OptimizerMode::Optimizing => "optimizing",
                heatnet::procs::OptimizerMode::FixedCurve => "fixed-curve",
            }
            .into(),
        ]
        .into_iter()
        .chain(
            args.lockstep
                .then(|| ["--lockstep-simulator".to_string(), sim_addr.clone()])
                .into_iter()
                .flatten(),
        )
        .collect(),
        env: Vec::new(),
    };
    let dash_addr = format!(
        "127.0.0.1:{}",
        args.dashboard_port
            .unwrap_or(heatnet::dash::dashboard_port(args.base_port))
    );
    let dash = Spec {
        name: "dashboard".into(),
        program: this_exe()?,
        args: vec![
            "dashboard".into(),
            "--optimizer".into(),
            opt_addr.clone(),
            "--simulator".into(),
            sim_addr.clone(),
            "--listen".into(),
            dash_addr.clone(),
            "--network".into(),
            network_arg.clone(),
            "--report-dir".into(),
            data_dir.join("season").display().to_string(),
        ],
        env: Vec::new(),
    };
    let gw_program = this_exe()?;
    let gateways: Vec<Spec> = entries
        .iter()
        .map(|e| Spec {
            name: format!("gateway-{}", e.gateway_id),
            program: gw_program.clone(),
            args: vec![
                "gateway".into(),
                "run".into(),
                "--config".into(),
                e.config.display().to_string(),
            ],
            env: Vec::new(),
        })
        .collect();

    // Prometheus endpoints: simulator base+2, optimizer base+3, dashboard
    // base+4, gateways right after the gateways' health ports (see
    // `configs::port_offsets`; none where a port would overflow).
    let mut metrics = BTreeMap::new();
    let mut sim = sim;
    let mut opt = opt;
    let mut dash = dash;
    let mut gateways = gateways;
    let with_metrics =
        |spec: &mut Spec, port: Option<u16>, metrics: &mut BTreeMap<String, String>| {
            if let Some(port) = port {
                let addr = format!("127.0.0.1:{port}");
                spec.env.push((METRICS_ENV.to_string(), addr.clone()));
                metrics.insert(spec.name.clone(), addr);
            }
        };
    with_metrics(&mut sim, args.base_port.checked_add(2), &mut metrics);
    with_metrics(&mut opt, args.base_port.checked_add(3), &mut metrics);
    with_metrics(&mut dash, args.base_port.checked_add(4), &mut metrics);
    let first_gateway_metrics =
        // Counted over the sites, as the health ports are (a gateway hosting
        // several substations keeps its first one's health port).
        heatnet::configs::port_offsets(n_sites).gateway_metrics as usize;
    for (i, g) in gateways.iter_mut().enumerate() {
        let port = u16::try_from(first_gateway_metrics + i)
            .ok()
            .and_then(|off| args.base_port.checked_add(off));
        with_metrics(g, port, &mut metrics);
    }
    let book = Arc::new(Mutex::new(Book {
        file: UpFile {
            network: net.name.clone(),
            simulator: sim_addr.clone(),
            optimizer: opt_addr.clone(),
            dashboard: Some(dash_addr.clone()),
            metrics: metrics.clone(),
            supervisor_pid: std::process::id(),
            gateways: entries,
        },
        pids: BTreeMap::new(),
        restarts: BTreeMap::new(),
        path: layout::up_file(&data_dir),
    }));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();

    println!(
        "heatnet up: network {} ({} plants, {} substations, {} buildings), data in {}",
        net.name,
        net.plants.len(),
        net.substations.len(),
        net.substations
            .iter()
            .map(|s| s.buildings.len())
            .sum::<usize>(),
        data_dir.display()
    );
    tasks.push(tokio::spawn(supervise(
        sim,
        data_dir.clone(),
        book.clone(),
        stop_rx.clone(),
    )));
    tasks.push(tokio::spawn(supervise(
        opt,
        data_dir.clone(),
        book.clone(),
        stop_rx.clone(),
    )));
    let started = Instant::now();
    let ready = async {
        wait_for_port(&sim_addr, "the simulator", STORE_OPEN_LIMIT).await?;
        wait_for_port(&opt_addr, "the optimizer", STORE_OPEN_LIMIT).await
    };
    tokio::select! {
        r = ready => r?,
        _ = heatnet::shutdown_signal() => {
            let _ = stop_tx.send(true);
            for t in tasks { let _ = t.await; }
            return Ok(());
        }
    }
    if args.lockstep {
        println!(
            "  simulator   {sim_addr}  (lockstep with the gateways, the weather feed and the optimizer, {} s steps)",
            args.step_s
        );
    } else {
        println!(
            "  simulator   {sim_addr}  (speed ×{}, {} s steps)",
            args.speed, args.step_s
        );
    }
    println!("  optimizer   {opt_addr}");
    tasks.push(tokio::spawn(supervise(
        dash,
        data_dir.clone(),
        book.clone(),
        stop_rx.clone(),
    )));
    println!("  dashboard   http://{dash_addr}/");
    tasks.push(tokio::spawn(heatnet::feed::run(
        sim_addr.clone(),
        opt_addr.clone(),
        args.lockstep,
        stop_rx.clone(),
    )));
    println!(
        "  forecasts   the simulator's forecast product loaded into the optimizer every network hour (a stand-in for a weather service)"
    );
    let n_gateways = gateways.len();
    for g in gateways {
        tasks.push(tokio::spawn(supervise(
            g,
            data_dir.clone(),
            book.clone(),
            stop_rx.clone(),
        )));
    }
    println!(
        "  gateways    {n_gateways} processes, health from 127.0.0.1:{}",
        args.base_port + heatnet::configs::port_offsets(n_sites).gateway_health
    );
    if let Some(opt_metrics) = metrics.get("optimizer") {
        println!(
            "  metrics     http://{opt_metrics}/metrics (optimizer); every process's in up.json"
        );
    }
    println!("  logs        {}", data_dir.join("logs").display());
    println!(
        "Ctrl-C stops everything. Watch with: heatnet status --data-dir {}",
        data_dir.display()
    );

    let watch_online = {
        let opt_addr = opt_addr.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if let Ok(state) = crate::status::fetch(&opt_addr).await {
                    let online = state.gateways.iter().filter(|g| g.online).count();
                    if online == n_gateways {
                        println!(
                            "all {n_gateways} gateways online after {:.1} s",
                            started.elapsed().as_secs_f64()
                        );
                        break;
                    }
                }
            }
            std::future::pending::<()>().await
        }
    };
    tokio::select! {
        _ = watch_online => {}
        _ = heatnet::shutdown_signal() => {}
    }
    println!("stopping every process…");
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    let _ = std::fs::remove_file(layout::up_file(&data_dir));
    println!("stopped.");
    Ok(())
}

/// Starts a child, restarts it when it dies, stops it (SIGTERM, then SIGKILL) on request.
async fn supervise(
    spec: Spec,
    data_dir: PathBuf,
    book: Arc<Mutex<Book>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(500);
    loop {
        if *stop.borrow() {
            return;
        }
        let log = layout::log_path(&data_dir, &spec.name);
        let child = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|out| {
                let err = out.try_clone()?;
                let mut cmd = tokio::process::Command::new(&spec.program);
                cmd.args(&spec.args)
                    .envs(spec.env.iter().map(|(k, v)| (k, v)))
                    .stdout(out)
                    .stderr(err)
                    .stdin(std::process::Stdio::null());
                // SAFETY: only async-signal-safe work between fork and exec:
                // one prctl(2) so that the child is told to stop if we die.
                unsafe {
                    cmd.pre_exec(|| {
                        nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)
                            .map_err(std::io::Error::from)
                    });
                }
                cmd.spawn()
            });
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                eprintln!(
                    "heatnet up: cannot start {} ({}): {e}",
                    spec.name,
                    spec.program.display()
                );
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        let pid = child.id().unwrap_or(0);
        if let Ok(mut b) = book.lock() {
            b.pids.insert(spec.name.clone(), pid);
            b.write();
        }
        let began = Instant::now();
        tokio::select! {
            status = child.wait() => {
                if *stop.borrow() {
                    return;
                }
                let how = match status {
                    Ok(s) => describe_exit(s),
                    Err(e) => format!("could not be waited on: {e}"),
                };
                if began.elapsed() > Duration::from_secs(60) {
                    backoff = Duration::from_millis(500);
                }
                eprintln!("heatnet up: {} (pid {pid}) {how}; restarting in {:.1} s", spec.name, backoff.as_secs_f64());
                tracing::error!(process = %spec.name, pid, exit = %how, "child process died: restarting");
                if let Ok(mut b) = book.lock() {
                    *b.restarts.entry(spec.name.clone()).or_default() += 1;
                    b.pids.remove(&spec.name);
                    b.write();
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            _ = stop.changed() => {
                if pid != 0 {
                    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
                }
                if tokio::time::timeout(Duration::from_secs(10), child.wait()).await.is_err() {
                    eprintln!("heatnet up: {} did not stop within 10 s: killing it", spec.name);
                    let _ = child.kill().await;
                }
                return;
            }
        }
    }
}

fn describe_exit(s: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exited with code {c}"),
        (None, Some(sig)) => format!(
            "was killed by signal {sig} ({})",
            Signal::try_from(sig).map(|s| s.as_str()).unwrap_or("?")
        ),
        _ => "ended".into(),
    }
}
