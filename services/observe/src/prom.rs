//! Prometheus metrics over HTTP, beside the OTLP export.
//!
//! A small process-wide registry of counters, gauges and timers rendered in
//! the Prometheus text exposition format (0.0.4) at `GET /metrics`. The
//! endpoint is on when `HEATNET_METRICS_LISTEN` (e.g. `127.0.0.1:7403`) is
//! set; [`crate::init`] starts it. Metric names use dots in code
//! (`heatnet.gateway.scans`) and underscores on the wire
//! (`heatnet_gateway_scans_total`). Every series carries the process's
//! `service` and `instance_id` labels.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

type GaugeFn = Box<dyn Fn() -> Option<f64> + Send + Sync>;

enum Kind {
    Counter(Arc<AtomicU64>),
    /// A value set by the code (f64 bits).
    Gauge(Arc<AtomicU64>),
    /// A value read at scrape time; `None` leaves the series out.
    GaugeFn(GaugeFn),
    /// Count and sum (seconds, f64 bits) of observed durations: a summary without quantiles.
    Timer(Arc<AtomicU64>, Arc<AtomicU64>),
}

struct Entry {
    name: String,
    help: &'static str,
    kind: Kind,
}

struct Registry {
    entries: Mutex<Vec<Entry>>,
    labels: OnceLock<String>,
    started: Instant,
}

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| Registry {
        entries: Mutex::new(Vec::new()),
        labels: OnceLock::new(),
        started: Instant::now(),
    })
}

/// `heatnet.gateway.scans` → `heatnet_gateway_scans`.
pub fn wire_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Sets the constant labels of every series (once; later calls are ignored).
pub(crate) fn set_process_labels(service: &str, instance: &str) {
    let _ = registry().labels.set(format!(
        "service=\"{}\",instance_id=\"{}\"",
        escape_label(service),
        escape_label(instance)
    ));
}

/// Registers a metric, or returns the existing one of the same name and kind.
fn register(name: &str, help: &'static str, make: impl FnOnce() -> Kind) -> Option<Kind> {
    let name = wire_name(name);
    let Ok(mut entries) = registry().entries.lock() else {
        return None;
    };
    if let Some(e) = entries.iter().find(|e| e.name == name) {
        return match &e.kind {
            Kind::Counter(v) => Some(Kind::Counter(v.clone())),
            Kind::Gauge(v) => Some(Kind::Gauge(v.clone())),
            Kind::Timer(c, s) => Some(Kind::Timer(c.clone(), s.clone())),
            Kind::GaugeFn(_) => None,
        };
    }
    let kind = make();
    let handle = match &kind {
        Kind::Counter(v) => Some(Kind::Counter(v.clone())),
        Kind::Gauge(v) => Some(Kind::Gauge(v.clone())),
        Kind::Timer(c, s) => Some(Kind::Timer(c.clone(), s.clone())),
        Kind::GaugeFn(_) => None,
    };
    entries.push(Entry { name, help, kind });
    handle
}

/// A monotonic counter, exported over OTLP (when on) and Prometheus.
#[derive(Clone)]
pub struct Counter {
    otel: opentelemetry::metrics::Counter<u64>,
    value: Arc<AtomicU64>,
}

impl Counter {
    pub(crate) fn new(
        otel: opentelemetry::metrics::Counter<u64>,
        name: &str,
        help: &'static str,
    ) -> Self {
        let value = match register(name, help, || Kind::Counter(Arc::new(AtomicU64::new(0)))) {
            Some(Kind::Counter(v)) => v,
            _ => Arc::new(AtomicU64::new(0)),
        };
        Self { otel, value }
    }

    pub fn add(&self, n: u64, attributes: &[opentelemetry::KeyValue]) {
        self.otel.add(n, attributes);
        self.value.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
}

/// A gauge the code sets.
#[derive(Clone)]
pub struct Gauge(Arc<AtomicU64>);

impl Gauge {
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
}

pub fn gauge(name: &str, help: &'static str) -> Gauge {
    match register(name, help, || Kind::Gauge(Arc::new(AtomicU64::new(0)))) {
        Some(Kind::Gauge(v)) => Gauge(v),
        _ => Gauge(Arc::new(AtomicU64::new(0))),
    }
}

/// A gauge read at scrape time (keep `f` cheap: it runs on every scrape).
pub fn gauge_fn(
    name: &str,
    help: &'static str,
    f: impl Fn() -> Option<f64> + Send + Sync + 'static,
) {
    let _ = register(name, help, || Kind::GaugeFn(Box::new(f)));
}

/// Total size of the files under `dir`, bytes (a sled store's size on disk).
pub fn dir_size_bytes(dir: &std::path::Path) -> Option<u64> {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).ok()? {
            let Ok(entry) = entry else { continue };
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    Some(total)
}

/// Durations, exported as `<name>_count` and `<name>_sum` (seconds).
#[derive(Clone)]
pub struct Timer {
    count: Arc<AtomicU64>,
    sum_s: Arc<AtomicU64>,
}

impl Timer {
    pub fn observe(&self, d: Duration) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum_s
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + d.as_secs_f64()).to_bits())
            });
    }
}

