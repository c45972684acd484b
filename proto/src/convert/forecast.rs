//! Weather forecasts on the wire: `LoadForecastRequest` and the simulator's
//! forecast into a validated `model::Forecast`, and points back.

use model::forecast::{Forecast, ForecastPoint, RawPoint};

use super::ConversionError;
use crate::v1;

fn raw_points(points: &[v1::ForecastPoint]) -> Vec<RawPoint> {
    points
        .iter()
        .map(|p| RawPoint {
            time_ms: p.time_ms,
            outdoor_temp_c: p.outdoor_temp_c,
            solar_w_m2: p.solar_w_m2,
        })
        .collect()
}

/// A forecast from its wire parts, validated; refusals name `points[i].field`.
pub fn forecast(
    source: &str,
    issued_at_ms: i64,
    points: &[v1::ForecastPoint],
) -> Result<Forecast, ConversionError> {
    if points.len() > model::forecast::MAX_FORECAST_POINTS {
        return Err(ConversionError::Invalid {
            field: "points".into(),
            reason: format!(
                "{} points; at most {} are accepted",
                points.len(),
                model::forecast::MAX_FORECAST_POINTS
            ),
        });
    }
    Forecast::new(source, issued_at_ms, &raw_points(points)).map_err(|e| ConversionError::Invalid {
        field: e.field,
        reason: e.reason,
    })
}

impl TryFrom<&v1::LoadForecastRequest> for Forecast {
    type Error = ConversionError;
    fn try_from(r: &v1::LoadForecastRequest) -> Result<Self, Self::Error> {
        forecast(&r.source, r.issued_at_ms, &r.points)
    }
}

impl TryFrom<&v1::SimForecastResponse> for Forecast {
    type Error = ConversionError;
    fn try_from(r: &v1::SimForecastResponse) -> Result<Self, Self::Error> {
        forecast(&r.source, r.issued_at_ms, &r.points)
    }
}

/// A point back on the wire; `has_solar` says whether its sunshine is known.
pub fn forecast_point(p: &ForecastPoint, has_solar: bool) -> v1::ForecastPoint {
    v1::ForecastPoint {
        time_ms: p.time_ms,
        outdoor_temp_c: p.outdoor_c,
        solar_w_m2: has_solar.then_some(p.solar_w_m2),
    }
}

/// A raw point (from a parser) on the wire, unvalidated: the server validates.
impl From<&RawPoint> for v1::ForecastPoint {
    fn from(p: &RawPoint) -> Self {
        v1::ForecastPoint {
            time_ms: p.time_ms,
            outdoor_temp_c: p.outdoor_temp_c,
            solar_w_m2: p.solar_w_m2,
        }
    }
}

/// A validated forecast as a load request.
pub fn load_request(f: &Forecast, author: &str) -> v1::LoadForecastRequest {
    v1::LoadForecastRequest {
        source: f.source.clone(),
        issued_at_ms: f.issued_at_ms,
        points: f
            .points
            .iter()
            .map(|p| forecast_point(p, f.has_solar))
            .collect(),
        author: author.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_796_054_400_000;

    fn wire(time_ms: i64, t: f64, s: Option<f64>) -> v1::ForecastPoint {
        v1::ForecastPoint {
            time_ms,
            outdoor_temp_c: t,
            solar_w_m2: s,
        }
    }

    #[test]
    fn a_load_request_round_trips_and_bad_points_are_named() {
        let req = v1::LoadForecastRequest {
            source: "test".into(),
            issued_at_ms: T0,
            points: vec![
                wire(T0, -3.0, Some(0.0)),
                wire(T0 + 3_600_000, -4.0, Some(50.0)),
            ],
            author: "ops".into(),
        };
        let f = Forecast::try_from(&req).expect("valid");
        assert_eq!(f.points[1].solar_w_m2, 50.0);
        assert_eq!(load_request(&f, "ops"), req);

        // Without sunshine, points go back without it.
        let req = v1::LoadForecastRequest {
            points: vec![wire(T0, -3.0, None)],
            ..req
        };
        let f = Forecast::try_from(&req).expect("valid");
        assert!(!f.has_solar);
        assert_eq!(load_request(&f, "ops").points, req.points);

        let bad = v1::LoadForecastRequest {
            points: vec![wire(T0, -3.0, None), wire(T0 + 1, f64::NAN, None)],
            ..req.clone()
        };
        assert_eq!(
            Forecast::try_from(&bad).expect_err("nan").to_string(),
            "points[1].outdoor_temp_c: not a finite number"
        );
        let bad = v1::LoadForecastRequest {
            points: vec![wire(T0, -3.0, None), wire(T0 - 1, 1.0, None)],
            ..req.clone()
        };
        assert!(
            Forecast::try_from(&bad)
                .expect_err("order")
                .to_string()
                .starts_with("points[1].time_ms:")
        );
        let bad = v1::LoadForecastRequest {
            source: String::new(),
            ..req
        };
        assert!(
            Forecast::try_from(&bad)
                .expect_err("source")
                .to_string()
                .starts_with("source: missing")
        );
    }
}
