//! Weather: outdoor temperature and sunshine as pure functions of time, either
//! generated from a seed (a season with daily cycles, slow deviations and cold
//! waves) or read from an EPW file; and a forecast product derived from the
//! truth with an error that grows with lead time. Nothing here keeps state
//! between calls, so any instant can be recomputed and a restarted simulator
//! continues the same weather.

use model::network::Weather;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// China Standard Time, UTC+8: local time drives the daily cycle and the sun.
const LOCAL_OFFSET_MS: i64 = 8 * HOUR_MS;

/// Where the weather comes from.
#[derive(Clone, Debug)]
pub enum Source {
    Synthetic(Weather),
    Epw(Epw),
}

/// The weather the simulator plays, with an operator's offset (a cold snap).
#[derive(Clone, Debug)]
pub struct WeatherModel {
    source: Source,
    seed: u64,
    latitude_deg: f64,
    cloudiness: f64,
    /// Added to the outdoor temperature (a cold snap is negative), K.
    pub offset_k: f64,
}

impl WeatherModel {
    pub fn new(cfg: Weather) -> Self {
        Self {
            seed: cfg.seed,
            latitude_deg: cfg.latitude_deg,
            cloudiness: cfg.cloudiness,
            source: Source::Synthetic(cfg),
            offset_k: 0.0,
        }
    }

    /// Weather read from an EPW file (its latitude; `cfg` still seeds nothing else).
    pub fn from_epw(epw: Epw, seed: u64) -> Self {
        Self {
            seed,
            latitude_deg: epw.latitude_deg,
            cloudiness: 0.0,
            source: Source::Epw(epw),
            offset_k: 0.0,
        }
    }

    /// Outdoor temperature at network time `time_ms` (Unix ms), °C.
    pub fn outdoor_temp_c(&self, time_ms: i64) -> f64 {
        let t = match &self.source {
            Source::Synthetic(cfg) => synthetic_temp_c(cfg, time_ms),
            Source::Epw(epw) => epw.interpolate(time_ms).0,
        };
        t + self.offset_k
    }

    /// Global horizontal irradiance at `time_ms`, W/m².
    pub fn ghi_w_m2(&self, time_ms: i64) -> f64 {
        match &self.source {
            Source::Epw(epw) => epw.interpolate(time_ms).1,
            Source::Synthetic(_) => {
                let clear = clear_sky_ghi_w_m2(self.latitude_deg, time_ms);
                // Cloud cover changes day by day (seeded), mean `cloudiness`.
                let day = (time_ms + LOCAL_OFFSET_MS).div_euclid(DAY_MS);
                let u = unit(self.seed ^ 0x5EED_C10D, day as u64, 0);
                let cover = (self.cloudiness * 2.0 * u).clamp(0.0, 1.0);
                clear * (1.0 - 0.75 * cover)
            }
        }
    }
}

/// The generated temperature: yearly season, cold waves, daily cycle, slow deviation.
fn synthetic_temp_c(cfg: &Weather, time_ms: i64) -> f64 {
    let local_ms = time_ms + LOCAL_OFFSET_MS;
    let hour_of_day = local_ms.rem_euclid(DAY_MS) as f64 / HOUR_MS as f64;
    // Coldest around 05:00, warmest around 15:00.
    let daily = -cfg.daily_amplitude_k * (std::f64::consts::TAU * (hour_of_day - 3.0) / 24.0).cos();
    let seasonal = if cfg.seasonal_amplitude_k > 0.0 {
        let day_of_year = day_of_year(local_ms);
        -cfg.seasonal_amplitude_k * (std::f64::consts::TAU * (day_of_year - 15.0) / 365.25).cos()
    } else {
        0.0
    };
    cfg.mean_temp_c + seasonal + daily + slow_deviation_k(cfg, local_ms)
        - cold_waves_k(cfg, local_ms)
}

/// Smooth noise: independent seeded values every 12 h, cosine-interpolated.
fn slow_deviation_k(cfg: &Weather, local_ms: i64) -> f64 {
    let period = 12 * HOUR_MS;
    let k = local_ms.div_euclid(period);
    let frac = local_ms.rem_euclid(period) as f64 / period as f64;
    let (a, b) = (
        normal(cfg.seed, k as u64, 1),
        normal(cfg.seed, (k + 1) as u64, 1),
    );
    let w = 0.5 - 0.5 * (std::f64::consts::PI * frac).cos();
    cfg.variability_k * (a + (b - a) * w)
}

