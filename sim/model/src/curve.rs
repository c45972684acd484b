//! Supply curves: supply temperature as a piecewise-linear function of outdoor temperature.

use serde::{Deserialize, Serialize};

/// Most points a curve may have.
pub const MAX_CURVE_POINTS: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub outdoor_temp_c: f64,
    pub supply_temp_c: f64,
}

/// A validated supply curve. Between points the supply temperature is
/// interpolated; outside them it is held at the end value; the result is always
/// clamped to `[min_supply_temp_c, max_supply_temp_c]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawCurve", into = "RawCurve")]
pub struct SupplyCurve {
    points: Vec<CurvePoint>,
    min_supply_temp_c: f64,
    max_supply_temp_c: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RawCurve {
    pub points: Vec<CurvePoint>,
    pub min_supply_temp_c: f64,
    pub max_supply_temp_c: f64,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CurveError {
    #[error("curve has {count} points: give between 2 and {MAX_CURVE_POINTS}")]
    PointCount { count: usize },
    #[error("point {index}: {field} is not a finite number")]
    NotFinite { index: usize, field: &'static str },
    #[error("point {index}: outdoor_temp_c {value} must be greater than the previous point's")]
    NotIncreasing { index: usize, value: f64 },
    #[error("point {index}: outdoor_temp_c {value} is outside -50..40 °C")]
    OutdoorOutOfRange { index: usize, value: f64 },
    #[error("point {index}: supply_temp_c {value} is outside the curve's limits {min}..{max} °C")]
    SupplyOutsideLimits {
        index: usize,
        value: f64,
        min: f64,
        max: f64,
    },
    #[error(
        "limits: min_supply_temp_c {min} and max_supply_temp_c {max} must be finite, with min < max, inside {lo}..{hi} °C"
    )]
    BadLimits {
        min: f64,
        max: f64,
        lo: f64,
        hi: f64,
    },
    #[error(
        "point {index}: supply_temp_c rises with outdoor temperature ({prev} → {value} °C); a supply curve must not rise as it gets warmer"
    )]
    Rising { index: usize, prev: f64, value: f64 },
}

impl SupplyCurve {
    /// Checks a curve against the absolute limits `[lo, hi]` of the loop it drives.
    pub fn new(
        points: Vec<CurvePoint>,
        min_supply_temp_c: f64,
        max_supply_temp_c: f64,
        (lo, hi): (f64, f64),
    ) -> Result<Self, CurveError> {
        let (min, max) = (min_supply_temp_c, max_supply_temp_c);
        if !(min.is_finite() && max.is_finite() && min < max && min >= lo && max <= hi) {
            return Err(CurveError::BadLimits { min, max, lo, hi });
        }
        if points.len() < 2 || points.len() > MAX_CURVE_POINTS {
            return Err(CurveError::PointCount {
                count: points.len(),
            });
        }
        for (index, p) in points.iter().enumerate() {
            if !p.outdoor_temp_c.is_finite() {
                return Err(CurveError::NotFinite {
                    index,
                    field: "outdoor_temp_c",
                });
            }
            if !p.supply_temp_c.is_finite() {
                return Err(CurveError::NotFinite {
                    index,
                    field: "supply_temp_c",
                });
            }
            if !(-50.0..=40.0).contains(&p.outdoor_temp_c) {
                return Err(CurveError::OutdoorOutOfRange {
                    index,
                    value: p.outdoor_temp_c,
                });
            }
            if p.supply_temp_c < min || p.supply_temp_c > max {
                return Err(CurveError::SupplyOutsideLimits {
                    index,
                    value: p.supply_temp_c,
                    min,
                    max,
                });
            }
            if index > 0 {
                let prev = points[index - 1];
                if p.outdoor_temp_c <= prev.outdoor_temp_c {
                    return Err(CurveError::NotIncreasing {
                        index,
                        value: p.outdoor_temp_c,
                    });
                }
                if p.supply_temp_c > prev.supply_temp_c {
                    return Err(CurveError::Rising {
                        index,
                        prev: prev.supply_temp_c,
                        value: p.supply_temp_c,
                    });
                }
            }
        }
        Ok(Self {
            points,
            min_supply_temp_c: min,
            max_supply_temp_c: max,
        })
    }

    pub fn points(&self) -> &[CurvePoint] {
        &self.points
    }

    pub fn min_supply_temp_c(&self) -> f64 {
        self.min_supply_temp_c
    }

    pub fn max_supply_temp_c(&self) -> f64 {
        self.max_supply_temp_c
    }

    /// Supply temperature for an outdoor temperature.
    pub fn supply_temp_c(&self, outdoor_temp_c: f64) -> f64 {
        let pts = &self.points;
        let raw = match pts.iter().position(|p| p.outdoor_temp_c >= outdoor_temp_c) {
            None => pts[pts.len() - 1].supply_temp_c,
            Some(0) => pts[0].supply_temp_c,
            Some(i) => {
                let (a, b) = (pts[i - 1], pts[i]);
                let t = (outdoor_temp_c - a.outdoor_temp_c) / (b.outdoor_temp_c - a.outdoor_temp_c);
                a.supply_temp_c + t * (b.supply_temp_c - a.supply_temp_c)
            }
        };
        raw.clamp(self.min_supply_temp_c, self.max_supply_temp_c)
    }

