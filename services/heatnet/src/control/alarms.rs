//! `heatnet alarms list|ack`.

use clap::{Args, Subcommand};
use proto::v1;
use serde_json::{Value, json};

use super::table::Table;
use super::{Conn, answer, local_time, print_json};

#[derive(Subcommand)]
pub enum AlarmsCmd {
    /// Active alarms (raised or acknowledged); `--all` adds cleared ones.
    List(ListArgs),
    /// Acknowledge an alarm.
    Ack(AckArgs),
}

#[derive(Args)]
pub struct ListArgs {
    /// Include cleared alarms.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Args)]
pub struct AckArgs {
    /// The alarm's id (from `heatnet alarms list`).
    id: u64,
    /// Who acknowledges.
    #[arg(long)]
    user: String,
    #[command(flatten)]
    conn: Conn,
}

fn state(s: i32) -> &'static str {
    match v1::AlarmState::try_from(s) {
        Ok(v1::AlarmState::Raised) => "raised",
        Ok(v1::AlarmState::Acknowledged) => "acknowledged",
        Ok(v1::AlarmState::Cleared) => "cleared",
        _ => "unknown",
    }
}

fn severity(s: i32) -> &'static str {
    match v1::Severity::try_from(s) {
        Ok(v1::Severity::Info) => "info",
        Ok(v1::Severity::Warning) => "warning",
        Ok(v1::Severity::Critical) => "critical",
        _ => "unknown",
    }
}

fn opt_ms(ms: i64) -> Value {
    if ms > 0 { json!(ms) } else { Value::Null }
}

fn alarm_json(a: &v1::Alarm) -> Value {
    json!({
        "alarm_id": a.alarm_id,
        "kind": a.kind,
        "node_id": a.node_id,
        "metric": if a.metric.is_empty() { Value::Null } else { json!(a.metric) },
        "severity": severity(a.severity),
        "state": state(a.state),
        "message": a.message,
        "raised_at_ms": a.raised_at_ms,
        "acknowledged_at_ms": opt_ms(a.acknowledged_at_ms),
        "acknowledged_by": if a.acknowledged_by.is_empty() { Value::Null } else { json!(a.acknowledged_by) },
        "cleared_at_ms": opt_ms(a.cleared_at_ms),
    })
}

pub async fn run(cmd: AlarmsCmd) -> anyhow::Result<()> {
    match cmd {
        AlarmsCmd::List(a) => {
            let r = answer(
                a.conn
                    .control_room()
                    .await?
                    .list_alarms(v1::ListAlarmsRequest {
                        include_cleared: a.all,
                    })
                    .await,
            )?;
            if a.conn.json {
                return print_json(&json!(r.alarms.iter().map(alarm_json).collect::<Vec<_>>()));
            }
            if r.alarms.is_empty() {
                println!("no alarms");
                return Ok(());
            }
            let mut t = Table::new(&[
                "id", "state", "severity", "kind", "node", "raised", "by", "message",
            ]);
            for x in &r.alarms {
                t.row(vec![
                    x.alarm_id.to_string(),
                    state(x.state).into(),
                    severity(x.severity).into(),
                    x.kind.clone(),
                    x.node_id.clone(),
                    local_time(x.raised_at_ms),
                    x.acknowledged_by.clone(),
                    x.message.clone(),
                ]);
            }
            print!("{}", t.render());
            Ok(())
        }
        AlarmsCmd::Ack(a) => {
            let x = answer(
                a.conn
                    .control_room()
                    .await?
                    .ack_alarm(v1::AckAlarmRequest {
                        alarm_id: a.id,
                        user: a.user,
                    })
                    .await,
            )?;
            if a.conn.json {
                print_json(&alarm_json(&x))
            } else {
                println!(
                    "alarm {} ({} on {}) acknowledged by {}",
                    x.alarm_id, x.kind, x.node_id, x.acknowledged_by
                );
                Ok(())
            }
        }
    }
}