/// How far below normal the cold waves take the temperature at `local_ms`, K.
/// Each week may start one wave (seeded): it deepens over a day, lasts 2–5
/// days, and eases over a day.
fn cold_waves_k(cfg: &Weather, local_ms: i64) -> f64 {
    if cfg.cold_wave_weekly_probability <= 0.0 {
        return 0.0;
    }
    let week_ms = 7 * DAY_MS;
    let week = local_ms.div_euclid(week_ms);
    let mut depth = 0.0f64;
    for w in [week - 1, week] {
        let key = w as u64;
        if unit(cfg.seed, key, 2) >= cfg.cold_wave_weekly_probability {
            continue;
        }
        let start = w * week_ms + (unit(cfg.seed, key, 3) * 6.0 * DAY_MS as f64) as i64;
        let length = ((2.0 + 3.0 * unit(cfg.seed, key, 4)) * DAY_MS as f64) as i64;
        let wave_depth = cfg.cold_wave_depth_k * (0.7 + 0.6 * unit(cfg.seed, key, 5));
        let ramp = DAY_MS as f64;
        let t = (local_ms - start) as f64;
        let shape = if t < 0.0 || t > length as f64 + ramp {
            0.0
        } else if t < ramp {
            0.5 - 0.5 * (std::f64::consts::PI * t / ramp).cos()
        } else if t <= length as f64 {
            1.0
        } else {
            0.5 + 0.5 * (std::f64::consts::PI * (t - length as f64) / ramp).cos()
        };
        depth = depth.max(wave_depth * shape);
    }
    depth
}

fn day_of_year(local_ms: i64) -> f64 {
    // Days since 1970-01-01 → day of the (Gregorian) year, fractional.
    let days = local_ms as f64 / DAY_MS as f64;
    let z = days.floor() as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy_mar = doe - (365 * yoe + yoe / 4 - yoe / 100); // 0 = 1 March
    let doy_jan = (doy_mar + 59) % 365; // approximately, ignoring leap days
    doy_jan as f64 + days.fract()
}

/// Clear-sky global horizontal irradiance (Haurwitz model), W/m².
pub fn clear_sky_ghi_w_m2(latitude_deg: f64, time_ms: i64) -> f64 {
    let local_ms = time_ms + LOCAL_OFFSET_MS;
    let doy = day_of_year(local_ms);
    let decl = 23.44_f64.to_radians() * (std::f64::consts::TAU * (284.0 + doy) / 365.0).sin();
    // Solar time ≈ local clock time shifted to the longitude of Tianjin (117.2° E vs 120° E zone).
    let solar_hour = local_ms.rem_euclid(DAY_MS) as f64 / HOUR_MS as f64 - (120.0 - 117.2) / 15.0;
    let hour_angle = (15.0 * (solar_hour - 12.0)).to_radians();
    let lat = latitude_deg.to_radians();
    let cos_zenith = lat.sin() * decl.sin() + lat.cos() * decl.cos() * hour_angle.cos();
    if cos_zenith <= 0.0 {
        0.0
    } else {
        1098.0 * cos_zenith * (-0.059 / cos_zenith).exp()
    }
}

/// A forecast product: the truth plus an error that grows with lead time,
/// correlated along the lead for one issue (seeded; about 1 K standard
/// deviation at 24 h and 3 K at 72 h).
#[derive(Clone, Debug)]
pub struct Forecaster {
    pub seed: u64,
    /// Error standard deviation per hour of lead, K/h.
    pub growth_k_per_h: f64,
}

impl Forecaster {
    pub fn new(seed: u64) -> Self {
        Self {
            seed: seed ^ 0xF0_CA57,
            growth_k_per_h: 1.0 / 24.0,
        }
    }

    /// Forecast of the outdoor temperature at `target_ms`, issued at `issued_ms`.
    pub fn temp_c(&self, weather: &WeatherModel, issued_ms: i64, target_ms: i64) -> f64 {
        let lead_h = ((target_ms - issued_ms) as f64 / HOUR_MS as f64).max(0.0);
        weather.outdoor_temp_c(target_ms) + self.error_k(issued_ms, lead_h)
    }

    /// The error of the forecast issued at `issued_ms` at `lead_h` hours:
    /// `σ(lead)·z(lead)` with `σ = growth·lead` and `z` a unit-variance
    /// process continuous in lead (seeded knots every 12 h, interpolated and
    /// renormalised), so one issue's errors are correlated along its horizon.
    pub fn error_k(&self, issued_ms: i64, lead_h: f64) -> f64 {
        let issue = issued_ms.div_euclid(HOUR_MS) as u64;
        let knot_h = 12.0;
        let k = (lead_h / knot_h).floor();
        let w = lead_h / knot_h - k;
        let a = normal(self.seed ^ issue, k as u64, 7);
        let b = normal(self.seed ^ issue, k as u64 + 1, 7);
        let z = ((1.0 - w) * a + w * b) / ((1.0 - w).powi(2) + w * w).sqrt();
        self.growth_k_per_h * lead_h * z
    }
}

