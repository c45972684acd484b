//! The optimizer process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use proto::v1;
use store::{Store, StoreConfig};

use crate::core::{Core, CoreConfig};
use crate::grpc::Grpc;
use crate::ingest::Ingest;

#[derive(Clone, Debug)]
pub struct OptimizerConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub core: CoreConfig,
    /// Plan on the steps of the simulator's lockstep clock at this address
    /// ([`crate::lockstep`]) instead of on the newest telemetry's time.
    pub lockstep_simulator: Option<String>,
    /// How long telemetry is kept ([`crate::retention`]).
    pub retention: crate::retention::Retention,
}

/// Runs the optimizer until `shutdown` resolves.
pub async fn run(
    cfg: OptimizerConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let store = Store::open(
        &cfg.data_dir,
        &StoreConfig {
            kind: "optimizer".into(),
            identity: "central".into(),
            cache_bytes: 64 << 20,
            ..Default::default()
        },
    )?;
    let ingest = Ingest::start_with(&store, cfg.retention)?;
    let core = Arc::new(Core::open(&store, ingest, cfg.core.clone())?);
    let grpc = Grpc { core: core.clone() };

    let (reporter, health, reflection) = observe::grpc::health_and_reflection()?;
    reporter
        .set_serving::<v1::agent_service_server::AgentServiceServer<Grpc>>()
        .await;
    reporter
        .set_serving::<v1::control_room_service_server::ControlRoomServiceServer<Grpc>>()
        .await;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("binding the optimizer to {}", cfg.listen))?;
    tracing::info!(listen = %cfg.listen, "optimizer serving");

    crate::metrics::register(&store, &core);
    let lockstep = cfg.lockstep_simulator.clone().map(|sim| {
        tracing::info!(simulator = %sim, "planning on the simulator's lockstep clock");
        tokio::spawn(crate::lockstep::run(core.clone(), sim))
    });
    let background = {
        let core = core.clone();
        let on_timer = lockstep.is_none();
        let cycle = observe::timer(
            "heatnet.optimizer.cycle_seconds",
            "time of one optimizer cycle (liveness check and planning round)",
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(crate::core::LIVENESS_PERIOD);
            loop {
                tick.tick().await;
                let started = std::time::Instant::now();
                core.check_liveness();
                if on_timer && let Err(e) = core.plan() {
                    tracing::error!(error = %e, "planning round failed");
                }
                cycle.observe(started.elapsed());
            }
        })
    };
    let served = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(observe::grpc::KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(observe::grpc::KEEPALIVE_TIMEOUT))
        .add_service(health)
        .add_service(reflection)
        .add_service(v1::agent_service_server::AgentServiceServer::new(
            grpc.clone(),
        ))
        .add_service(v1::control_room_service_server::ControlRoomServiceServer::new(grpc))
        .serve_with_incoming(observe::grpc::incoming(listener));
    // Gateways hold long-lived session streams: a graceful drain would wait on
    // them forever, so stopping drops the connections; gateways reconnect and
    // replay whatever was not acknowledged.
    let served = tokio::select! {
        r = served => r,
        _ = shutdown => Ok(()),
    };
    background.abort();
    if let Some(l) = lockstep {
        l.abort();
    }
    if let Err(e) = core.save_on_stop() {
        tracing::error!(error = %e, "leak detector's memory not saved: it learns again after the restart");
    }
    store.flush_async().await?;
    tracing::info!("optimizer stopped");
    served.context("serving gRPC")
}
