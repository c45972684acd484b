//! `heatnet audit`: the control room's writes, accepted or refused.

use clap::Args;
use proto::v1;
use serde_json::json;

use super::table::Table;
use super::{Conn, answer, local_time, print_json};

#[derive(Args)]
pub struct AuditArgs {
    /// Newest entries to show.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Only this action: curve_set, override_set, override_clear, alarm_ack, forecast_load.
    #[arg(long)]
    action: Option<String>,
    #[command(flatten)]
    conn: Conn,
}

pub async fn run(a: AuditArgs) -> anyhow::Result<()> {
    let r = answer(
        a.conn
            .control_room()
            .await?
            .audit_history(v1::AuditHistoryRequest {
                limit: a.limit.max(1),
                action: a.action.clone().unwrap_or_default(),
            })
            .await,
    )?;
    if a.conn.json {
        return print_json(&json!(r.entries.iter().map(|e| json!({
            "id": e.id,
            "wall_ms": e.wall_ms,
            "network_ms": e.network_ms,
            "user": e.user,
            "action": e.action,
            "target": e.target,
            "detail": e.detail,
            "reason": e.reason,
            "accepted": e.accepted,
            "error_code": if e.accepted { serde_json::Value::Null } else { json!(e.error_code) },
            "error": if e.accepted { serde_json::Value::Null } else { json!(e.error) },
        })).collect::<Vec<_>>()));
    }
    if r.entries.is_empty() {
        println!("no control-room writes yet");
        return Ok(());
    }
    let mut t = Table::new(&[
        "id",
        "when",
        "network time",
        "user",
        "action",
        "target",
        "outcome",
        "what",
        "reason",
    ]);
    for e in &r.entries {
        t.row(vec![
            e.id.to_string(),
            local_time(e.wall_ms),
            local_time(e.network_ms),
            e.user.clone(),
            e.action.clone(),
            e.target.clone(),
            if e.accepted {
                "accepted".into()
            } else {
                format!("refused ({}): {}", e.error_code, e.error)
            },
            e.detail.clone(),
            e.reason.clone(),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}
