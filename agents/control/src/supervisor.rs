//! One supervisor per gateway, and the small public handle over its actors.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use model::{Command, CommandOutcome, NodeId, NodeKind};
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use store::Store;

use crate::law::{NodeConfig, TickInput, TickOutput};
use crate::node::{NodeActor, NodeArgs, NodeMsg};

/// How long a tick or command may take before the caller gives up on the actor.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// More restarts than this within [`RESTART_WINDOW`] stop the supervisor (and so the gateway).
pub const MAX_RESTARTS: usize = 10;
pub const RESTART_WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("actor {0} is not hosted by this gateway")]
    UnknownActor(NodeId),
    #[error("actor {0} is not running (restarting?)")]
    NotRunning(NodeId),
    #[error("actor {actor}: {reason}")]
    Call { actor: NodeId, reason: String },
    #[error("cannot start the actors: {0}")]
    Start(String),
    #[error("local state: {0}")]
    Store(#[from] store::StoreError),
}

struct Supervisor;

struct SupervisorArgs {
    prefix: String,
    children: Vec<NodeArgs>,
}

struct SupervisorState {
    prefix: String,
    children: BTreeMap<String, NodeArgs>,
    restarts: VecDeque<Instant>,
}

impl Actor for Supervisor {
    type Msg = ();
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<()>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let mut children = BTreeMap::new();
        for child in args.children {
            let name = format!("{}/{}", args.prefix, child.cfg.id);
            Actor::spawn_linked(
                Some(name.clone()),
                NodeActor,
                child.clone(),
                myself.get_cell(),
            )
            .await?;
            children.insert(name, child);
        }
        Ok(SupervisorState {
            prefix: args.prefix,
            children,
            restarts: VecDeque::new(),
        })
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<()>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorFailed(cell, err) = event {
            let Some(name) = cell.get_name() else {
                return Ok(());
            };
            let Some(args) = state.children.get(&name).cloned() else {
                return Ok(());
            };
            let now = Instant::now();
            state.restarts.push_back(now);
            while state
                .restarts
                .front()
                .is_some_and(|t| now.duration_since(*t) > RESTART_WINDOW)
            {
                state.restarts.pop_front();
            }
            if state.restarts.len() > MAX_RESTARTS {
                tracing::error!(gateway = %state.prefix, actor = %name, "actors keep failing: giving up");
                return Err(format!(
                    "more than {MAX_RESTARTS} actor restarts within {RESTART_WINDOW:?}"
                )
                .into());
            }
            tracing::error!(actor = %name, error = %err, "actor failed: restarting from its saved state");
            Actor::spawn_linked(Some(name), NodeActor, args, myself.get_cell()).await?;
        }
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<()>,
        _: (),
        _: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

/// The gateway's handle on its actors.
pub struct Actors {
    prefix: String,
    kinds: BTreeMap<NodeId, NodeKind>,
    supervisor: ActorRef<()>,
}

impl Actors {
    /// Starts one actor per configured node under a supervisor. State lives in
    /// `store`'s `actors` table.
    pub async fn start(
        gateway: &NodeId,
        configs: Vec<NodeConfig>,
        store: &Store,
    ) -> Result<Self, ControlError> {
        let table = store.table("actors")?;
        let kinds = configs.iter().map(|c| (c.id.clone(), c.kind)).collect();
        let prefix = gateway.to_string();
        let children = configs
            .into_iter()
            .map(|cfg| NodeArgs {
                cfg,
                store: store.clone(),
                table: table.clone(),
            })
            .collect();
        let (supervisor, _) = Actor::spawn(
            Some(format!("{prefix}/supervisor")),
            Supervisor,
            SupervisorArgs {
                prefix: prefix.clone(),
                children,
            },
        )
        .await
        .map_err(|e| ControlError::Start(e.to_string()))?;
        Ok(Self {
            prefix,
            kinds,
            supervisor,
        })
    }

    /// Hosted actors and their kinds, in id order.
    pub fn actors(&self) -> &BTreeMap<NodeId, NodeKind> {
        &self.kinds
    }

    /// False once the supervisor has given up (it may still be starting: that counts as running).
    pub fn is_running(&self) -> bool {
        !matches!(
            self.supervisor.get_status(),
            ractor::ActorStatus::Stopping | ractor::ActorStatus::Stopped
        )
    }

