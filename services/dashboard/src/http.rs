//! Routes: the embedded app and the JSON API.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::App;
use crate::grpc::EdgeError;
use crate::view::{CurveRequest, FaultRequest};

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");

type St = State<Arc<App>>;

pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { page(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/app.js",
            get(|| async { page(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/app.css",
            get(|| async { page(APP_CSS, "text/css; charset=utf-8") }),
        )
        .route("/api/config", get(config))
        .route("/api/state", get(state))
        .route("/api/node/{id}/history", get(node_history))
        .route("/api/alarms", get(alarms))
        .route("/api/plan", get(plan))
        .route("/api/alarms/{id}/ack", post(ack))
        .route("/api/curve/{group}", get(curve).post(set_curve))
        .route("/api/override/{node}", post(set_override))
        .route("/api/override/{node}/clear", post(clear_override))
        .route("/api/sim", get(sim))
        .route("/api/sim/faults", post(inject_fault))
        .route("/api/sim/faults/{id}/clear", post(clear_fault))
        .route("/api/sim/clock", post(set_clock))
        .route("/api/sim/weather", post(set_weather))
        .route("/api/report", get(report))
        .with_state(app)
}

fn page(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

fn edge(e: EdgeError) -> Response {
    let code = match e {
        EdgeError::NoSimulator => StatusCode::NOT_FOUND,
        EdgeError::Invalid(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::BAD_GATEWAY,
    };
    (code, Json(json!({ "error": e.to_string() }))).into_response()
}

fn ok<T: serde::Serialize>(r: Result<T, EdgeError>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => edge(e),
    }
}

async fn config(State(app): St) -> Response {
    Json(json!({
        "optimizer": app.cfg.optimizer,
        "simulator": app.cfg.simulator,
        "layout": app.layout,
        "fault_kinds": crate::grpc::fault_kind_names(),
        "metrics": model::Metric::ALL.iter().map(|m| m.name()).collect::<Vec<_>>(),
    }))
    .into_response()
}

async fn state(State(app): St) -> Response {
    ok(app.clients.snapshot().await)
}

async fn node_history(State(app): St, Path(id): Path<String>) -> Response {
    let samples = app.history.lock().map(|h| h.node(&id)).unwrap_or_default();
    Json(json!({ "node_id": id, "samples": samples })).into_response()
}

#[derive(Deserialize)]
struct AlarmQuery {
    #[serde(default)]
    history: bool,
}

async fn alarms(State(app): St, Query(q): Query<AlarmQuery>) -> Response {
    ok(app.clients.alarms(q.history).await)
}

async fn plan(State(app): St) -> Response {
    ok(app.clients.plan().await)
}

#[derive(Deserialize)]
struct AckBody {
    user: String,
}

async fn ack(State(app): St, Path(id): Path<u64>, Json(b): Json<AckBody>) -> Response {
    ok(app.clients.ack_alarm(id, &b.user).await)
}

async fn curve(State(app): St, Path(group): Path<String>) -> Response {
    match app.clients.curve(&group).await {
        Ok((current, history)) => {
            Json(json!({ "current": current, "history": history })).into_response()
        }
        Err(e) => edge(e),
    }
}

async fn set_curve(
    State(app): St,
    Path(group): Path<String>,
    Json(b): Json<CurveRequest>,
) -> Response {
    match app
        .clients
        .set_curve(
            &group,
            &b.points,
            (b.min_supply_temp_c, b.max_supply_temp_c),
            &b.author,
            &b.reason,
        )
        .await
    {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(refused)) => (StatusCode::UNPROCESSABLE_ENTITY, Json(refused)).into_response(),
        Err(e) => edge(e),
    }
}

#[derive(Deserialize)]
struct OverrideBody {
    supply_temp_c: f64,
    duration_s: u32,
    author: String,
    #[serde(default)]
    reason: String,
}

async fn set_override(
    State(app): St,
    Path(node): Path<String>,
    Json(b): Json<OverrideBody>,
) -> Response {
    ok(app
        .clients
        .set_override(
            &node,
            Some(b.supply_temp_c),
            b.duration_s,
            &b.author,
            &b.reason,
        )
        .await
        .map(|id| json!({ "command_id": id })))
}

#[derive(Deserialize)]
struct ClearBody {
    author: String,
}

async fn clear_override(
    State(app): St,
    Path(node): Path<String>,
    Json(b): Json<ClearBody>,
) -> Response {
    ok(app
        .clients
        .set_override(&node, None, 0, &b.author, "")
        .await
        .map(|id| json!({ "command_id": id })))
}

async fn sim(State(app): St) -> Response {
    if !app.clients.has_simulator() {
        return Json(json!({ "enabled": false })).into_response();
    }
    match app.clients.sim_state().await {
        Ok((clock, faults, devices)) => Json(json!({
            "enabled": true,
            "clock": clock,
            "faults": faults,
            "devices": devices,
        }))
        .into_response(),
        Err(e) => edge(e),
    }
}

async fn inject_fault(State(app): St, Json(f): Json<FaultRequest>) -> Response {
    ok(app.clients.inject_fault(&f).await)
}

async fn clear_fault(State(app): St, Path(id): Path<u64>) -> Response {
    ok(app.clients.clear_fault(id).await)
}

#[derive(Deserialize)]
struct ClockBody {
    speed: Option<f64>,
    paused: Option<bool>,
}

async fn set_clock(State(app): St, Json(b): Json<ClockBody>) -> Response {
    ok(app.clients.set_clock(b.speed, b.paused).await)
}

#[derive(Deserialize)]
struct WeatherBody {
    outdoor_offset_k: f64,
}

async fn set_weather(State(app): St, Json(b): Json<WeatherBody>) -> Response {
    ok(app
        .clients
        .set_weather(b.outdoor_offset_k)
        .await
        .map(|(t, off)| json!({ "outdoor_temp_c": t, "outdoor_offset_k": off })))
}

async fn report(State(app): St) -> Response {
    let Some(dir) = &app.cfg.report_dir else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "no season report yet (no report directory configured)" })),
        )
            .into_response();
    };
    let path = dir.join("report.json");
    match tokio::fs::read(&path).await {
        Ok(bytes) => match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(v) => Json(v).into_response(),
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({ "error": format!("{} is not valid JSON: {e}", path.display()) })),
            )
                .into_response(),
        },
        Err(_) => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("no season report yet ({} not found; run heatnet season)", path.display()) })),
        )
            .into_response(),
    }
}
