//! `heatnet bench ingest`: telemetry stored durably per second (issue 5:
//! at least 100,000 samples/s), two ways:
//!
//! - `grpc`: a real optimizer process fed by many synthetic substation
//!   gateways over their real session streams. Each gateway keeps up to
//!   `--in-flight` batches unacknowledged, as a real gateway's outbox does; a
//!   batch counts when its acknowledgement arrives, which the optimizer sends
//!   only after the batch is flushed to sled.
//! - `in-process`: the optimizer's `Ingest::store` (group commit, one flush
//!   per group) called directly by `gateways × in-flight` concurrent writers,
//!   without gRPC, protobuf decoding or the live state.
//!
//! A sample is one reading; a batch holds `--scans` scans of a substation and
//! its buildings (13 readings per substation, 4 per building).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use model::NodeId;
use proto::v1;
use proto::v1::agent_service_client::AgentServiceClient;
use proto::v1::control_room_service_client::ControlRoomServiceClient;
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use super::{OptimizerProc, median, progress};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Through a real optimizer process over gRPC.
    Grpc,
    /// `Ingest::store` in this process.
    InProcess,
    /// Both, gRPC first.
    Both,
}

#[derive(Args, Clone, Debug)]
pub struct IngestArgs {
    #[arg(long, value_enum, default_value_t = Mode::Both)]
    pub mode: Mode,
    /// Synthetic substation gateways sending at once.
    #[arg(long, default_value_t = 64)]
    pub gateways: usize,
    /// Buildings behind each substation.
    #[arg(long, default_value_t = 20)]
    pub buildings: usize,
    /// Scans of every actor in one batch.
    #[arg(long, default_value_t = 1)]
    pub scans: usize,
    /// Unacknowledged batches a gateway keeps in flight (the gateway's
    /// default `max_in_flight` is 64).
    #[arg(long, default_value_t = 64)]
    pub in_flight: usize,
    /// Measure over this long per repetition, s.
    #[arg(long, default_value_t = 10.0)]
    pub duration_s: f64,
    /// Run this long before measuring, s.
    #[arg(long, default_value_t = 2.0)]
    pub warmup_s: f64,
    /// Repetitions (a fresh store each); the median is reported.
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Gateway sessions sharing one HTTP/2 connection.
    #[arg(long, default_value_t = 1)]
    pub sessions_per_connection: usize,
    /// Registrations and session openings in progress at once during set-up.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
    #[arg(long, default_value_t = 7710)]
    pub port: u16,
    /// Scratch directory (emptied per repetition).
    #[arg(long, default_value = "/tmp/heatnet-bench-ingest")]
    pub data_dir: PathBuf,
    /// The heatnet executable to start the optimizer from (default: this one).
    #[arg(long, hide = true)]
    pub exe: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Rep {
    pub batches: u64,
    pub seconds: f64,
    pub batches_per_s: f64,
    pub samples_per_s: f64,
    /// Samples the optimizer says it stored in the whole run (gRPC only).
    pub optimizer_samples_stored: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub path: Mode,
    /// Concurrent senders: gateways (gRPC) or writers (in-process).
    pub senders: usize,
    pub in_flight_per_sender: usize,
    pub samples_per_batch: usize,
    pub reps: Vec<Rep>,
    pub median_batches_per_s: f64,
    pub median_samples_per_s: f64,
    pub target_met: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct IngestReport {
    pub gateways: usize,
    pub buildings: usize,
    pub scans: usize,
    pub duration_s: f64,
    pub rows: Vec<Row>,
}

/// The target, samples stored durably per second.
pub const TARGET_SAMPLES_PER_S: f64 = 100_000.0;

/// Network time of the first synthetic scan, Unix ms.
const T0_MS: i64 = 1_700_000_000_000;

fn check(args: &IngestArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=10_000).contains(&args.gateways),
        "--gateways {}: give 1..10000",
        args.gateways
    );
    anyhow::ensure!(
        args.buildings <= 60,
        "--buildings {}: give 0..60",
        args.buildings
    );
    anyhow::ensure!(
        (1..=100).contains(&args.scans),
        "--scans {}: give 1..100",
        args.scans
    );
    anyhow::ensure!(
        (1..=1024).contains(&args.in_flight),
        "--in-flight {}: give 1..1024",
        args.in_flight
    );
    anyhow::ensure!(
        (0.1..=3600.0).contains(&args.duration_s),
        "--duration-s {}: give 0.1..3600",
        args.duration_s
    );
    anyhow::ensure!(
        (0.0..=600.0).contains(&args.warmup_s),
        "--warmup-s {}: give 0..600",
        args.warmup_s
    );
    anyhow::ensure!(
        (1..=100).contains(&args.reps),
        "--reps {}: give 1..100",
        args.reps
    );
    anyhow::ensure!(
        (1..=4096).contains(&args.connect_concurrency),
        "--connect-concurrency {}: give 1..4096",
        args.connect_concurrency
    );
    anyhow::ensure!(
        (1..=1000).contains(&args.sessions_per_connection),
        "--sessions-per-connection {}: give 1..1000",
        args.sessions_per_connection
    );
    Ok(())
}

