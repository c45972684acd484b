//! `heatnet curve get|set|history --group G`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use proto::v1;
use serde::Deserialize;
use serde_json::{Value, json};

use super::table::Table;
use super::{Conn, answer, local_time, print_json, who};

#[derive(Subcommand)]
pub enum CurveCmd {
    /// The group's current curve.
    Get(GroupArgs),
    /// A new curve for the group: points like `-10:80,10:45` (outdoor:supply °C)
    /// or a TOML/JSON file; limits default to the current curve's.
    Set(SetArgs),
    /// Every version of the group's curve: who, when, why.
    History(GroupArgs),
}

#[derive(Args)]
pub struct GroupArgs {
    /// Substation group.
    #[arg(long)]
    group: String,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Args)]
pub struct SetArgs {
    /// Substation group.
    #[arg(long)]
    group: String,
    /// Points `outdoor:supply,…` in °C, e.g. `-10:80,0:65,10:45`.
    #[arg(long, allow_hyphen_values = true, conflicts_with = "file")]
    points: Option<String>,
    /// A TOML or JSON file: `points = [{ outdoor_temp_c, supply_temp_c }, …]`,
    /// optional `min_supply_temp_c`, `max_supply_temp_c`.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Lowest supply temperature, °C (default: the file's, else the current curve's).
    #[arg(long, allow_hyphen_values = true)]
    min: Option<f64>,
    /// Highest supply temperature, °C (default: the file's, else the current curve's).
    #[arg(long, allow_hyphen_values = true)]
    max: Option<f64>,
    /// Who changes the curve (default: $USER).
    #[arg(long)]
    author: Option<String>,
    /// Why the curve changes.
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Deserialize)]
struct CurveFile {
    points: Vec<FilePoint>,
    min_supply_temp_c: Option<f64>,
    max_supply_temp_c: Option<f64>,
}

#[derive(Deserialize)]
struct FilePoint {
    outdoor_temp_c: f64,
    supply_temp_c: f64,
}

/// Parses `-10:80,10:45` into points. Numbers are taken as written (even NaN):
/// the optimizer judges the curve.
pub fn parse_points(s: &str) -> anyhow::Result<Vec<v1::CurvePoint>> {
    let mut out = Vec::new();
    for (i, p) in s.split(',').map(str::trim).enumerate() {
        let (o, t) = p
            .split_once(':')
            .ok_or_else(|| anyhow::anyhow!("--points: point {i} {p:?} is not outdoor:supply"))?;
        let num = |v: &str, what: &str| {
            v.trim()
                .parse::<f64>()
                .map_err(|_| anyhow::anyhow!("--points: point {i}: {what} {v:?} is not a number"))
        };
        out.push(v1::CurvePoint {
            outdoor_temp_c: num(o, "outdoor temperature")?,
            supply_temp_c: num(t, "supply temperature")?,
        });
    }
    Ok(out)
}

fn read_file(path: &PathBuf) -> anyhow::Result<CurveFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a curve (JSON)", path.display()))
    } else {
        toml::from_str(&text).with_context(|| format!("{} is not a curve (TOML)", path.display()))
    }
}

fn points_text(c: Option<&v1::SupplyCurve>) -> String {
    c.map(|c| {
        c.points
            .iter()
            .map(|p| format!("{}:{}", p.outdoor_temp_c, p.supply_temp_c))
            .collect::<Vec<_>>()
            .join(",")
    })
    .unwrap_or_default()
}

fn version_json(v: &v1::CurveVersion) -> Value {
    json!({
        "group": v.group,
        "version": v.version,
        "author": v.author,
        "reason": v.reason,
        "created_at_ms": v.created_at_ms,
        "curve": v.curve.as_ref().map(|c| json!({
            "points": c.points.iter().map(|p| json!({
                "outdoor_temp_c": p.outdoor_temp_c,
                "supply_temp_c": p.supply_temp_c,
            })).collect::<Vec<_>>(),
            "min_supply_temp_c": c.min_supply_temp_c,
            "max_supply_temp_c": c.max_supply_temp_c,
        })),
    })
}

fn versions_table(vs: &[v1::CurveVersion]) -> String {
    let mut t = Table::new(&[
        "version",
        "created",
        "author",
        "points (outdoor:supply °C)",
        "min..max",
        "reason",
    ]);
    for v in vs {
        t.row(vec![
            v.version.to_string(),
            local_time(v.created_at_ms),
            v.author.clone(),
            points_text(v.curve.as_ref()),
            v.curve
                .as_ref()
                .map(|c| format!("{}..{}", c.min_supply_temp_c, c.max_supply_temp_c))
                .unwrap_or_default(),
            v.reason.clone(),
        ]);
    }
    t.render()
}

