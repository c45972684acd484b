//! `heatnet fault inject|clear|list`: faults in the simulator (its own API;
//! the optimizer learns of them only through telemetry).

use clap::{Args, Subcommand, ValueEnum};
use model::Metric;
use proto::v1;
use serde_json::{Value, json};

use super::table::Table;
use super::{Conn, answer, local_time, print_json};

#[derive(Subcommand)]
pub enum FaultCmd {
    /// Break something: a valve, a sensor, a pump, a plant, a pipe.
    Inject(InjectArgs),
    /// Repair a fault by its id.
    Clear(ClearArgs),
    /// Every fault injected, active or cleared.
    List(ListArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Kind {
    /// The device's valve no longer moves (primary or balancing valve).
    StuckValve,
    /// A sensor keeps reporting its last value (needs --metric).
    SensorFrozen,
    /// A sensor reports value + magnitude (needs --metric, --magnitude).
    SensorOffset,
    /// A substation's secondary pump or a plant's pump stops.
    PumpTrip,
    /// A plant stops producing heat.
    PlantTrip,
    /// A sensor's error grows by magnitude per hour (needs --metric, --magnitude).
    SensorDrift,
    /// Gaussian noise of standard deviation magnitude (needs --metric, --magnitude).
    SensorNoise,
    /// A sensor's reading goes missing (needs --metric).
    SensorDropout,
    /// A plant keeps magnitude (0..1] of its capacity (needs --magnitude).
    PlantDerate,
    /// A hole of magnitude mm² in supply pipe --device (a pipe id).
    SupplyLeak,
    /// A hole of magnitude mm² in return pipe --device.
    ReturnLeak,
    /// Supply pipe --device bursts; isolated after magnitude minutes (0: when cleared).
    PipeBurst,
    /// Pipe section --device isolated.
    SectionIsolated,
    /// magnitude kg/s drawn illegally from building --device's heating.
    IllegalDraining,
}

impl Kind {
    fn wire(self) -> v1::FaultKind {
        match self {
            Kind::StuckValve => v1::FaultKind::StuckValve,
            Kind::SensorFrozen => v1::FaultKind::SensorFrozen,
            Kind::SensorOffset => v1::FaultKind::SensorOffset,
            Kind::PumpTrip => v1::FaultKind::PumpTrip,
            Kind::PlantTrip => v1::FaultKind::PlantTrip,
            Kind::SensorDrift => v1::FaultKind::SensorDrift,
            Kind::SensorNoise => v1::FaultKind::SensorNoise,
            Kind::SensorDropout => v1::FaultKind::SensorDropout,
            Kind::PlantDerate => v1::FaultKind::PlantDerate,
            Kind::SupplyLeak => v1::FaultKind::SupplyLeak,
            Kind::ReturnLeak => v1::FaultKind::ReturnLeak,
            Kind::PipeBurst => v1::FaultKind::PipeBurst,
            Kind::SectionIsolated => v1::FaultKind::SectionIsolated,
            Kind::IllegalDraining => v1::FaultKind::IllegalDraining,
        }
    }

    fn from_wire(raw: i32) -> Option<Self> {
        Kind::value_variants()
            .iter()
            .copied()
            .find(|k| k.wire() as i32 == raw)
    }

    fn name(self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    }

    fn needs_metric(self) -> bool {
        matches!(
            self,
            Kind::SensorFrozen
                | Kind::SensorOffset
                | Kind::SensorDrift
                | Kind::SensorNoise
                | Kind::SensorDropout
        )
    }

    fn needs_magnitude(self) -> bool {
        matches!(
            self,
            Kind::SensorOffset
                | Kind::SensorDrift
                | Kind::SensorNoise
                | Kind::PlantDerate
                | Kind::SupplyLeak
                | Kind::ReturnLeak
                | Kind::IllegalDraining
        )
    }
}

#[derive(Args)]
pub struct InjectArgs {
    #[arg(long, value_enum)]
    kind: Kind,
    /// Device (plant, substation, building) or pipe id.
    #[arg(long)]
    device: String,
    /// Sensor faults: which sensor, e.g. secondary_supply_temp_c.
    #[arg(long)]
    metric: Option<String>,
    /// The fault's size (see each kind).
    #[arg(long, allow_hyphen_values = true)]
    magnitude: Option<f64>,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Args)]
pub struct ClearArgs {
    /// The fault's id (from `heatnet fault list`).
    id: u64,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    conn: Conn,
}

/// Checks what can be checked before asking the simulator, which checks the rest.
pub fn fault(
    kind: Kind,
    device: &str,
    metric: Option<&str>,
    magnitude: Option<f64>,
) -> anyhow::Result<v1::Fault> {
    if device.trim().is_empty() {
        anyhow::bail!("--device: missing");
    }
    let metric = match (kind.needs_metric(), metric) {
        (true, None) => anyhow::bail!("--metric: missing; {} needs the sensor", kind.name()),
        (false, Some(_)) => anyhow::bail!("--metric: {} is not a sensor fault", kind.name()),
        (false, None) => 0,
        (true, Some(m)) => {
            let found = Metric::ALL.iter().find(|x| x.name() == m).ok_or_else(|| {
                anyhow::anyhow!(
                    "--metric: unknown metric {m:?}; one of {}",
                    Metric::ALL.map(Metric::name).join(", ")
                )
            })?;
            v1::Metric::from(*found) as i32
        }
    };
    let magnitude = match (kind.needs_magnitude(), magnitude) {
        (true, None) => anyhow::bail!("--magnitude: missing; {} needs it", kind.name()),
        (_, Some(m)) if !m.is_finite() => anyhow::bail!("--magnitude: not a finite number"),
        (_, m) => m.unwrap_or(0.0),
    };
    Ok(v1::Fault {
        kind: kind.wire() as i32,
        device_id: device.to_string(),
        metric,
        magnitude,
    })
}

fn metric_name(raw: i32) -> Option<&'static str> {
    proto::convert::metric("metric", raw).ok().map(Metric::name)
}

