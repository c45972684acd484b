//! Weather forecasts for the optimizer: hourly outdoor temperature (and
//! sunshine when the source has it) issued at a time by a named source, with
//! validation that names the point and the field, and pure parsers of the
//! formats a control room gets forecasts in: CSV, Open-Meteo's hourly JSON and
//! EnergyPlus weather (EPW) files.
//!
//! Times are Unix ms (UTC). No IO here: the caller reads the file or URL.

use serde::{Deserialize, Serialize};

/// Most points one forecast may carry (a whole year of hours, for an EPW file).
pub const MAX_FORECAST_POINTS: usize = 8784;
/// Plausible outdoor temperatures, °C.
pub const OUTDOOR_TEMP_RANGE_C: (f64, f64) = (-60.0, 60.0);
/// Plausible global horizontal irradiance, W/m².
pub const SOLAR_RANGE_W_M2: (f64, f64) = (0.0, 1500.0);
/// Longest source name, bytes.
pub const MAX_SOURCE_LEN: usize = 64;
/// Largest text a parser accepts, bytes (a year of hourly EPW records is ~1.5 MB).
pub const MAX_TEXT_BYTES: usize = 8 << 20;

const HOUR_MS: i64 = 3_600_000;

/// One hour of a forecast. `solar_w_m2` is 0 when the source gives no sunshine
/// (see [`Forecast::has_solar`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForecastPoint {
    pub time_ms: i64,
    pub outdoor_c: f64,
    pub solar_w_m2: f64,
}

/// A point as a source gives it, before validation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RawPoint {
    pub time_ms: i64,
    pub outdoor_temp_c: f64,
    pub solar_w_m2: Option<f64>,
}

/// A validated forecast: a source, its issue time and strictly increasing points.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    pub source: String,
    pub issued_at_ms: i64,
    pub points: Vec<ForecastPoint>,
    /// Whether any point carried a sunshine value.
    pub has_solar: bool,
}

/// Why a forecast was refused: the field (`points[3].outdoor_temp_c`) and the reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ForecastError {
    pub field: String,
    pub reason: String,
}

fn refuse(field: impl Into<String>, reason: impl Into<String>) -> ForecastError {
    ForecastError {
        field: field.into(),
        reason: reason.into(),
    }
}

impl Forecast {
    /// Validates a forecast: a source name, a positive issue time, 1 to
    /// [`MAX_FORECAST_POINTS`] points with finite, plausible values and strictly
    /// increasing times. The first problem is reported with its point index.
    pub fn new(
        source: &str,
        issued_at_ms: i64,
        points: &[RawPoint],
    ) -> Result<Self, ForecastError> {
        let source = source.trim();
        if source.is_empty() {
            return Err(refuse(
                "source",
                "missing; name where the forecast comes from",
            ));
        }
        if source.len() > MAX_SOURCE_LEN || source.chars().any(char::is_control) {
            return Err(refuse(
                "source",
                format!("must be at most {MAX_SOURCE_LEN} bytes of printable text"),
            ));
        }
        if issued_at_ms <= 0 {
            return Err(refuse(
                "issued_at_ms",
                format!("{issued_at_ms} is not a time (Unix ms > 0)"),
            ));
        }
        if points.is_empty() {
            return Err(refuse(
                "points",
                "empty; a forecast needs at least one point",
            ));
        }
        if points.len() > MAX_FORECAST_POINTS {
            return Err(refuse(
                "points",
                format!(
                    "{} points; at most {MAX_FORECAST_POINTS} are accepted",
                    points.len()
                ),
            ));
        }
        let mut out = Vec::with_capacity(points.len());
        let mut has_solar = false;
        for (i, p) in points.iter().enumerate() {
            let field = |f: &str| format!("points[{i}].{f}");
            if p.time_ms <= 0 {
                return Err(refuse(
                    field("time_ms"),
                    format!("{} is not a time (Unix ms > 0)", p.time_ms),
                ));
            }
            if let Some(prev) = out.last().map(|q: &ForecastPoint| q.time_ms)
                && p.time_ms <= prev
            {
                return Err(refuse(
                    field("time_ms"),
                    format!(
                        "{} is not after the previous point's {prev}; times must strictly increase",
                        p.time_ms
                    ),
                ));
            }
            let t = p.outdoor_temp_c;
            check_range(&field("outdoor_temp_c"), t, OUTDOOR_TEMP_RANGE_C, "°C")?;
            let solar = match p.solar_w_m2 {
                None => 0.0,
                Some(s) => {
                    has_solar = true;
                    check_range(&field("solar_w_m2"), s, SOLAR_RANGE_W_M2, "W/m²")?
                }
            };
            out.push(ForecastPoint {
                time_ms: p.time_ms,
                outdoor_c: t,
                solar_w_m2: solar,
            });
        }
        Ok(Self {
            source: source.to_string(),
            issued_at_ms,
            points: out,
            has_solar,
        })
    }
}

