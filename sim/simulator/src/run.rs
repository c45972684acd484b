//! The simulator process: clock loop, sled snapshots, gRPC server, shutdown.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use model::Network;
use proto::v1;
use store::{Store, StoreConfig};
use tokio::sync::{Notify, watch};

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
    /// Lockstep: each step waits for every attached gateway's actuator writes,
    /// as fast as they allow (`speed` is ignored).
    pub lockstep: bool,
    /// Lockstep: gateways the first step waits for (at most
    /// [`LOCKSTEP_STARTUP_TIMEOUT`]).
    pub expect_gateways: usize,
    /// Lockstep: planners (the optimizer) the first step waits for (at most
    /// [`LOCKSTEP_STARTUP_TIMEOUT`]).
    pub expect_planners: usize,
    /// The clock pauses when network time reaches this, Unix ms.
    pub stop_at_ms: Option<i64>,
    /// Free disk space below which snapshots are not saved
    /// ([`store::StoreConfig::min_free_bytes`]); the simulation goes on.
    pub min_free_bytes: u64,
}

/// Lockstep: a gateway that has not finished with a step this long (real
/// time) is detached, and the clock goes on without it until it reports again.
pub const LOCKSTEP_PARTY_TIMEOUT: Duration = Duration::from_secs(3);
/// Lockstep: a planner that has not finished with a step this long (real
/// time) is detached. A planning round of the 3,323-substation city under a
/// loaded machine takes seconds, not minutes.
pub const LOCKSTEP_PLANNER_TIMEOUT: Duration = Duration::from_secs(60);
/// Lockstep: how long the first step waits for the expected gateways.
pub const LOCKSTEP_STARTUP_TIMEOUT: Duration = Duration::from_secs(120);
/// Lockstep: longest an `AwaitStep` call is held before it is answered with
/// the unchanged clock (the clock is paused or stopped).
pub const AWAIT_STEP_LIMIT: Duration = Duration::from_secs(5);
/// Most gateways attached to a lockstep clock.
pub const MAX_LOCKSTEP_PARTIES: usize = 10_000;

/// What a party of the lockstep clock does with a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Reads the sensors after the step and writes its actuators.
    Gateway,
    /// Works on the step after every gateway has finished with it (reads their
    /// telemetry, sends and settles its commands), before the next step.
    Planner,
}

/// Why a party cannot attach to the lockstep clock.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum AwaitError {
    #[error("the lockstep clock has {MAX_LOCKSTEP_PARTIES} parties already")]
    Full,
    #[error(
        "{party} is attached to the lockstep clock as a {attached_as:?}: another party has its name"
    )]
    Role { party: String, attached_as: Role },
}

/// A gateway or planner attached to the lockstep clock.
#[derive(Clone, Copy, Debug)]
struct Party {
    done_step: u64,
    attached: bool,
    role: Role,
}

/// The simulator's clock: speed and pause, changed at run time over gRPC; in
/// lockstep, the book of which gateway has finished with which step.
pub struct Clock {
    speed_bits: AtomicU64,
    paused: AtomicBool,
    steps: AtomicU64,
    changed: Notify,
    lockstep: bool,
    stop_at_ms: i64,
    parties: Mutex<BTreeMap<String, Party>>,
    /// Bumped on every report of a finished step.
    reports: watch::Sender<u64>,
    /// The number of steps taken.
    stepped: watch::Sender<u64>,
    /// The step every attached gateway has finished with, until the clock
    /// steps again: what the planners work on.
    scanned: watch::Sender<Option<u64>>,
}

