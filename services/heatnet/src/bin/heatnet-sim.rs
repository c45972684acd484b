//! `heatnet-sim`: the simulator process.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "heatnet-sim",
    version,
    about = "Plays the physical network and serves synthetic hardware over gRPC."
)]
struct Cli {
    #[command(flatten)]
    args: heatnet::procs::SimArgs,
}

fn main() -> std::process::ExitCode {
    heatnet::procs::sim(Cli::parse().args)
}
