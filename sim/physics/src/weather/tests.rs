use super::*;

const T0: i64 = 1_796_054_400_000; // 2026-12-01 00:00 +08:00

fn demo_cfg() -> Weather {
    Weather {
        seed: 7,
        mean_temp_c: -2.0,
        daily_amplitude_k: 4.0,
        variability_k: 3.0,
        ..Weather::default()
    }
}

#[test]
fn is_a_seeded_continuous_function_of_time() {
    let w = WeatherModel::new(demo_cfg());
    let a: Vec<f64> = (0..100)
        .map(|h| w.outdoor_temp_c(T0 + h * HOUR_MS))
        .collect();
    let b: Vec<f64> = (0..100)
        .map(|h| WeatherModel::new(demo_cfg()).outdoor_temp_c(T0 + h * HOUR_MS))
        .collect();
    assert_eq!(a, b);
    let other = WeatherModel::new(Weather {
        seed: 8,
        ..demo_cfg()
    });
    assert_ne!(a[50], other.outdoor_temp_c(T0 + 50 * HOUR_MS));
    assert!(a.iter().all(|t| (-25.0..20.0).contains(t)), "{a:?}");
    for m in 0..1000 {
        let t = T0 + m * 60_000;
        assert!((w.outdoor_temp_c(t + 60_000) - w.outdoor_temp_c(t)).abs() < 0.05);
    }
}

#[test]
fn a_tianjin_season_has_its_monthly_means_and_cold_waves_to_about_minus_15() {
    let w = WeatherModel::new(Weather::tianjin(20_261_115));
    let season_start = T0 - 16 * DAY_MS; // 15 November
    let hours = 120 * 24;
    let temps: Vec<f64> = (0..hours)
        .map(|h| w.outdoor_temp_c(season_start + h as i64 * HOUR_MS))
        .collect();
    let month_mean = |from_day: usize, days: usize| {
        temps[from_day * 24..(from_day + days) * 24]
            .iter()
            .sum::<f64>()
            / (days * 24) as f64
    };
    // Tianjin climate normals, roughly: late Nov ≈ +3, January ≈ −4, early March ≈ +3 (cold waves lower them a little).
    let (nov, jan, mar) = (month_mean(0, 15), month_mean(47, 31), month_mean(106, 14));
    assert!((-1.0..6.0).contains(&nov), "late November mean {nov}");
    assert!((-8.0..-1.0).contains(&jan), "January mean {jan}");
    assert!((-1.0..8.0).contains(&mar), "early March mean {mar}");
    let min = temps.iter().cloned().fold(f64::INFINITY, f64::min);
    assert!((-22.0..-11.0).contains(&min), "season minimum {min}");
    // Cold waves: several multi-day spells well below the seasonal normal.
    let waves = (0..120)
        .filter(|d| {
            cold_waves_k(
                &Weather::tianjin(20_261_115),
                season_start + 8 * HOUR_MS + d * DAY_MS + DAY_MS / 2,
            ) > 4.0
        })
        .count();
    assert!((6..60).contains(&waves), "{waves} days in cold waves");
}

#[test]
fn the_sun_rises_peaks_at_noon_and_clouds_only_dim_it() {
    let w = WeatherModel::new(Weather::tianjin(3));
    // 1 December, Tianjin (39° N): no sun at night; a clear-sky noon near 500 W/m².
    assert_eq!(clear_sky_ghi_w_m2(39.1, T0), 0.0);
    let noon = clear_sky_ghi_w_m2(39.1, T0 + 12 * HOUR_MS + 11 * 60_000);
    assert!((420.0..620.0).contains(&noon), "{noon}");
    assert!(clear_sky_ghi_w_m2(39.1, T0 + 9 * HOUR_MS) < noon);
    for h in 0..240 {
        let t = T0 + h * HOUR_MS;
        let ghi = w.ghi_w_m2(t);
        assert!(ghi >= 0.0 && ghi <= clear_sky_ghi_w_m2(39.1, t) + 1e-9);
    }
}

