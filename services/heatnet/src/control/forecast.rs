//! `heatnet forecast load|show|score`: weather forecasts for the optimizer.

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use model::forecast::{self, Format, RawPoint};
use proto::v1;
use serde_json::{Value, json};

use super::table::Table;
use super::{Conn, answer, local_time, print_json, who};

#[derive(Subcommand)]
pub enum ForecastCmd {
    /// Load a forecast from a file or an http(s):// URL (CSV, Open-Meteo JSON or EPW).
    Load(LoadArgs),
    /// The newest forecast from now (network time) over a horizon.
    Show(ShowArgs),
    /// Forecast error against the observed outdoor temperature, by lead time.
    Score(ScoreArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// `time,outdoor_temp_c[,solar_w_m2]` with a header; RFC 3339 or Unix ms times.
    Csv,
    /// Open-Meteo's hourly JSON (temperature_2m, shortwave_radiation).
    OpenMeteo,
    /// An EnergyPlus weather file.
    Epw,
}

#[derive(Args)]
pub struct LoadArgs {
    /// A file, or an http:// or https:// URL.
    from: String,
    /// https: certificates (PEM) to trust besides the built-in Mozilla roots,
    /// such as a utility's own CA.
    #[arg(long)]
    ca_file: Option<std::path::PathBuf>,
    /// The format; default: from the name (.epw, .csv, else Open-Meteo JSON).
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// The source's name; default: the format and the file name.
    #[arg(long)]
    source: Option<String>,
    /// When the forecast was issued (RFC 3339 or Unix ms); default: the
    /// network's time, else the first point's.
    #[arg(long)]
    issued_at: Option<String>,
    /// EPW: place every record in this year (typical-year files mix years).
    #[arg(long)]
    epw_year: Option<i32>,
    /// Who loads it (default: $USER).
    #[arg(long)]
    author: Option<String>,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Args)]
pub struct ShowArgs {
    /// From (RFC 3339 or Unix ms); default: the network's time.
    #[arg(long)]
    from: Option<String>,
    /// Hours ahead.
    #[arg(long, default_value_t = 72)]
    horizon_h: u32,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    conn: Conn,
}

/// Reads the text of a file or URL, bounded.
async fn fetch(from: &str, ca_file: Option<&std::path::Path>) -> anyhow::Result<String> {
    if from.starts_with("http://") || from.starts_with("https://") {
        return super::http::get(from, ca_file).await;
    }
    let len = std::fs::metadata(from)
        .with_context(|| format!("reading {from}"))?
        .len();
    if len > forecast::MAX_TEXT_BYTES as u64 {
        anyhow::bail!(
            "{from}: {len} bytes is more than the {} accepted",
            forecast::MAX_TEXT_BYTES
        );
    }
    std::fs::read_to_string(from).with_context(|| format!("reading {from}"))
}

/// Parses a forecast text; errors name the line (or the JSON element).
pub fn parse(text: &str, format: Format, epw_year: Option<i32>) -> anyhow::Result<Vec<RawPoint>> {
    Ok(match format {
        Format::Epw => forecast::parse_epw(text, epw_year)?,
        f => forecast::parse(f, text)?,
    })
}

fn default_source(from: &str, format: Format) -> String {
    let tag = match format {
        Format::Csv => "csv",
        Format::OpenMeteo => "open-meteo",
        Format::Epw => "epw",
    };
    let name = from
        .split(['?', '#'])
        .next()
        .unwrap_or(from)
        .rsplit('/')
        .find(|s| !s.is_empty())
        .unwrap_or(from);
    let s = format!("{tag}:{name}");
    s.chars().take(forecast::MAX_SOURCE_LEN).collect()
}

async fn network_time_ms(conn: &Conn) -> anyhow::Result<i64> {
    let s = answer(
        conn.control_room()
            .await?
            .get_network_state(v1::GetNetworkStateRequest {})
            .await,
    )?;
    Ok(s.nodes.iter().map(|n| n.reading_time_ms).max().unwrap_or(0))
}

fn points_json(points: &[v1::ForecastPoint]) -> Value {
    json!(
        points
            .iter()
            .map(|p| json!({
                "time_ms": p.time_ms,
                "outdoor_temp_c": p.outdoor_temp_c,
                "solar_w_m2": p.solar_w_m2,
            }))
            .collect::<Vec<_>>()
    )
}

