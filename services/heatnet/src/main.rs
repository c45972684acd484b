//! `heatnet`: the command line of the heatnet district heating control system.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod control;
mod footprint;
mod ledger;
mod status;
mod storecmd;
mod up;

/// District heating control: simulator, optimizer and edge gateways.
#[derive(Parser)]
#[command(name = "heatnet", version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start the simulator, the optimizer and every gateway of a network as
    /// separate processes on loopback; supervise them until Ctrl-C.
    Up(up::UpArgs),
    /// Show every plant, substation and building: online or lost, mode, latest
    /// readings and setpoints.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// The optimizer's address; default: from <data-dir>/up.json, else 127.0.0.1:7401.
        #[arg(long)]
        optimizer: Option<String>,
        #[arg(long, default_value = heatnet::layout::DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
    /// Hours below 18 °C per building and day, from the optimizer's ledger.
    Ledger(ledger::LedgerArgs),
    /// Run the simulator, or compute a design steady state (`heatnet sim steady`).
    Sim {
        #[command(subcommand)]
        command: heatnet::procs::SimCmd,
    },
    /// Serve the control-room web dashboard.
    Dashboard(heatnet::dash::DashboardArgs),
    /// Run the optimizer process (as `heatnet-optimizer`).
    Optimizer(heatnet::procs::OptimizerArgs),
    /// Run or inspect an edge gateway (as `heatnet-gateway`).
    Gateway {
        #[command(subcommand)]
        command: heatnet::procs::GatewayCmd,
    },
    /// A heating season through the whole distributed stack, twice (optimizer
    /// and fixed curve) on the same weather and faults; writes a report.
    Season(heatnet::season::SeasonArgs),
    /// The control room: curves, overrides, alarms, faults, forecasts, audit.
    #[command(flatten)]
    Control(control::Cmd),
    /// Inspect a process's local store (what fills the disk).
    Store {
        #[command(subcommand)]
        command: storecmd::StoreCmd,
    },
    /// Measurements on the real processes.
    Bench {
        #[command(subcommand)]
        command: BenchCmd,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Resident memory and CPU of one gateway hosting a substation and its
    /// buildings (default 50), under `heatnet up`.
    GatewayFootprint(footprint::FootprintArgs),
    /// Telemetry samples stored durably per second, through a real optimizer
    /// over gRPC and through its ingest in process.
    Ingest(heatnet::bench::ingest::IngestArgs),
    /// A curve change to thousands of synthetic substation gateways of a real
    /// optimizer: time until every actor acknowledged it.
    Fanout(heatnet::bench::fanout::FanoutArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Up(args) => heatnet::run_process("heatnet", "up", 2, || up::run(args)),
        Cmd::Ledger(args) => ledger::main(args),
        Cmd::Store { command } => storecmd::main(command),
        Cmd::Sim { command } => heatnet::procs::sim_cmd(command),
        Cmd::Season(args) => {
            heatnet::run_process("heatnet", "season", 2, || heatnet::season::run(args))
        }
        Cmd::Optimizer(args) => heatnet::procs::optimizer(args),
        Cmd::Dashboard(args) => heatnet::dash::dashboard(args),
        Cmd::Gateway { command } => heatnet::procs::gateway(command),
        Cmd::Control(cmd) => control::run(cmd),
        Cmd::Bench { command } => {
            let (what, result) = match command {
                BenchCmd::GatewayFootprint(args) => ("gateway-footprint", footprint::run(args)),
                BenchCmd::Ingest(args) => ("ingest", heatnet::bench::ingest::run(args)),
                BenchCmd::Fanout(args) => ("fanout", heatnet::bench::fanout::run(args)),
            };
            match result {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("heatnet bench {what}: {e:#}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
        Cmd::Status {
            json,
            optimizer,
            data_dir,
        } => {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("heatnet: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            };
            match rt.block_on(status::run(json, optimizer, &data_dir)) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("heatnet status: {e:#}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}
