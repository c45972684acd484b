//! OTLP export is opt-in by configuration and carries trace context across
//! gRPC: a fake OTLP collector receives the gateway's and the optimizer's spans
//! and metrics, and the optimizer's `register` span belongs to the gateway's trace.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::resource::v1::Resource;

#[derive(Clone, Debug)]
struct SpanSeen {
    service: String,
    name: String,
    trace_id: Vec<u8>,
    parent_span_id: Vec<u8>,
}

#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<SpanSeen>>>,
    metrics: Arc<Mutex<Vec<(String, String)>>>,
}

fn service_name(r: Option<&Resource>) -> String {
    r.into_iter()
        .flat_map(|r| &r.attributes)
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| match &v.value {
            Some(Value::StringValue(s)) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().expect("lock");
        for rs in req.into_inner().resource_spans {
            let service = service_name(rs.resource.as_ref());
            for ss in rs.scope_spans {
                for s in ss.spans {
                    spans.push(SpanSeen {
                        service: service.clone(),
                        name: s.name,
                        trace_id: s.trace_id,
                        parent_span_id: s.parent_span_id,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        req: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let mut seen = self.metrics.lock().expect("lock");
        for rm in req.into_inner().resource_metrics {
            let service = service_name(rm.resource.as_ref());
            for sm in rm.scope_metrics {
                for m in sm.metrics {
                    seen.push((service.clone(), m.name));
                }
            }
        }
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_export_carries_trace_context_from_gateway_to_optimizer() {
    let _rng = seeded_rng("observability");
    let dir = TempDir::new("observability");
    let base = free_port_block(30);
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", base + 29))
        .await
        .expect("bind collector");
    let endpoint = format!("http://127.0.0.1:{}", base + 29);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .add_service(MetricsServiceServer::new(collector.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let env = [
        ("HEATNET_OTLP_ENDPOINT", endpoint.as_str()),
        ("HEATNET_OTLP_METRICS_INTERVAL_MS", "500"),
    ];
    let sim_addr = format!("127.0.0.1:{base}");
    let opt_addr = format!("127.0.0.1:{}", base + 1);
    let net = model::Network::sample("demo").expect("demo");
    let configs =
        heatnet::configs::gateway_configs(&net, &dir.0, &opt_addr, &sim_addr, base, 30_000)
            .expect("configs");
    let s01 = configs
        .iter()
        .find(|c| c.gateway_id.as_str() == "s01")
        .expect("s01");
    let config_path = dir.0.join("s01.toml");
    std::fs::write(&config_path, s01.to_toml()).expect("config");
    let _sim = Proc::start_with_env(
        &dir.0,
        "sim",
        &bin("heatnet-sim"),
        &[
            "--data-dir".into(),
            dir.0.join("sim").display().to_string(),
            "--listen".into(),
            sim_addr.clone(),
        ],
        &env,
    );
    let _opt = Proc::start_with_env(
        &dir.0,
        "optimizer",
        &bin("heatnet-optimizer"),
        &[
            "--data-dir".into(),
            dir.0.join("opt").display().to_string(),
            "--listen".into(),
            opt_addr.clone(),
        ],
        &env,
    );
    let _gw = Proc::start_with_env(
        &dir.0,
        "gateway-s01",
        &bin("heatnet-gateway"),
        &[
            "run".into(),
            "--config".into(),
            config_path.display().to_string(),
        ],
        &env,
    );

    let spans = collector.spans.clone();
    let (gw_span, opt_span) = wait_for(
        Duration::from_secs(45),
        "linked gateway and optimizer spans at the collector",
        || {
            let spans = spans.clone();
            async move {
                let spans = spans.lock().ok()?.clone();
                let gw = spans.iter().find(|s| {
                    s.service == "heatnet-gateway" && s.name == "register_with_optimizer"
                })?;
                let opt = spans.iter().find(|s| {
                    s.service == "heatnet-optimizer"
                        && s.name == "register"
                        && s.trace_id == gw.trace_id
                })?;
                Some((gw.clone(), opt.clone()))
            }
        },
    )
    .await;
    assert!(
        !opt_span.parent_span_id.is_empty(),
        "the optimizer's span has no remote parent"
    );
    assert_eq!(gw_span.trace_id, opt_span.trace_id);

    let metrics = collector.metrics.clone();
    wait_for(
        Duration::from_secs(30),
        "metrics from both processes at the collector",
        || {
            let metrics = metrics.clone();
            async move {
                let m = metrics.lock().ok()?.clone();
                let opt = m.iter().any(|(s, n)| {
                    s == "heatnet-optimizer" && n == "heatnet.telemetry.batches_stored"
                });
                let gw = m
                    .iter()
                    .any(|(s, n)| s == "heatnet-gateway" && n == "heatnet.gateway.scans");
                (opt && gw).then_some(())
            }
        },
    )
    .await;
}
