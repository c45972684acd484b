//! Observability shared by every heatnet process.
//!
//! - [`init`] sets up `tracing` (human-readable or JSON logs, filter from
//!   `HEATNET_LOG`, default `info`), and, only when an OTLP endpoint is
//!   configured (`HEATNET_OTLP_ENDPOINT`, e.g. `http://127.0.0.1:4317`), exports
//!   traces and metrics over OTLP/gRPC. Control data never travels over OTel.
//! - [`grpc`] carries W3C trace context across gRPC calls, and builds the
//!   standard health and reflection services every server exposes.
//! - [`prom`] keeps counters, gauges and timers and serves them to Prometheus
//!   at `GET /metrics` when `HEATNET_METRICS_LISTEN` is set.

pub mod grpc;
pub mod prom;

/// A counter in the process's OTel meter (a no-op while OTLP export is off)
/// and in the Prometheus registry. Create counters after [`init`].
pub fn counter(name: &'static str, description: &'static str) -> Counter {
    let otel = opentelemetry::global::meter("heatnet")
        .u64_counter(name)
        .with_description(description)
        .build();
    Counter::new(otel, name, description)
}

pub use prom::{Counter, Gauge, Timer, gauge, gauge_fn, timer};

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Where and how a process reports.
#[derive(Clone, Debug, Default)]
pub struct ObserveConfig {
    /// `service.name` of the process in traces and metrics, e.g. `heatnet-gateway`.
    pub service_name: String,
    /// Instance identity (gateway id, ...), added as `service.instance.id`.
    pub instance: String,
    /// OTLP/gRPC endpoint; `None` keeps OTel export off.
    pub otlp_endpoint: Option<String>,
    /// Logs as JSON lines instead of text.
    pub json_logs: bool,
    /// How often metrics are exported over OTLP.
    pub metrics_interval: std::time::Duration,
    /// Where Prometheus scrapes `GET /metrics`; `None` keeps the endpoint off.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

impl ObserveConfig {
    /// Reads `HEATNET_OTLP_ENDPOINT`, `HEATNET_LOG_FORMAT` (`json` or `text`) and
    /// `HEATNET_METRICS_LISTEN` (the Prometheus endpoint, e.g. `127.0.0.1:7403`).
    pub fn from_env(service_name: &str, instance: &str) -> Self {
        Self {
            service_name: service_name.to_string(),
            instance: instance.to_string(),
            otlp_endpoint: std::env::var("HEATNET_OTLP_ENDPOINT")
                .ok()
                .filter(|s| !s.is_empty()),
            json_logs: std::env::var("HEATNET_LOG_FORMAT").is_ok_and(|v| v == "json"),
            metrics_interval: std::time::Duration::from_millis(
                std::env::var("HEATNET_OTLP_METRICS_INTERVAL_MS")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(10_000)
                    .clamp(100, 3_600_000),
            ),
            metrics_listen: std::env::var("HEATNET_METRICS_LISTEN")
                .ok()
                .filter(|s| !s.is_empty())
                .and_then(|s| s.parse().ok()),
        }
    }
}

/// Keeps exporters alive; flushes and shuts them down on drop.
#[must_use = "dropping the guard stops the OTLP export"]
pub struct Guard {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(t) = self.tracer.take() {
            let _ = t.shutdown();
        }
        if let Some(m) = self.meter.take() {
            let _ = m.shutdown();
        }
    }
}

/// Starts the Prometheus endpoint if configured. A taken port is logged, not
/// fatal: metrics must not stop a gateway or the optimizer.
fn start_metrics(cfg: &ObserveConfig) {
    let Some(addr) = cfg.metrics_listen else {
        return;
    };
    if let Err(e) = prom::serve(addr) {
        tracing::error!(error = %format!("{e:#}"), "prometheus metrics endpoint not started");
    }
}

/// Installs the global tracing subscriber. Call once, inside the tokio runtime.
pub fn init(cfg: &ObserveConfig) -> anyhow::Result<Guard> {
    let filter = || {
        EnvFilter::try_from_env("HEATNET_LOG").unwrap_or_else(|_| {
            EnvFilter::new("info,h2=warn,hyper=warn,tower=warn,sled=warn,opentelemetry_sdk=warn")
        })
    };
    let fmt = if cfg.json_logs {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_filter(filter())
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .with_filter(filter())
            .boxed()
    };
    prom::set_process_labels(&cfg.service_name, &cfg.instance);
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let Some(endpoint) = cfg.otlp_endpoint.clone() else {
        tracing_subscriber::registry()
            .with(fmt)
            .try_init()
            .context("installing the tracing subscriber")?;
        start_metrics(cfg);
        return Ok(Guard {
            tracer: None,
            meter: None,
        });
    };

    use opentelemetry_otlp::WithExportConfig as _;
    let resource = Resource::builder()
        .with_service_name(cfg.service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new(
            "service.instance.id",
            cfg.instance.clone(),
        ))
        .build();
    let span_exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.clone())
        .build()
        .context("building the OTLP span exporter")?;
    // The async-runtime batch processor exports on our tokio runtime (tonic
    // needs a reactor; the default processor's own thread has none).
    let processor =
        opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
            span_exporter,
            opentelemetry_sdk::runtime::Tokio,
        )
        .build();
    let tracer_provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource.clone())
        .build();
    let tracer = tracer_provider.tracer("heatnet");

    let metric_exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .context("building the OTLP metric exporter")?;
    let reader =
        opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader::builder(
            metric_exporter,
            opentelemetry_sdk::runtime::Tokio,
        )
        .with_interval(cfg.metrics_interval)
        .build();
    let meter_provider = SdkMeterProvider::builder()
        .with_reader(reader)
        .with_resource(resource)
        .build();
    opentelemetry::global::set_meter_provider(meter_provider.clone());

    tracing_subscriber::registry()
        .with(fmt)
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(filter()),
        )
        .with(
            tracing_opentelemetry::MetricsLayer::new(meter_provider.clone()).with_filter(filter()),
        )
        .try_init()
        .context("installing the tracing subscriber")?;
    start_metrics(cfg);
    Ok(Guard {
        tracer: Some(tracer_provider),
        meter: Some(meter_provider),
    })
}