pub async fn run(cmd: CurveCmd) -> anyhow::Result<()> {
    match cmd {
        CurveCmd::Get(a) => {
            let v = answer(
                a.conn
                    .control_room()
                    .await?
                    .get_curve(v1::GetCurveRequest { group: a.group })
                    .await,
            )?;
            if a.conn.json {
                print_json(&version_json(&v))
            } else {
                print!(
                    "group {}\n{}",
                    v.group,
                    versions_table(std::slice::from_ref(&v))
                );
                Ok(())
            }
        }
        CurveCmd::History(a) => {
            let h = answer(
                a.conn
                    .control_room()
                    .await?
                    .curve_history(v1::CurveHistoryRequest {
                        group: a.group.clone(),
                    })
                    .await,
            )?;
            if a.conn.json {
                print_json(&json!(
                    h.versions.iter().map(version_json).collect::<Vec<_>>()
                ))
            } else {
                print!("group {}\n{}", a.group, versions_table(&h.versions));
                Ok(())
            }
        }
        CurveCmd::Set(a) => set(a).await,
    }
}

async fn set(a: SetArgs) -> anyhow::Result<()> {
    let author = who(a.author, "--author")?;
    let (points, file_min, file_max) = match (&a.points, &a.file) {
        (Some(p), None) => (parse_points(p)?, None, None),
        (None, Some(f)) => {
            let c = read_file(f)?;
            let pts = c
                .points
                .iter()
                .map(|p| v1::CurvePoint {
                    outdoor_temp_c: p.outdoor_temp_c,
                    supply_temp_c: p.supply_temp_c,
                })
                .collect();
            (pts, c.min_supply_temp_c, c.max_supply_temp_c)
        }
        _ => anyhow::bail!("give the curve as --points or --file"),
    };
    let mut client = a.conn.control_room().await?;
    let (min, max) = match (a.min.or(file_min), a.max.or(file_max)) {
        (Some(lo), Some(hi)) => (lo, hi),
        (lo, hi) => {
            let current = answer(
                client
                    .get_curve(v1::GetCurveRequest {
                        group: a.group.clone(),
                    })
                    .await,
            )
            .context("--min/--max not given and the current curve's limits are unknown")?;
            let c = current.curve.unwrap_or_default();
            (
                lo.unwrap_or(c.min_supply_temp_c),
                hi.unwrap_or(c.max_supply_temp_c),
            )
        }
    };
    let v = answer(
        client
            .set_curve(v1::SetCurveRequest {
                group: a.group,
                curve: Some(v1::SupplyCurve {
                    points,
                    min_supply_temp_c: min,
                    max_supply_temp_c: max,
                }),
                author,
                reason: a.reason,
            })
            .await,
    )?;
    if a.conn.json {
        print_json(&version_json(&v))
    } else {
        println!(
            "group {}: curve version {} stored and sent to its substations",
            v.group, v.version
        );
        print!("{}", versions_table(std::slice::from_ref(&v)));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curve_files_read_as_toml_or_json() {
        let dir = std::env::temp_dir().join(format!("heatnet-curve-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let toml_path = dir.join("c.toml");
        std::fs::write(
            &toml_path,
            "min_supply_temp_c = 30.0\npoints = [{ outdoor_temp_c = -10.0, supply_temp_c = 80.0 }, { outdoor_temp_c = 10.0, supply_temp_c = 45.0 }]\n",
        )
        .expect("write");
        let c = read_file(&toml_path).expect("toml");
        assert_eq!(
            (c.points.len(), c.min_supply_temp_c, c.max_supply_temp_c),
            (2, Some(30.0), None)
        );
        assert_eq!(c.points[1].supply_temp_c, 45.0);
        let json_path = dir.join("c.json");
        std::fs::write(
            &json_path,
            r#"{"points":[{"outdoor_temp_c":-10,"supply_temp_c":80}],"max_supply_temp_c":85}"#,
        )
        .expect("write");
        let c = read_file(&json_path).expect("json");
        assert_eq!((c.points.len(), c.max_supply_temp_c), (1, Some(85.0)));
        std::fs::write(&json_path, r#"{"pts":[]}"#).expect("write");
        let e = format!("{:#}", read_file(&json_path).err().expect("refused"));
        assert!(
            e.contains("is not a curve (JSON)") && e.contains("points"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn points_parse_as_written_and_bad_ones_are_named() {
        let p = parse_points("-10:80, 0:65 ,10:45").expect("parse");
        assert_eq!(
            p.iter()
                .map(|p| (p.outdoor_temp_c, p.supply_temp_c))
                .collect::<Vec<_>>(),
            vec![(-10.0, 80.0), (0.0, 65.0), (10.0, 45.0)]
        );
        // NaN goes to the optimizer, which refuses it with the field's name.
        assert!(
            parse_points("nan:80,10:45").expect("nan")[0]
                .outdoor_temp_c
                .is_nan()
        );
        for (bad, want) in [
            ("-10:80,10", "point 1 \"10\" is not outdoor:supply"),
            ("-10:hot", "point 0: supply temperature \"hot\""),
            ("", "point 0 \"\""),
        ] {
            let e = parse_points(bad).expect_err(bad).to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}
