//! The control-room dashboard in a real browser: headless Debian Chromium,
//! driven over WebDriver (chromedriver), against `heatnet up --network demo`.
//!
//! Screenshots of every page go to `$CARGO_TARGET_TMPDIR/screenshots/`; with
//! `HEATNET_UPDATE_SCREENSHOTS=1` also to `docs/screenshots/` (the README's).

mod common;
#[path = "support/http.rs"]
mod http;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use http::http;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A WebDriver session on a chromedriver we started.
struct Browser {
    driver: Proc,
    addr: String,
    session: String,
}

impl Browser {
    fn start(dir: &Path) -> Self {
        for (path, pkg) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: this test drives Debian's Chromium; install it with \
                 `sudo apt-get install -y chromium chromium-driver` (package {pkg}; .ci/run does this)"
            );
        }
        let port = free_port_block(1);
        let addr = format!("127.0.0.1:{port}");
        let driver = Proc::start(
            dir,
            "chromedriver",
            Path::new(CHROMEDRIVER),
            &[format!("--port={port}")],
        );
        poll(Duration::from_secs(30), "chromedriver ready", || {
            http(&addr, "GET", "/status", None)
                .ok()
                .filter(|(_, v)| v["value"]["ready"] == json!(true))
        });
        let profile = dir.join("chromium-profile");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1400,1300",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        }}});
        let (code, v) = http(&addr, "POST", "/session", Some(&caps)).expect("new session");
        assert_eq!(code, 200, "chromedriver refused the session: {v}");
        let session = v["value"]["sessionId"]
            .as_str()
            .expect("session id")
            .to_string();
        Self {
            driver,
            addr,
            session,
        }
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let p = format!("/session/{}{path}", self.session);
        match http(&self.addr, method, &p, body.as_ref()) {
            Ok((200, v)) => Ok(v["value"].clone()),
            Ok((code, v)) => Err(format!("{method} {path}: {code} {}", v["value"])),
            Err(e) => Err(format!("{method} {path}: {e}")),
        }
    }

    fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })))
            .expect("navigate");
    }

    fn js(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    fn find(&self, css: &str) -> Result<String, String> {
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        )?;
        v[ELEMENT_KEY]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("no element id for {css}: {v}"))
    }

    /// Runs an action on a fresh element, retrying while the page re-renders under it.
    fn with_element(&self, css: &str, what: &str, f: impl Fn(&str) -> Result<Value, String>) {
        let start = Instant::now();
        loop {
            match self.find(css).and_then(|id| f(&id)) {
                Ok(_) => return,
                Err(e) if start.elapsed() > Duration::from_secs(30) => {
                    panic!("{what} on {css}: {e}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    fn click(&self, css: &str) {
        self.with_element(css, "click", |id| {
            self.cmd("POST", &format!("/element/{id}/click"), Some(json!({})))
        });
    }

    fn type_into(&self, css: &str, text: &str) {
        self.with_element(css, "type", |id| {
            self.cmd("POST", &format!("/element/{id}/clear"), Some(json!({})))?;
            self.cmd(
                "POST",
                &format!("/element/{id}/value"),
                Some(json!({ "text": text })),
            )
        });
    }

    /// Waits until a script returns something other than null/false.
    fn wait_js(&self, timeout: Duration, what: &str, script: &str) -> Value {
        poll(timeout, what, || {
            let v = self.js(script);
            (!v.is_null() && v != json!(false)).then_some(v)
        })
    }

    fn screenshot(&self, name: &str) {
        self.js("window.scrollTo(0, 0); return true;");
        let v = self.cmd("GET", "/screenshot", None).expect("screenshot");
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("base64 screenshot"))
            .expect("decode screenshot");
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join(name), &png).expect("write screenshot");
        if std::env::var("HEATNET_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
            let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
            std::fs::create_dir_all(&docs).expect("docs/screenshots");
            std::fs::write(docs.join(name), &png).expect("write docs screenshot");
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.cmd("DELETE", "", None);
        self.driver.terminate(Duration::from_secs(5));
    }
}

fn poll<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn shown_setpoints(b: &Browser) -> Vec<(String, f64)> {
    let v = b.js(
        "return Array.from(document.querySelectorAll('#preview tr[data-node]'))\
         .map(r => [r.dataset.node, parseFloat(r.querySelector('td.setpoint').textContent)]);",
    );
    serde_json::from_value::<Vec<(String, Option<f64>)>>(v)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(n, s)| s.map(|s| (n, s)))
        .collect()
}

#[test]
fn dashboard_in_chromium_against_heatnet_up() {
    // No randomness here: the demo network's weather is seeded by its file.
    let dir = TempDir::new("browser");
    let data = dir.0.join("data");
    let base = free_port_block(30);
    let dash_port = free_port_block(1);
    let dash = format!("127.0.0.1:{dash_port}");
    let mut up = Proc::heatnet_up(
        &dir.0,
        &data,
        base,
        &[
            "--network",
            "demo",
            "--dashboard-port",
            &dash_port.to_string(),
            "--speed",
            "60",
        ],
    );
    let net = model::Network::load("demo").expect("demo network");
    let substations: Vec<String> = net.substations.iter().map(|s| s.id.to_string()).collect();

    // Every gateway online and every substation with readings, seen through the dashboard's API.
    poll(
        Duration::from_secs(90),
        "all gateways online with readings via the dashboard",
        || {
            let (code, v) = http(&dash, "GET", "/api/state", None).ok()?;
            let nodes = v["nodes"].as_array()?;
            let ready = code == 200
                && v["gateways"]
                    .as_array()?
                    .iter()
                    .all(|g| g["online"] == json!(true))
                && substations.iter().all(|id| {
                    nodes.iter().any(|n| {
                        n["node_id"] == json!(id) && n["readings"]["supply_temp_c"].is_number()
                    })
                });
            ready.then_some(())
        },
    );

    // Screenshots for the README are taken with some history on the plots.
    if std::env::var("HEATNET_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        std::thread::sleep(Duration::from_secs(90));
    }
    let b = Browser::start(&dir.0);
    let url = format!("http://{dash}/");

    // Network view: every substation in the table and on the map.
    b.goto(&format!("{url}#/network"));
    b.wait_js(
        Duration::from_secs(30),
        "the network table",
        "return document.querySelectorAll('#substations tr[data-kind=substation]').length > 0;",
    );
    for id in &substations {
        let found = b.js(&format!(
            "return !!document.querySelector('#substations tr[data-node=\"{id}\"]') \
             && !!document.querySelector('#map [data-site=\"{id}\"]');"
        ));
        assert_eq!(
            found,
            json!(true),
            "substation {id} missing from the network view"
        );
    }
    b.screenshot("network.png");

    // Click through to a substation: its trends show live data that grows.
    b.click("#map [data-site=\"s03\"]");
    b.wait_js(
        Duration::from_secs(10),
        "the substation page after a click on the map",
        "return location.hash === '#/node/s03' && !!document.querySelector('#trend-temps');",
    );
    let n0 = b
        .wait_js(
            Duration::from_secs(30),
            "substation trends with data",
            "const c = document.querySelector('#trend-temps'); \
             return c && Number(c.dataset.n) > 0 ? Number(c.dataset.n) : null;",
        )
        .as_u64()
        .expect("sample count");
    b.wait_js(
        Duration::from_secs(30),
        "substation trends growing (live data)",
        &format!(
            "const c = document.querySelector('#trend-temps'); \
             const r = document.querySelector('#trend-rooms'); \
             return c && r && Number(c.dataset.n) > {n0} && Number(r.dataset.n) > 0;"
        ),
    );
    b.screenshot("substation.png");
    b.goto(&format!("{url}#/node/s03-b01"));
    b.wait_js(
        Duration::from_secs(30),
        "building trends with data",
        "const c = document.querySelector('#trend-rooms'); return c && Number(c.dataset.n) > 1;",
    );
    b.screenshot("building.png");

    // Curve editor: a point above the limits is refused, next to that point.
    b.goto(&format!("{url}#/curves/radiator"));
    b.wait_js(
        Duration::from_secs(30),
        "the curve editor",
        "return document.querySelectorAll('#curve-points input.pt-sup').length >= 2 \
         && document.querySelectorAll('#preview td.setpoint').length > 0;",
    );
    let points: Vec<(f64, f64)> = serde_json::from_value(b.js(
        "return Array.from(document.querySelectorAll('#curve-points tr[data-i]')).map(r => \
         [parseFloat(r.querySelector('.pt-out').value), parseFloat(r.querySelector('.pt-sup').value)]);",
    ))
    .expect("curve points");
    let max_c = b.js("return parseFloat(document.querySelector('#curve-max').value);");
    let max_c = max_c.as_f64().expect("max limit");
    let (code, before) = http(&dash, "GET", "/api/curve/radiator", None).expect("curve");
    assert_eq!(code, 200);
    let version0 = before["current"]["version"].as_u64().expect("version");
    let bad = 1;
    b.type_into(&format!("#pt-sup-{bad}"), &format!("{}", max_c + 40.0));
    b.type_into("#curve-reason", "browser test: too hot");
    b.click("#curve-save");
    let err = b.wait_js(
        Duration::from_secs(20),
        "the refusal next to the offending point",
        &format!(
            "const e = document.querySelector('#pt-error-{bad}'); \
             return e && e.textContent.length > 0 ? e.textContent : null;"
        ),
    );
    let err = err.as_str().expect("error text").to_string();
    assert!(
        err.contains(&format!("point {bad}")) && err.contains("outside"),
        "refusal does not name point {bad}: {err}"
    );
    let (_, after) = http(&dash, "GET", "/api/curve/radiator", None).expect("curve");
    assert_eq!(
        after["current"]["version"].as_u64(),
        Some(version0),
        "a refused curve must not be stored"
    );
    b.screenshot("curve-refused.png");

    // A valid curve, 25 K lower: the setpoints shown change within seconds.
    b.click("#curve-revert");
    b.wait_js(
        Duration::from_secs(10),
        "the editor reverted",
        "return document.querySelector('#pt-error-1') && document.querySelector('#pt-error-1').textContent === '';",
    );
    let before: Vec<(String, f64)> = poll(Duration::from_secs(30), "setpoints shown", || {
        let s = shown_setpoints(&b);
        (!s.is_empty()).then_some(s)
    });
    let min_c = b
        .js("return parseFloat(document.querySelector('#curve-min').value);")
        .as_f64()
        .expect("min limit");
    for (i, (_, sup)) in points.iter().enumerate() {
        let lowered = (sup - 25.0).max(min_c);
        b.type_into(&format!("#pt-sup-{i}"), &format!("{lowered:.1}"));
    }
    b.type_into("#curve-reason", "browser test: 25 K lower");
    b.click("#curve-save");
    let saved = Instant::now();
    eprintln!("setpoints before the new curve (min {min_c} °C): {before:?}");
    let mut polls = 0u32;
    b.wait_js(
        Duration::from_secs(20),
        "the saved message",
        "const m = document.querySelector('#curve-msg'); return m && m.textContent.includes('saved as version');",
    );
    poll(
        Duration::from_secs(90),
        "every shown setpoint lower by 10 K (or by half its room above the curve's minimum) after the new curve",
        || {
            let now = shown_setpoints(&b);
            polls += 1;
            if polls.is_multiple_of(50) {
                eprintln!(
                    "setpoints shown {:.0} s after saving: {now:?}",
                    saved.elapsed().as_secs_f64()
                );
            }
            // The lowered curve is clamped at its minimum: where the old
            // setpoint was already near it (a mild moment of the day), the
            // drop it can show is smaller.
            let all = before.iter().all(|(id, was)| {
                let drop_k = 10.0f64.min(0.5 * (was - min_c));
                drop_k < 1.0 || now.iter().any(|(n, sp)| n == id && *sp < was - drop_k)
            });
            all.then_some(())
        },
    );
    println!(
        "setpoints shown changed {:.1} s after saving the curve",
        saved.elapsed().as_secs_f64()
    );
    b.wait_js(
        Duration::from_secs(10),
        "the new version in the history",
        "return Array.from(document.querySelectorAll('#curve-history td')).some(t => t.textContent.includes('25 K lower'));",
    );
    b.screenshot("curve-saved.png");

    // Points can be dragged: point 2 dragged up 40 px gets a higher supply temperature.
    let sup2 = |b: &Browser| {
        b.js("return parseFloat(document.querySelector('#pt-sup-2').value);")
            .as_f64()
            .expect("point 2")
    };
    let was = sup2(&b);
    let circle = b
        .find("#curve-plot circle.pt[data-i=\"2\"]")
        .expect("point 2 on the plot");
    b.cmd(
        "POST",
        "/actions",
        Some(json!({"actions": [{
            "type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
            "actions": [
                {"type": "pointerMove", "duration": 0, "origin": {ELEMENT_KEY: circle}, "x": 0, "y": 0},
                {"type": "pointerDown", "button": 0},
                {"type": "pointerMove", "duration": 100, "origin": "pointer", "x": 0, "y": -20},
                {"type": "pointerMove", "duration": 100, "origin": "pointer", "x": 0, "y": -20},
                {"type": "pointerUp", "button": 0},
            ],
        }]})),
    )
    .expect("drag point 2");
    let now = b.wait_js(
        Duration::from_secs(10),
        "point 2 moved up by the drag",
        &format!(
            "const v = parseFloat(document.querySelector('#pt-sup-2').value); return v > {was} + 5 ? v : null;"
        ),
    );
    println!("dragging point 2 up 40 px: {was} -> {now} °C");
    b.click("#curve-revert");

    // Simulator panel: a dropped secondary supply sensor at s02 → safe mode → alarm.
    b.goto(&format!("{url}#/sim"));
    let banner = b.wait_js(
        Duration::from_secs(20),
        "the simulator panel",
        "const e = document.querySelector('#sim-banner'); return e && document.querySelector('#fault-inject') ? e.textContent : null;",
    );
    assert!(banner.as_str().is_some_and(|t| t.contains("SIMULATOR")));
    b.click("#fault-kind option[value=\"sensor_dropout\"]");
    b.click("#fault-device option[value=\"s02\"]");
    b.click("#fault-metric option[value=\"secondary_supply_temp_c\"]");
    b.click("#fault-inject");
    b.wait_js(
        Duration::from_secs(20),
        "the injected fault listed as active",
        "return Array.from(document.querySelectorAll('#faults tr[data-active=true]')).some(r => r.textContent.includes('s02') && r.textContent.includes('sensor_dropout'));",
    );
    b.screenshot("simulator.png");

    b.goto(&format!("{url}#/alarms"));
    let row = "#alarms tr[data-kind=\"local_fallback\"][data-node=\"s02\"]";
    b.wait_js(
        Duration::from_secs(60),
        "a local_fallback alarm for s02 in the alarm list",
        &format!("return !!document.querySelector('{row}[data-state=\"raised\"]');"),
    );
    b.screenshot("alarms.png");
    b.click(&format!("{row} button.ack"));
    b.wait_js(
        Duration::from_secs(20),
        "the alarm shown as acknowledged",
        &format!(
            "const r = document.querySelector('{row}'); return r && r.dataset.state === 'acknowledged' && r.textContent.includes('control-room');"
        ),
    );
    let (_, alarms) = http(&dash, "GET", "/api/alarms", None).expect("alarms");
    let acked = alarms
        .as_array()
        .expect("alarm list")
        .iter()
        .find(|a| a["kind"] == json!("local_fallback") && a["node_id"] == json!("s02"))
        .expect("the alarm");
    assert_eq!(acked["state"], json!("acknowledged"));
    assert_eq!(acked["acknowledged_by"], json!("control-room"));
    b.screenshot("alarms-acknowledged.png");

    // The map coloured by alarm state shows s02's critical alarm; by comfort,
    // every substation gets a comfort colour.
    b.goto(&format!("{url}#/network"));
    b.click("#color-by option[value=\"alarm\"]");
    b.wait_js(
        Duration::from_secs(20),
        "s02 red on the map coloured by alarm state",
        "const c = document.querySelector('#map [data-site=\"s02\"]'); \
         return document.querySelector('#color-by').value === 'alarm' && c && c.getAttribute('fill') === '#f85149';",
    );
    b.screenshot("network-alarms.png");
    b.click("#color-by option[value=\"comfort\"]");
    b.wait_js(
        Duration::from_secs(20),
        "every substation in a comfort colour",
        "const ok = ['#3fb950', '#d29922', '#f85149']; \
         const c = Array.from(document.querySelectorAll('#map circle.site')); \
         return document.querySelector('#color-by').value === 'comfort' && c.length === 6 \
           && c.every(e => ok.includes(e.getAttribute('fill')));",
    );
    b.click("#color-by option[value=\"supply\"]");

    // Override a substation's setpoint from its page; then hand it back.
    b.goto(&format!("{url}#/node/s04"));
    b.type_into("#ovr-temp", "65");
    b.type_into("#ovr-hours", "2");
    b.type_into("#ovr-reason", "browser test: hold 65");
    b.click("#ovr-set");
    b.wait_js(
        Duration::from_secs(30),
        "s04 in override mode with the overridden setpoint",
        "const m = document.querySelector('b.mode-override'); \
         const r = Array.from(document.querySelectorAll('#readings tr')).find(t => t.cells[0].textContent === 'setpoint_c'); \
         return !!m && !!r && Math.abs(parseFloat(r.cells[1].textContent) - 65) < 0.01;",
    );
    b.screenshot("override.png");
    b.click("#ovr-clear");
    b.wait_js(
        Duration::from_secs(30),
        "s04 back under the optimizer",
        "return !!document.querySelector('b.mode-optimizer');",
    );

    // Plants and the season report page.
    b.goto(&format!("{url}#/plants"));
    b.wait_js(
        Duration::from_secs(20),
        "the dispatch plot",
        "const c = document.querySelector('#dispatch'); return c && Number(c.dataset.n) > 0 && !!document.querySelector('#plants tr[data-node=\"plant-a\"]');",
    );
    // The optimizer's plan ahead: planned heat per plant over the horizon.
    // The page is redrawn on a timer: the plan shows once a round has run.
    b.wait_js(
        Duration::from_secs(30),
        "the plan ahead",
        "const c = document.querySelector('#plan-heat'); return !!c && Number(c.dataset.n) > 0;",
    );
    b.screenshot("plants.png");
    b.goto(&format!("{url}#/report"));
    b.wait_js(
        Duration::from_secs(20),
        "the season report page",
        "const e = document.querySelector('#report-missing'); return e && e.textContent.includes('No season report yet');",
    );
    b.screenshot("report.png");
    // ... and a report once `heatnet season` has written one.
    let season = data.join("season");
    std::fs::create_dir_all(&season).expect("season dir");
    std::fs::write(
        season.join("report.json"),
        serde_json::to_vec(&json!({
            "network": "demo",
            "comfort": { "healthy_building_hours_at_or_above_18c_share": 0.9971 },
            "energy": { "heat_produced_gj": 1234.5, "baseline_heat_produced_gj": 1400.0 },
            "daily_heat_gj": [10.5, 11.0, 12.25, 9.75],
        }))
        .expect("report json"),
    )
    .expect("write report.json");
    b.goto(&format!("{url}#/network"));
    b.goto(&format!("{url}#/report"));
    b.wait_js(
        Duration::from_secs(20),
        "the season report's scorecard and plot",
        "const t = document.querySelector('#report'); const c = document.querySelector('svg.chart'); \
         return t && t.textContent.includes('healthy_building_hours_at_or_above_18c_share') \
         && t.textContent.includes('0.997') && c && Number(c.dataset.n) === 4;",
    );

    // Simulator clock and weather from the panel.
    b.goto(&format!("{url}#/sim"));
    b.type_into("#clock-speed", "120");
    b.click("#clock-set");
    b.wait_js(
        Duration::from_secs(20),
        "the clock at ×120",
        "const e = document.querySelector('#sim-clock'); return e && e.textContent.includes('×120');",
    );
    b.click("#cold-snap");
    b.wait_js(
        Duration::from_secs(20),
        "the cold snap applied",
        "const e = document.querySelector('#weather-msg'); return e && e.textContent.includes('offset -15.0 K');",
    );

    // Trends come from the optimizer's stored telemetry: a dashboard killed
    // and restarted by `heatnet up` shows the same history from its start.
    let history = |node: &str| -> Option<Vec<i64>> {
        let (code, v) = http(&dash, "GET", &format!("/api/node/{node}/history"), None).ok()?;
        (code == 200).then_some(())?;
        v["samples"]
            .as_array()?
            .iter()
            .map(|s| s["t_ms"].as_i64())
            .collect()
    };
    let before = history("s03").expect("s03 history");
    assert!(before.len() > 3, "s03 history too short: {before:?}");
    let pid = serde_json::from_str::<Value>(
        &std::fs::read_to_string(data.join("up.json")).expect("up.json"),
    )
    .expect("up.json is json")["pids"]["dashboard"]
        .as_i64()
        .expect("dashboard pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the dashboard");
    let after = poll(
        Duration::from_secs(60),
        "the restarted dashboard's s03 trend back to its earlier length",
        || history("s03").filter(|h| h.len() >= before.len()),
    );
    assert_eq!(
        after.first(),
        before.first(),
        "the restarted dashboard's trend does not start where the stored telemetry does"
    );

    drop(b);
    assert!(
        up.terminate(Duration::from_secs(30)),
        "heatnet up did not stop on SIGTERM:\n{}",
        up.log_tail()
    );
}
