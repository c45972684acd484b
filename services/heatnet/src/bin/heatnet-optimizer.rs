//! `heatnet-optimizer`: the central optimizer process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Registry, durable telemetry, live network state, curves, setpoints, alarms.
#[derive(Parser)]
#[command(name = "heatnet-optimizer", version)]
struct Args {
    /// Local state directory of the optimizer.
    #[arg(long, default_value = "heatnet-data/optimizer")]
    data_dir: PathBuf,
    #[arg(long, default_value = "127.0.0.1:7401")]
    listen: SocketAddr,
    /// A gateway silent this long is marked lost, ms.
    #[arg(long, default_value_t = 3000)]
    heartbeat_timeout_ms: u64,
    /// Network time between planning rounds, s.
    #[arg(long, default_value_t = 300)]
    plan_interval_s: u64,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    heatnet::run_process("heatnet-optimizer", "central", 2, || async move {
        anyhow::ensure!(
            (500..=600_000).contains(&args.heartbeat_timeout_ms),
            "--heartbeat-timeout-ms {} is outside 500..600000",
            args.heartbeat_timeout_ms
        );
        anyhow::ensure!(
            (10..=86_400).contains(&args.plan_interval_s),
            "--plan-interval-s {} is outside 10..86400",
            args.plan_interval_s
        );
        optimizer::run(
            optimizer::OptimizerConfig {
                data_dir: args.data_dir,
                listen: args.listen,
                core: optimizer::core::CoreConfig {
                    heartbeat_timeout: Duration::from_millis(args.heartbeat_timeout_ms),
                    heartbeat_interval_ms: 1000,
                    plan_interval_ms: args.plan_interval_s as i64 * 1000,
                },
            },
            heatnet::shutdown_signal(),
        )
        .await
    })
}
