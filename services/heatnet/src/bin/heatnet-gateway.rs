//! `heatnet-gateway`: the edge gateway process.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Hosts a plant's or substation's actors next to the hardware.
#[derive(Parser)]
#[command(name = "heatnet-gateway", version)]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the gateway.
    Run {
        /// Gateway configuration (TOML).
        #[arg(long)]
        config: PathBuf,
    },
    /// Show what the outbox of a stopped gateway holds.
    Inspect {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> std::process::ExitCode {
    match Args::parse().command {
        Cmd::Run { config } => {
            let cfg = match gateway::GatewayConfig::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("heatnet-gateway: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            };
            let id = cfg.gateway_id.to_string();
            // Two workers: the edge box is small.
            heatnet::run_process("heatnet-gateway", &id, 2, || async move {
                gateway::run(cfg, heatnet::shutdown_signal()).await
            })
        }
        Cmd::Inspect { config, json } => {
            let result = gateway::GatewayConfig::load(&config)
                .map_err(anyhow::Error::from)
                .and_then(|cfg| gateway::run::inspect(&cfg));
            match result {
                Ok(info) if json => {
                    println!("{}", serde_json::to_string(&info).unwrap_or_default());
                    std::process::ExitCode::SUCCESS
                }
                Ok(info) => {
                    println!(
                        "next_seq {}  acked_seq {}  pending {}  ({:?}..{:?})",
                        info.next_seq,
                        info.acked_seq,
                        info.pending,
                        info.first_pending,
                        info.last_pending
                    );
                    std::process::ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("heatnet-gateway: {e:#}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}