impl Clock {
    pub fn new(speed: f64, lockstep: bool, stop_at_ms: Option<i64>) -> Self {
        Self {
            speed_bits: AtomicU64::new(speed.to_bits()),
            paused: AtomicBool::new(false),
            steps: AtomicU64::new(0),
            changed: Notify::new(),
            lockstep,
            stop_at_ms: stop_at_ms.unwrap_or(0),
            parties: Mutex::new(BTreeMap::new()),
            reports: watch::channel(0).0,
            stepped: watch::channel(0).0,
            scanned: watch::channel(None).0,
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
    pub fn steps(&self) -> u64 {
        self.steps.load(Ordering::Relaxed)
    }
    pub fn lockstep(&self) -> bool {
        self.lockstep
    }
    fn parties(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Party>> {
        // The book holds plain numbers: a panic elsewhere cannot leave it torn.
        self.parties.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn attached(&self, role: Role) -> usize {
        self.parties()
            .values()
            .filter(|p| p.attached && p.role == role)
            .count()
    }
    pub fn to_wire(&self, time_ms: i64) -> v1::ClockState {
        v1::ClockState {
            time_ms,
            speed: self.speed(),
            paused: self.paused(),
            steps: self.steps(),
            lockstep: self.lockstep,
            attached_gateways: u32::try_from(self.attached(Role::Gateway)).unwrap_or(u32::MAX),
            stop_at_ms: self.stop_at_ms,
            attached_planners: u32::try_from(self.attached(Role::Planner)).unwrap_or(u32::MAX),
        }
    }

    /// A party has finished with `done_step`: books it, then waits (bounded,
    /// [`AWAIT_STEP_LIMIT`]) for the next step to work on, and returns it.
    /// A gateway's next step is the next one taken; a planner's is the step
    /// every gateway has finished with (`done_step` again when there is none
    /// yet: ask again). In a real-time clock it answers at once with the
    /// number of steps taken.
    pub async fn await_step(
        &self,
        party: &str,
        done_step: u64,
        role: Role,
    ) -> Result<u64, AwaitError> {
        let now = self.steps();
        if !self.lockstep {
            return Ok(now);
        }
        // A party ahead of us saw an earlier run of this simulator.
        let done = done_step.min(now);
        {
            let mut parties = self.parties();
            if !parties.contains_key(party) && parties.len() >= MAX_LOCKSTEP_PARTIES {
                return Err(AwaitError::Full);
            }
            let p = parties.entry(party.to_string()).or_insert(Party {
                done_step: done,
                attached: false,
                role,
            });
            if p.role != role {
                return Err(AwaitError::Role {
                    party: party.to_string(),
                    attached_as: p.role,
                });
            }
            if !p.attached {
                tracing::info!(
                    party,
                    role = ?role,
                    step = now,
                    "attached to the lockstep clock"
                );
            }
            *p = Party {
                done_step: done,
                attached: true,
                role,
            };
        }
        self.reports.send_modify(|n| *n = n.wrapping_add(1));
        match role {
            Role::Gateway => {
                let mut rx = self.stepped.subscribe();
                let _ = tokio::time::timeout(AWAIT_STEP_LIMIT, rx.wait_for(|s| *s > done)).await;
                Ok(self.steps())
            }
            Role::Planner => {
                let mut rx = self.scanned.subscribe();
                let released = tokio::time::timeout(
                    AWAIT_STEP_LIMIT,
                    rx.wait_for(|s| s.is_some_and(|k| k > done)),
                )
                .await;
                Ok(match released {
                    Ok(Ok(k)) => k.unwrap_or(done),
                    _ => done,
                })
            }
        }
    }

    /// Lockstep: waits until every attached party of `role` has finished
    /// with the current step (before the first step: until `expect` of them
    /// have attached). Laggards are detached after [`LOCKSTEP_PARTY_TIMEOUT`]
    /// (planners: [`LOCKSTEP_PLANNER_TIMEOUT`]).
    async fn wait_for_parties(&self, role: Role, expect: usize) {
        let k = self.steps();
        let (timeout, expect) = match (k, role) {
            (0, _) => (LOCKSTEP_STARTUP_TIMEOUT, expect),
            (_, Role::Gateway) => (LOCKSTEP_PARTY_TIMEOUT, 0),
            (_, Role::Planner) => (LOCKSTEP_PLANNER_TIMEOUT, 0),
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.reports.subscribe();
        loop {
            let lagging: Vec<String> = {
                let parties = self.parties();
                let attached = parties
                    .values()
                    .filter(|p| p.attached && p.role == role)
                    .count();
                let lagging: Vec<String> = parties
                    .iter()
                    .filter(|(_, p)| p.attached && p.role == role && p.done_step < k)
                    .map(|(g, _)| g.clone())
                    .collect();
                if lagging.is_empty() && attached >= expect {
                    return;
                }
                lagging
            };
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                let mut parties = self.parties();
                for g in &lagging {
                    if let Some(p) = parties.get_mut(g) {
                        p.attached = false;
                    }
                }
                if !lagging.is_empty() {
                    tracing::warn!(step = k, role = ?role, parties = ?lagging, "did not finish the step in time: detached from the lockstep clock");
                } else {
                    tracing::warn!(
                        role = ?role,
                        expected = expect,
                        attached = parties.values().filter(|p| p.attached && p.role == role).count(),
                        "not every expected party attached: starting without them"
                    );
                }
                return;
            }
        }
    }

    /// Lockstep: every gateway has finished with the current step: the
    /// planners may work on it.
    fn scanned(&self) {
        self.scanned.send_replace(Some(self.steps()));
    }

    fn stepped(&self) {
        self.scanned.send_replace(None);
        let n = self.steps.fetch_add(1, Ordering::Relaxed) + 1;
        self.stepped.send_replace(n);
    }
}

fn is_disk_low(e: &anyhow::Error) -> bool {
    e.downcast_ref::<store::StoreError>()
        .is_some_and(store::StoreError::is_disk_low)
}

/// Longest wait for the last save on the way out.
const FINAL_FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

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
            min_free_bytes: cfg.min_free_bytes,
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
    let clock = Arc::new(Clock::new(cfg.speed, cfg.lockstep, cfg.stop_at_ms));
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
            .serve_with_incoming_shutdown(observe::grpc::incoming(listener), async {
                let _ = stop_rx.await;
            }),
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
        let mut refused_saves = 0u64;
        if let (Some(stop), Ok(w)) = (cfg.stop_at_ms, world.lock())
            && w.time_ms() >= stop
        {
            clock.set_paused(true);
        }
        loop {
            if clock.paused() {
                // Bounded: a resume between the check and the wait is not missed for long.
                let _ = tokio::time::timeout(Duration::from_millis(200), clock.changed.notified())
                    .await;
                continue;
            }
            if clock.lockstep {
                clock
                    .wait_for_parties(Role::Gateway, cfg.expect_gateways)
                    .await;
                if clock.paused() {
                    continue;
                }
                // The planners work on what the gateways reported, and their
                // commands reach the gateways, before the network moves on.
                clock.scanned();
                clock
                    .wait_for_parties(Role::Planner, cfg.expect_planners)
                    .await;
                if clock.paused() {
                    continue;
                }
                // Let the servers answer the gateways woken by the last step.
                tokio::task::yield_now().await;
            } else {
                let wait = Duration::from_secs_f64(cfg.step_s / clock.speed());
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = clock.changed.notified() => continue,
                }
                if clock.paused() {
                    continue;
                }
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
            let time_ms = world
                .lock()
                .map_err(|_| anyhow::anyhow!("simulator state poisoned"))?
                .time_ms();
            if cfg.stop_at_ms.is_some_and(|t| time_ms >= t) {
                tracing::info!(time_ms, "clock reached its stop time: paused");
                clock.set_paused(true);
            }
            clock.stepped();
            if last_save.elapsed() >= SNAPSHOT_EVERY {
                last_save = tokio::time::Instant::now();
                match save(&world) {
                    Ok(()) => {
                        store.flush_async().await?;
                        if refused_saves > 0 {
                            tracing::info!(refused_saves, "disk has room again: snapshots resumed");
                            refused_saves = 0;
                        }
                    }
                    // The network goes on; the last snapshot stands whole
                    // until there is room for the next.
                    Err(e) if is_disk_low(&e) => {
                        refused_saves += 1;
                        if refused_saves == 1 || refused_saves.is_multiple_of(300) {
                            tracing::error!(error = %e, refused_saves, "snapshot not saved");
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    };
    let result = tokio::select! {
        r = stepping => r,
        _ = shutdown => Ok(()),
    };
    let _ = stop_tx.send(());
    let _ = server.await;
    let on_the_way_out = "saving the simulation on the way out (the last periodic snapshot stands)";
    // A full disk: nothing was written, the store is whole and let go.
    save(&world).context(on_the_way_out)?;
    // sled can wait forever on a flush whose files were taken away (a data
    // directory deleted under a running simulator): give up after a while,
    // and leave sled's handles alone then (dropping them flushes again).
    let flushed = match tokio::time::timeout(FINAL_FLUSH_TIMEOUT, store.flush_async()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(anyhow::Error::from(e)),
        Err(_) => Err(anyhow::anyhow!(
            "did not finish within {FINAL_FLUSH_TIMEOUT:?}"
        )),
    };
    if let Err(e) = flushed {
        std::mem::forget(table);
        std::mem::forget(store);
        return Err(e.context(on_the_way_out));
    }
    tracing::info!("simulator stopped, state saved");
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim_config(dir: &std::path::Path, min_free_bytes: u64) -> SimConfig {
        SimConfig {
            network: Network::sample("demo").expect("demo network"),
            data_dir: dir.to_path_buf(),
            listen: "127.0.0.1:0".parse().expect("address"),
            speed: 3_600.0,
            step_s: 60.0,
            epw: None,
            modbus_base_port: None,
            scenario: None,
            lockstep: false,
            expect_gateways: 0,
            expect_planners: 0,
            stop_at_ms: None,
            min_free_bytes,
        }
    }

    fn saved_time_ms(dir: &std::path::Path) -> i64 {
        let store = Store::open(
            dir,
            &StoreConfig {
                kind: "simulator".into(),
                identity: "demo".into(),
                ..StoreConfig::default()
            },
        )
        .expect("store opens");
        let snap: Snapshot = store
            .table("state")
            .expect("table")
            .get_json("snapshot")
            .expect("readable")
            .expect("a snapshot");
        snap.state.time_ms
    }

    /// A disk too full to write on (here: a store that must leave more free
    /// than any disk has) stops the snapshots, not the simulation; the last
    /// snapshot stands whole, and the next start resumes from it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_disk_stops_the_snapshots_not_the_simulation() {
        let dir = std::env::temp_dir().join(format!("heatnet-sim-disk-low-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let wait = |s| tokio::time::sleep(Duration::from_secs_f64(s));
        run(sim_config(&dir, 0), wait(1.0))
            .await
            .expect("first run");
        let saved_ms = saved_time_ms(&dir);

        // Past SNAPSHOT_EVERY, a periodic save is refused: the network still
        // steps and answers.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut cfg = sim_config(&dir, u64::MAX);
        cfg.listen = ([127, 0, 0, 1], port).into();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let full = tokio::spawn(run(cfg, async {
            let _ = stopped.await;
        }));
        let clock = || async move {
            let mut c = v1::simulator_service_client::SimulatorServiceClient::connect(format!(
                "http://127.0.0.1:{port}"
            ))
            .await?;
            let t = c.get_clock(v1::GetClockRequest {}).await?.into_inner();
            anyhow::Ok(t.time_ms)
        };
        wait(SNAPSHOT_EVERY.as_secs_f64() + 0.5).await;
        let after_refusal_ms = clock().await.expect("still serving after a refused save");
        wait(0.5).await;
        let later_ms = clock().await.expect("still serving");
        assert!(later_ms > after_refusal_ms, "still stepping");
        let _ = stop.send(());
        let e = full
            .await
            .expect("joined")
            .expect_err("the save on the way out is refused");
        let text = format!("{e:#}");
        assert!(
            text.contains("on the way out") && text.contains("disk nearly full"),
            "{text}"
        );
        assert_eq!(saved_time_ms(&dir), saved_ms, "the last snapshot stands");

        run(sim_config(&dir, 0), wait(0.5))
            .await
            .expect("resumed run");
        assert!(saved_time_ms(&dir) > saved_ms);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn report(clock: &Arc<Clock>, gw: &'static str, done: u64) -> tokio::task::JoinHandle<u64> {
        let c = clock.clone();
        // Asks again while the call is held and answered unchanged, as
        // `hardware::LockstepClock` does.
        tokio::spawn(async move {
            loop {
                match c.await_step(gw, done, Role::Gateway).await {
                    Ok(s) if s == done => continue,
                    Ok(s) => return s,
                    Err(_) => return u64::MAX,
                }
            }
        })
    }

    #[tokio::test(start_paused = true)]
    async fn lockstep_waits_for_every_gateway_and_detaches_a_silent_one() {
        let clock = Arc::new(Clock::new(1.0, true, None));
        // The first step waits for the two gateways expected.
        let a = report(&clock, "a", 0);
        let first = {
            let c = clock.clone();
            tokio::spawn(async move { c.wait_for_parties(Role::Gateway, 2).await })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!first.is_finished(), "stepped with one of two gateways");
        let b = report(&clock, "b", 0);
        first.await.unwrap();
        clock.stepped();
        assert_eq!((a.await.unwrap(), b.await.unwrap()), (1, 1));

        // Step 2 waits until both have finished with step 1.
        let a = report(&clock, "a", 1);
        let waiting = {
            let c = clock.clone();
            tokio::spawn(async move { c.wait_for_parties(Role::Gateway, 0).await })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiting.is_finished(), "stepped before b wrote");
        let b = report(&clock, "b", 1);
        waiting.await.unwrap();
        clock.stepped();
        assert_eq!((a.await.unwrap(), b.await.unwrap()), (2, 2));

        // b falls silent (crashed): the clock goes on without it after the timeout.
        let a = report(&clock, "a", 2);
        let t0 = tokio::time::Instant::now();
        clock.wait_for_parties(Role::Gateway, 0).await;
        assert!(t0.elapsed() >= LOCKSTEP_PARTY_TIMEOUT);
        assert_eq!(clock.attached(Role::Gateway), 1);
        clock.stepped();
        assert_eq!(a.await.unwrap(), 3);
        // Back after a restart, it attaches again and is waited for.
        let b = report(&clock, "b", 0);
        assert_eq!(
            b.await.unwrap(),
            3,
            "a late gateway gets the current step at once"
        );
        assert_eq!(clock.attached(Role::Gateway), 2);
    }

    fn plan(clock: &Arc<Clock>, who: &'static str, done: u64) -> tokio::task::JoinHandle<u64> {
        let c = clock.clone();
        tokio::spawn(async move {
            c.await_step(who, done, Role::Planner)
                .await
                .unwrap_or(u64::MAX)
        })
    }

    /// One turn of the stepping loop's lockstep part, then the step.
    async fn turn(clock: &Arc<Clock>, gateways: usize, planners: usize) {
        clock.wait_for_parties(Role::Gateway, gateways).await;
        clock.scanned();
        clock.wait_for_parties(Role::Planner, planners).await;
        clock.stepped();
    }

    #[tokio::test(start_paused = true)]
    async fn a_planner_works_on_each_step_after_every_gateway_and_before_the_next() {
        let clock = Arc::new(Clock::new(1.0, true, None));
        let a = report(&clock, "a", 0);
        let b = report(&clock, "b", 0);
        let opt = plan(&clock, "opt", 0);
        // The first step waits for the planner expected, like the gateways.
        let first = {
            let c = clock.clone();
            tokio::spawn(async move { turn(&c, 2, 1).await })
        };
        first.await.unwrap();
        assert_eq!((a.await.unwrap(), b.await.unwrap()), (1, 1));
        assert_eq!(clock.attached(Role::Planner), 1);
        assert_eq!(clock.attached(Role::Gateway), 2);

        // The planner is not released while a gateway is still on step 1...
        let a = report(&clock, "a", 1);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!opt.is_finished(), "planner released before b finished");
        let next = {
            let c = clock.clone();
            tokio::spawn(async move { turn(&c, 0, 0).await })
        };
        let b = report(&clock, "b", 1);
        // ... then gets step 1, and the clock waits for it.
        assert_eq!(opt.await.unwrap(), 1);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(!next.is_finished(), "stepped before the planner finished");
        assert_eq!(clock.steps(), 1);
        let opt = plan(&clock, "opt", 1);
        next.await.unwrap();
        assert_eq!((a.await.unwrap(), b.await.unwrap()), (2, 2));

        // Asked while the gateways are on step 2, it is answered, after the
        // hold, with its own step: nothing to plan on yet.
        assert_eq!(opt.await.unwrap(), 1);

        // A silent planner is detached only after its own, longer timeout.
        let a = report(&clock, "a", 2);
        let b = report(&clock, "b", 2);
        let t0 = tokio::time::Instant::now();
        turn(&clock, 0, 0).await;
        assert!(t0.elapsed() >= LOCKSTEP_PLANNER_TIMEOUT);
        assert_eq!(clock.attached(Role::Planner), 0);
        assert_eq!((a.await.unwrap(), b.await.unwrap()), (3, 3));

        // A gateway's name cannot attach as a planner.
        assert!(matches!(
            clock.await_step("a", 3, Role::Planner).await,
            Err(AwaitError::Role { .. })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_realtime_clock_answers_at_once_and_a_restarted_simulator_restarts_the_count() {
        let realtime = Clock::new(60.0, false, None);
        assert_eq!(realtime.await_step("a", 41, Role::Gateway).await, Ok(0));
        assert_eq!(realtime.attached(Role::Gateway), 0);
        // A gateway that saw step 500 of an earlier simulator run is at step 0
        // of this one: it is answered with step 1 once that is taken.
        let clock = Arc::new(Clock::new(1.0, true, None));
        let stale = report(&clock, "a", 500);
        clock.wait_for_parties(Role::Gateway, 1).await;
        clock.stepped();
        assert_eq!(stale.await.unwrap(), 1);
    }
}