/// Hourly weather from an EnergyPlus weather (EPW) file.
#[derive(Clone, Debug, PartialEq)]
pub struct Epw {
    pub location: String,
    pub latitude_deg: f64,
    /// (day of year 0-based, hour 0..24) → (dry bulb °C, global horizontal W/m²), in file order.
    hours: Vec<(u16, u8, f64, f64)>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EpwError {
    #[error("EPW line {line}: {problem}")]
    Line { line: usize, problem: String },
    #[error("EPW file has no LOCATION header")]
    NoLocation,
    #[error("EPW file has {0} hourly records; a year has 8760 (or 8784)")]
    Length(usize),
}

impl Epw {
    /// Parses an EPW file: the LOCATION header (latitude in field 7) and the
    /// hourly records after the eight header lines (month field 2, day 3,
    /// hour 4 as 1..24, dry bulb field 7, global horizontal radiation field 14).
    pub fn parse(text: &str) -> Result<Self, EpwError> {
        let mut lines = text.lines();
        let header = lines.next().ok_or(EpwError::NoLocation)?;
        let fields: Vec<&str> = header.split(',').collect();
        if fields.first().map(|f| f.trim()) != Some("LOCATION") || fields.len() < 7 {
            return Err(EpwError::NoLocation);
        }
        let latitude_deg: f64 = fields[6].trim().parse().map_err(|_| EpwError::Line {
            line: 1,
            problem: format!("latitude {:?} is not a number", fields[6]),
        })?;
        let location = fields[1..4]
            .iter()
            .map(|f| f.trim())
            .collect::<Vec<_>>()
            .join(", ");
        let mut hours = Vec::with_capacity(8784);
        for (i, line) in text.lines().enumerate().skip(8) {
            if line.trim().is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split(',').collect();
            let num = |idx: usize, name: &str| -> Result<f64, EpwError> {
                f.get(idx)
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .ok_or_else(|| EpwError::Line {
                        line: i + 1,
                        problem: format!("field {} ({name}) is missing or not a number", idx + 1),
                    })
            };
            let (month, day, hour) = (num(1, "month")?, num(2, "day")?, num(3, "hour")?);
            let temp = num(6, "dry bulb temperature")?;
            let ghi = num(13, "global horizontal radiation")?;
            if !(1.0..=12.0).contains(&month)
                || !(1.0..=31.0).contains(&day)
                || !(1.0..=24.0).contains(&hour)
            {
                return Err(EpwError::Line {
                    line: i + 1,
                    problem: "month/day/hour out of range".into(),
                });
            }
            if !(-70.0..=70.0).contains(&temp) {
                return Err(EpwError::Line {
                    line: i + 1,
                    problem: format!("dry bulb {temp} °C is implausible"),
                });
            }
            const START: [u16; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
            let doy = START[month as usize - 1] + day as u16 - 1;
            hours.push((doy, hour as u8 - 1, temp, ghi.max(0.0)));
        }
        if hours.len() != 8760 && hours.len() != 8784 {
            return Err(EpwError::Length(hours.len()));
        }
        Ok(Self {
            location,
            latitude_deg,
            hours,
        })
    }

    /// Temperature and irradiance at `time_ms`, interpolated between hours;
    /// the file's year repeats for any year.
    fn interpolate(&self, time_ms: i64) -> (f64, f64) {
        let local_ms = time_ms + LOCAL_OFFSET_MS;
        let doy = day_of_year(local_ms);
        let h = doy * 24.0;
        let n = self.hours.len();
        let i = (h.floor() as usize) % n;
        let j = (i + 1) % n;
        let w = h.fract();
        let (a, b) = (&self.hours[i], &self.hours[j]);
        (a.2 + (b.2 - a.2) * w, a.3 + (b.3 - a.3) * w)
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform value in [0, 1) determined by (seed, key, stream).
fn unit(seed: u64, key: u64, stream: u64) -> f64 {
    let h = splitmix64(seed ^ splitmix64(key.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (stream << 56)));
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// A standard normal value determined by (seed, key, stream) (Box–Muller).
fn normal(seed: u64, key: u64, stream: u64) -> f64 {
    let u1 = unit(seed, key, stream) + 0.5 / (1u64 << 53) as f64;
    let u2 = unit(seed, key, stream + 100);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests;
