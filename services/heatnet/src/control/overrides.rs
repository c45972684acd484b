//! `heatnet override set|clear --node N`.

use clap::{Args, Subcommand};
use proto::v1;
use serde_json::json;

use super::{Conn, answer, print_json, who};

#[derive(Subcommand)]
pub enum OverrideCmd {
    /// Hold a plant's or substation's supply temperature for a while.
    Set(SetArgs),
    /// End an override: the node follows the optimizer again.
    Clear(ClearArgs),
}

#[derive(Args)]
pub struct SetArgs {
    /// Plant or substation.
    #[arg(long)]
    node: String,
    /// Supply temperature to hold, °C.
    #[arg(long, allow_hyphen_values = true)]
    supply_temp_c: f64,
    /// How long: `90s`, `30m`, `2h`, `1d` or seconds (1 min to 7 days).
    #[arg(long = "for", value_parser = parse_duration_s)]
    duration_s: u32,
    /// Who overrides (default: $USER).
    #[arg(long)]
    author: Option<String>,
    /// Why.
    #[arg(long, default_value = "")]
    reason: String,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Args)]
pub struct ClearArgs {
    #[arg(long)]
    node: String,
    /// Who clears it (default: $USER).
    #[arg(long)]
    author: Option<String>,
    /// Why.
    #[arg(long, default_value = "")]
    reason: String,
    #[command(flatten)]
    conn: Conn,
}

/// `90s`, `30m`, `2h`, `1d` or plain seconds, as seconds.
pub fn parse_duration_s(s: &str) -> Result<u32, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 90s, 30m, 2h or 1d"))?;
    let scale = match unit {
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?}; use s, m, h or d")),
    };
    let secs = (v * scale).round();
    if !(secs.is_finite() && secs >= 0.0 && secs <= f64::from(u32::MAX)) {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(secs as u32)
}

pub async fn run(cmd: OverrideCmd) -> anyhow::Result<()> {
    let (conn, node, res) = match cmd {
        OverrideCmd::Set(a) => {
            let author = who(a.author, "--author")?;
            let res = answer(
                a.conn
                    .control_room()
                    .await?
                    .set_override(v1::SetOverrideRequest {
                        node_id: a.node.clone(),
                        supply_temp_c: a.supply_temp_c,
                        duration_s: a.duration_s,
                        author,
                        reason: a.reason,
                    })
                    .await,
            )?;
            (a.conn, a.node, res)
        }
        OverrideCmd::Clear(a) => {
            let author = who(a.author, "--author")?;
            let res = answer(
                a.conn
                    .control_room()
                    .await?
                    .clear_override(v1::ClearOverrideRequest {
                        node_id: a.node.clone(),
                        author,
                        reason: a.reason,
                    })
                    .await,
            )?;
            (a.conn, a.node, res)
        }
    };
    if conn.json {
        print_json(&json!({ "node_id": node, "command_id": res.command_id }))
    } else {
        println!("{node}: command {} sent", res.command_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_seconds() {
        for (s, want) in [
            ("90s", 90),
            ("30m", 1800),
            ("2h", 7200),
            ("1.5h", 5400),
            ("1d", 86_400),
            ("600", 600),
        ] {
            assert_eq!(parse_duration_s(s), Ok(want), "{s}");
        }
        for bad in ["", "h", "2w", "-1h", "99999999999d"] {
            assert!(parse_duration_s(bad).is_err(), "{bad}");
        }
    }
}
