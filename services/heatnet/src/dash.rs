//! `heatnet dashboard`: the control-room web dashboard as its own process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

#[derive(Args, Clone, Debug)]
pub struct DashboardArgs {
    /// The optimizer's ControlRoomService address.
    #[arg(long, default_value = "127.0.0.1:7401")]
    pub optimizer: String,
    /// The simulator's address; enables the simulator panel.
    #[arg(long)]
    pub simulator: Option<String>,
    /// Where the dashboard serves HTTP.
    #[arg(long, default_value = "127.0.0.1:7500")]
    pub listen: SocketAddr,
    /// The network to draw: sample name (demo, ring) or a network file.
    #[arg(long)]
    pub network: Option<String>,
    /// Directory holding the season report (`report.json`).
    #[arg(long)]
    pub report_dir: Option<PathBuf>,
    /// How often the optimizer's state is read for the trends, ms.
    #[arg(long, default_value_t = 1000)]
    pub poll_ms: u64,
}

/// Default dashboard port for a `heatnet up` base port.
pub fn dashboard_port(base_port: u16) -> u16 {
    base_port + 100
}

pub fn dashboard(args: DashboardArgs) -> ExitCode {
    crate::run_process("heatnet-dashboard", "control-room", 2, || async move {
        anyhow::ensure!(
            (100..=60_000).contains(&args.poll_ms),
            "--poll-ms {} is outside 100..60000",
            args.poll_ms
        );
        dashboard::run(
            dashboard::DashboardConfig {
                listen: args.listen,
                optimizer: args.optimizer,
                simulator: args.simulator,
                network: args.network,
                report_dir: args.report_dir,
                poll_period: Duration::from_millis(args.poll_ms),
                history_per_node: 1800,
                history_total: 1_000_000,
            },
            crate::shutdown_signal(),
        )
        .await?;
        Ok(())
    })
}