#[test]
fn forecast_error_grows_with_lead_time() {
    let w = WeatherModel::new(demo_cfg());
    let f = Forecaster::new(11);
    let rms = |lead_h: f64| {
        let n = 3000;
        let sum: f64 = (0..n)
            .map(|i| {
                let issued = T0 + i * HOUR_MS;
                let target = issued + (lead_h * HOUR_MS as f64) as i64;
                (f.temp_c(&w, issued, target) - w.outdoor_temp_c(target)).powi(2)
            })
            .sum();
        (sum / n as f64).sqrt()
    };
    let (r0, r24, r72) = (rms(0.0), rms(24.0), rms(72.0));
    assert!(r0 < 1e-9, "{r0}");
    assert!((r24 - 1.0).abs() < 0.15, "24 h: {r24} K");
    assert!((r72 - 3.0).abs() < 0.45, "72 h: {r72} K");
    // Same seed, same forecast.
    assert_eq!(
        f.temp_c(&w, T0, T0 + 30 * HOUR_MS),
        Forecaster::new(11).temp_c(&w, T0, T0 + 30 * HOUR_MS)
    );
}

fn epw_text(hours: usize) -> String {
    let mut s = String::from("LOCATION,Tianjin,TJ,CHN,CSWD,545270,39.08,117.07,8.0,5.0\n");
    for i in 0..7 {
        s.push_str(&format!("HEADER{i},x\n"));
    }
    const DAYS: [u32; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let mut n = 0;
    'outer: for (m, &days) in DAYS.iter().enumerate() {
        for d in 1..=days {
            for h in 1..=24 {
                if n == hours {
                    break 'outer;
                }
                let temp = -5.0 + 10.0 * (m as f64 / 11.0) + (h as f64 - 12.0) / 6.0;
                let ghi = if (8..=16).contains(&h) { 300.0 } else { 0.0 };
                s.push_str(&format!(
                    "1999,{},{d},{h},60,A7,{temp:.1},0,50,100000,0,0,300,{ghi:.0},0,0\n",
                    m + 1
                ));
                n += 1;
            }
        }
    }
    s
}

#[test]
fn epw_files_are_read_and_interpolated() {
    let epw = Epw::parse(&epw_text(8760)).unwrap();
    assert_eq!(epw.latitude_deg, 39.08);
    let w = WeatherModel::from_epw(epw, 1);
    // 1 January, hour ending 01:00 → −5 + (1−12)/6 = −6.83 °C at 00:00–01:00 local.
    let jan1 = 1_767_196_800_000; // 2026-01-01 00:00 +08:00
    assert!(
        (w.outdoor_temp_c(jan1) - (-5.0 + (1.0 - 12.0) / 6.0)).abs() < 0.06,
        "{}",
        w.outdoor_temp_c(jan1)
    );
    // Half way between two hours: the mean of both.
    let mid = w.outdoor_temp_c(jan1 + HOUR_MS / 2);
    let want = ((-5.0 + (1.0 - 12.0) / 6.0) + (-5.0 + (2.0 - 12.0) / 6.0)) / 2.0;
    assert!((mid - want).abs() < 0.06, "{mid} vs {want}");
    assert!(w.ghi_w_m2(jan1 + 10 * HOUR_MS) > 0.0);
}

#[test]
fn broken_epw_files_are_refused_with_the_line() {
    assert_eq!(Epw::parse("nonsense"), Err(EpwError::NoLocation));
    assert_eq!(Epw::parse(&epw_text(100)), Err(EpwError::Length(100)));
    let bad = epw_text(8760).replacen("1999,1,1,5,60,A7,", "1999,1,1,5,60,A7,x", 1);
    match Epw::parse(&bad) {
        Err(EpwError::Line { line, problem }) => {
            assert_eq!(line, 13);
            assert!(problem.contains("dry bulb"), "{problem}");
        }
        other => panic!("{other:?}"),
    }
}
