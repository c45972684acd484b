//! Bad input at the edge, across real processes: a real gateway facing a rogue
//! optimizer that sends out-of-range, NaN, stale, malformed and misaddressed
//! commands; and gateways started on a foreign or corrupt data directory.
//! Each is refused with a clear, logged reason, and the running control is
//! left untouched.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use proto::v1;
use proto::v1::agent_service_server::{AgentService, AgentServiceServer};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// The session's downward half.
type Down = mpsc::Sender<Result<v1::OptimizerMessage, Status>>;

/// An optimizer that acknowledges every batch, remembers the latest snapshot of
/// each actor, and lets the test push any command down the session.
#[derive(Clone, Default)]
struct Rogue {
    down: Arc<Mutex<Option<Down>>>,
    results: Arc<Mutex<Vec<v1::CommandResult>>>,
    latest: Arc<Mutex<std::collections::BTreeMap<String, v1::ActorSnapshot>>>,
    batches: Arc<Mutex<u64>>,
}

#[tonic::async_trait]
impl AgentService for Rogue {
    async fn register(
        &self,
        _req: Request<v1::RegisterRequest>,
    ) -> Result<Response<v1::RegisterResponse>, Status> {
        Ok(Response::new(v1::RegisterResponse {
            session_id: "rogue".into(),
            last_stored_seq: 0,
            heartbeat_interval_ms: 1000,
        }))
    }

    type SessionStream = ReceiverStream<Result<v1::OptimizerMessage, Status>>;

