//! The optimizer as a planner on the simulator's lockstep clock (season runs
//! and tests; a utility's optimizer runs on its own timer).
//!
//! On the lockstep clock every step waits for every gateway to scan it, and,
//! with this planner attached, for the optimizer to plan on it: the clock
//! releases the planner once every gateway has finished with a step (their
//! telemetry is stored, because a lockstep gateway reports a step only once
//! the optimizer has acknowledged its batch), the planner runs the round due
//! at the step's network time, waits until the gateways have answered its
//! commands, and reports the step done. The network moves on only then, so
//! a run is replayed from its seed: which telemetry a round sees and which
//! step a command first acts in no longer depend on the machine's speed.
//!
//! What crosses this edge is the clock's step number and network time, never
//! the simulated state: the optimizer still sees the network only through
//! telemetry.

use std::sync::Arc;
use std::time::Duration;

use proto::v1;
use proto::v1::simulator_service_client::SimulatorServiceClient;

use crate::core::Core;

/// The party name the planner attaches to the lockstep clock with.
pub const PLANNER_ID: &str = "optimizer";
/// Longest wait for the gateways to answer a round's commands, real time.
/// Past it the step is reported done anyway (and a warning logged): a
/// gateway that stopped answering must not stop the network.
pub const COMMAND_ANSWER_LIMIT: Duration = Duration::from_secs(10);
/// Pause between attempts to reach the simulator's clock.
const RETRY: Duration = Duration::from_secs(1);

/// Plans on every step of the lockstep clock at `simulator` until the task
/// is dropped.
pub async fn run(core: Arc<Core>, simulator: String) {
    let client = match observe::grpc::endpoint(&simulator) {
        // The simulator holds an AwaitStep call up to 5 s.
        Ok(e) => SimulatorServiceClient::new(e.timeout(Duration::from_secs(15)).connect_lazy()),
        Err(e) => {
            tracing::error!(simulator = %simulator, error = %e, "lockstep clock address unusable: not planning");
            return;
        }
    };
    let mut done = 0u64;
    let mut failing = false;
    let mut on_timer = false;
    loop {
        let (step, time_ms, lockstep) = match await_step(client.clone(), done).await {
            Ok(c) => {
                if failing {
                    tracing::info!(simulator = %simulator, "lockstep clock reachable again");
                    failing = false;
                }
                c
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(simulator = %simulator, error = %e, "lockstep clock unreachable: retrying");
                    failing = true;
                }
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        if !lockstep {
            if !on_timer {
                tracing::error!(simulator = %simulator, "the simulator's clock is not a lockstep clock: planning on the newest telemetry's time instead");
                on_timer = true;
            }
            if let Err(e) = core.plan() {
                tracing::error!(error = %e, "planning round failed");
            }
            tokio::time::sleep(crate::core::LIVENESS_PERIOD).await;
            continue;
        }
        if step == done {
            continue; // held and answered: nothing to plan on yet
        }
        let from = core.next_command_version();
        match core.plan_at(time_ms) {
            Ok(sent) => {
                let left = core.commands_answered(from, COMMAND_ANSWER_LIMIT).await;
                if left > 0 {
                    tracing::warn!(
                        step,
                        network_time_ms = time_ms,
                        sent,
                        unanswered = left,
                        "commands not answered in time: the step goes on without them"
                    );
                }
            }
            Err(e) => tracing::error!(step, error = %e, "planning round failed"),
        }
        done = step;
    }
}

/// Reports `done` and returns the step to plan on, its network time (`done`
/// again when the clock has none yet), and whether the clock is a lockstep
/// clock at all.
async fn await_step(
    mut client: SimulatorServiceClient<tonic::transport::Channel>,
    done: u64,
) -> Result<(u64, i64, bool), tonic::Status> {
    let c = client
        .await_step(v1::AwaitStepRequest {
            gateway_id: PLANNER_ID.into(),
            done_step: done,
            planner: true,
        })
        .await?
        .into_inner();
    Ok((c.steps, c.time_ms, c.lockstep))
}
