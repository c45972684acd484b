use super::*;

/// 2026-12-01T00:00:00+08:00 (= 2026-11-30T16:00:00Z).
const T0: i64 = 1_796_054_400_000;
const H: i64 = 3_600_000;

fn raw(time_ms: i64, t: f64, s: Option<f64>) -> RawPoint {
    RawPoint {
        time_ms,
        outdoor_temp_c: t,
        solar_w_m2: s,
    }
}

#[test]
fn rfc3339_and_epoch_times_parse_to_the_same_instant() {
    let cases: &[(&str, i64)] = &[
        ("2026-12-01T00:00:00+08:00", T0),
        ("2026-11-30T16:00:00Z", T0),
        ("2026-11-30T16:00:00.250Z", T0 + 250),
        ("2026-11-30T12:30:00-03:30", T0),
        ("1796054400000", T0),
        ("1970-01-01T00:00:00Z", 0),
        ("2024-02-29T00:00:00Z", 1_709_164_800_000),
    ];
    for (s, want) in cases {
        assert_eq!(parse_time(s), Ok(*want), "{s}");
    }
    for bad in [
        "2026-12-01T00:00:00",
        "2026-13-01T00:00:00Z",
        "2026-02-29T00:00:00Z",
        "2026-12-01T24:00:00Z",
        "yesterday",
        "",
    ] {
        assert!(parse_time(bad).is_err(), "{bad} accepted");
    }
    assert_eq!(format_rfc3339(T0, 8 * 3600), "2026-12-01T00:00:00+08:00");
    assert_eq!(format_rfc3339(T0, 0), "2026-11-30T16:00:00Z");
}

#[test]
fn validation_names_the_point_and_the_field() {
    let ok = [raw(T0, -5.0, None), raw(T0 + H, -6.0, Some(0.0))];
    let f = Forecast::new("test", T0, &ok).expect("valid");
    assert!(f.has_solar);
    assert_eq!(f.points[0].solar_w_m2, 0.0);
    let cases: Vec<(Vec<RawPoint>, &str)> = vec![
        (vec![], "points: empty"),
        (
            vec![raw(T0, -5.0, None), raw(T0, -6.0, None)],
            "points[1].time_ms: 1796054400000 is not after",
        ),
        (
            vec![raw(T0, -5.0, None), raw(T0 + H, f64::NAN, None)],
            "points[1].outdoor_temp_c: not a finite number",
        ),
        (
            vec![raw(T0, 61.0, None)],
            "points[0].outdoor_temp_c: 61 is outside the plausible -60..60 °C",
        ),
        (
            vec![raw(T0, -61.0, None)],
            "points[0].outdoor_temp_c: -61 is outside",
        ),
        (
            vec![raw(T0, 0.0, None), raw(T0 + H, 0.0, Some(-1.0))],
            "points[1].solar_w_m2: -1 is outside",
        ),
        (
            vec![raw(T0, 0.0, Some(f64::INFINITY))],
            "points[0].solar_w_m2: not a finite number",
        ),
        (
            vec![raw(0, 0.0, None)],
            "points[0].time_ms: 0 is not a time",
        ),
    ];
    for (pts, want) in cases {
        let e = Forecast::new("test", T0, &pts).expect_err(want).to_string();
        assert!(e.starts_with(want), "got {e:?}, want {want:?}");
    }
    let many: Vec<RawPoint> = (0..=MAX_FORECAST_POINTS as i64)
        .map(|i| raw(T0 + i * H, 0.0, None))
        .collect();
    assert!(Forecast::new("test", T0, &many).is_err());
    assert!(Forecast::new(" ", T0, &ok).is_err());
    assert!(Forecast::new("test", 0, &ok).is_err());
}

#[test]
fn csv_parses_and_bad_lines_are_named() {
    let text = "# from the met office\ntime,outdoor_temp_c,solar_w_m2\n2026-12-01T00:00:00+08:00,-5.5,0\n\n1796058000000, -6 , 12.5\n";
    let p = parse_csv(text).expect("parse");
    assert_eq!(
        p,
        vec![raw(T0, -5.5, Some(0.0)), raw(T0 + H, -6.0, Some(12.5))]
    );
    let p = parse_csv("time,outdoor_temp_c\n2026-11-30T16:00:00Z,1\n").expect("no solar");
    assert_eq!(p, vec![raw(T0, 1.0, None)]);

    let cases = [
        ("", "empty"),
        ("time,temp\n1,2\n", "line 1: header"),
        ("2026-11-30T16:00:00Z,1\n", "line 1: header"),
        ("time,outdoor_temp_c\n", "no points after the header"),
        (
            "time,outdoor_temp_c\n1796054400000,x\n",
            "line 2: outdoor_temp_c \"x\" is not a number",
        ),
        (
            "time,outdoor_temp_c\n1796054400000,1,2\n",
            "line 2: 3 fields; the header has 2",
        ),
        (
            "time,outdoor_temp_c\n\n1796054400000,1\nnoon,2\n",
            "line 4: time \"noon\"",
        ),
        (
            "time,outdoor_temp_c,solar_w_m2\n1796054400000,1\n",
            "line 2: 2 fields",
        ),
    ];
    for (text, want) in cases {
        let e = parse_csv(text).expect_err(want).to_string();
        assert!(e.contains(want), "got {e:?}, want {want:?}");
    }
}

