//! `heatnet-sim`: the simulator process.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// Plays the physical network and serves synthetic hardware over gRPC.
#[derive(Parser)]
#[command(name = "heatnet-sim", version)]
struct Args {
    /// Sample network name (demo) or a path to a network file (.toml, .json).
    #[arg(long, default_value = "demo")]
    network: String,
    /// Local state directory of the simulator.
    #[arg(long, default_value = "heatnet-data/sim")]
    data_dir: PathBuf,
    #[arg(long, default_value = "127.0.0.1:7400")]
    listen: SocketAddr,
    /// Network seconds per real second.
    #[arg(long, default_value_t = 60.0)]
    speed: f64,
    /// Physics step, network seconds.
    #[arg(long, default_value_t = 10.0)]
    step_s: f64,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    heatnet::run_process("heatnet-sim", "sim", 2, || async move {
        let network = model::Network::load(&args.network)?;
        simulator::run(
            simulator::SimConfig {
                network,
                data_dir: args.data_dir,
                listen: args.listen,
                speed: args.speed,
                step_s: args.step_s,
            },
            heatnet::shutdown_signal(),
        )
        .await
    })
}
