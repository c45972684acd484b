//! An online demand model per substation, learned from its telemetry. Pure: no IO.
//!
//! The heat a substation takes is modelled as linear in
//!
//! ```text
//! φ = [1, T_lag/10 K, sun/500 W·m⁻², sin(2π·h/24), cos(2π·h/24)]
//! ```
//!
//! where `T_lag` is the outdoor temperature passed through a first-order lag
//! with the buildings' time constant (their thermal inertia: a cold night
//! shows in the heat demand hours later), `sun` the global horizontal
//! irradiance and `h` the hour of the day (occupancy, set-backs). The weights
//! are learned by recursive least squares with a forgetting factor, so the
//! model follows a building stock that changes over the season.
//!
//! The model scores itself: every prediction it hands out for a later time
//! (the next planning interval, and a day ahead) is kept and compared with
//! the heat measured when that time comes; the mean absolute errors are its
//! forecast errors.

use std::collections::VecDeque;

/// Number of features.
const N: usize = 5;
/// Forgetting factor per sample (5-minute samples: a memory of about a week).
pub const FORGETTING: f64 = 0.9995;
/// Initial covariance (how little the model trusts its zero start).
const P0: f64 = 1.0e3;
/// Default time constant of the outdoor temperature lag, h.
pub const DEFAULT_LAG_H: f64 = 12.0;
/// Predictions waiting to be scored, at most.
const MAX_PENDING: usize = 512;
/// A prediction is scored against a measurement at most this late, ms.
const SCORE_WINDOW_MS: i64 = 30 * 60_000;
/// Heat is modelled in MW (numbers near 1 for the solver).
const MW: f64 = 1.0e6;
/// Longest gap between samples the lag integrates over, s.
const MAX_GAP_S: f64 = 6.0 * 3600.0;

/// Weather at one time, as measured or forecast.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conditions {
    /// Network time, Unix ms.
    pub time_ms: i64,
    pub outdoor_c: f64,
    /// Global horizontal irradiance, W/m².
    pub solar_w_m2: f64,
}

/// Mean absolute error of one kind of prediction.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ErrorStat {
    pub count: u64,
    pub sum_abs_w: f64,
}

impl ErrorStat {
    fn add(&mut self, err_w: f64) {
        self.count += 1;
        self.sum_abs_w += err_w.abs();
    }

    /// Mean absolute error, W (none before the first scored prediction).
    pub fn mae_w(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum_abs_w / self.count as f64)
    }
}

/// Which lead time a prediction is scored under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lead {
    /// One planning interval ahead.
    Next,
    /// A day ahead.
    Day,
}

/// Saved with the planner's memory (`schedule::PlanMemory`); the
/// predictions waiting to be scored are not: a restart scores from scratch.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DemandModel {
    theta: [f64; N],
    p: [[f64; N]; N],
    lag_s: f64,
    /// Lagged outdoor temperature and the time it was brought up to.
    lagged: Option<(i64, f64)>,
    samples: u64,
    /// Time of the first sample learned from, ms.
    first_ms: Option<i64>,
    /// Largest heat seen, W: predictions stay below 1.5 times it.
    max_heat_w: f64,
    #[serde(skip)]
    pending: VecDeque<(Lead, i64, f64)>,
    pub next: ErrorStat,
    pub day: ErrorStat,
}

impl Default for DemandModel {
    fn default() -> Self {
        Self::new(DEFAULT_LAG_H)
    }
}

fn features(lagged_c: f64, solar_w_m2: f64, time_ms: i64) -> [f64; N] {
    let day_phase = (time_ms.rem_euclid(86_400_000) as f64 / 86_400_000.0) * std::f64::consts::TAU;
    [
        1.0,
        lagged_c / 10.0,
        solar_w_m2.max(0.0) / 500.0,
        day_phase.sin(),
        day_phase.cos(),
    ]
}

fn lag_step(lagged_c: f64, outdoor_c: f64, dt_s: f64, lag_s: f64) -> f64 {
    let k = 1.0 - (-dt_s.clamp(0.0, MAX_GAP_S) / lag_s).exp();
    lagged_c + (outdoor_c - lagged_c) * k
}

