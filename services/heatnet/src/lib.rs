//! Shared plumbing of the heatnet binaries: process start-up and shutdown, and
//! the files `heatnet up` writes for the other commands.

pub mod bench;
pub mod configs;
pub mod dash;
pub mod feed;
pub mod layout;
pub mod procs;
pub mod season;
pub mod steady;

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted: shutting down"),
        _ = term.recv() => tracing::info!("terminated: shutting down"),
    }
}

/// Runs a process body on a multi-threaded tokio runtime with tracing set up,
/// and turns its outcome into an exit code (errors are printed with their causes).
pub fn run_process<F, Fut>(
    service: &str,
    instance: &str,
    workers: usize,
    body: F,
) -> std::process::ExitCode
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    // One worker: a current-thread runtime, without the cross-thread wake-ups
    // that dominate a small process's CPU (a gateway scans many times a second
    // in lockstep).
    let built = if workers <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
    };
    let rt = match built {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{service}: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        let _guard = match observe::init(&observe::ObserveConfig::from_env(service, instance)) {
            Ok(g) => g,
            Err(e) => {
                eprintln!("{service}: {e:#}");
                return std::process::ExitCode::FAILURE;
            }
        };
        match body().await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "{service} failed");
                eprintln!("{service}: {e:#}");
                std::process::ExitCode::FAILURE
            }
        }
    })
}
