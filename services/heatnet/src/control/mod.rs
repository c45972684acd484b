//! The control room from the command line: `heatnet curve`, `override`,
//! `alarms`, `fault`, `forecast` and `audit`. Each command talks to the running
//! system (addresses from `<data-dir>/up.json`, like `heatnet status`), prints a
//! table (or JSON with `--json`), and sends every write through the same
//! validated gRPC API as the dashboard: a refusal is printed with its reason
//! and the command exits non-zero.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use proto::v1::control_room_service_client::ControlRoomServiceClient;
use proto::v1::simulator_service_client::SimulatorServiceClient;
use tonic::transport::Channel;

mod alarms;
mod audit;
mod curve;
mod fault;
mod forecast;
pub mod http;
mod overrides;
pub mod table;

/// China Standard Time, the network's local time, for tables.
pub const LOCAL_OFFSET_S: i64 = 8 * 3600;

#[derive(Subcommand)]
pub enum Cmd {
    /// Supply curves of substation groups: show, change, history.
    Curve {
        #[command(subcommand)]
        command: curve::CurveCmd,
    },
    /// Manual supply-temperature override of a plant or substation.
    Override {
        #[command(subcommand)]
        command: overrides::OverrideCmd,
    },
    /// Alarms: list, acknowledge.
    Alarms {
        #[command(subcommand)]
        command: alarms::AlarmsCmd,
    },
    /// Faults in the simulator: inject, clear, list.
    Fault {
        #[command(subcommand)]
        command: fault::FaultCmd,
    },
    /// Weather forecasts: load one (file or http(s):// URL), show, score.
    Forecast {
        #[command(subcommand)]
        command: forecast::ForecastCmd,
    },
    /// Every control-room write, accepted or refused: who, when, what, why.
    Audit(audit::AuditArgs),
}

/// Where the running system is, and how to print.
#[derive(Args, Clone, Debug)]
pub struct Conn {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The optimizer's address; default: from <data-dir>/up.json, else 127.0.0.1:7401.
    #[arg(long)]
    pub optimizer: Option<String>,
    /// The simulator's address; default: from <data-dir>/up.json, else 127.0.0.1:7400.
    #[arg(long)]
    pub simulator: Option<String>,
    #[arg(long, default_value = heatnet::layout::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
}

impl Conn {
    fn optimizer_addr(&self) -> String {
        address(&self.optimizer, &self.data_dir, |u| u.optimizer, 1)
    }

    fn simulator_addr(&self) -> String {
        address(&self.simulator, &self.data_dir, |u| u.simulator, 0)
    }

    pub async fn control_room(&self) -> anyhow::Result<ControlRoomServiceClient<Channel>> {
        let addr = self.optimizer_addr();
        Ok(proto::control_room_client(
            connect(&addr, "optimizer", "--optimizer").await?,
        ))
    }

    pub async fn simulator(&self) -> anyhow::Result<SimulatorServiceClient<Channel>> {
        let addr = self.simulator_addr();
        Ok(SimulatorServiceClient::new(
            connect(&addr, "simulator", "--simulator").await?,
        ))
    }
}

fn address(
    explicit: &Option<String>,
    data_dir: &Path,
    from_up: impl Fn(heatnet::layout::UpFile) -> String,
    port_offset: u16,
) -> String {
    explicit
        .clone()
        .or_else(|| heatnet::layout::read_up_file(data_dir).map(from_up))
        .unwrap_or_else(|| {
            format!(
                "127.0.0.1:{}",
                heatnet::layout::DEFAULT_BASE_PORT + port_offset
            )
        })
}

async fn connect(addr: &str, what: &str, flag: &str) -> anyhow::Result<Channel> {
    observe::grpc::endpoint(addr)?
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .with_context(|| {
            format!(
                "no {what} answers at {addr}: is `heatnet up` running? ({flag} to point elsewhere)"
            )
        })
}

/// A gRPC answer, or the server's refusal as an error with its code and reason.
pub fn answer<T>(r: Result<tonic::Response<T>, tonic::Status>) -> anyhow::Result<T> {
    r.map(tonic::Response::into_inner)
        .map_err(|s| anyhow::anyhow!("refused ({:?}): {}", s.code(), s.message()))
}

/// Who is asking, when not given: `$USER`.
pub fn who(explicit: Option<String>, flag: &str) -> anyhow::Result<String> {
    explicit
        .or_else(|| std::env::var("USER").ok())
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| anyhow::anyhow!("{flag}: missing; say who you are (no $USER either)"))
}

pub fn print_json(v: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Unix ms in the network's local time, `-` for none.
pub fn local_time(ms: i64) -> String {
    if ms <= 0 {
        "-".into()
    } else {
        model::forecast::format_rfc3339(ms, LOCAL_OFFSET_S)
    }
}

/// Runs a control-room command; errors are printed with their causes.
pub fn run(cmd: Cmd) -> std::process::ExitCode {
    let name = match &cmd {
        Cmd::Curve { .. } => "curve",
        Cmd::Override { .. } => "override",
        Cmd::Alarms { .. } => "alarms",
        Cmd::Fault { .. } => "fault",
        Cmd::Forecast { .. } => "forecast",
        Cmd::Audit(_) => "audit",
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("heatnet {name}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let res = rt.block_on(async move {
        match cmd {
            Cmd::Curve { command } => curve::run(command).await,
            Cmd::Override { command } => overrides::run(command).await,
            Cmd::Alarms { command } => alarms::run(command).await,
            Cmd::Fault { command } => fault::run(command).await,
            Cmd::Forecast { command } => forecast::run(command).await,
            Cmd::Audit(args) => audit::run(args).await,
        }
    });
    match res {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("heatnet {name}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