impl DemandModel {
    /// A model whose outdoor temperature lags by `lag_h` hours (building inertia).
    pub fn new(lag_h: f64) -> Self {
        let mut p = [[0.0; N]; N];
        for (i, row) in p.iter_mut().enumerate() {
            row[i] = P0;
        }
        Self {
            theta: [0.0; N],
            p,
            lag_s: lag_h.clamp(0.1, 500.0) * 3600.0,
            lagged: None,
            samples: 0,
            first_ms: None,
            max_heat_w: 0.0,
            pending: VecDeque::new(),
            next: ErrorStat::default(),
            day: ErrorStat::default(),
        }
    }

    /// Samples learned from.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// How long the model has learned, ms (0 before the first sample).
    pub fn span_ms(&self) -> i64 {
        match (self.first_ms, self.lagged) {
            (Some(a), Some((b, _))) => b - a,
            _ => 0,
        }
    }

    /// Learns from one measurement: the heat the substation took under these
    /// conditions. Scores the predictions made for this time first. A sample
    /// older than the last is ignored, and so is a non-finite one.
    pub fn observe(&mut self, c: &Conditions, heat_w: f64) {
        if !(heat_w.is_finite() && c.outdoor_c.is_finite() && c.solar_w_m2.is_finite()) {
            return;
        }
        let lagged = match self.lagged {
            None => c.outdoor_c,
            Some((t, _)) if c.time_ms <= t => return,
            Some((t, l)) => lag_step(l, c.outdoor_c, (c.time_ms - t) as f64 / 1000.0, self.lag_s),
        };
        self.lagged = Some((c.time_ms, lagged));
        // Score what was predicted for about now.
        let (mut next, mut day) = (self.next, self.day);
        self.pending.retain(|&(lead, target_ms, predicted_w)| {
            if target_ms > c.time_ms {
                return true;
            }
            if c.time_ms - target_ms <= SCORE_WINDOW_MS {
                match lead {
                    Lead::Next => next.add(heat_w - predicted_w),
                    Lead::Day => day.add(heat_w - predicted_w),
                }
            }
            false
        });
        (self.next, self.day) = (next, day);
        // Recursive least squares with forgetting.
        let phi = features(lagged, c.solar_w_m2, c.time_ms);
        let y = heat_w / MW;
        let mut pphi = [0.0; N];
        for (i, v) in pphi.iter_mut().enumerate() {
            *v = (0..N).map(|j| self.p[i][j] * phi[j]).sum();
        }
        let denom = FORGETTING + (0..N).map(|i| phi[i] * pphi[i]).sum::<f64>();
        if !(denom.is_finite() && denom > 0.0) {
            return;
        }
        let err = y - (0..N).map(|i| self.theta[i] * phi[i]).sum::<f64>();
        for (t, g) in self.theta.iter_mut().zip(&pphi) {
            *t += g / denom * err;
        }
        for (row, gi) in self.p.iter_mut().zip(&pphi) {
            for (v, gj) in row.iter_mut().zip(&pphi) {
                *v = (*v - gi * gj / denom) / FORGETTING;
            }
        }
        self.samples += 1;
        self.first_ms.get_or_insert(c.time_ms);
        self.max_heat_w = self.max_heat_w.max(heat_w);
    }

    /// Predicted heat, W, at each of the given future conditions (in time
    /// order, after the last observation): the outdoor lag is carried forward
    /// through them; never below 0 nor above 1.5 times the largest heat seen.
    /// Empty before the first observation.
    pub fn predict(&self, ahead: &[Conditions]) -> Vec<f64> {
        let Some((mut t, mut lagged)) = self.lagged else {
            return Vec::new();
        };
        ahead
            .iter()
            .map(|c| {
                if c.time_ms > t {
                    lagged = lag_step(
                        lagged,
                        c.outdoor_c,
                        (c.time_ms - t) as f64 / 1000.0,
                        self.lag_s,
                    );
                    t = c.time_ms;
                }
                let phi = features(lagged, c.solar_w_m2, c.time_ms);
                let y: f64 = (0..N).map(|i| self.theta[i] * phi[i]).sum();
                (y * MW).clamp(0.0, 1.5 * self.max_heat_w)
            })
            .collect()
    }