pub fn timer(name: &str, help: &'static str) -> Timer {
    match register(name, help, || {
        Kind::Timer(Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)))
    }) {
        Some(Kind::Timer(count, sum_s)) => Timer { count, sum_s },
        _ => Timer {
            count: Arc::new(AtomicU64::new(0)),
            sum_s: Arc::new(AtomicU64::new(0)),
        },
    }
}

fn resident_memory_bytes() -> Option<f64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: f64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096.0)
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

/// The registry in the Prometheus text format.
pub fn render() -> String {
    let r = registry();
    let labels = r.labels.get().cloned().unwrap_or_default();
    let mut out = String::new();
    let line = |out: &mut String, name: &str, help: &str, ty: &str, samples: &[(&str, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {ty}");
        for (suffix, v) in samples {
            let _ = writeln!(out, "{name}{suffix}{{{labels}}} {}", number(*v));
        }
    };
    line(
        &mut out,
        "heatnet_process_uptime_seconds",
        "seconds since the process started its metrics registry",
        "gauge",
        &[("", r.started.elapsed().as_secs_f64())],
    );
    if let Some(rss) = resident_memory_bytes() {
        line(
            &mut out,
            "heatnet_process_resident_memory_bytes",
            "resident memory of the process",
            "gauge",
            &[("", rss)],
        );
    }
    let Ok(entries) = r.entries.lock() else {
        return out;
    };
    for e in entries.iter() {
        match &e.kind {
            Kind::Counter(v) => line(
                &mut out,
                &format!("{}_total", e.name),
                e.help,
                "counter",
                &[("", v.load(Ordering::Relaxed) as f64)],
            ),
            Kind::Gauge(v) => line(
                &mut out,
                &e.name,
                e.help,
                "gauge",
                &[("", f64::from_bits(v.load(Ordering::Relaxed)))],
            ),
            Kind::GaugeFn(f) => {
                if let Some(v) = f() {
                    line(&mut out, &e.name, e.help, "gauge", &[("", v)]);
                }
            }
            Kind::Timer(c, s) => line(
                &mut out,
                &e.name,
                e.help,
                "summary",
                &[
                    ("_count", c.load(Ordering::Relaxed) as f64),
                    ("_sum", f64::from_bits(s.load(Ordering::Relaxed))),
                ],
            ),
        }
    }
    out
}

/// Binds `addr` now (so a taken port is an error at start-up) and serves
/// `GET /metrics` on the current tokio runtime.
pub fn serve(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let std_listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("binding the metrics endpoint {addr}"))?;
    std_listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(std_listener)
        .context("registering the metrics listener")?;
    tracing::info!(listen = %addr, "prometheus metrics at /metrics");
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            tokio::spawn(async move {
                let mut buf = Vec::with_capacity(1024);
                let mut chunk = [0u8; 1024];
                let read = tokio::time::timeout(Duration::from_secs(5), async {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
                        let n = conn.read(&mut chunk).await?;
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    Ok::<_, std::io::Error>(())
                })
                .await;
                if !matches!(read, Ok(Ok(()))) {
                    return;
                }
                let request = String::from_utf8_lossy(&buf);
                let path = request.split_whitespace().nth(1).unwrap_or("");
                let (status, ctype, body) = if request.starts_with("GET ")
                    && (path == "/metrics" || path.starts_with("/metrics?"))
                {
                    (
                        "200 OK",
                        "text/plain; version=0.0.4; charset=utf-8",
                        render(),
                    )
                } else {
                    (
                        "404 Not Found",
                        "text/plain; charset=utf-8",
                        "metrics are at /metrics\n".to_string(),
                    )
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes()).await;
                let _ = conn.write_all(body.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_timers_in_the_text_format() {
        set_process_labels("heatnet-test", "t1");
        let c = Counter::new(
            opentelemetry::global::meter("test")
                .u64_counter("x")
                .build(),
            "heatnet.test.things",
            "things counted",
        );
        c.add(3, &[]);
        // The same name again shares the value.
        Counter::new(
            opentelemetry::global::meter("test")
                .u64_counter("x")
                .build(),
            "heatnet.test.things",
            "things counted",
        )
        .add(2, &[]);
        gauge("heatnet.test.level", "a level").set(2.5);
        gauge_fn("heatnet.test.absent", "left out", || None);
        timer("heatnet.test.round_seconds", "rounds").observe(Duration::from_millis(250));
        let text = render();
        assert!(
            text.contains("# TYPE heatnet_test_things_total counter"),
            "{text}"
        );
        assert!(
            text.contains(
                "heatnet_test_things_total{service=\"heatnet-test\",instance_id=\"t1\"} 5"
            ),
            "{text}"
        );
        assert!(
            text.contains("heatnet_test_level{service=\"heatnet-test\",instance_id=\"t1\"} 2.5")
        );
        assert!(text.contains(
            "heatnet_test_round_seconds_count{service=\"heatnet-test\",instance_id=\"t1\"} 1"
        ));
        assert!(text.contains(
            "heatnet_test_round_seconds_sum{service=\"heatnet-test\",instance_id=\"t1\"} 0.25"
        ));
        assert!(!text.contains("heatnet_test_absent{"));
        assert!(text.contains("heatnet_process_uptime_seconds{"));
    }
}