#[test]
fn open_meteo_local_times_are_shifted_by_the_offset() {
    let text = r#"{"latitude":39.1,"timezone":"Asia/Shanghai","utc_offset_seconds":28800,
        "hourly":{"time":["2026-12-01T00:00","2026-12-01T01:00"],
                  "temperature_2m":[-3.2,-3.9],"shortwave_radiation":[0.0,0.0]}}"#;
    let p = parse_open_meteo(text).expect("parse");
    assert_eq!(
        p,
        vec![raw(T0, -3.2, Some(0.0)), raw(T0 + H, -3.9, Some(0.0))]
    );
    // GMT by default; unixtime format; no radiation.
    let text = r#"{"hourly":{"time":[1796054400],"temperature_2m":[2.0]}}"#;
    assert_eq!(parse_open_meteo(text), Ok(vec![raw(T0, 2.0, None)]));

    let cases = [
        ("[]", "hourly: missing"),
        ("{", "not JSON"),
        (
            r#"{"timezone":"Europe/Berlin","hourly":{"time":[],"temperature_2m":[]}}"#,
            "without utc_offset_seconds",
        ),
        (
            r#"{"hourly":{"time":["2026-12-01T00:00"],"temperature_2m":[null]}}"#,
            "hourly.temperature_2m[0]: null is not a number",
        ),
        (
            r#"{"hourly":{"time":["2026-12-01T00:00","x"],"temperature_2m":[1,2]}}"#,
            "hourly.time[1] \"x\"",
        ),
        (
            r#"{"hourly":{"time":["2026-12-01T00:00"],"temperature_2m":[1,2]}}"#,
            "differ in length",
        ),
        (
            r#"{"hourly":{"time":["2026-12-01T00:00"]}}"#,
            "hourly.temperature_2m: missing",
        ),
    ];
    for (text, want) in cases {
        let e = parse_open_meteo(text).expect_err(want).to_string();
        assert!(e.contains(want), "got {e:?}, want {want:?}");
    }
}

fn epw(records: &[&str]) -> String {
    let mut s = String::from("LOCATION,Tianjin,TJ,CHN,CSWD,545270,39.08,117.07,8.0,3.0\n");
    for _ in 0..7 {
        s.push_str("HEADER\n");
    }
    for r in records {
        s.push_str(r);
        s.push('\n');
    }
    s
}

#[test]
fn epw_records_are_placed_in_utc_from_the_file_time_zone() {
    // Hour 1 of 2026-12-01 local (UTC+8) starts at 00:00 local.
    let text = epw(&[
        "2026,12,1,1,0,?,-4.5,-10,50,101000,0,0,250,0,0",
        "2026,12,1,2,0,?,-5.0,-10,50,101000,0,0,250,120,0",
    ]);
    let p = parse_epw(&text, None).expect("parse");
    assert_eq!(
        p,
        vec![raw(T0, -4.5, Some(0.0)), raw(T0 + H, -5.0, Some(120.0))]
    );
    // A typical-year record from 1998 placed in 2026 by `year`.
    let text = epw(&["1998,12,1,1,0,?,-4.5,-10,50,101000,0,0,250,9999,0"]);
    assert_eq!(parse_epw(&text, Some(2026)), Ok(vec![raw(T0, -4.5, None)]));

    let cases = [
        (String::from("nope"), "line 1: not an EPW LOCATION header"),
        (epw(&[]), "no hourly records"),
        (
            epw(&["2026,12,1,1,0,?,warm,-10,50,101000,0,0,250,0,0"]),
            "line 9: field 7 (dry bulb temperature)",
        ),
        (
            epw(&[
                "2026,12,1,1,0,?,1,-10,50,101000,0,0,250,0,0",
                "2026,2,30,1,0,?,1,-10,50,101000,0,0,250,0,0",
            ]),
            "line 10: no such hour",
        ),
        (
            epw(&["2026,12,1,25,0,?,1,-10,50,101000,0,0,250,0,0"]),
            "line 9: no such hour",
        ),
        (epw(&["2026,12,1,1,0,?,1"]), "line 9: field 14"),
    ];
    for (text, want) in cases {
        let e = parse_epw(&text, None).expect_err(want).to_string();
        assert!(e.contains(want), "got {e:?}, want {want:?}");
    }
}

#[test]
fn formats_are_guessed_from_the_name() {
    assert_eq!(Format::guess("a/b.EPW"), Format::Epw);
    assert_eq!(Format::guess("x.csv"), Format::Csv);
    assert_eq!(
        Format::guess("http://h/v1/forecast?hourly=temperature_2m&x=.csv"),
        Format::OpenMeteo
    );
}
