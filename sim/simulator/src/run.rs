//! The simulator process: clock loop, sled snapshots, gRPC server, shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use model::Network;
use proto::v1;
use store::{Store, StoreConfig};
use tokio::sync::Notify;

use crate::grpc::SimulatorGrpc;
use crate::world::{Snapshot, World};

/// Accepted clock speeds, network seconds per real second.
pub const SPEED_LIMITS: (f64, f64) = (0.01, 100_000.0);
/// How often the state is saved to sled, real time.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(2);

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub network: Network,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Network seconds per real second.
    pub speed: f64,
    /// Length of one physics step, network seconds.
    pub step_s: f64,
    /// Weather from an EPW file instead of the network's synthetic weather.
    pub epw: Option<PathBuf>,
    /// Serve Modbus TCP, one site per port from this one (plants, then substations).
    pub modbus_base_port: Option<u16>,
    /// Scenario file played on the network clock.
    pub scenario: Option<PathBuf>,
}

/// The simulator's clock: speed and pause, changed at run time over gRPC.
pub struct Clock {
    speed_bits: AtomicU64,
    paused: AtomicBool,
    steps: AtomicU64,
    changed: Notify,
}

impl Clock {
    fn new(speed: f64) -> Self {
        Self {
            speed_bits: AtomicU64::new(speed.to_bits()),
            paused: AtomicBool::new(false),
            steps: AtomicU64::new(0),
            changed: Notify::new(),
        }
    }
    pub fn speed(&self) -> f64 {
        f64::from_bits(self.speed_bits.load(Ordering::Relaxed))
    }
    pub fn set_speed(&self, speed: f64) {
        self.speed_bits.store(speed.to_bits(), Ordering::Relaxed);
        self.changed.notify_waiters();
    }
    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }
    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
        self.changed.notify_waiters();
    }
    pub fn to_wire(&self, time_ms: i64) -> v1::ClockState {
        v1::ClockState {
            time_ms,
            speed: self.speed(),
            paused: self.paused(),
            steps: self.steps.load(Ordering::Relaxed),
        }
    }
}

/// Runs the simulator until `shutdown` resolves; saves its state on the way out.
pub async fn run(
    cfg: SimConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        cfg.step_s > 0.0 && cfg.step_s <= 600.0,
        "step_s {} is outside 0..600 s",
        cfg.step_s
    );
    anyhow::ensure!(
        cfg.speed >= SPEED_LIMITS.0 && cfg.speed <= SPEED_LIMITS.1,
        "speed {} is outside {}..{}",
        cfg.speed,
        SPEED_LIMITS.0,
        SPEED_LIMITS.1
    );
    physics::Engine::supports(&cfg.network).map_err(|e| anyhow::anyhow!(e))?;
    let store = Store::open(
        &cfg.data_dir,
        &StoreConfig {
            kind: "simulator".into(),
            identity: cfg.network.name.clone(),
            cache_bytes: 16 << 20,
        },
    )?;
    let table = store.table("state")?;
    let mut world = World::new(cfg.network.clone());
    if let Some(path) = &cfg.epw {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading weather file {}", path.display()))?;
        let epw = physics::weather::Epw::parse(&text)
            .with_context(|| format!("weather file {}", path.display()))?;
        tracing::info!(location = %epw.location, "weather from EPW file");
        world.set_weather(physics::WeatherModel::from_epw(
            epw,
            cfg.network.weather.seed,
        ));
    }
    match table.get_json::<Snapshot>("snapshot")? {
        Some(snap) => {
            world.restore(snap).context(
                "restoring the saved simulation; move the data directory away to start fresh",
            )?;
            tracing::info!(
                time_ms = world.time_ms(),
                "simulation resumed from saved state"
            );
        }
        None => tracing::info!(time_ms = world.time_ms(), "fresh simulation"),
    }
    if let Some(path) = &cfg.scenario {
        let scenario = crate::scenario::Scenario::load(path)?;
        let events = scenario.events.len();
        world
            .set_scenario(scenario)
            .with_context(|| format!("scenario {}", path.display()))?;
        tracing::info!(path = %path.display(), events, "scenario loaded");
    }
    let world = Arc::new(Mutex::new(world));
    let clock = Arc::new(Clock::new(cfg.speed));
    if let Some(port) = cfg.modbus_base_port {
        let sites =
            crate::modbus::serve(world.clone(), &cfg.network, cfg.listen.ip(), port).await?;
        tracing::info!(sites = sites.len(), first_port = port, "modbus serving");
    }

    let (reporter, health, reflection) = observe::grpc::health_and_reflection()?;
    reporter
        .set_serving::<v1::simulator_service_server::SimulatorServiceServer<SimulatorGrpc>>()
        .await;
    let svc = SimulatorGrpc {
        world: world.clone(),
        clock: clock.clone(),
    };
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("binding the simulator to {}", cfg.listen))?;
    tracing::info!(listen = %cfg.listen, network = %cfg.network.name, speed = cfg.speed, "simulator serving");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health)
            .add_service(reflection)
            .add_service(v1::simulator_service_server::SimulatorServiceServer::new(
                svc,
            ))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = stop_rx.await;
                },
            ),
    );

    let save = |world: &Mutex<World>| -> anyhow::Result<()> {
        let snap = world
            .lock()
            .map_err(|_| anyhow::anyhow!("simulator state poisoned"))?
            .snapshot();
        table.put_json("snapshot", &snap)?;
        Ok(())
    };

    let stepping = async {
        let mut last_save = tokio::time::Instant::now();
        loop {
            let speed = clock.speed();
            let wait = Duration::from_secs_f64(cfg.step_s / speed);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = clock.changed.notified() => continue,
            }
            if clock.paused() {
                continue;
            }
            {
                let mut w = match world.lock() {
                    Ok(w) => w,
                    Err(_) => return Err(anyhow::anyhow!("simulator state poisoned")),
                };
                if let Err(e) = w.step(cfg.step_s) {
                    tracing::warn!(error = %e, "simulation step");
                }
                for done in w.drain_scenario_log() {
                    match done {
                        Ok(what) => tracing::info!(time_ms = w.time_ms(), "scenario: {what}"),
                        Err(e) => {
                            tracing::warn!(time_ms = w.time_ms(), error = %e, "scenario event refused")
                        }
                    }
                }
            }
            clock.steps.fetch_add(1, Ordering::Relaxed);
            if last_save.elapsed() >= SNAPSHOT_EVERY {
                save(&world)?;
                store.flush_async().await?;
                last_save = tokio::time::Instant::now();
            }
        }
    };
    let result = tokio::select! {
        r = stepping => r,
        _ = shutdown => Ok(()),
    };
    let _ = stop_tx.send(());
    let _ = server.await;
    save(&world)?;
    store.flush_async().await?;
    tracing::info!("simulator stopped, state saved");
    result
}
