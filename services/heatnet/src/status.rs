//! `heatnet status`: the network as the optimizer sees it.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use model::Metric;
use proto::v1;
use proto::v1::control_room_service_client::ControlRoomServiceClient;
use serde_json::{Value, json};

pub(crate) fn optimizer_address(explicit: Option<String>, data_dir: &Path) -> String {
    explicit
        .or_else(|| heatnet::layout::read_up_file(data_dir).map(|u| u.optimizer))
        .unwrap_or_else(|| format!("127.0.0.1:{}", heatnet::layout::DEFAULT_BASE_PORT + 1))
}

pub(crate) async fn client(
    addr: &str,
) -> anyhow::Result<ControlRoomServiceClient<tonic::transport::Channel>> {
    let channel = observe::grpc::endpoint(addr)?
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .with_context(|| format!("no optimizer answers at {addr}: is `heatnet up` running? (--optimizer to point elsewhere)"))?;
    Ok(proto::control_room_client(channel))
}

pub async fn fetch(addr: &str) -> anyhow::Result<v1::NetworkState> {
    Ok(client(addr)
        .await?
        .get_network_state(v1::GetNetworkStateRequest {})
        .await?
        .into_inner())
}

fn kind_name(k: i32) -> &'static str {
    match v1::NodeKind::try_from(k) {
        Ok(v1::NodeKind::Plant) => "plant",
        Ok(v1::NodeKind::Substation) => "substation",
        Ok(v1::NodeKind::Building) => "building",
        _ => "unknown",
    }
}

fn mode_name(m: i32) -> &'static str {
    match v1::Mode::try_from(m) {
        Ok(v1::Mode::Optimizer) => "optimizer",
        Ok(v1::Mode::Fallback) => "fallback",
        Ok(v1::Mode::Override) => "override",
        Ok(v1::Mode::Safe) => "safe",
        _ => "unknown",
    }
}

fn metric_name(m: i32) -> Option<&'static str> {
    proto::convert::metric("metric", m).ok().map(Metric::name)
}

fn reading(n: &v1::NodeState, m: Metric) -> Option<f64> {
    n.readings
        .iter()
        .find(|r| proto::convert::metric("metric", r.metric).ok() == Some(m))
        .map(|r| r.value)
}

/// Unix ms as `YYYY-MM-DD HH:MM` in China Standard Time.
fn cst(ms: i64) -> String {
    if ms <= 0 {
        return "-".into();
    }
    let secs = ms.div_euclid(1000) + 8 * 3600;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60
    )
}

fn to_json(addr: &str, s: &v1::NetworkState, alarms: &[v1::Alarm]) -> Value {
    json!({
        "optimizer": addr,
        "now_ms": s.now_ms,
        "active_alarms": s.active_alarms,
        "gateways": s.gateways.iter().map(|g| json!({
            "gateway_id": g.gateway_id,
            "online": g.online,
            "status": if g.online { "online" } else { "lost" },
            "instance_id": g.instance_id,
            "last_seen_ms": g.last_seen_ms,
            "last_stored_seq": g.last_stored_seq,
            "batches_stored": g.batches_stored,
            "samples_stored": g.samples_stored,
            "duplicates_dropped": g.duplicates_dropped,
            "sequence_gaps": g.sequence_gaps,
            "registrations": g.registrations,
        })).collect::<Vec<_>>(),
        "nodes": s.nodes.iter().map(|n| {
            let readings: serde_json::Map<String, Value> = n.readings.iter()
                .filter_map(|r| metric_name(r.metric).map(|k| (k.to_string(), json!(r.value))))
                .collect();
            json!({
                "node_id": n.node_id,
                "kind": kind_name(n.kind),
                "parent_id": if n.parent_id.is_empty() { Value::Null } else { json!(n.parent_id) },
                "gateway_id": n.gateway_id,
                "group": if n.group.is_empty() { Value::Null } else { json!(n.group) },
                "online": n.online,
                "status": if n.online { "online" } else { "lost" },
                "mode": mode_name(n.mode),
                "reading_time_ms": n.reading_time_ms,
                "readings": readings,
                "setpoint_c": reading(n, Metric::SetpointC),
                "commanded_setpoint_c": n.commanded_setpoint_c,
            })
        }).collect::<Vec<_>>(),
        "alarms": alarms.iter().map(|a| json!({
            "alarm_id": a.alarm_id,
            "kind": a.kind,
            "node_id": a.node_id,
            "severity": match v1::Severity::try_from(a.severity) {
                Ok(v1::Severity::Critical) => "critical",
                Ok(v1::Severity::Warning) => "warning",
                _ => "info",
            },
            "state": match v1::AlarmState::try_from(a.state) {
                Ok(v1::AlarmState::Acknowledged) => "acknowledged",
                Ok(v1::AlarmState::Cleared) => "cleared",
                _ => "raised",
            },
            "message": a.message,
            "raised_at_ms": a.raised_at_ms,
            "raised_network_ms": (a.raised_network_ms != 0).then_some(a.raised_network_ms),
            "leak": a.leak.as_ref().map(|l| json!({
                "pipe_id": l.pipe_id,
                "from_junction": l.from_junction,
                "to_junction": l.to_junction,
                "junction": l.junction,
                "nodes": l.nodes,
                "alternatives": l.alternatives,
                "leak_kg_s": l.leak_kg_s,
                "deficit_pa": l.deficit_pa,
            })),
        })).collect::<Vec<_>>(),
    })
}

