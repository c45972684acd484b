//! The control-room web dashboard.
//!
//! One HTTP server (axum) serves an embedded single-page app (`assets/`, no
//! build step, nothing fetched from the internet) and a JSON API under
//! `/api/`. The API calls the optimizer's ControlRoomService, and the
//! simulator's SimulatorService when one is configured (the simulator panel).
//! A poller keeps each node's recent readings for the trend plots.
//!
//! - [`layout`]: where to draw plants, substations and pipes (pure).
//! - [`history`]: the trend buffer (pure).
//! - [`grpc`]: the gRPC edge; [`view`]: the API's own types.

pub mod grpc;
pub mod history;
mod http;
pub mod layout;
pub mod view;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct DashboardConfig {
    pub listen: SocketAddr,
    /// The optimizer's ControlRoomService address.
    pub optimizer: String,
    /// The simulator's address; `None` hides the simulator panel.
    pub simulator: Option<String>,
    /// The network drawn in the network view (sample name or file path).
    pub network: Option<String>,
    /// Where `heatnet season` writes `report.json`.
    pub report_dir: Option<PathBuf>,
    /// How often the optimizer's state is polled for trends.
    pub poll_period: Duration,
    /// Samples kept per node for trends (at most)...
    pub history_per_node: usize,
    /// ... and in all, shared among the nodes (8 bytes a reading: 1,000,000
    /// samples of about a dozen readings are on the order of 150 MB).
    pub history_total: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("loading the network {name}: {reason}")]
    Network { name: String, reason: String },
    #[error(transparent)]
    Edge(#[from] grpc::EdgeError),
    #[error("binding the dashboard to {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("serving http: {0}")]
    Serve(std::io::Error),
}

pub(crate) struct App {
    pub cfg: DashboardConfig,
    pub clients: grpc::Clients,
    pub layout: Option<layout::Layout>,
    pub history: Mutex<history::History>,
}

/// Binds the listener (so the caller knows the address is taken) and serves until `shutdown`.
pub async fn run(
    cfg: DashboardConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DashboardError> {
    let layout = match &cfg.network {
        None => None,
        Some(name) => Some(layout::layout(&model::Network::load(name).map_err(
            |e| DashboardError::Network {
                name: name.clone(),
                reason: e.to_string(),
            },
        )?)),
    };
    let clients = grpc::Clients::new(&cfg.optimizer, cfg.simulator.as_deref())?;
    let app = Arc::new(App {
        history: Mutex::new(history::History::new(
            cfg.history_per_node,
            cfg.history_total,
        )),
        cfg: cfg.clone(),
        clients,
        layout,
    });
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| DashboardError::Bind {
            addr: cfg.listen,
            source,
        })?;
    tracing::info!(listen = %cfg.listen, optimizer = %cfg.optimizer, simulator = ?cfg.simulator, "dashboard serving");
    let poller = tokio::spawn(poll(app.clone()));
    let served = axum::serve(listener, http::router(app))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(DashboardError::Serve);
    poller.abort();
    served
}

async fn poll(app: Arc<App>) {
    let mut tick = tokio::time::interval(app.cfg.poll_period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    let mut backfilled = false;
    loop {
        tick.tick().await;
        match app.clients.snapshot().await {
            Ok(s) => {
                if failing {
                    tracing::info!("optimizer reachable again");
                    failing = false;
                }
                if let Ok(mut h) = app.history.lock() {
                    h.record(&s);
                }
                if !backfilled {
                    backfilled = true;
                    tokio::spawn(backfill(app.clone(), s));
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "cannot read the optimizer's state");
                    failing = true;
                }
            }
        }
    }
}

/// Batches read per `ReadTelemetrySnapshots` call.
const BACKFILL_CHUNK: u32 = 200;

/// Loads the recent stored telemetry of every gateway into the trends, so
/// that they survive a restart of the dashboard.
async fn backfill(app: Arc<App>, first: view::Snapshot) {
    let started = std::time::Instant::now();
    let mut total = 0usize;
    for g in &first.gateways {
        let last = g.last_stored_seq;
        let mut from = last
            .saturating_sub(app.cfg.history_per_node as u64)
            .saturating_add(1);
        while from <= last {
            match app
                .clients
                .stored_samples(&g.gateway_id, from, BACKFILL_CHUNK)
                .await
            {
                Ok((Some(read_to), samples)) => {
                    total += samples.len();
                    if let Ok(mut h) = app.history.lock() {
                        h.backfill(samples);
                    }
                    from = read_to + 1;
                }
                Ok((None, _)) => break,
                Err(e) => {
                    tracing::warn!(gateway_id = %g.gateway_id, error = %e, "cannot read stored telemetry for the trends");
                    break;
                }
            }
        }
    }
    tracing::info!(
        samples = total,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "trends filled from stored telemetry"
    );
}