    async fn session(
        &self,
        req: Request<Streaming<v1::GatewayMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let mut inbound = req.into_inner();
        let (tx, rx) = mpsc::channel(64);
        *self.down.lock().expect("lock") = Some(tx.clone());
        let me = self.clone();
        tokio::spawn(async move {
            while let Ok(Some(msg)) = inbound.message().await {
                match msg.body {
                    Some(v1::gateway_message::Body::Batch(b)) => {
                        *me.batches.lock().expect("lock") += 1;
                        for s in &b.snapshots {
                            me.latest
                                .lock()
                                .expect("lock")
                                .insert(s.actor_id.clone(), s.clone());
                        }
                        let ack = v1::OptimizerMessage {
                            body: Some(v1::optimizer_message::Body::Ack(v1::BatchAck {
                                seq: b.seq,
                            })),
                        };
                        if tx.send(Ok(ack)).await.is_err() {
                            break;
                        }
                    }
                    Some(v1::gateway_message::Body::CommandResult(r)) => {
                        me.results.lock().expect("lock").push(r)
                    }
                    _ => {}
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

fn setpoint(s: &v1::ActorSnapshot) -> Option<f64> {
    s.readings
        .iter()
        .find(|r| r.metric == v1::Metric::SetpointC as i32)
        .map(|r| r.value)
}

fn command(id: &str, actor: &str, version: u64, action: v1::command::Action) -> v1::Command {
    v1::Command {
        command_id: id.into(),
        actor_id: actor.into(),
        version,
        action: Some(action),
    }
}

fn set_supply(t: f64) -> v1::command::Action {
    v1::command::Action::SetSupplyTemp(v1::SetSupplyTemp { supply_temp_c: t })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_refuses_bad_commands_with_reasons_and_keeps_controlling() {
    let _rng = seeded_rng("bad_commands");
    let dir = TempDir::new("bad-commands");
    let base = free_port_block(30);
    let sim_addr = format!("127.0.0.1:{base}");
    let rogue_addr = format!("127.0.0.1:{}", base + 1);
    let rogue = Rogue::default();
    let listener = tokio::net::TcpListener::bind(&rogue_addr)
        .await
        .expect("bind rogue optimizer");
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AgentServiceServer::new(rogue.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let net = model::Network::sample("demo").expect("demo");
    let cfg = heatnet::configs::gateway_configs(&net, &dir.0, &rogue_addr, &sim_addr, base, 30_000)
        .expect("configs")
        .into_iter()
        .find(|c| c.gateway_id.as_str() == "s01")
        .expect("s01");
    let _sim = Proc::start(
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
            "60".into(),
        ],
    );
    let config = dir.0.join("s01.toml");
    std::fs::write(&config, cfg.to_toml()).expect("config");
    let gw = Proc::start(
        &dir.0,
        "gateway-s01",
        &bin("heatnet-gateway"),
        &[
            "run".into(),
            "--config".into(),
            config.display().to_string(),
        ],
    );
    let r = rogue.clone();
    let down = wait_for(Duration::from_secs(60), "the gateway's session", || {
        let r = r.clone();
        async move {
            let ready = *r.batches.lock().expect("lock") > 0;
            let down = r.down.lock().expect("lock").clone();
            down.filter(|_| ready)
        }
    })
    .await;
    let send = |c: v1::Command| {
        let down = down.clone();
        async move {
            down.send(Ok(v1::OptimizerMessage {
                body: Some(v1::optimizer_message::Body::Command(c)),
            }))
            .await
            .expect("session open");
        }
    };

    // One good command first: the state every bad one must leave alone.
    send(command("good", "s01", 10, set_supply(60.0))).await;
    let far_past = 1_000_000;
    let cases: Vec<(v1::Command, &str)> = vec![
        (
            command("hot-wire", "s01", 11, set_supply(150.0)),
            "out of range",
        ),
        (
            command("hot-node", "s01", 11, set_supply(90.0)),
            "outside this node's limits",
        ),
        (command("nan", "s01", 12, set_supply(f64::NAN)), "finite"),
        (
            command("stale", "s01", 5, set_supply(58.0)),
            "stale command",
        ),
        (
            command("ghost", "s99", 13, set_supply(58.0)),
            "unknown actor s99",
        ),
        (command("badid", "S 1", 14, set_supply(58.0)), "actor_id"),
        (
            command("building", "s01-b01", 15, set_supply(58.0)),
            "takes no set_supply_temp",
        ),
        (
            command(
                "expired",
                "s01",
                16,
                v1::command::Action::SetOverride(v1::SetOverride {
                    supply_temp_c: 70.0,
                    expires_at_ms: far_past,
                }),
            ),
            "not after the node's current time",
        ),
        (
            v1::Command {
                command_id: "empty".into(),
                actor_id: "s01".into(),
                version: 17,
                action: None,
            },
            "action",
        ),
    ];
    for (c, _) in &cases {
        send(c.clone()).await;
    }
    let r = rogue.clone();
    let n = cases.len() + 1;
    let results = wait_for(Duration::from_secs(30), "every command answered", || {
        let r = r.clone();
        async move {
            let res = r.results.lock().expect("lock").clone();
            (res.len() >= n).then_some(res)
        }
    })
    .await;
    let find = |id: &str| {
        results
            .iter()
            .find(|r| r.command_id == id)
            .unwrap_or_else(|| panic!("no answer to {id}"))
    };
    assert!(find("good").accepted, "{:?}", find("good"));
    for (c, want) in &cases {
        let r = find(&c.command_id);
        assert!(!r.accepted, "{}: accepted", c.command_id);
        assert!(
            r.reason.contains(want),
            "{}: reason {:?} does not say {want:?}",
            c.command_id,
            r.reason
        );
    }
    // The running control is untouched: s01 settles on the good setpoint
    // (ramped to 60 °C; any applied bad command would have moved it elsewhere),
    // in optimizer mode, and keeps scanning.
    let batches_then = *rogue.batches.lock().expect("lock");
    let r = rogue.clone();
    wait_for(
        Duration::from_secs(60),
        "s01 following the accepted setpoint of 60 °C",
        || {
            let r = r.clone();
            async move {
                let snap = r.latest.lock().expect("lock").get("s01").cloned()?;
                let sp = setpoint(&snap)?;
                (snap.mode == v1::Mode::Optimizer as i32 && (sp - 60.0).abs() < 1e-6).then_some(())
            }
        },
    )
    .await;
    assert!(
        *rogue.batches.lock().expect("lock") > batches_then,
        "scanning stopped"
    );
    // Every refusal is in the gateway's log with its reason.
    let log = std::fs::read_to_string(dir.0.join("gateway-s01.log")).unwrap_or_default();
    let refusals = log
        .lines()
        .filter(|l| l.contains("command refused") || l.contains("malformed command refused"))
        .count();
    assert!(
        refusals >= 5,
        "only {refusals} refusals logged:\n{}",
        gw.log_tail()
    );
    server.abort();
}

/// Files of a directory with their sizes and modification times.
fn listing(dir: &std::path::Path) -> Vec<(String, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(p);
            } else {
                let mtime = m.modified().unwrap_or(std::time::UNIX_EPOCH);
                out.push((p.display().to_string(), m.len(), mtime));
            }
        }
    }
    out.sort();
    out
}

/// Runs `heatnet-gateway run` and returns (exited with failure, stderr).
fn run_gateway(config: &std::path::Path) -> (bool, String) {
    let mut child = std::process::Command::new(bin("heatnet-gateway"))
        .args(["run", "--config"])
        .arg(config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start gateway");
    let started = std::time::Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read as _;
                let _ = e.read_to_string(&mut err);
            }
            return (!status.success(), err);
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            return (false, "still running after 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_refuses_a_foreign_or_corrupt_data_directory_and_drives_nothing() {
    let _rng = seeded_rng("bad_data_dir");
    let mut sys = System::start("bad-data-dir", 60.0, 30_000).await;
    sys.wait_all_live(Duration::from_secs(60)).await;
    // s02's gateway is stopped; its hardware holds its last values.
    sys.gateway("s02").2.kill9();
    let config = sys.gateway("s02").1.clone();
    let cfg = gateway::GatewayConfig::load(&config).expect("config");
    let s03_cfg = gateway::GatewayConfig::load(&sys.gateway("s03").1.clone()).expect("config");
    sys.gateway("s03").2.kill9();
    let held_s02 = actuators(&sys.sim_addr, "s02").await;

    let garbage = sys.dir.0.join("garbage-store");
    std::fs::create_dir_all(&garbage).expect("dir");
    std::fs::write(garbage.join("conf"), b"\x00\x01not a sled config\xff").expect("write");
    std::fs::write(garbage.join("db"), vec![0xa5u8; 4096]).expect("write");
    let notes = sys.dir.0.join("notes");
    std::fs::create_dir_all(&notes).expect("dir");
    std::fs::write(notes.join("readme.txt"), "not a store").expect("write");
    let cases = [
        (
            "another gateway's store",
            s03_cfg.data_dir.clone(),
            "belongs to gateway \"s03\"",
        ),
        (
            "a corrupt sled directory",
            garbage.clone(),
            "cannot open store",
        ),
        (
            "a directory that is not a store",
            notes.clone(),
            "not a heatnet store",
        ),
    ];
    for (what, dir, want) in &cases {
        let before = listing(dir);
        let mut bad = cfg.clone();
        bad.data_dir = dir.clone();
        let path = sys.dir.0.join("bad.toml");
        std::fs::write(&path, bad.to_toml()).expect("write");
        let (failed, stderr) = run_gateway(&path);
        eprintln!("{what}: {}", stderr.lines().last().unwrap_or_default());
        assert!(failed, "{what}: the gateway did not refuse it:\n{stderr}");
        assert!(
            stderr.contains(&dir.display().to_string()) && stderr.to_lowercase().contains(want),
            "{what}: unclear refusal (want the path and {want:?}):\n{stderr}"
        );
        assert!(
            !stderr.contains("panicked"),
            "{what}: a panic, not a refusal:\n{stderr}"
        );
        assert_eq!(listing(dir), before, "{what}: the directory was changed");
    }
    // Nothing drove s02's hardware in the meantime, and the rest of the
    // network is still under control.
    assert_eq!(actuators(&sys.sim_addr, "s02").await, held_s02);
    let s = network_state(&sys.opt_addr).await.expect("state");
    for g in s
        .gateways
        .iter()
        .filter(|g| !["s02", "s03"].contains(&g.gateway_id.as_str()))
    {
        assert!(g.online, "{} went offline", g.gateway_id);
    }
}