    /// Keeps a prediction to score it when its time comes.
    pub fn remember(&mut self, lead: Lead, target_ms: i64, predicted_w: f64) {
        if !predicted_w.is_finite() {
            return;
        }
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back((lead, target_ms, predicted_w));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    /// A synthetic substation: 4 MW at 0 °C (lagged), 0.25 MW less per K,
    /// 1 MW less at 1000 W/m² of sun, and ±0.3 MW over the day.
    fn truth(lagged_c: f64, solar: f64, time_ms: i64) -> f64 {
        let phase = (time_ms.rem_euclid(86_400_000) as f64 / 86_400_000.0) * std::f64::consts::TAU;
        (4.0 - 0.25 * lagged_c - 0.001 * solar + 0.3 * phase.sin()) * MW
    }

    fn weather(time_ms: i64) -> Conditions {
        let h = time_ms as f64 / H as f64;
        let day = (h / 24.0 * std::f64::consts::TAU).sin();
        Conditions {
            time_ms,
            // A daily swing and a slow cold wave over the weeks.
            outdoor_c: -2.0 + 5.0 * day + 6.0 * (h / 200.0).sin(),
            solar_w_m2: (400.0 * day).max(0.0),
        }
    }

    #[test]
    fn learns_a_lagged_synthetic_substation_and_scores_itself() {
        let mut m = DemandModel::new(12.0);
        let step = 15 * 60_000;
        let mut lagged = weather(0).outdoor_c;
        let mut t = 0;
        let mut last_day_err = None;
        // Three weeks of 15-minute samples.
        while t < 21 * 24 * H {
            let c = weather(t);
            if t > 0 {
                lagged = lag_step(lagged, c.outdoor_c, step as f64 / 1000.0, 12.0 * 3600.0);
            }
            m.observe(&c, truth(lagged, c.solar_w_m2, t));
            let next = weather(t + step);
            let day = weather(t + 24 * H);
            let p = m.predict(&[next]);
            m.remember(Lead::Next, next.time_ms, p[0]);
            // A day ahead through the whole day's weather (the lag needs it).
            let path: Vec<Conditions> = (1..=96).map(|k| weather(t + k * step)).collect();
            let p = m.predict(&path);
            m.remember(Lead::Day, day.time_ms, p[95]);
            if t == 14 * 24 * H {
                last_day_err = Some(m.day);
            }
            t += step;
        }
        // The weights: 4 MW, −2.5 MW per 10 K, −0.5 MW per 500 W/m², 0.3 MW sin.
        let want = [4.0, -2.5, -0.5, 0.3, 0.0];
        for (got, want) in m.theta.iter().zip(want) {
            assert!((got - want).abs() < 0.01, "{:?} vs {want:?}", m.theta);
        }
        assert!(m.next.count > 1_900, "{:?}", m.next);
        assert!(m.day.count > 1_800, "{:?}", m.day);
        // Noise-free data: the errors of the last week are tiny. The error of
        // the first days (learning) dominates the totals; compare the increase.
        let before = last_day_err.unwrap();
        let late_mae = (m.day.sum_abs_w - before.sum_abs_w) / (m.day.count - before.count) as f64;
        assert!(late_mae < 0.01 * MW, "{late_mae}");
        assert!(m.next.mae_w().unwrap() > 0.0);
    }

    #[test]
    fn predictions_carry_the_lag_forward_and_never_go_negative() {
        let mut m = DemandModel::new(10.0);
        // Constant conditions: heat settles at the constant 3 MW.
        for k in 0..500 {
            m.observe(
                &Conditions {
                    time_ms: k * H,
                    outdoor_c: 0.0,
                    solar_w_m2: 0.0,
                },
                3.0 * MW,
            );
        }
        let p = m.predict(&[Conditions {
            time_ms: 501 * H,
            outdoor_c: 0.0,
            solar_w_m2: 0.0,
        }]);
        assert!((p[0] - 3.0 * MW).abs() < 0.05 * MW, "{p:?}");
        assert!(DemandModel::default().predict(&[weather(0)]).is_empty());
        // Out-of-order and non-finite samples are ignored.
        let n = m.samples();
        m.observe(&weather(10 * H), 1.0);
        m.observe(&weather(600 * H), f64::NAN);
        assert_eq!(m.samples(), n);
    }
}