fn check_range(
    field: &str,
    v: f64,
    (lo, hi): (f64, f64),
    unit: &str,
) -> Result<f64, ForecastError> {
    if !v.is_finite() {
        return Err(refuse(field, "not a finite number"));
    }
    if !(lo..=hi).contains(&v) {
        return Err(refuse(
            field,
            format!("{v} is outside the plausible {lo}..{hi} {unit}"),
        ));
    }
    Ok(v)
}

/// Why a file could not be parsed: the line (1-based; 0 for the whole text) and the problem.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    #[error("line {line}: {problem}")]
    Line { line: usize, problem: String },
    #[error("{0}")]
    Whole(String),
}

fn at(line: usize, problem: impl Into<String>) -> ParseError {
    ParseError::Line {
        line,
        problem: problem.into(),
    }
}

fn check_size(text: &str) -> Result<(), ParseError> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(ParseError::Whole(format!(
            "{} bytes is more than the {MAX_TEXT_BYTES} accepted",
            text.len()
        )));
    }
    Ok(())
}

/// The formats [`parse`] knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    OpenMeteo,
    Epw,
}

impl Format {
    /// Guesses the format from a file name or URL: `.epw`, `.csv`, else Open-Meteo JSON.
    pub fn guess(name: &str) -> Self {
        let n = name.to_ascii_lowercase();
        let path = n.split(['?', '#']).next().unwrap_or("");
        if path.ends_with(".epw") {
            Format::Epw
        } else if path.ends_with(".csv") {
            Format::Csv
        } else {
            Format::OpenMeteo
        }
    }
}

/// Parses a forecast text of the given format into raw points (not yet validated).
pub fn parse(format: Format, text: &str) -> Result<Vec<RawPoint>, ParseError> {
    match format {
        Format::Csv => parse_csv(text),
        Format::OpenMeteo => parse_open_meteo(text),
        Format::Epw => parse_epw(text, None),
    }
}