    fn actor(&self, id: &NodeId) -> Result<ActorRef<NodeMsg>, ControlError> {
        if !self.kinds.contains_key(id) {
            return Err(ControlError::UnknownActor(id.clone()));
        }
        ActorRef::<NodeMsg>::where_is(format!("{}/{id}", self.prefix))
            .ok_or_else(|| ControlError::NotRunning(id.clone()))
    }

    pub async fn tick(&self, id: &NodeId, input: TickInput) -> Result<TickOutput, ControlError> {
        let actor = self.actor(id)?;
        let call_err = |reason: String| ControlError::Call {
            actor: id.clone(),
            reason,
        };
        match actor
            .call(|reply| NodeMsg::Tick(input, reply), Some(CALL_TIMEOUT))
            .await
        {
            Ok(ractor::rpc::CallResult::Success(out)) => Ok(out),
            Ok(ractor::rpc::CallResult::Timeout) => Err(call_err("tick timed out".into())),
            Ok(ractor::rpc::CallResult::SenderError) => {
                Err(call_err("actor stopped during the tick".into()))
            }
            Err(e) => Err(call_err(e.to_string())),
        }
    }

    /// Routes a command to its actor; every failure becomes a refusal with the reason.
    pub async fn command(&self, cmd: Command) -> CommandOutcome {
        let actor = match self.actor(&cmd.actor_id) {
            Ok(a) => a,
            Err(ControlError::UnknownActor(id)) => {
                return CommandOutcome::Rejected {
                    reason: format!(
                        "unknown actor {id}: gateway {} does not host it",
                        self.prefix
                    ),
                };
            }
            Err(e) => {
                return CommandOutcome::Rejected {
                    reason: e.to_string(),
                };
            }
        };
        match actor
            .call(|reply| NodeMsg::Command(cmd, reply), Some(CALL_TIMEOUT))
            .await
        {
            Ok(ractor::rpc::CallResult::Success(outcome)) => outcome,
            Ok(_) | Err(_) => CommandOutcome::Rejected {
                reason: "actor did not answer in time; the command was not applied".into(),
            },
        }
    }

    /// Stops every actor.
    pub async fn stop(&self) {
        self.supervisor.stop(None);
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while !matches!(self.supervisor.get_status(), ractor::ActorStatus::Stopped) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }

    #[cfg(test)]
    pub(crate) fn fail(&self, id: &NodeId) {
        if let Ok(a) = self.actor(id) {
            let _ = a.cast(NodeMsg::Fail);
        }
    }
}

#[cfg(test)]
mod tests {
    use model::{Action, CurvePoint, Metric, Reading, SupplyCurve};

    use super::*;
    use crate::law::LinkState;

    fn configs() -> Vec<NodeConfig> {
        let curve = SupplyCurve::new(
            vec![
                CurvePoint {
                    outdoor_temp_c: -10.0,
                    supply_temp_c: 80.0,
                },
                CurvePoint {
                    outdoor_temp_c: 10.0,
                    supply_temp_c: 40.0,
                },
            ],
            35.0,
            85.0,
            (25.0, 95.0),
        )
        .unwrap();
        vec![
            NodeConfig {
                id: NodeId::new("s01").unwrap(),
                kind: NodeKind::Substation,
                parent: None,
                group: Some("g".into()),
                supply_limits_c: None,
                fallback_curve: Some(curve),
                max_setpoint_rate_k_per_min: 2.0,
                return_limit_c: None,
                pump_dp_setpoint_pa: None,
            },
            NodeConfig {
                id: NodeId::new("s01-b01").unwrap(),
                kind: NodeKind::Building,
                parent: Some(NodeId::new("s01").unwrap()),
                group: None,
                supply_limits_c: None,
                fallback_curve: None,
                max_setpoint_rate_k_per_min: 2.0,
                return_limit_c: None,
                pump_dp_setpoint_pa: None,
            },
        ]
    }

    fn input(t: i64) -> TickInput {
        TickInput {
            time_ms: t,
            readings: Some(vec![
                Reading::new(Metric::OutdoorTempC, 0.0),
                Reading::new(Metric::SecondarySupplyTempC, 55.0),
            ]),
            link: LinkState {
                optimizer_recent: true,
            },
        }
    }

