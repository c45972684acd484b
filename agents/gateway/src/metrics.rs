//! Control accuracy of the gateway's loops as Prometheus metrics.

use model::{Metric, Reading};

/// Error band of the control-accuracy target, K.
pub const BAND_K: f64 = 0.5;

pub struct ControlMetrics {
    worst_k: observe::Gauge,
    samples: observe::Counter,
    out_of_band: observe::Counter,
    scan_worst_k: Option<f64>,
}

impl Default for ControlMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// |secondary supply − setpoint| of a substation's readings, K.
pub fn control_error_k(readings: &[Reading]) -> Option<f64> {
    let get = |m: Metric| readings.iter().find(|r| r.metric == m).map(|r| r.value);
    Some((get(Metric::SecondarySupplyTempC)? - get(Metric::SetpointC)?).abs())
}

impl ControlMetrics {
    pub fn new() -> Self {
        Self {
            worst_k: observe::gauge(
                "heatnet.gateway.control_error_max_k",
                "largest |secondary supply - setpoint| over this gateway's loops in the last scan, K",
            ),
            samples: observe::counter(
                "heatnet.gateway.control_samples",
                "loop scans with both a setpoint and a secondary supply reading",
            ),
            out_of_band: observe::counter(
                "heatnet.gateway.control_out_of_band",
                "loop scans with the secondary supply more than 0.5 K from its setpoint",
            ),
            scan_worst_k: None,
        }
    }

    /// One actor's readings of this scan.
    pub fn record(&mut self, readings: &[Reading]) {
        if let Some(e) = control_error_k(readings) {
            self.samples.add(1, &[]);
            if e > BAND_K {
                self.out_of_band.add(1, &[]);
            }
            self.scan_worst_k = Some(self.scan_worst_k.map_or(e, |w| w.max(e)));
        }
    }

    /// The scan is complete: publish its worst error.
    pub fn end_scan(&mut self) {
        if let Some(w) = self.scan_worst_k.take() {
            self.worst_k.set(w);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_error_needs_both_readings() {
        let r = |m, v| Reading {
            metric: m,
            value: v,
        };
        assert_eq!(
            control_error_k(&[
                r(Metric::SetpointC, 70.0),
                r(Metric::SecondarySupplyTempC, 69.2)
            ])
            .map(|e| (e * 10.0).round()),
            Some(8.0)
        );
        assert_eq!(control_error_k(&[r(Metric::SetpointC, 70.0)]), None);
    }
}