pub fn run(args: IngestArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = rt.block_on(measure(&args))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

pub async fn measure(args: &IngestArgs) -> anyhow::Result<IngestReport> {
    check(args)?;
    let actors = super::substation_actors("probe", "g", args.buildings);
    let samples_per_batch = super::samples(&super::telemetry_batch(&actors, 1, args.scans, 0));
    let mut rows = Vec::new();
    if matches!(args.mode, Mode::Grpc | Mode::Both) {
        let mut reps = Vec::new();
        for r in 0..args.reps {
            eprintln!("ingest over gRPC, repetition {}/{}", r + 1, args.reps);
            reps.push(grpc_rep(args, samples_per_batch).await?);
        }
        rows.push(row(
            Mode::Grpc,
            args.gateways,
            args.in_flight,
            samples_per_batch,
            reps,
        ));
    }
    if matches!(args.mode, Mode::InProcess | Mode::Both) {
        let mut reps = Vec::new();
        for r in 0..args.reps {
            eprintln!("ingest in process, repetition {}/{}", r + 1, args.reps);
            reps.push(in_process_rep(args, samples_per_batch).await?);
        }
        rows.push(row(
            Mode::InProcess,
            args.gateways * args.in_flight,
            1,
            samples_per_batch,
            reps,
        ));
    }
    Ok(IngestReport {
        gateways: args.gateways,
        buildings: args.buildings,
        scans: args.scans,
        duration_s: args.duration_s,
        rows,
    })
}

fn row(
    path: Mode,
    senders: usize,
    in_flight: usize,
    samples_per_batch: usize,
    reps: Vec<Rep>,
) -> Row {
    let b: Vec<f64> = reps.iter().map(|r| r.batches_per_s).collect();
    let s: Vec<f64> = reps.iter().map(|r| r.samples_per_s).collect();
    let median_samples_per_s = median(&s);
    Row {
        path,
        senders,
        in_flight_per_sender: in_flight,
        samples_per_batch,
        reps,
        median_batches_per_s: median(&b),
        median_samples_per_s,
        target_met: median_samples_per_s >= TARGET_SAMPLES_PER_S,
    }
}

/// Counts acknowledged batches between `warmup` and `warmup + duration`.
async fn window(counter: &AtomicU64, warmup: Duration, duration: Duration) -> (u64, f64) {
    tokio::time::sleep(warmup).await;
    let c0 = counter.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let mut next = Instant::now();
    while t0.elapsed() < duration {
        tokio::time::sleep(Duration::from_millis(100).min(duration.saturating_sub(t0.elapsed())))
            .await;
        if next.elapsed() >= Duration::from_secs(2) {
            next = Instant::now();
            let n = counter.load(Ordering::Relaxed) - c0;
            progress(format_args!(
                "{:.0} s: {n} batches, {:.0} batches/s",
                t0.elapsed().as_secs_f64(),
                n as f64 / t0.elapsed().as_secs_f64()
            ));
        }
    }
    (
        counter.load(Ordering::Relaxed) - c0,
        t0.elapsed().as_secs_f64(),
    )
}

fn rep(
    batches: u64,
    seconds: f64,
    samples_per_batch: usize,
    optimizer_samples_stored: Option<u64>,
) -> Rep {
    let batches_per_s = batches as f64 / seconds;
    Rep {
        batches,
        seconds,
        batches_per_s,
        samples_per_s: batches_per_s * samples_per_batch as f64,
        optimizer_samples_stored,
    }
}

struct Sender {
    index: usize,
    channel: Channel,
    scans: usize,
    in_flight: u64,
    actors: Vec<v1::ActorDescriptor>,
    acked: Arc<AtomicU64>,
    go: watch::Receiver<bool>,
    stop: watch::Receiver<bool>,
    ready: mpsc::UnboundedSender<anyhow::Result<()>>,
    setup: Arc<tokio::sync::Semaphore>,
}

/// One synthetic gateway: register, open the session, wait for `go`, then
/// stream batches with up to `in_flight` unacknowledged until `stop`.
async fn grpc_gateway(mut s: Sender) -> anyhow::Result<()> {
    let id = format!("bench-i{:05}", s.index + 1);
    let permit = s.setup.clone().acquire_owned().await?;
    let mut client = AgentServiceClient::new(s.channel.clone());
    let reg = client
        .register(v1::RegisterRequest {
            gateway_id: id.clone(),
            instance_id: format!("bench-{}", std::process::id()),
            actors: s.actors.clone(),
            software_version: env!("CARGO_PKG_VERSION").to_string(),
        })
        .await
        .with_context(|| format!("registering {id}"))?
        .into_inner();
    let (tx, rx) = mpsc::channel::<v1::GatewayMessage>(256);
    let send = |body| v1::GatewayMessage { body: Some(body) };
    tx.send(send(v1::gateway_message::Body::Open(v1::SessionOpen {
        gateway_id: id.clone(),
        session_id: reg.session_id,
    })))
    .await?;
    let mut inbound = client
        .session(ReceiverStream::new(rx))
        .await
        .with_context(|| format!("opening the session of {id}"))?
        .into_inner();
    drop(permit);
    let _ = s.ready.send(Ok(()));
    let _ = s.go.wait_for(|go| *go).await;
    let mut next_seq = reg.last_stored_seq + 1;
    let mut acked = reg.last_stored_seq;
    loop {
        while next_seq - acked - 1 < s.in_flight {
            let b = super::telemetry_batch(
                &s.actors,
                next_seq,
                s.scans,
                T0_MS + next_seq as i64 * 1000 * s.scans as i64,
            );
            tx.send(send(v1::gateway_message::Body::Batch(b)))
                .await
                .context("session stream closed")?;
            next_seq += 1;
        }
        tokio::select! {
            msg = inbound.message() => {
                let Some(msg) = msg.with_context(|| format!("session of {id}"))? else {
                    anyhow::bail!("the optimizer closed the session of {id}");
                };
                match msg.body {
                    Some(v1::optimizer_message::Body::Ack(a)) if a.seq > acked => {
                        s.acked.fetch_add(a.seq - acked, Ordering::Relaxed);
                        acked = a.seq;
                    }
                    Some(v1::optimizer_message::Body::Command(c)) => {
                        tx.send(send(v1::gateway_message::Body::CommandResult(v1::CommandResult {
                            command_id: c.command_id,
                            accepted: true,
                            reason: String::new(),
                        })))
                        .await
                        .context("session stream closed")?;
                    }
                    _ => {}
                }
            }
            _ = s.stop.changed() => return Ok(()),
        }
    }
}

async fn grpc_rep(args: &IngestArgs, samples_per_batch: usize) -> anyhow::Result<Rep> {
    let exe = match &args.exe {
        Some(e) => e.clone(),
        None => super::default_exe()?,
    };
    let connections = args.gateways.div_ceil(args.sessions_per_connection);
    super::raise_nofile(connections as u64 + 1024)?;
    let opt = OptimizerProc::start(&exe, &args.data_dir, args.port, 10_000).await?;
    let endpoint = observe::grpc::endpoint(&opt.addr)?;
    let channels: Vec<Channel> = (0..connections).map(|_| endpoint.connect_lazy()).collect();
    let acked = Arc::new(AtomicU64::new(0));
    let (go_tx, go_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let setup = Arc::new(tokio::sync::Semaphore::new(args.connect_concurrency));
    let mut tasks = Vec::new();
    for i in 0..args.gateways {
        let s = Sender {
            index: i,
            channel: channels[i / args.sessions_per_connection].clone(),
            scans: args.scans,
            in_flight: args.in_flight as u64,
            actors: super::substation_actors(
                &format!("bench-i{:05}-s", i + 1),
                "bench-ingest",
                args.buildings,
            ),
            acked: acked.clone(),
            go: go_rx.clone(),
            stop: stop_rx.clone(),
            ready: ready_tx.clone(),
            setup: setup.clone(),
        };
        let ready = ready_tx.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = grpc_gateway(s).await {
                let _ = ready.send(Err(e));
            }
        }));
    }
    drop(ready_tx);
    for _ in 0..args.gateways {
        match tokio::time::timeout(Duration::from_secs(60), ready_rx.recv()).await {
            Ok(Some(Ok(()))) => {}
            Ok(Some(Err(e))) => return Err(e.context("a synthetic gateway failed to connect")),
            Ok(None) | Err(_) => {
                anyhow::bail!("no synthetic gateway connected for 60 s")
            }
        }
    }
    progress(format_args!(
        "{} gateways connected; streaming",
        args.gateways
    ));
    let _ = go_tx.send(true);
    let measured = tokio::select! {
        w = window(&acked, Duration::from_secs_f64(args.warmup_s), Duration::from_secs_f64(args.duration_s)) => w,
        failure = ready_rx.recv() => match failure {
            Some(Err(e)) => return Err(e.context("a synthetic gateway failed while streaming")),
            _ => anyhow::bail!("the synthetic gateways stopped early"),
        },
    };
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    // The whole network's state: tens of MB for thousands of gateways.
    let stored = match ControlRoomServiceClient::new(endpoint.connect().await?)
        .max_decoding_message_size(256 << 20)
        .get_network_state(v1::GetNetworkStateRequest {})
        .await
    {
        Ok(s) => Some(
            s.into_inner()
                .gateways
                .iter()
                .map(|g| g.samples_stored)
                .sum(),
        ),
        Err(e) => {
            progress(format_args!("optimizer state not read: {}", e.message()));
            None
        }
    };
    drop(opt);
    let r = rep(measured.0, measured.1, samples_per_batch, stored);
    progress(format_args!(
        "{:.0} batches/s, {:.0} samples/s",
        r.batches_per_s, r.samples_per_s
    ));
    Ok(r)
}