    /// Standard quality-regulation curve for a radiator circuit designed for
    /// `supply_c`/`return_c` at `outdoor_design_c` and a room at `room_c`
    /// (radiator exponent 1.3), sampled at five outdoor temperatures.
    pub fn quality_regulation(
        supply_c: f64,
        return_c: f64,
        room_c: f64,
        outdoor_design_c: f64,
        limits: (f64, f64),
    ) -> Result<Self, CurveError> {
        let n = 1.3;
        let outdoor = [outdoor_design_c, -5.0, 0.0, 5.0, 10.0];
        let mut points = Vec::new();
        let mut last = f64::NEG_INFINITY;
        let (min, max) = (limits.0.max(room_c + 5.0).min(limits.1 - 1.0), limits.1);
        for t_out in outdoor {
            if t_out <= last {
                continue;
            }
            last = t_out;
            let q = ((room_c - t_out) / (room_c - outdoor_design_c)).clamp(0.0, 1.0);
            let t_sup = room_c
                + ((supply_c + return_c) / 2.0 - room_c) * q.powf(1.0 / n)
                + (supply_c - return_c) / 2.0 * q;
            points.push(CurvePoint {
                outdoor_temp_c: t_out,
                supply_temp_c: t_sup.clamp(min, max),
            });
        }
        Self::new(points, min, max, limits)
    }
}

impl TryFrom<RawCurve> for SupplyCurve {
    type Error = CurveError;
    fn try_from(raw: RawCurve) -> Result<Self, Self::Error> {
        // Stored curves were validated against their loop's limits when set;
        // here only the curve's own consistency is re-checked.
        SupplyCurve::new(
            raw.points,
            raw.min_supply_temp_c,
            raw.max_supply_temp_c,
            (f64::MIN, f64::MAX),
        )
    }
}

impl From<SupplyCurve> for RawCurve {
    fn from(c: SupplyCurve) -> Self {
        RawCurve {
            points: c.points,
            min_supply_temp_c: c.min_supply_temp_c,
            max_supply_temp_c: c.max_supply_temp_c,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(o: f64, s: f64) -> CurvePoint {
        CurvePoint {
            outdoor_temp_c: o,
            supply_temp_c: s,
        }
    }

    #[test]
    fn interpolates_holds_and_clamps() {
        let c = SupplyCurve::new(
            vec![pt(-10.0, 80.0), pt(10.0, 40.0)],
            30.0,
            85.0,
            (25.0, 95.0),
        )
        .unwrap();
        assert_eq!(c.supply_temp_c(0.0), 60.0);
        assert_eq!(c.supply_temp_c(-20.0), 80.0);
        assert_eq!(c.supply_temp_c(20.0), 40.0);
        assert_eq!(c.supply_temp_c(5.0), 50.0);
    }

    #[test]
    fn refuses_bad_curves_with_the_offending_point() {
        let lim = (25.0, 95.0);
        assert_eq!(
            SupplyCurve::new(vec![pt(0.0, 50.0)], 30.0, 85.0, lim),
            Err(CurveError::PointCount { count: 1 })
        );
        assert_eq!(
            SupplyCurve::new(vec![pt(0.0, 50.0), pt(f64::NAN, 40.0)], 30.0, 85.0, lim),
            Err(CurveError::NotFinite {
                index: 1,
                field: "outdoor_temp_c"
            })
        );
        assert!(matches!(
            SupplyCurve::new(vec![pt(0.0, 50.0), pt(-1.0, 40.0)], 30.0, 85.0, lim),
            Err(CurveError::NotIncreasing { index: 1, .. })
        ));
        assert!(matches!(
            SupplyCurve::new(vec![pt(0.0, 90.0), pt(5.0, 40.0)], 30.0, 85.0, lim),
            Err(CurveError::SupplyOutsideLimits { index: 0, .. })
        ));
        assert!(matches!(
            SupplyCurve::new(vec![pt(0.0, 50.0), pt(5.0, 60.0)], 30.0, 85.0, lim),
            Err(CurveError::Rising { index: 1, .. })
        ));
        assert!(matches!(
            SupplyCurve::new(vec![pt(0.0, 50.0), pt(5.0, 40.0)], 30.0, 99.0, lim),
            Err(CurveError::BadLimits { .. })
        ));
    }

    #[test]
    fn quality_regulation_matches_design_point_and_hand_value() {
        let c = SupplyCurve::quality_regulation(75.0, 50.0, 18.0, -7.0, (25.0, 95.0)).unwrap();
        // At the design outdoor temperature, q = 1: supply = design supply.
        assert!((c.supply_temp_c(-7.0) - 75.0).abs() < 1e-9);
        // At 0 °C: q = 18/25 = 0.72; T = 18 + 44.5·0.72^(1/1.3) + 12.5·0.72 = 61.56 °C (hand).
        let q: f64 = 0.72;
        let hand = 18.0 + 44.5 * q.powf(1.0 / 1.3) + 12.5 * q;
        assert!((c.supply_temp_c(0.0) - hand).abs() < 1e-9);
        assert!((hand - 61.56).abs() < 0.01, "hand value {hand}");
    }
}
