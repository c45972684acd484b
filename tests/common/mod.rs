//! Helpers for the cross-process tests: real processes, real sockets, real signals.
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use proto::v1;
use proto::v1::control_room_service_client::ControlRoomServiceClient;
use proto::v1::simulator_service_client::SimulatorServiceClient;
use rand::SeedableRng as _;
use tonic::transport::Channel;

/// The seed of this run: `HEATNET_TEST_SEED` or a fixed default; printed so a
/// failure can be replayed.
pub fn seeded_rng(test: &str) -> rand_chacha::ChaCha8Rng {
    let seed = std::env::var("HEATNET_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_123u64);
    eprintln!("{test}: seed {seed} (replay with HEATNET_TEST_SEED={seed})");
    rand_chacha::ChaCha8Rng::seed_from_u64(seed)
}

/// A fresh directory for one test, removed on success (kept on failure for the logs).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("heatnet-it-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create test dir");
        eprintln!("{name}: working in {}", p.display());
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Ports no one listens on right now (bound and released).
/// Ports from its base that one `heatnet up` may use.
pub const UP_PORT_SPAN: u16 = 256;

pub fn free_port_block(n: u16) -> u16 {
    // `heatnet up` also uses base+100 (dashboard) and base+200.. (Modbus):
    // check the whole span free, so that tests side by side do not collide.
    // The block lies below Linux's ephemeral range (32768–60999): there an
    // outgoing connection of another test could take a port between a
    // killed process's death and its restart (a gateway killed 100 times
    // once found its health port taken, and never came back).
    const LOW: u32 = 10_000;
    const HIGH: u32 = 32_768;
    let n = n.max(UP_PORT_SPAN);
    let span = HIGH - LOW - u32::from(n);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    // Spread the tests running side by side (one process each) apart.
    let mut x = std::process::id().wrapping_mul(2_654_435_761) ^ nanos;
    for _ in 0..500 {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let base = (LOW + (x >> 8) % span) as u16;
        if (0..n).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no free block of {n} ports below {HIGH}");
}

pub fn bin(name: &str) -> PathBuf {
    match name {
        "heatnet" => PathBuf::from(env!("CARGO_BIN_EXE_heatnet")),
        "heatnet-sim" => PathBuf::from(env!("CARGO_BIN_EXE_heatnet-sim")),
        "heatnet-optimizer" => PathBuf::from(env!("CARGO_BIN_EXE_heatnet-optimizer")),
        "heatnet-gateway" => PathBuf::from(env!("CARGO_BIN_EXE_heatnet-gateway")),
        other => panic!("no binary {other}"),
    }
}

/// A child process whose output goes to `<dir>/<name>.log`; killed when dropped.
pub struct Proc {
    pub name: String,
    pub child: Child,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
}

impl Proc {
    pub fn start(dir: &Path, name: &str, program: &Path, args: &[String]) -> Self {
        Self::start_with_env(dir, name, program, args, &[])
    }

    /// `heatnet up --data-dir <data> --base-port <base>` plus `args`, logging to `dir`.
    pub fn heatnet_up(dir: &Path, data: &Path, base: u16, args: &[&str]) -> Self {
        let mut all: Vec<String> = vec![
            "up".into(),
            "--data-dir".into(),
            data.display().to_string(),
            "--base-port".into(),
            base.to_string(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        Self::start(dir, "heatnet-up", &bin("heatnet"), &all)
    }

    pub fn start_with_env(
        dir: &Path,
        name: &str,
        program: &Path,
        args: &[String],
        env: &[(&str, &str)],
    ) -> Self {
        let log = dir.join(format!("{name}.log"));
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let child = spawn(program, args, &log, &env);
        Self {
            name: name.to_string(),
            child,
            program: program.to_path_buf(),
            args: args.to_vec(),
            env,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running (it has not exited).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL, and reap.
    pub fn kill9(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
    }

    /// Starts the same command again.
    pub fn restart(&mut self) {
        self.child = spawn(&self.program, &self.args, &self.log, &self.env);
    }

    /// SIGTERM, then wait up to `timeout`; returns whether it exited by itself.
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

fn spawn(program: &Path, args: &[String], log: &Path, env: &[(String, String)]) -> Child {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    let err = out.try_clone().expect("log file");
    Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()))
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `check` every 100 ms until it returns `Some`, or panics after `timeout` with `what`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn control_room(addr: &str) -> Option<ControlRoomServiceClient<Channel>> {
    let ch = Channel::from_shared(format!("http://{addr}"))
        .ok()?
        .connect()
        .await
        .ok()?;
    Some(ControlRoomServiceClient::new(ch))
}

pub async fn simulator(addr: &str) -> Option<SimulatorServiceClient<Channel>> {
    let ch = Channel::from_shared(format!("http://{addr}"))
        .ok()?
        .connect()
        .await
        .ok()?;
    Some(SimulatorServiceClient::new(ch))
}

pub async fn network_state(addr: &str) -> Option<v1::NetworkState> {
    let mut c = control_room(addr).await?;
    c.get_network_state(v1::GetNetworkStateRequest {})
        .await
        .ok()
        .map(|r| r.into_inner())
}

pub async fn alarms(addr: &str) -> Vec<v1::Alarm> {
    let Some(mut c) = control_room(addr).await else {
        return Vec::new();
    };
    c.list_alarms(v1::ListAlarmsRequest {
        include_cleared: true,
    })
    .await
    .map(|r| r.into_inner().alarms)
    .unwrap_or_default()
}

/// Every stored batch sequence number of a gateway, in order.
pub async fn stored_seqs(addr: &str, gateway: &str) -> Vec<u64> {
    stored_batches(addr, gateway)
        .await
        .into_iter()
        .map(|b| b.0)
        .collect()
}

/// Stored batches (seq, first_time_ms) of a gateway.
pub async fn stored_batches(addr: &str, gateway: &str) -> Vec<(u64, i64)> {
    stored_telemetry(addr, gateway)
        .await
        .iter()
        .map(|b| (b.seq, b.first_time_ms))
        .collect()
}

/// Every batch the optimizer stored for a gateway, in sequence order (all pages).
pub async fn stored_telemetry(addr: &str, gateway: &str) -> Vec<v1::StoredBatch> {
    let mut c = control_room(addr).await.expect("optimizer reachable");
    let mut out = Vec::new();
    let mut from = 0;
    loop {
        let page = c
            .read_telemetry(v1::ReadTelemetryRequest {
                gateway_id: gateway.into(),
                from_seq: from,
                limit: 5000,
            })
            .await
            .expect("read telemetry")
            .into_inner()
            .batches;
        let Some(last) = page.last() else { break };
        from = last.seq + 1;
        out.extend(page);
    }
    out
}

/// Asserts that `seqs` is exactly 1, 2, …, n.
pub fn assert_contiguous(gateway: &str, seqs: &[u64]) {
    for (i, s) in seqs.iter().enumerate() {
        assert_eq!(
            *s,
            i as u64 + 1,
            "gateway {gateway}: stored sequence numbers are not 1..=n without gap or duplicate: {seqs:?}"
        );
    }
}

/// The whole system as separate processes: simulator, optimizer, one process per gateway.
pub struct System {
    pub dir: TempDir,
    pub sim: Proc,
    pub optimizer: Proc,
    pub gateways: Vec<(String, PathBuf, Proc)>,
    pub sim_addr: String,
    pub opt_addr: String,
}

impl System {
    pub async fn start(name: &str, speed: f64, fallback_after_ms: u64) -> Self {
        Self::start_with(
            name,
            speed,
            fallback_after_ms,
            heatnet::configs::HardwareKind::Grpc,
        )
        .await
    }

    pub async fn start_with(
        name: &str,
        speed: f64,
        fallback_after_ms: u64,
        hardware: heatnet::configs::HardwareKind,
    ) -> Self {
        let dir = TempDir::new(name);
        let base = free_port_block(30);
        let sim_addr = format!("127.0.0.1:{base}");
        let opt_addr = format!("127.0.0.1:{}", base + 1);
        let net = model::Network::sample("demo").expect("demo network");
        let mut configs = heatnet::configs::gateway_configs(
            &net,
            &dir.0,
            &opt_addr,
            &sim_addr,
            base,
            fallback_after_ms,
        )
        .expect("gateway configs");
        let mut sim_extra: Vec<String> = Vec::new();
        if hardware == heatnet::configs::HardwareKind::Modbus {
            let modbus_port = free_port_block(10);
            heatnet::configs::use_modbus(
                &mut configs,
                std::net::Ipv4Addr::LOCALHOST.into(),
                modbus_port,
            );
            sim_extra = vec!["--modbus-base-port".into(), modbus_port.to_string()];
        }
        let sim = Proc::start(
            &dir.0,
            "sim",
            &bin("heatnet-sim"),
            &[
                "--network".into(),
                "demo".into(),
                "--data-dir".into(),
                dir.0.join("sim").display().to_string(),
                "--listen".into(),
                sim_addr.clone(),
                "--speed".into(),
                speed.to_string(),
            ]
            .into_iter()
            .chain(sim_extra)
            .collect::<Vec<_>>(),
        );
        let optimizer = Proc::start(
            &dir.0,
            "optimizer",
            &bin("heatnet-optimizer"),
            &[
                "--data-dir".into(),
                dir.0.join("optimizer").display().to_string(),
                "--listen".into(),
                opt_addr.clone(),
            ],
        );
        std::fs::create_dir_all(dir.0.join("gateways")).expect("dir");
        let mut gateways = Vec::new();
        for c in configs {
            let path = dir
                .0
                .join("gateways")
                .join(format!("{}.toml", c.gateway_id));
            std::fs::write(&path, c.to_toml()).expect("write config");
            let p = Proc::start(
                &dir.0,
                &format!("gateway-{}", c.gateway_id),
                &bin("heatnet-gateway"),
                &["run".into(), "--config".into(), path.display().to_string()],
            );
            gateways.push((c.gateway_id.to_string(), path, p));
        }
        Self {
            dir,
            sim,
            optimizer,
            gateways,
            sim_addr,
            opt_addr,
        }
    }

    /// Waits until every gateway is online and every node has reported readings.
    pub async fn wait_all_live(&self, timeout: Duration) -> v1::NetworkState {
        let n = self.gateways.len();
        let addr = self.opt_addr.clone();
        wait_for(timeout, "every gateway online with live readings", || {
            let addr = addr.clone();
            async move {
                let s = network_state(&addr).await?;
                let ok = s.gateways.len() == n
                    && s.gateways.iter().all(|g| g.online)
                    && s.nodes.iter().all(|node| {
                        node.online && node.reading_time_ms > 0 && !node.readings.is_empty()
                    });
                ok.then_some(s)
            }
        })
        .await
    }

    pub fn gateway(&mut self, id: &str) -> &mut (String, PathBuf, Proc) {
        self.gateways
            .iter_mut()
            .find(|g| g.0 == id)
            .expect("gateway")
    }

    /// Dumps the processes' logs (call before failing).
    pub fn dump_logs(&self) {
        for p in [&self.sim, &self.optimizer]
            .into_iter()
            .chain(self.gateways.iter().map(|g| &g.2))
        {
            eprintln!("---- {} ----\n{}", p.name, p.log_tail());
        }
    }
}

/// `heatnet-gateway inspect` on a stopped gateway: (next_seq, acked_seq, pending).
pub fn inspect(config: &Path) -> (u64, u64, u64) {
    let out = Command::new(bin("heatnet-gateway"))
        .args(["inspect", "--json", "--config"])
        .arg(config)
        .output()
        .expect("run inspect");
    assert!(
        out.status.success(),
        "inspect failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect json");
    (
        v["next_seq"].as_u64().expect("next_seq"),
        v["acked_seq"].as_u64().expect("acked_seq"),
        v["pending"].as_u64().expect("pending"),
    )
}

pub async fn actuators(sim_addr: &str, device: &str) -> Vec<(i32, f64)> {
    let mut c = simulator(sim_addr).await.expect("simulator reachable");
    c.read_actuators(v1::ReadActuatorsRequest {
        device_id: device.into(),
    })
    .await
    .expect("read actuators")
    .into_inner()
    .values
    .iter()
    .map(|w| (w.actuator, w.value))
    .collect()
}