pub async fn run(cmd: ForecastCmd) -> anyhow::Result<()> {
    match cmd {
        ForecastCmd::Load(a) => load(a).await,
        ForecastCmd::Show(a) => {
            let from_ms = match &a.from {
                Some(t) => {
                    forecast::parse_time(t).map_err(|e| anyhow::anyhow!("--from {t:?}: {e}"))?
                }
                None => 0,
            };
            let f = answer(
                a.conn
                    .control_room()
                    .await?
                    .get_forecast(v1::GetForecastRequest {
                        from_ms,
                        horizon_h: a.horizon_h,
                    })
                    .await,
            )?;
            if a.conn.json {
                return print_json(&json!({
                    "source": f.source,
                    "issued_at_ms": f.issued_at_ms,
                    "loaded_at_ms": f.loaded_at_ms,
                    "from_ms": f.from_ms,
                    "points": points_json(&f.points),
                }));
            }
            println!(
                "forecast {} issued {}, from {} over {} h",
                f.source,
                local_time(f.issued_at_ms),
                local_time(f.from_ms),
                a.horizon_h
            );
            let mut t = Table::new(&["time", "lead h", "outdoor °C", "solar W/m²"]);
            for p in &f.points {
                t.row(vec![
                    local_time(p.time_ms),
                    format!("{:.0}", (p.time_ms - f.issued_at_ms) as f64 / 3.6e6),
                    format!("{:.1}", p.outdoor_temp_c),
                    p.solar_w_m2.map_or("-".into(), |s| format!("{s:.0}")),
                ]);
            }
            print!("{}", t.render());
            Ok(())
        }
        ForecastCmd::Score(a) => {
            let s = answer(
                a.conn
                    .control_room()
                    .await?
                    .forecast_score(v1::ForecastScoreRequest {})
                    .await,
            )?;
            if a.conn.json {
                return print_json(&json!({
                    "issues": s.issues,
                    "observed_hours": s.observed_hours,
                    "buckets": s.buckets.iter().map(|b| json!({
                        "from_h": b.from_h,
                        "to_h": if b.to_h == 0 { Value::Null } else { json!(b.to_h) },
                        "count": b.count,
                        "mae_k": b.mae_k,
                        "bias_k": b.bias_k,
                    })).collect::<Vec<_>>(),
                }));
            }
            println!(
                "{} forecast issues scored against {} observed hours (error = forecast − observed)",
                s.issues, s.observed_hours
            );
            let mut t = Table::new(&["lead", "points", "MAE K", "bias K"]);
            for b in &s.buckets {
                t.row(vec![
                    if b.to_h == 0 {
                        format!("{}+ h", b.from_h)
                    } else {
                        format!("{}–{} h", b.from_h, b.to_h)
                    },
                    b.count.to_string(),
                    if b.count == 0 {
                        "-".into()
                    } else {
                        format!("{:.2}", b.mae_k)
                    },
                    if b.count == 0 {
                        "-".into()
                    } else {
                        format!("{:+.2}", b.bias_k)
                    },
                ]);
            }
            print!("{}", t.render());
            Ok(())
        }
    }
}

async fn load(a: LoadArgs) -> anyhow::Result<()> {
    let author = who(a.author, "--author")?;
    let format = match a.format {
        Some(FormatArg::Csv) => Format::Csv,
        Some(FormatArg::OpenMeteo) => Format::OpenMeteo,
        Some(FormatArg::Epw) => Format::Epw,
        None => Format::guess(&a.from),
    };
    let text = fetch(&a.from, a.ca_file.as_deref()).await?;
    let points = parse(&text, format, a.epw_year).with_context(|| a.from.clone())?;
    let issued_at_ms = match &a.issued_at {
        Some(t) => {
            forecast::parse_time(t).map_err(|e| anyhow::anyhow!("--issued-at {t:?}: {e}"))?
        }
        None => match network_time_ms(&a.conn).await? {
            0 => points.first().map_or(0, |p| p.time_ms),
            t => t,
        },
    };
    let source = a.source.unwrap_or_else(|| default_source(&a.from, format));
    let r = answer(
        a.conn
            .control_room()
            .await?
            .load_forecast(v1::LoadForecastRequest {
                source: source.clone(),
                issued_at_ms,
                points: points.iter().map(v1::ForecastPoint::from).collect(),
                author,
            })
            .await,
    )?;
    if a.conn.json {
        print_json(&json!({
            "source": source,
            "issued_at_ms": issued_at_ms,
            "points": r.points,
            "issues_kept": r.issues_kept,
        }))
    } else {
        println!(
            "forecast {source} loaded: {} points, issued {}; {} issues kept for scoring",
            r.points,
            local_time(issued_at_ms),
            r.issues_kept
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_default_to_the_format_and_file_name() {
        assert_eq!(default_source("/tmp/x/fc.csv", Format::Csv), "csv:fc.csv");
        assert_eq!(
            default_source("http://h:8080/v1/forecast?lat=39", Format::OpenMeteo),
            "open-meteo:forecast"
        );
        assert_eq!(default_source(&"a".repeat(100), Format::Epw).len(), 64);
    }
}
