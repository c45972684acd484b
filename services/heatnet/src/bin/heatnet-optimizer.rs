//! `heatnet-optimizer`: the central optimizer process.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "heatnet-optimizer",
    version,
    about = "The central optimizer: registry, telemetry, curves, setpoints, alarms."
)]
struct Cli {
    #[command(flatten)]
    args: heatnet::procs::OptimizerArgs,
}

fn main() -> std::process::ExitCode {
    heatnet::procs::optimizer(Cli::parse().args)
}