fn fault_json(f: &v1::FaultState) -> Value {
    let inner = f.fault.clone().unwrap_or_default();
    json!({
        "fault_id": f.fault_id,
        "kind": Kind::from_wire(inner.kind).map(Kind::name),
        "device_id": inner.device_id,
        "metric": metric_name(inner.metric),
        "magnitude": inner.magnitude,
        "active": f.active,
        "injected_at_ms": f.injected_at_ms,
        "cleared_at_ms": if f.cleared_at_ms > 0 { json!(f.cleared_at_ms) } else { Value::Null },
    })
}

fn render(faults: &[v1::FaultState]) -> String {
    let mut t = Table::new(&[
        "id",
        "state",
        "kind",
        "device",
        "metric",
        "magnitude",
        "injected",
        "cleared",
    ]);
    for f in faults {
        let inner = f.fault.clone().unwrap_or_default();
        t.row(vec![
            f.fault_id.to_string(),
            if f.active { "active" } else { "cleared" }.into(),
            Kind::from_wire(inner.kind)
                .map(Kind::name)
                .unwrap_or_default(),
            inner.device_id,
            metric_name(inner.metric).unwrap_or("-").into(),
            inner.magnitude.to_string(),
            local_time(f.injected_at_ms),
            local_time(f.cleared_at_ms),
        ]);
    }
    t.render()
}

pub async fn run(cmd: FaultCmd) -> anyhow::Result<()> {
    let (conn, faults) = match cmd {
        FaultCmd::Inject(a) => {
            let f = fault(a.kind, &a.device, a.metric.as_deref(), a.magnitude)?;
            let s = answer(
                a.conn
                    .simulator()
                    .await?
                    .inject_fault(v1::InjectFaultRequest { fault: Some(f) })
                    .await,
            )?;
            (a.conn, vec![s])
        }
        FaultCmd::Clear(a) => {
            let s = answer(
                a.conn
                    .simulator()
                    .await?
                    .clear_fault(v1::ClearFaultRequest { fault_id: a.id })
                    .await,
            )?;
            (a.conn, vec![s])
        }
        FaultCmd::List(a) => {
            let r = answer(
                a.conn
                    .simulator()
                    .await?
                    .list_faults(v1::ListFaultsRequest {})
                    .await,
            )?;
            if !a.conn.json && r.faults.is_empty() {
                println!("no faults");
                return Ok(());
            }
            (a.conn, r.faults)
        }
    };
    if conn.json {
        print_json(&json!(faults.iter().map(fault_json).collect::<Vec<_>>()))
    } else {
        print!("{}", render(&faults));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_and_parameters_are_checked() {
        for k in Kind::value_variants() {
            assert_eq!(Kind::from_wire(k.wire() as i32), Some(*k));
        }
        assert_eq!(
            Kind::value_variants().len(),
            14,
            "a new fault kind in the simulator?"
        );
        let f = fault(
            Kind::SensorOffset,
            "s01",
            Some("secondary_supply_temp_c"),
            Some(3.0),
        )
        .expect("valid");
        assert_eq!(f.metric, v1::Metric::SecondarySupplyTempC as i32);
        assert_eq!(
            fault(Kind::PipeBurst, "p1", None, None)
                .expect("burst")
                .magnitude,
            0.0
        );
        for (k, m, mag, want) in [
            (Kind::SensorFrozen, None, None, "--metric: missing"),
            (
                Kind::PumpTrip,
                Some("flow_kg_s"),
                None,
                "not a sensor fault",
            ),
            (
                Kind::SensorNoise,
                Some("nope"),
                Some(1.0),
                "unknown metric \"nope\"",
            ),
            (Kind::PlantDerate, None, None, "--magnitude: missing"),
            (
                Kind::SupplyLeak,
                None,
                Some(f64::NAN),
                "not a finite number",
            ),
        ] {
            let e = fault(k, "x", m, mag).expect_err(want).to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}
