//! The actor hosting one node's controller.

use model::{Command, CommandOutcome, NodeId};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use store::{Store, Table};

use crate::law::{Controller, NodeConfig, TickInput, TickOutput};

pub(crate) struct NodeActor;

#[derive(Clone)]
pub(crate) struct NodeArgs {
    pub cfg: NodeConfig,
    pub store: Store,
    pub table: Table,
}

pub(crate) struct NodeState {
    id: NodeId,
    ctl: Controller,
    store: Store,
    table: Table,
    /// Ticks in a row whose state the disk had no room for.
    unsaved_ticks: u64,
}

pub(crate) enum NodeMsg {
    Tick(TickInput, RpcReplyPort<TickOutput>),
    Command(Command, RpcReplyPort<CommandOutcome>),
    /// Makes the actor fail, as a bug would (supervision tests).
    #[cfg(test)]
    Fail,
}

fn key(id: &NodeId) -> Vec<u8> {
    format!("actor/{id}").into_bytes()
}

impl Actor for NodeActor {
    type Msg = NodeMsg;
    type State = NodeState;
    type Arguments = NodeArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: NodeArgs,
    ) -> Result<NodeState, ActorProcessingErr> {
        let id = args.cfg.id.clone();
        // Unreadable saved state is refused (logged) and the actor starts from
        // its configuration: safe local control beats no control at all.
        let saved = match args.table.get_json::<Controller>(key(&id)) {
            Ok(saved) => saved,
            Err(e) => {
                tracing::error!(actor_id = %id, error = %e,
                    "saved control state unreadable: refused, starting from the configuration");
                None
            }
        };
        let ctl = match saved {
            Some(ctl) if ctl.kind() == args.cfg.kind => {
                tracing::info!(actor_id = %id, mode = ?ctl.mode(), "actor restored from local state");
                ctl
            }
            Some(other) => {
                tracing::warn!(actor_id = %id, saved_kind = ?other.kind(), configured_kind = ?args.cfg.kind,
                    "saved state is for another kind of node: starting fresh");
                Controller::new(&args.cfg)?
            }
            None => Controller::new(&args.cfg)?,
        };
        Ok(NodeState {
            id,
            ctl,
            store: args.store,
            table: args.table,
            unsaved_ticks: 0,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: NodeMsg,
        state: &mut NodeState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            NodeMsg::Tick(input, reply) => {
                let out = state.ctl.tick(&input);
                // Control state is saved every tick; sled's background flush and the
                // gateway's outbox flushes make it durable within a second. On a
                // nearly full disk control goes on, from the last state saved
                // should the actor restart.
                match state.table.put_json(key(&state.id), &state.ctl) {
                    Ok(()) => {
                        if state.unsaved_ticks > 0 {
                            tracing::info!(actor_id = %state.id,
                                unsaved_ticks = state.unsaved_ticks, "control state saved again");
                        }
                        state.unsaved_ticks = 0;
                    }
                    Err(e) if e.is_disk_low() => {
                        state.unsaved_ticks += 1;
                        if state.unsaved_ticks == 1 || state.unsaved_ticks.is_multiple_of(600) {
                            tracing::error!(actor_id = %state.id, error = %e,
                                unsaved_ticks = state.unsaved_ticks, "control state not saved");
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
                let _ = reply.send(out);
            }
            NodeMsg::Command(cmd, reply) => {
                let mut candidate = state.ctl.clone();
                let outcome = match candidate.command(&cmd) {
                    Err(reason) => {
                        tracing::warn!(actor_id = %state.id, command_id = %cmd.command_id, %reason, "command refused");
                        CommandOutcome::Rejected { reason }
                    }
                    Ok(()) => {
                        // Durable before acknowledged.
                        let stored = match state.table.put_json(key(&state.id), &candidate) {
                            Ok(()) => state.store.flush_async().await.map(|_| ()),
                            Err(e) => Err(e),
                        };
                        match stored {
                            Ok(()) => {
                                state.ctl = candidate;
                                tracing::info!(actor_id = %state.id, command_id = %cmd.command_id,
                                    action = cmd.action.name(), version = cmd.version, "command applied");
                                CommandOutcome::Accepted
                            }
                            Err(e) => {
                                tracing::error!(actor_id = %state.id, error = %e, "cannot store command");
                                CommandOutcome::Rejected {
                                    reason: format!("gateway could not store the change: {e}"),
                                }
                            }
                        }
                    }
                };
                let _ = reply.send(outcome);
            }
            #[cfg(test)]
            NodeMsg::Fail => return Err("deliberate failure".into()),
        }
        Ok(())
    }
}