/// Parses CSV: a header `time,outdoor_temp_c` or `time,outdoor_temp_c,solar_w_m2`,
/// then one point per line. Times are RFC 3339 (`2026-12-01T06:00:00+08:00`) or
/// Unix ms. Blank lines and lines starting with `#` are skipped.
pub fn parse_csv(text: &str) -> Result<Vec<RawPoint>, ParseError> {
    check_size(text)?;
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
    let (hline, header) = lines.next().ok_or_else(|| {
        ParseError::Whole("empty: a header `time,outdoor_temp_c[,solar_w_m2]` is required".into())
    })?;
    let cols: Vec<&str> = header.split(',').map(str::trim).collect();
    let with_solar = match cols.as_slice() {
        ["time", "outdoor_temp_c"] => false,
        ["time", "outdoor_temp_c", "solar_w_m2"] => true,
        _ => {
            return Err(at(
                hline,
                format!(
                    "header {header:?}: expected `time,outdoor_temp_c` or `time,outdoor_temp_c,solar_w_m2`"
                ),
            ));
        }
    };
    let mut out = Vec::new();
    for (n, line) in lines {
        if out.len() >= MAX_FORECAST_POINTS {
            return Err(at(n, format!("more than {MAX_FORECAST_POINTS} points")));
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        if f.len() != cols.len() {
            return Err(at(
                n,
                format!("{} fields; the header has {}", f.len(), cols.len()),
            ));
        }
        let time_ms = parse_time(f[0]).map_err(|e| at(n, format!("time {:?}: {e}", f[0])))?;
        let num = |i: usize| -> Result<f64, ParseError> {
            f[i].parse::<f64>()
                .map_err(|_| at(n, format!("{} {:?} is not a number", cols[i], f[i])))
        };
        out.push(RawPoint {
            time_ms,
            outdoor_temp_c: num(1)?,
            solar_w_m2: if with_solar { Some(num(2)?) } else { None },
        });
    }
    if out.is_empty() {
        return Err(ParseError::Whole("no points after the header".into()));
    }
    Ok(out)
}

/// A time as RFC 3339 or as Unix ms (digits, optionally negative).
pub fn parse_time(s: &str) -> Result<i64, String> {
    if !s.is_empty()
        && s.trim_start_matches('-')
            .bytes()
            .all(|b| b.is_ascii_digit())
    {
        return s.parse::<i64>().map_err(|e| e.to_string());
    }
    parse_rfc3339(s)
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)` to Unix ms.
pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
    let (local, offset_s) = if let Some(rest) = s.strip_suffix(['Z', 'z']) {
        (rest, 0)
    } else {
        let k = s
            .rfind(['+', '-'])
            .filter(|&k| k > 10)
            .ok_or("no time zone: end with Z or ±HH:MM")?;
        let (l, off) = s.split_at(k);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (h, m) = off[1..]
            .split_once(':')
            .ok_or("time zone offset is not ±HH:MM")?;
        let h: i64 = two_digits(h).ok_or("time zone hours are not two digits")?;
        let m: i64 = two_digits(m).ok_or("time zone minutes are not two digits")?;
        if h > 23 || m > 59 {
            return Err("time zone offset out of range".into());
        }
        (l, sign * (h * 3600 + m * 60))
    };
    let ms = parse_local(local, true)?;
    Ok(ms - offset_s * 1000)
}

fn two_digits(s: &str) -> Option<i64> {
    (s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// `YYYY-MM-DDTHH:MM[:SS[.fff]]` (seconds required when `need_seconds`) as if UTC, ms.
fn parse_local(s: &str, need_seconds: bool) -> Result<i64, String> {
    let (date, time) = s
        .split_once(['T', 't', ' '])
        .ok_or("expected YYYY-MM-DDTHH:MM:SS")?;
    let d: Vec<&str> = date.split('-').collect();
    let [y, mo, da] = d.as_slice() else {
        return Err("date is not YYYY-MM-DD".into());
    };
    if y.len() != 4 || !y.bytes().all(|b| b.is_ascii_digit()) {
        return Err("year is not four digits".into());
    }
    let y: i64 = y.parse().map_err(|_| "bad year")?;
    let mo = two_digits(mo).ok_or("month is not two digits")?;
    let da = two_digits(da).ok_or("day is not two digits")?;
    if !(1..=12).contains(&mo) || da < 1 || da > days_in_month(y, mo) {
        return Err(format!("no such date {y:04}-{mo:02}-{da:02}"));
    }
    let (hms, frac) = match time.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (time, None),
    };
    let t: Vec<&str> = hms.split(':').collect();
    let (h, mi, sec) = match t.as_slice() {
        [h, m] if !need_seconds => (*h, *m, "00"),
        [h, m, s] => (*h, *m, *s),
        _ => return Err("time is not HH:MM:SS".into()),
    };
    let h = two_digits(h).ok_or("hour is not two digits")?;
    let mi = two_digits(mi).ok_or("minute is not two digits")?;
    let sec = two_digits(sec).ok_or("second is not two digits")?;
    if h > 23 || mi > 59 || sec > 60 {
        return Err("time of day out of range".into());
    }
    let ms_frac = match frac {
        None => 0,
        Some(f) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => {
            let f3: String = f.chars().chain("000".chars()).take(3).collect();
            f3.parse::<i64>().map_err(|_| "bad fraction of a second")?
        }
        Some(_) => return Err("fraction of a second is not digits".into()),
    };
    let days = days_from_civil(y, mo, da);
    Ok(((days * 24 + h) * 60 + mi) * 60_000 + sec * 1000 + ms_frac)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix ms as RFC 3339 at a fixed offset from UTC (`2026-12-01T06:00:00+08:00`).
pub fn format_rfc3339(ms: i64, offset_s: i64) -> String {
    let secs = ms.div_euclid(1000) + offset_s;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let zone = if offset_s == 0 {
        "Z".to_string()
    } else {
        let a = offset_s.abs();
        format!(
            "{}{:02}:{:02}",
            if offset_s < 0 { '-' } else { '+' },
            a / 3600,
            (a % 3600) / 60
        )
    };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{zone}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Parses Open-Meteo's hourly JSON: `hourly.time` (local ISO times without a
/// zone, shifted by `utc_offset_seconds`; or Unix seconds with
/// `timeformat=unixtime`), `hourly.temperature_2m` and, if present,
/// `hourly.shortwave_radiation`. A `timezone` other than GMT/UTC without
/// `utc_offset_seconds` is refused: the local times could not be placed.
pub fn parse_open_meteo(text: &str) -> Result<Vec<RawPoint>, ParseError> {
    use serde_json::Value;
    check_size(text)?;
    let v: Value =
        serde_json::from_str(text).map_err(|e| ParseError::Whole(format!("not JSON: {e}")))?;
    let whole = |m: String| ParseError::Whole(m);
    let offset_s = match v.get("utc_offset_seconds") {
        Some(o) => o.as_i64().filter(|o| o.abs() <= 18 * 3600).ok_or_else(|| {
            whole(format!(
                "utc_offset_seconds: {o} is not an offset within ±18 h"
            ))
        })?,
        None => match v.get("timezone").and_then(Value::as_str) {
            None | Some("GMT" | "UTC" | "Etc/UTC" | "Etc/GMT") => 0,
            Some(tz) => {
                return Err(whole(format!(
                    "timezone {tz:?} without utc_offset_seconds: the local times cannot be placed"
                )));
            }
        },
    };
    let hourly = v
        .get("hourly")
        .ok_or_else(|| whole("hourly: missing".into()))?;
    let arr = |name: &str| -> Result<Option<&Vec<Value>>, ParseError> {
        match hourly.get(name) {
            None => Ok(None),
            Some(a) => a
                .as_array()
                .map(Some)
                .ok_or_else(|| whole(format!("hourly.{name}: not an array"))),
        }
    };
    let times = arr("time")?.ok_or_else(|| whole("hourly.time: missing".into()))?;
    let temps =
        arr("temperature_2m")?.ok_or_else(|| whole("hourly.temperature_2m: missing".into()))?;
    let solar = arr("shortwave_radiation")?;
    if times.len() > MAX_FORECAST_POINTS {
        return Err(whole(format!(
            "hourly.time: {} points; at most {MAX_FORECAST_POINTS} are accepted",
            times.len()
        )));
    }
    if temps.len() != times.len() || solar.is_some_and(|s| s.len() != times.len()) {
        return Err(whole(format!(
            "hourly arrays differ in length (time {}, temperature_2m {}{})",
            times.len(),
            temps.len(),
            solar.map_or(String::new(), |s| format!(
                ", shortwave_radiation {}",
                s.len()
            ))
        )));
    }
    let mut out = Vec::with_capacity(times.len());
    for (i, t) in times.iter().enumerate() {
        let time_ms = match t {
            Value::String(s) => {
                parse_local(s, false).map_err(|e| whole(format!("hourly.time[{i}] {s:?}: {e}")))?
                    - offset_s * 1000
            }
            Value::Number(n) => n
                .as_i64()
                .and_then(|s| s.checked_mul(1000))
                .ok_or_else(|| whole(format!("hourly.time[{i}]: {n} is not Unix seconds")))?,
            other => return Err(whole(format!("hourly.time[{i}]: {other} is not a time"))),
        };
        let outdoor_temp_c = temps[i].as_f64().ok_or_else(|| {
            whole(format!(
                "hourly.temperature_2m[{i}]: {} is not a number",
                temps[i]
            ))
        })?;
        let solar_w_m2 = match solar {
            None => None,
            Some(s) => Some(s[i].as_f64().ok_or_else(|| {
                whole(format!(
                    "hourly.shortwave_radiation[{i}]: {} is not a number",
                    s[i]
                ))
            })?),
        };
        out.push(RawPoint {
            time_ms,
            outdoor_temp_c,
            solar_w_m2,
        });
    }
    if out.is_empty() {
        return Err(whole("hourly.time: empty".into()));
    }
    Ok(out)
}

/// Parses an EPW file's hourly records: the time zone from the LOCATION header
/// (field 10, hours from UTC), and per record year (field 1, or `year` for
/// typical-year files whose months come from different years), month, day,
/// hour 1..24 (the hour ending then: the point is placed at its start), dry
/// bulb (field 7) and global horizontal radiation (field 14).
pub fn parse_epw(text: &str, year: Option<i32>) -> Result<Vec<RawPoint>, ParseError> {
    check_size(text)?;
    let header = text
        .lines()
        .next()
        .ok_or_else(|| ParseError::Whole("empty: an EPW file starts with LOCATION".into()))?;
    let h: Vec<&str> = header.split(',').map(str::trim).collect();
    if h.first() != Some(&"LOCATION") || h.len() < 10 {
        return Err(at(1, "not an EPW LOCATION header (10 fields)"));
    }
    let tz_h: f64 = h[8]
        .parse()
        .ok()
        .filter(|z: &f64| (-12.0..=14.0).contains(z))
        .ok_or_else(|| {
            at(
                1,
                format!("time zone {:?} is not hours from UTC (-12..14)", h[8]),
            )
        })?;
    let tz_ms = (tz_h * HOUR_MS as f64).round() as i64;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(8) {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        if out.len() >= MAX_FORECAST_POINTS {
            return Err(at(n, format!("more than {MAX_FORECAST_POINTS} records")));
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let num = |idx: usize, name: &str| -> Result<f64, ParseError> {
            f.get(idx)
                .and_then(|v| v.parse::<f64>().ok())
                .ok_or_else(|| {
                    at(
                        n,
                        format!("field {} ({name}) is missing or not a number", idx + 1),
                    )
                })
        };
        let y = match year {
            Some(y) => i64::from(y),
            None => num(0, "year")? as i64,
        };
        let (mo, d, hr) = (
            num(1, "month")? as i64,
            num(2, "day")? as i64,
            num(3, "hour")? as i64,
        );
        if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || !(1..=24).contains(&hr) {
            return Err(at(
                n,
                format!("no such hour: month {mo}, day {d}, hour {hr}"),
            ));
        }
        let temp = num(6, "dry bulb temperature")?;
        let ghi = num(13, "global horizontal radiation")?;
        let local_ms = (days_from_civil(y, mo, d) * 24 + hr - 1) * HOUR_MS;
        out.push(RawPoint {
            time_ms: local_ms - tz_ms,
            outdoor_temp_c: temp,
            // 9999 marks a missing value in EPW.
            solar_w_m2: (ghi < 9999.0).then_some(ghi.max(0.0)),
        });
    }
    if out.is_empty() {
        return Err(ParseError::Whole(
            "no hourly records after the 8 header lines".into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
