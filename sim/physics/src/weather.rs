//! Seeded synthetic weather: a daily cycle around a mean, plus a slow random
//! deviation, as a pure function of time (so any instant can be recomputed, and
//! a restarted simulator continues the same weather).

use model::network::Weather;

const HOUR_MS: i64 = 3_600_000;

#[derive(Clone, Debug)]
pub struct WeatherModel {
    cfg: Weather,
    /// Added to the generated temperature (cold snaps), K.
    pub offset_k: f64,
}

impl WeatherModel {
    pub fn new(cfg: Weather) -> Self {
        Self { cfg, offset_k: 0.0 }
    }

    /// Outdoor temperature at network time `time_ms` (Unix ms, China Standard Time for the daily cycle).
    pub fn outdoor_temp_c(&self, time_ms: i64) -> f64 {
        let local_ms = time_ms + 8 * HOUR_MS;
        let hour_of_day = (local_ms.rem_euclid(24 * HOUR_MS)) as f64 / HOUR_MS as f64;
        // Coldest around 05:00, warmest around 15:00.
        let daily = -self.cfg.daily_amplitude_k
            * (std::f64::consts::TAU * (hour_of_day - 3.0) / 24.0).cos();
        self.cfg.mean_temp_c + daily + self.slow_deviation_k(local_ms) + self.offset_k
    }

    /// Smooth noise: independent seeded values every 12 h, cosine-interpolated.
    fn slow_deviation_k(&self, local_ms: i64) -> f64 {
        let period = 12 * HOUR_MS;
        let k = local_ms.div_euclid(period);
        let frac = local_ms.rem_euclid(period) as f64 / period as f64;
        let a = self.knot(k);
        let b = self.knot(k + 1);
        let w = 0.5 - 0.5 * (std::f64::consts::PI * frac).cos();
        self.cfg.variability_k * (a + (b - a) * w)
    }

    /// A standard-normal-ish value for knot `k`: sum of four uniforms from a
    /// seeded hash, rescaled (mean 0, variance 1).
    fn knot(&self, k: i64) -> f64 {
        let mut sum = 0.0;
        for i in 0..4u64 {
            let h = splitmix64(
                self.cfg.seed ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i << 56),
            );
            sum += (h >> 11) as f64 / (1u64 << 53) as f64;
        }
        (sum - 2.0) / (4.0f64 / 12.0).sqrt()
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_a_seeded_function_of_time() {
        let cfg = Weather {
            seed: 7,
            mean_temp_c: -2.0,
            daily_amplitude_k: 4.0,
            variability_k: 3.0,
        };
        let w = WeatherModel::new(cfg.clone());
        let t0 = 1_796_054_400_000;
        let a: Vec<f64> = (0..100)
            .map(|h| w.outdoor_temp_c(t0 + h * HOUR_MS))
            .collect();
        let b: Vec<f64> = (0..100)
            .map(|h| WeatherModel::new(cfg.clone()).outdoor_temp_c(t0 + h * HOUR_MS))
            .collect();
        assert_eq!(a, b);
        let other = WeatherModel::new(Weather { seed: 8, ..cfg });
        assert_ne!(a[50], other.outdoor_temp_c(t0 + 50 * HOUR_MS));
        // Plausible range for a mean of −2 °C.
        assert!(a.iter().all(|t| (-25.0..20.0).contains(t)), "{a:?}");
        // Continuous: no jumps over a minute.
        for m in 0..1000 {
            let t = t0 + m * 60_000;
            assert!((w.outdoor_temp_c(t + 60_000) - w.outdoor_temp_c(t)).abs() < 0.05);
        }
    }
}
