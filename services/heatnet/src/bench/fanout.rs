//! `heatnet bench fanout`: many substation gateways connected to one real
//! optimizer process; the control room changes a group's supply curve and
//! every substation actor of the group must acknowledge it (issue 5: 3,323
//! substations, all acknowledged within 1 s at p99).
//!
//! Each synthetic gateway registers one substation actor (in one of `--groups`
//! curve groups), opens the session stream, heartbeats like a real gateway,
//! and answers every command at once with an accepted `CommandResult`, as
//! `agents/gateway/src/link.rs` does after the actor applied it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use proto::v1;
use proto::v1::agent_service_client::AgentServiceClient;
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use super::{OptimizerProc, progress, quantile};

#[derive(Args, Clone, Debug)]
pub struct FanoutArgs {
    /// Synthetic substation gateways (one substation actor each).
    #[arg(long, default_value_t = 3323)]
    pub substations: usize,
    /// Buildings registered behind each substation (they take no curve).
    #[arg(long, default_value_t = 0)]
    pub buildings: usize,
    /// Curve groups the substations are spread over; each change sets one group.
    #[arg(long, default_value_t = 1)]
    pub groups: usize,
    /// Curve changes to measure.
    #[arg(long, default_value_t = 3)]
    pub changes: usize,
    /// Gateway sessions sharing one HTTP/2 connection (1: a TCP connection per
    /// gateway, as deployed gateways have).
    #[arg(long, default_value_t = 1)]
    pub sessions_per_connection: usize,
    /// Registrations and session openings in progress at once during set-up.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
    /// Wait at most this long for the acknowledgements of one change, s.
    #[arg(long, default_value_t = 10)]
    pub timeout_s: u64,
    /// Pause between changes, ms.
    #[arg(long, default_value_t = 1000)]
    pub pause_ms: u64,
    /// The optimizer's `--heartbeat-timeout-ms`.
    #[arg(long, default_value_t = 3000)]
    pub heartbeat_timeout_ms: u64,
    #[arg(long, default_value_t = 7700)]
    pub port: u16,
    /// Scratch directory (the optimizer's data directory is emptied first).
    #[arg(long, default_value = "/tmp/heatnet-bench-fanout")]
    pub data_dir: PathBuf,
    /// The heatnet executable to start the optimizer from (default: this one).
    #[arg(long, hide = true)]
    pub exe: Option<PathBuf>,
    /// Each gateway sends one scan of readings after opening its session, so
    /// the network state read back carries readings as in operation (its
    /// size is what the control room's clients must accept).
    #[arg(long)]
    pub telemetry: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One curve change.
#[derive(Clone, Debug, Serialize)]
pub struct Change {
    pub group: String,
    pub curve_version: u64,
    pub targets: usize,
    pub acked: usize,
    /// Time the `SetCurve` call took to answer (stored, flushed, commands queued), ms.
    pub set_curve_rpc_ms: f64,
    /// From the `SetCurve` call to the command reaching the gateway, ms.
    pub received_p50_ms: f64,
    pub received_p99_ms: f64,
    /// From the `SetCurve` call to the gateway sending its `CommandResult`, ms.
    pub ack_p50_ms: f64,
    pub ack_p90_ms: f64,
    pub ack_p99_ms: f64,
    pub ack_max_ms: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct FanoutReport {
    pub substations: usize,
    pub buildings_per_substation: usize,
    pub groups: usize,
    pub sessions_per_connection: usize,
    pub connections: usize,
    pub sessions_open: usize,
    pub sessions_failed: usize,
    /// Registering and opening every session, s.
    pub setup_s: f64,
    /// The control room's `GetNetworkState` of the whole network: nodes,
    /// bytes on the wire, and the time to read it, ms.
    pub network_state_nodes: usize,
    pub network_state_bytes: usize,
    pub network_state_ms: f64,
    pub open_files_limit: u64,
    pub changes: Vec<Change>,
    /// Over every acknowledgement of every change, ms.
    pub all_ack_p50_ms: f64,
    pub all_ack_p99_ms: f64,
    pub all_ack_max_ms: f64,
    /// Every change was acknowledged by all its targets, p99 within 1 s.
    pub target_met: bool,
}

/// A `SetCurve` command received and acknowledged by a synthetic gateway.
struct Ack {
    gateway: usize,
    curve_version: u64,
    received: Instant,
    acked: Instant,
}

/// Set-up gives up waiting when no session opened or failed for this long, s.
const SETUP_STALL_S: u64 = 60;

fn gateway_id(i: usize) -> String {
    format!("bench-s{:05}", i + 1)
}

fn group_of(i: usize, groups: usize) -> String {
    format!("bench-g{}", i % groups.max(1) + 1)
}

struct GatewayCtx {
    index: usize,
    channel: Channel,
    actors: Vec<v1::ActorDescriptor>,
    setup: Arc<Semaphore>,
    ready: mpsc::UnboundedSender<Result<usize, String>>,
    acks: mpsc::UnboundedSender<Ack>,
    stop: watch::Receiver<bool>,
    telemetry: bool,
}

/// Network time of the one scan `--telemetry` sends, Unix ms.
const TELEMETRY_TIME_MS: i64 = 1_800_000_000_000;

/// Registers, opens the session, then heartbeats and acknowledges commands
/// until stopped. Reports ready once it has acknowledged its first curve.
async fn synthetic_gateway(mut ctx: GatewayCtx) -> anyhow::Result<()> {
    let id = gateway_id(ctx.index);
    let permit = ctx.setup.clone().acquire_owned().await?;
    let mut client = AgentServiceClient::new(ctx.channel.clone());
    let reg = client
        .register(v1::RegisterRequest {
            gateway_id: id.clone(),
            instance_id: format!("bench-{}", std::process::id()),
            actors: ctx.actors.clone(),
            software_version: env!("CARGO_PKG_VERSION").to_string(),
        })
        .await
        .with_context(|| format!("registering {id}"))?
        .into_inner();
    let (tx, rx) = mpsc::channel::<v1::GatewayMessage>(64);
    let send = |body| v1::GatewayMessage { body: Some(body) };
    tx.send(send(v1::gateway_message::Body::Open(v1::SessionOpen {
        gateway_id: id.clone(),
        session_id: reg.session_id.clone(),
    })))
    .await?;
    let mut inbound = client
        .session(ReceiverStream::new(rx))
        .await
        .with_context(|| format!("opening the session of {id}"))?
        .into_inner();
    if ctx.telemetry {
        let batch =
            super::telemetry_batch(&ctx.actors, reg.last_stored_seq + 1, 1, TELEMETRY_TIME_MS);
        tx.send(send(v1::gateway_message::Body::Batch(batch)))
            .await
            .context("session stream closed")?;
    }
    let mut ready = false;
    let mut permit = Some(permit);
    let hb_ms = u64::from(reg.heartbeat_interval_ms).clamp(100, 1000);
    let mut heartbeat = tokio::time::interval(Duration::from_millis(hb_ms));
    loop {
        tokio::select! {
            msg = inbound.message() => {
                let Some(msg) = msg.with_context(|| format!("session of {id}"))? else {
                    anyhow::bail!("the optimizer closed the session of {id}");
                };
                if let Some(v1::optimizer_message::Body::Command(c)) = msg.body {
                    let received = Instant::now();
                    let curve_version = match &c.action {
                        Some(v1::command::Action::SetCurve(s)) => Some(s.curve_version),
                        _ => None,
                    };
                    tx.send(send(v1::gateway_message::Body::CommandResult(v1::CommandResult {
                        command_id: c.command_id,
                        accepted: true,
                        reason: String::new(),
                    })))
                    .await
                    .context("session stream closed")?;
                    let acked = Instant::now();
                    if let Some(curve_version) = curve_version {
                        let _ = ctx.acks.send(Ack { gateway: ctx.index, curve_version, received, acked });
                        if !ready {
                            ready = true;
                            permit = None;
                            let _ = ctx.ready.send(Ok(ctx.index));
                        }
                    }
                }
            }
            _ = heartbeat.tick() => {
                tx.send(send(v1::gateway_message::Body::Heartbeat(v1::Heartbeat { time_ms: 0 })))
                    .await
                    .context("session stream closed")?;
            }
            _ = ctx.stop.changed() => {
                drop(permit);
                return Ok(());
            }
        }
    }
}

pub fn run(args: FanoutArgs) -> anyhow::Result<()> {
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

fn check(args: &FanoutArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=20_000).contains(&args.substations),
        "--substations {}: give 1..20000",
        args.substations
    );
    anyhow::ensure!(
        args.buildings <= 200,
        "--buildings {}: give 0..200",
        args.buildings
    );
    anyhow::ensure!(
        (1..=args.substations).contains(&args.groups),
        "--groups {}: give 1..substations",
        args.groups
    );
    anyhow::ensure!(
        (1..=1000).contains(&args.changes),
        "--changes {}: give 1..1000",
        args.changes
    );
    anyhow::ensure!(
        (1..=1000).contains(&args.sessions_per_connection),
        "--sessions-per-connection {}: give 1..1000",
        args.sessions_per_connection
    );
    anyhow::ensure!(
        (1..=4096).contains(&args.connect_concurrency),
        "--connect-concurrency {}: give 1..4096",
        args.connect_concurrency
    );
    anyhow::ensure!(
        (1..=600).contains(&args.timeout_s),
        "--timeout-s {}: give 1..600",
        args.timeout_s
    );
    Ok(())
}

/// Starts the optimizer, connects the gateways, measures the curve changes.
pub async fn measure(args: &FanoutArgs) -> anyhow::Result<FanoutReport> {
    check(args)?;
    let exe = match &args.exe {
        Some(e) => e.clone(),
        None => super::default_exe()?,
    };
    let connections = args.substations.div_ceil(args.sessions_per_connection);
    // This process and the optimizer (which inherits the limit) each hold one
    // descriptor per connection, plus files and slack.
    let open_files_limit = super::raise_nofile(connections as u64 + 1024)?;
    anyhow::ensure!(
        open_files_limit >= connections as u64 + 256,
        "open-files limit {open_files_limit} is too low for {connections} connections: raise `ulimit -n`"
    );
    eprintln!(
        "fanout: {} substation gateways in {} group(s) over {connections} connection(s) to one optimizer",
        args.substations, args.groups
    );
    let opt =
        OptimizerProc::start(&exe, &args.data_dir, args.port, args.heartbeat_timeout_ms).await?;
    progress(format_args!("optimizer pid {} on {}", opt.pid(), opt.addr));

    let endpoint = observe::grpc::endpoint(&opt.addr)?;
    let channels: Vec<Channel> = (0..connections).map(|_| endpoint.connect_lazy()).collect();
    let setup = Arc::new(Semaphore::new(args.connect_concurrency));
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<Ack>();
    let (stop_tx, stop_rx) = watch::channel(false);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(args.substations);
    for i in 0..args.substations {
        let ctx = GatewayCtx {
            index: i,
            channel: channels[i / args.sessions_per_connection].clone(),
            actors: super::substation_actors(
                &gateway_id(i),
                &group_of(i, args.groups),
                args.buildings,
            ),
            setup: setup.clone(),
            ready: ready_tx.clone(),
            acks: ack_tx.clone(),
            stop: stop_rx.clone(),
            telemetry: args.telemetry,
        };
        let ready = ready_tx.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = synthetic_gateway(ctx).await {
                let _ = ready.send(Err(format!("{e:#}")));
            }
        }));
    }
    drop(ready_tx);
    drop(ack_tx);

    // Wait for every session to be open and to have acknowledged its group's
    // initial curve (failures are counted, not fatal: they show as unacked).
    let (mut open, mut failed) = (0usize, 0usize);
    let mut first_error = None;
    let mut last_progress = Instant::now();
    let mut last_change = Instant::now();
    while open + failed < args.substations {
        if last_change.elapsed() > Duration::from_secs(SETUP_STALL_S) {
            progress(format_args!(
                "no session opened for {SETUP_STALL_S} s: going on with {open}"
            ));
            break;
        }
        match tokio::time::timeout(Duration::from_millis(500), ready_rx.recv()).await {
            Ok(Some(Ok(_))) => {
                open += 1;
                last_change = Instant::now();
            }
            Ok(Some(Err(e))) => {
                failed += 1;
                last_change = Instant::now();
                first_error.get_or_insert(e);
            }
            Ok(None) => break,
            Err(_) => {}
        }
        if last_progress.elapsed() > Duration::from_secs(2) {
            last_progress = Instant::now();
            progress(format_args!(
                "{open}/{} sessions open, {failed} failed, {:.0} s",
                args.substations,
                started.elapsed().as_secs_f64()
            ));
        }
    }
    let setup_s = started.elapsed().as_secs_f64();
    progress(format_args!(
        "{open} sessions open, {failed} failed, in {setup_s:.1} s"
    ));
    if let Some(e) = &first_error {
        progress(format_args!("first failure: {e}"));
    }
    anyhow::ensure!(open > 0, "no session opened; see {}", opt.log.display());

    let mut control = proto::control_room_client(endpoint.connect().await?);
    // The control room's view of the whole network: about 8.6 MB at 3,323
    // substations with 20 buildings each, over tonic's default 4 MB limit.
    let t_state = Instant::now();
    let state = control
        .get_network_state(v1::GetNetworkStateRequest {})
        .await
        .context("GetNetworkState of the whole network")?
        .into_inner();
    let network_state_ms = t_state.elapsed().as_secs_f64() * 1000.0;
    let network_state_bytes = proto::encoded_len(&state);
    let network_state_nodes = state.nodes.len();
    progress(format_args!(
        "network state: {network_state_nodes} nodes, {:.1} MB, read in {network_state_ms:.0} ms",
        network_state_bytes as f64 / 1.0e6
    ));
    // Let the start-up acknowledgements drain before the first change.
    tokio::time::sleep(Duration::from_millis(args.pause_ms)).await;
    let mut changes = Vec::with_capacity(args.changes);
    let mut all = Vec::new();
    for k in 0..args.changes {
        while ack_rx.try_recv().is_ok() {}
        let g = k % args.groups;
        let group = group_of(g, args.groups);
        let targets = (0..args.substations)
            .filter(|i| i % args.groups == g)
            .count();
        let t0 = Instant::now();
        let cv = control
            .set_curve(v1::SetCurveRequest {
                group: group.clone(),
                curve: Some(super::curve(if k % 2 == 0 { 2.0 } else { -2.0 })),
                author: "heatnet bench fanout".into(),
                reason: format!("fan-out benchmark, change {}", k + 1),
            })
            .await
            .with_context(|| format!("SetCurve for group {group}"))?
            .into_inner();
        let rpc_ms = t0.elapsed().as_secs_f64() * 1e3;
        let deadline = t0 + Duration::from_secs(args.timeout_s);
        let mut got: HashMap<usize, (f64, f64)> = HashMap::with_capacity(targets);
        while got.len() < targets {
            match tokio::time::timeout_at(deadline.into(), ack_rx.recv()).await {
                Ok(Some(a)) => {
                    if a.curve_version == cv.version && a.gateway % args.groups == g {
                        got.entry(a.gateway).or_insert((
                            (a.received - t0).as_secs_f64() * 1e3,
                            (a.acked - t0).as_secs_f64() * 1e3,
                        ));
                    }
                }
                Ok(None) | Err(_) => break,
            }
        }
        let mut recv: Vec<f64> = got.values().map(|v| v.0).collect();
        let mut ack: Vec<f64> = got.values().map(|v| v.1).collect();
        recv.sort_by(f64::total_cmp);
        ack.sort_by(f64::total_cmp);
        all.extend_from_slice(&ack);
        let c = Change {
            group,
            curve_version: cv.version,
            targets,
            acked: got.len(),
            set_curve_rpc_ms: rpc_ms,
            received_p50_ms: quantile(&recv, 0.5),
            received_p99_ms: quantile(&recv, 0.99),
            ack_p50_ms: quantile(&ack, 0.5),
            ack_p90_ms: quantile(&ack, 0.9),
            ack_p99_ms: quantile(&ack, 0.99),
            ack_max_ms: quantile(&ack, 1.0),
        };
        progress(format_args!(
            "change {}: {}/{} acked, p99 {:.0} ms, max {:.0} ms",
            k + 1,
            c.acked,
            c.targets,
            c.ack_p99_ms,
            c.ack_max_ms
        ));
        changes.push(c);
        tokio::time::sleep(Duration::from_millis(args.pause_ms)).await;
    }
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    drop(opt);
    all.sort_by(f64::total_cmp);
    let target_met = changes
        .iter()
        .all(|c| c.acked == c.targets && c.ack_p99_ms <= 1000.0);
    Ok(FanoutReport {
        substations: args.substations,
        buildings_per_substation: args.buildings,
        groups: args.groups,
        sessions_per_connection: args.sessions_per_connection,
        connections,
        sessions_open: open,
        sessions_failed: failed,
        setup_s,
        network_state_nodes,
        network_state_bytes,
        network_state_ms,
        open_files_limit,
        all_ack_p50_ms: quantile(&all, 0.5),
        all_ack_p99_ms: quantile(&all, 0.99),
        all_ack_max_ms: quantile(&all, 1.0),
        changes,
        target_met,
    })
}

