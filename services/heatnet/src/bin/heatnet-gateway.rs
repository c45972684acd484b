//! `heatnet-gateway`: the edge gateway process.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "heatnet-gateway",
    version,
    about = "Hosts a plant's or substation's actors next to the hardware."
)]
struct Cli {
    #[command(subcommand)]
    command: heatnet::procs::GatewayCmd,
}

fn main() -> std::process::ExitCode {
    heatnet::procs::gateway(Cli::parse().command)
}