async fn in_process_rep(args: &IngestArgs, samples_per_batch: usize) -> anyhow::Result<Rep> {
    let dir = args.data_dir.join("in-process");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // As the optimizer opens its store (services/optimizer/src/run.rs).
    let store = store::Store::open(
        &dir,
        &store::StoreConfig {
            kind: "optimizer".into(),
            identity: "central".into(),
            cache_bytes: 64 << 20,
            ..Default::default()
        },
    )?;
    let ingest = optimizer::ingest::Ingest::start(&store)?;
    let acked = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let writers = args.gateways * args.in_flight;
    let mut tasks = Vec::with_capacity(writers);
    for i in 0..writers {
        let actors =
            super::substation_actors(&format!("bench-w{i:06}-s"), "bench-ingest", args.buildings);
        let template = model::TelemetryBatch::try_from(&super::telemetry_batch(
            &actors, 1, args.scans, T0_MS,
        ))?;
        let gw = NodeId::new(format!("bench-w{i:06}"))?;
        let ingest = ingest.clone();
        let acked = acked.clone();
        let mut stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let mut seq = 0u64;
            loop {
                seq += 1;
                let mut b = template.clone();
                b.seq = seq;
                tokio::select! {
                    r = ingest.store(gw.clone(), b) => match r {
                        Ok(_) => { acked.fetch_add(1, Ordering::Relaxed); }
                        Err(e) => return Err(anyhow::Error::from(e)),
                    },
                    _ = stop.changed() => return Ok(()),
                }
            }
        }));
    }
    let measured = window(
        &acked,
        Duration::from_secs_f64(args.warmup_s),
        Duration::from_secs_f64(args.duration_s),
    )
    .await;
    let _ = stop_tx.send(true);
    for t in tasks {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e.context("in-process ingest failed")),
            Err(e) => anyhow::bail!("an ingest writer panicked: {e}"),
        }
    }
    ingest.close().await;
    drop(store);
    let r = rep(measured.0, measured.1, samples_per_batch, None);
    progress(format_args!(
        "{:.0} batches/s, {:.0} samples/s",
        r.batches_per_s, r.samples_per_s
    ));
    Ok(r)
}

fn print_table(r: &IngestReport) {
    println!(
        "ingest: {} buildings per substation, {} scan(s) per batch, {:.0} s per repetition",
        r.buildings, r.scans, r.duration_s
    );
    println!(
        "{:>10} {:>8} {:>9} {:>8} {:>12} {:>13} {:>7}  reps (samples/s)",
        "path", "senders", "in-flight", "samples", "batches/s", "samples/s", "target"
    );
    for row in &r.rows {
        let reps: Vec<String> = row
            .reps
            .iter()
            .map(|r| format!("{:.0}", r.samples_per_s))
            .collect();
        println!(
            "{:>10} {:>8} {:>9} {:>8} {:>12.0} {:>13.0} {:>7}  {}",
            match row.path {
                Mode::Grpc => "grpc",
                Mode::InProcess => "in-process",
                Mode::Both => "both",
            },
            row.senders,
            row.in_flight_per_sender,
            row.samples_per_batch,
            row.median_batches_per_s,
            row.median_samples_per_s,
            if row.target_met { "met" } else { "NOT met" },
            reps.join(" ")
        );
    }
}