fn print_table(r: &FanoutReport) {
    println!(
        "fan-out: {} substations ({} open, {} failed), {} group(s), {} connection(s), set-up {:.1} s",
        r.substations, r.sessions_open, r.sessions_failed, r.groups, r.connections, r.setup_s
    );
    println!(
        "network state: {} nodes, {:.1} MB, read in {:.0} ms",
        r.network_state_nodes,
        r.network_state_bytes as f64 / 1.0e6,
        r.network_state_ms
    );
    println!(
        "{:>6} {:>10} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "change",
        "group",
        "acked",
        "targets",
        "rpc ms",
        "recv p50",
        "ack p50",
        "ack p90",
        "ack p99",
        "ack max"
    );
    for (i, c) in r.changes.iter().enumerate() {
        println!(
            "{:>6} {:>10} {:>8} {:>8} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            i + 1,
            c.group,
            c.acked,
            c.targets,
            c.set_curve_rpc_ms,
            c.received_p50_ms,
            c.ack_p50_ms,
            c.ack_p90_ms,
            c.ack_p99_ms,
            c.ack_max_ms
        );
    }
    println!(
        "all acks: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; target (all acked, p99 <= 1 s): {}",
        r.all_ack_p50_ms,
        r.all_ack_p99_ms,
        r.all_ack_max_ms,
        if r.target_met { "met" } else { "NOT met" }
    );
}
