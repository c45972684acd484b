//! `heatnet ledger`: hours below 18 °C per building and day, from the
//! optimizer's ledger (network-time days, China Standard Time).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use proto::v1;
use serde_json::json;

#[derive(Args, Clone, Debug)]
pub struct LedgerArgs {
    /// One day, YYYY-MM-DD (network time, UTC+8); default: every day held.
    #[arg(long)]
    day: Option<String>,
    /// First and last day, YYYY-MM-DD (instead of --day).
    #[arg(long, conflicts_with = "day")]
    from: Option<String>,
    #[arg(long, conflicts_with = "day")]
    to: Option<String>,
    /// Only buildings whose id starts with this (e.g. a substation, "s01").
    #[arg(long, default_value = "")]
    building: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// The optimizer's address; default: from <data-dir>/up.json, else 127.0.0.1:7401.
    #[arg(long)]
    optimizer: Option<String>,
    #[arg(long, default_value = heatnet::layout::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
}

pub fn main(args: LedgerArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("heatnet ledger: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("heatnet ledger: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: LedgerArgs) -> anyhow::Result<()> {
    let addr = crate::status::optimizer_address(args.optimizer.clone(), &args.data_dir);
    let (from_day, to_day) = match &args.day {
        Some(d) => (d.clone(), d.clone()),
        None => (
            args.from.clone().unwrap_or_default(),
            args.to.clone().unwrap_or_default(),
        ),
    };
    let resp = crate::status::client(&addr)
        .await?
        .get_ledger(v1::GetLedgerRequest {
            from_day,
            to_day,
            building_prefix: args.building.clone(),
        })
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?
        .into_inner();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&to_json(&resp))?);
    } else {
        print!("{}", render(&resp));
    }
    Ok(())
}

fn to_json(r: &v1::GetLedgerResponse) -> serde_json::Value {
    json!({
        "gap_limit_s": r.gap_limit_s,
        "truncated": r.truncated,
        "days": r.days.iter().map(|d| json!({
            "building_id": d.building_id,
            "day": d.day,
            "cold_hours": d.cold_hours,
            "known_hours": d.known_hours,
            "unknown_hours": d.unknown_hours,
            "min_room_temp_c": d.min_room_temp_c.is_finite().then_some(d.min_room_temp_c),
        })).collect::<Vec<_>>(),
    })
}

fn render(r: &v1::GetLedgerResponse) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    if r.days.is_empty() {
        let _ = writeln!(o, "ledger: no days held for this selection");
        return o;
    }
    let _ = writeln!(
        o,
        "{:<16} {:<10} {:>10} {:>10} {:>10} {:>9}",
        "building", "day", "<18 °C h", "known h", "unknown h", "min °C"
    );
    let (mut cold, mut known, mut unknown) = (0.0, 0.0, 0.0);
    for d in &r.days {
        cold += d.cold_hours;
        known += d.known_hours;
        unknown += d.unknown_hours;
        let min = if d.min_room_temp_c.is_finite() {
            format!("{:.1}", d.min_room_temp_c)
        } else {
            "-".into()
        };
        let _ = writeln!(
            o,
            "{:<16} {:<10} {:>10.2} {:>10.2} {:>10.2} {:>9}",
            d.building_id, d.day, d.cold_hours, d.known_hours, d.unknown_hours, min
        );
    }
    let _ = writeln!(
        o,
        "{:<27} {:>10.2} {:>10.2} {:>10.2}",
        "total", cold, known, unknown
    );
    let _ = writeln!(
        o,
        "(gaps between readings over {} s count as unknown)",
        r.gap_limit_s
    );
    if r.truncated {
        let _ = writeln!(
            o,
            "(more rows matched than one answer holds: narrow with --day, --from/--to or --building)"
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rows_and_totals() {
        let r = v1::GetLedgerResponse {
            days: vec![
                v1::LedgerDay {
                    building_id: "s01-b01".into(),
                    day: "2026-11-23".into(),
                    cold_hours: 1.5,
                    known_hours: 20.0,
                    unknown_hours: 4.0,
                    min_room_temp_c: 17.2,
                },
                v1::LedgerDay {
                    building_id: "s01-b02".into(),
                    day: "2026-11-23".into(),
                    cold_hours: 0.25,
                    known_hours: 24.0,
                    unknown_hours: 0.0,
                    min_room_temp_c: f64::NAN,
                },
            ],
            gap_limit_s: 900,
            truncated: true,
        };
        let text = render(&r);
        assert!(text.contains("s01-b01"), "{text}");
        assert!(text.contains("1.75"), "{text}");
        assert!(text.contains("44.00"), "{text}");
        assert!(text.contains("narrow"), "{text}");
        let j = to_json(&r);
        assert_eq!(j["days"][1]["min_room_temp_c"], serde_json::Value::Null);
        assert_eq!(j["days"][0]["cold_hours"], 1.5);
    }
}