    /// A fresh store of gateway `s01` in a scratch directory of its own.
    fn gateway_store(name: &str) -> (std::path::PathBuf, Store) {
        let dir =
            std::env::temp_dir().join(format!("heatnet-control-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(
            &dir,
            &store::StoreConfig {
                kind: "gateway".into(),
                identity: "s01".into(),
                cache_bytes: 1 << 20,
                ..Default::default()
            },
        )
        .unwrap();
        (dir, store)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_actor_restarts_with_its_state_and_others_carry_on() {
        let (dir, store) = gateway_store("sup");
        let gw = NodeId::new("s01").unwrap();
        let actors = Actors::start(&gw, configs(), &store).await.unwrap();
        let s01 = NodeId::new("s01").unwrap();
        let b01 = NodeId::new("s01-b01").unwrap();
        actors.tick(&s01, input(1_000_000)).await.unwrap();
        let cmd = Command {
            command_id: "c1".into(),
            actor_id: s01.clone(),
            version: 7,
            action: Action::SetSupplyTemp {
                supply_temp_c: 65.0,
            },
        };
        assert_eq!(actors.command(cmd.clone()).await, CommandOutcome::Accepted);

        actors.fail(&s01);
        // The building keeps answering while the substation restarts.
        actors.tick(&b01, input(1_060_000)).await.unwrap();
        let mut restarted = None;
        for _ in 0..100 {
            if let Ok(out) = actors.tick(&s01, input(1_120_000)).await {
                restarted = Some(out);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let out = restarted.expect("substation actor did not come back");
        // Restored from sled: still following the optimizer's setpoint, and the
        // replayed command is refused as stale.
        assert_eq!(out.mode, model::Mode::Optimizer);
        assert!(
            matches!(actors.command(cmd).await, CommandOutcome::Rejected { reason } if reason.contains("stale"))
        );
        let unknown = Command {
            command_id: "c2".into(),
            actor_id: NodeId::new("s99").unwrap(),
            version: 8,
            action: Action::ClearOverride,
        };
        assert_eq!(
            actors.command(unknown).await,
            CommandOutcome::Rejected {
                reason: "unknown actor s99: gateway s01 does not host it".into()
            }
        );
        actors.stop().await;
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// On a nearly full disk the actors go on controlling (no restarts, no
    /// errors), a command is refused since it cannot be made durable, and
    /// once there is room it is applied.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_disk_does_not_stop_control_and_refuses_commands_until_there_is_room() {
        let (dir, store) = gateway_store("full");
        let gw = NodeId::new("s01").unwrap();
        let actors = Actors::start(&gw, configs(), &store).await.unwrap();
        let s01 = NodeId::new("s01").unwrap();
        store.set_min_free_bytes(u64::MAX);
        for i in 0..5 {
            actors
                .tick(&s01, input(1_000_000 + i * 60_000))
                .await
                .expect("ticks go on without saving");
        }
        let cmd = Command {
            command_id: "c1".into(),
            actor_id: s01.clone(),
            version: 7,
            action: Action::SetSupplyTemp {
                supply_temp_c: 65.0,
            },
        };
        match actors.command(cmd.clone()).await {
            CommandOutcome::Rejected { reason } => {
                assert!(reason.contains("disk nearly full"), "{reason}")
            }
            other => panic!("accepted without storing it: {other:?}"),
        }
        store.set_min_free_bytes(0);
        assert_eq!(actors.command(cmd).await, CommandOutcome::Accepted);
        let out = actors.tick(&s01, input(1_400_000)).await.unwrap();
        assert_eq!(out.mode, model::Mode::Optimizer);
        actors.stop().await;
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn corrupt_saved_state_is_refused_and_the_actor_starts_from_its_configuration() {
        let (dir, store) = gateway_store("corrupt");
        store
            .table("actors")
            .unwrap()
            .insert("actor/s01", b"{\"kind\":\"substation\",\"garbage")
            .unwrap();
        let gw = NodeId::new("s01").unwrap();
        let actors = Actors::start(&gw, configs(), &store).await.unwrap();
        let out = actors
            .tick(&NodeId::new("s01").unwrap(), input(1_000_000))
            .await
            .unwrap();
        // Fresh from its configuration: no optimizer setpoint yet, on its local curve.
        assert_eq!(out.mode, model::Mode::Fallback);
        assert_eq!(out.writes.len(), 2);
        actors.stop().await;
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