fn fmt(v: Option<f64>, unit: &str, scale: f64, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{:.*}{unit}", digits, x / scale))
}

fn render_text(s: &v1::NetworkState, alarms: &[v1::Alarm]) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let online = s.gateways.iter().filter(|g| g.online).count();
    let net_time = s.nodes.iter().map(|n| n.reading_time_ms).max().unwrap_or(0);
    let _ = writeln!(
        o,
        "heatnet: {online}/{} gateways online, {} active alarms, network time {} (UTC+8)",
        s.gateways.len(),
        s.active_alarms,
        cst(net_time)
    );
    let state = |n: &v1::NodeState| if n.online { "online" } else { "LOST" };
    for n in s
        .nodes
        .iter()
        .filter(|n| n.kind != v1::NodeKind::Building as i32)
    {
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "{:<10} {:<8} {:<6} {:<9} supply {:>8} return {:>8} flow {:>10} heat {:>9} setpoint {:>8} outdoor {:>7}",
            kind_name(n.kind).to_uppercase(),
            n.node_id,
            state(n),
            mode_name(n.mode),
            fmt(reading(n, Metric::SupplyTempC), " °C", 1.0, 1),
            fmt(reading(n, Metric::ReturnTempC), " °C", 1.0, 1),
            fmt(reading(n, Metric::FlowKgS), " kg/s", 1.0, 1),
            fmt(reading(n, Metric::HeatW), " MW", 1e6, 2),
            fmt(reading(n, Metric::SetpointC), " °C", 1.0, 1),
            fmt(reading(n, Metric::OutdoorTempC), " °C", 1.0, 1),
        );
        if n.kind == v1::NodeKind::Substation as i32 {
            let _ = writeln!(
                o,
                "{:<36} secondary supply {:>8} return {:>8} flow {:>10}",
                "",
                fmt(reading(n, Metric::SecondarySupplyTempC), " °C", 1.0, 1),
                fmt(reading(n, Metric::SecondaryReturnTempC), " °C", 1.0, 1),
                fmt(reading(n, Metric::SecondaryFlowKgS), " kg/s", 1.0, 1),
            );
            for b in s.nodes.iter().filter(|b| b.parent_id == n.node_id) {
                let room = reading(b, Metric::RoomTempC);
                let flag = if room.is_some_and(|t| t < model::COMFORT_MIN_ROOM_TEMP_C) {
                    "  < 18 °C"
                } else {
                    ""
                };
                let _ = writeln!(
                    o,
                    "    {:<10} {:<6} room {:>8} heat {:>9} flow {:>9} valve {:>5}{flag}",
                    b.node_id,
                    state(b),
                    fmt(room, " °C", 1.0, 1),
                    fmt(reading(b, Metric::HeatW), " kW", 1e3, 0),
                    fmt(reading(b, Metric::BuildingFlowKgS), " kg/s", 1.0, 2),
                    fmt(
                        reading(b, Metric::ValvePosition).map(|v| v * 100.0),
                        "%",
                        1.0,
                        0
                    ),
                );
            }
        }
    }
    if !alarms.is_empty() {
        let _ = writeln!(o, "\nalarms:");
        for a in alarms {
            let _ = writeln!(
                o,
                "  #{:<4} {:<18} {:<10} {}",
                a.alarm_id, a.kind, a.node_id, a.message
            );
        }
    }
    o
}

pub async fn run(json: bool, optimizer: Option<String>, data_dir: &Path) -> anyhow::Result<()> {
    let addr = optimizer_address(optimizer, data_dir);
    let mut c = client(&addr).await?;
    let state = c
        .get_network_state(v1::GetNetworkStateRequest {})
        .await?
        .into_inner();
    let alarms = c
        .list_alarms(v1::ListAlarmsRequest {
            include_cleared: false,
        })
        .await?
        .into_inner()
        .alarms;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&to_json(&addr, &state, &alarms))?
        );
    } else {
        print!("{}", render_text(&state, &alarms));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::cst;

    #[test]
    fn formats_china_standard_time() {
        // 2026-12-01T00:00:00+08:00
        assert_eq!(cst(1_796_054_400_000), "2026-12-01 00:00");
        assert_eq!(cst(1_796_054_400_000 + 90 * 60_000), "2026-12-01 01:30");
        assert_eq!(cst(0), "-");
    }
}
