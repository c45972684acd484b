//! `TryFrom` conversions from wire types into domain types, and `From` back.

use model::network::{PLANT_SUPPLY_LIMITS_C, SECONDARY_SUPPLY_LIMITS_C};
use model::{
    Action, ActorSnapshot, Command, CommandOutcome, CommandResult, CurveError, CurvePoint, IdError,
    Metric, Mode, NodeId, NodeKind, Reading, SupplyCurve, TelemetryBatch,
};
use prost::Message;

use crate::v1;

/// Most snapshots one telemetry batch may carry.
pub const MAX_SNAPSHOTS_PER_BATCH: usize = 4096;
/// Most readings one snapshot may carry.
pub const MAX_READINGS_PER_SNAPSHOT: usize = 64;

/// Why a wire message was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConversionError {
    #[error("{field}: missing")]
    MissingField { field: String },
    #[error("{field}: unspecified; give one of the enum's values")]
    Unspecified { field: String },
    #[error("{field}: unknown enum value {value}")]
    UnknownEnum { field: String, value: i32 },
    #[error("{field}: {value} is out of range: {reason}")]
    OutOfRange {
        field: String,
        value: f64,
        reason: String,
    },
    #[error("{field}: {source}")]
    BadId { field: String, source: IdError },
    #[error("{field}: unknown node {id}")]
    UnknownNode { field: String, id: String },
    #[error("{field}: {source}")]
    Curve { field: String, source: CurveError },
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("stored batch is not decodable: {0}")]
    Decode(String),
}

impl From<ConversionError> for tonic::Status {
    fn from(e: ConversionError) -> Self {
        tonic::Status::invalid_argument(e.to_string())
    }
}

fn missing(field: &str) -> ConversionError {
    ConversionError::MissingField {
        field: field.to_string(),
    }
}

pub fn node_id(field: &str, raw: &str) -> Result<NodeId, ConversionError> {
    if raw.is_empty() {
        return Err(missing(field));
    }
    NodeId::new(raw).map_err(|source| ConversionError::BadId {
        field: field.to_string(),
        source,
    })
}

fn finite(field: &str, value: f64) -> Result<f64, ConversionError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(ConversionError::OutOfRange {
            field: field.to_string(),
            value,
            reason: "not a finite number".into(),
        })
    }
}

/// A finite number inside `[lo, hi]`.
pub fn in_range(field: &str, value: f64, (lo, hi): (f64, f64)) -> Result<f64, ConversionError> {
    finite(field, value)?;
    if value < lo || value > hi {
        return Err(ConversionError::OutOfRange {
            field: field.to_string(),
            value,
            reason: format!("allowed {lo}..{hi}"),
        });
    }
    Ok(value)
}

// ---- enums -------------------------------------------------------------

pub fn metric(field: &str, raw: i32) -> Result<Metric, ConversionError> {
    let m = v1::Metric::try_from(raw).map_err(|_| ConversionError::UnknownEnum {
        field: field.to_string(),
        value: raw,
    })?;
    Ok(match m {
        v1::Metric::Unspecified => {
            return Err(ConversionError::Unspecified {
                field: field.to_string(),
            });
        }
        v1::Metric::SupplyTempC => Metric::SupplyTempC,
        v1::Metric::ReturnTempC => Metric::ReturnTempC,
        v1::Metric::FlowKgS => Metric::FlowKgS,
        v1::Metric::HeatW => Metric::HeatW,
        v1::Metric::SecondarySupplyTempC => Metric::SecondarySupplyTempC,
        v1::Metric::SecondaryReturnTempC => Metric::SecondaryReturnTempC,
        v1::Metric::SecondaryFlowKgS => Metric::SecondaryFlowKgS,
        v1::Metric::RoomTempC => Metric::RoomTempC,
        v1::Metric::OutdoorTempC => Metric::OutdoorTempC,
        v1::Metric::ValvePosition => Metric::ValvePosition,
        v1::Metric::SetpointC => Metric::SetpointC,
        v1::Metric::DiffPressurePa => Metric::DiffPressurePa,
        v1::Metric::PumpRunning => Metric::PumpRunning,
        v1::Metric::BuildingFlowKgS => Metric::BuildingFlowKgS,
        v1::Metric::BuildingReturnTempC => Metric::BuildingReturnTempC,
        v1::Metric::SecondaryDiffPressurePa => Metric::SecondaryDiffPressurePa,
        v1::Metric::ReturnFlowKgS => Metric::ReturnFlowKgS,
        v1::Metric::SupplyPressurePa => Metric::SupplyPressurePa,
        v1::Metric::ReturnPressurePa => Metric::ReturnPressurePa,
        v1::Metric::MakeupFlowKgS => Metric::MakeupFlowKgS,
        v1::Metric::HoldingPressurePa => Metric::HoldingPressurePa,
        v1::Metric::TankTempC => Metric::TankTempC,
        v1::Metric::CollectorHeatW => Metric::CollectorHeatW,
    })
}

impl From<Metric> for v1::Metric {
    fn from(m: Metric) -> Self {
        match m {
            Metric::SupplyTempC => v1::Metric::SupplyTempC,
            Metric::ReturnTempC => v1::Metric::ReturnTempC,
            Metric::FlowKgS => v1::Metric::FlowKgS,
            Metric::HeatW => v1::Metric::HeatW,
            Metric::SecondarySupplyTempC => v1::Metric::SecondarySupplyTempC,
            Metric::SecondaryReturnTempC => v1::Metric::SecondaryReturnTempC,
            Metric::SecondaryFlowKgS => v1::Metric::SecondaryFlowKgS,
            Metric::RoomTempC => v1::Metric::RoomTempC,
            Metric::OutdoorTempC => v1::Metric::OutdoorTempC,
            Metric::ValvePosition => v1::Metric::ValvePosition,
            Metric::SetpointC => v1::Metric::SetpointC,
            Metric::DiffPressurePa => v1::Metric::DiffPressurePa,
            Metric::PumpRunning => v1::Metric::PumpRunning,
            Metric::BuildingFlowKgS => v1::Metric::BuildingFlowKgS,
            Metric::BuildingReturnTempC => v1::Metric::BuildingReturnTempC,
            Metric::SecondaryDiffPressurePa => v1::Metric::SecondaryDiffPressurePa,
            Metric::ReturnFlowKgS => v1::Metric::ReturnFlowKgS,
            Metric::SupplyPressurePa => v1::Metric::SupplyPressurePa,
            Metric::ReturnPressurePa => v1::Metric::ReturnPressurePa,
            Metric::MakeupFlowKgS => v1::Metric::MakeupFlowKgS,
            Metric::HoldingPressurePa => v1::Metric::HoldingPressurePa,
            Metric::TankTempC => v1::Metric::TankTempC,
            Metric::CollectorHeatW => v1::Metric::CollectorHeatW,
        }
    }
}

pub fn mode(field: &str, raw: i32) -> Result<Mode, ConversionError> {
    match v1::Mode::try_from(raw) {
        Ok(v1::Mode::Optimizer) => Ok(Mode::Optimizer),
        Ok(v1::Mode::Fallback) => Ok(Mode::Fallback),
        Ok(v1::Mode::Override) => Ok(Mode::Override),
        Ok(v1::Mode::Safe) => Ok(Mode::Safe),
        Ok(v1::Mode::Unspecified) => Err(ConversionError::Unspecified {
            field: field.to_string(),
        }),
        Err(_) => Err(ConversionError::UnknownEnum {
            field: field.to_string(),
            value: raw,
        }),
    }
}

impl From<Mode> for v1::Mode {
    fn from(m: Mode) -> Self {
        match m {
            Mode::Optimizer => v1::Mode::Optimizer,
            Mode::Fallback => v1::Mode::Fallback,
            Mode::Override => v1::Mode::Override,
            Mode::Safe => v1::Mode::Safe,
        }
    }
}

pub fn node_kind(field: &str, raw: i32) -> Result<NodeKind, ConversionError> {
    match v1::NodeKind::try_from(raw) {
        Ok(v1::NodeKind::Plant) => Ok(NodeKind::Plant),
        Ok(v1::NodeKind::Substation) => Ok(NodeKind::Substation),
        Ok(v1::NodeKind::Building) => Ok(NodeKind::Building),
        Ok(v1::NodeKind::Unspecified) => Err(ConversionError::Unspecified {
            field: field.to_string(),
        }),
        Err(_) => Err(ConversionError::UnknownEnum {
            field: field.to_string(),
            value: raw,
        }),
    }
}

impl From<NodeKind> for v1::NodeKind {
    fn from(k: NodeKind) -> Self {
        match k {
            NodeKind::Plant => v1::NodeKind::Plant,
            NodeKind::Substation => v1::NodeKind::Substation,
            NodeKind::Building => v1::NodeKind::Building,
        }
    }
}

// ---- telemetry ---------------------------------------------------------

fn reading(field: &str, r: &v1::Reading) -> Result<Reading, ConversionError> {
    let m = metric(&format!("{field}.metric"), r.metric)?;
    let value = in_range(&format!("{field}.value"), r.value, m.plausible_range())?;
    Ok(Reading::new(m, value))
}

impl From<Reading> for v1::Reading {
    fn from(r: Reading) -> Self {
        v1::Reading {
            metric: v1::Metric::from(r.metric) as i32,
            value: r.value,
        }
    }
}

/// Readings from a wire list, each checked.
pub fn readings(field: &str, list: &[v1::Reading]) -> Result<Vec<Reading>, ConversionError> {
    if list.len() > MAX_READINGS_PER_SNAPSHOT {
        return Err(ConversionError::Invalid {
            field: field.to_string(),
            reason: format!(
                "{} readings, at most {MAX_READINGS_PER_SNAPSHOT}",
                list.len()
            ),
        });
    }
    list.iter()
        .enumerate()
        .map(|(i, r)| reading(&format!("{field}[{i}]"), r))
        .collect()
}

impl TryFrom<&v1::ActorSnapshot> for ActorSnapshot {
    type Error = ConversionError;
    fn try_from(s: &v1::ActorSnapshot) -> Result<Self, Self::Error> {
        Ok(ActorSnapshot {
            actor_id: node_id("actor_id", &s.actor_id)?,
            time_ms: positive_time("time_ms", s.time_ms)?,
            mode: mode("mode", s.mode)?,
            readings: readings("readings", &s.readings)?,
        })
    }
}

fn positive_time(field: &str, t: i64) -> Result<i64, ConversionError> {
    if t <= 0 {
        return Err(ConversionError::OutOfRange {
            field: field.to_string(),
            value: t as f64,
            reason: "must be a positive Unix time in milliseconds".into(),
        });
    }
    Ok(t)
}

impl From<&ActorSnapshot> for v1::ActorSnapshot {
    fn from(s: &ActorSnapshot) -> Self {
        v1::ActorSnapshot {
            actor_id: s.actor_id.to_string(),
            time_ms: s.time_ms,
            mode: v1::Mode::from(s.mode) as i32,
            readings: s.readings.iter().map(|r| v1::Reading::from(*r)).collect(),
        }
    }
}

impl TryFrom<&v1::TelemetryBatch> for TelemetryBatch {
    type Error = ConversionError;
    fn try_from(b: &v1::TelemetryBatch) -> Result<Self, Self::Error> {
        if b.seq == 0 {
            return Err(ConversionError::OutOfRange {
                field: "batch.seq".into(),
                value: 0.0,
                reason: "sequence numbers start at 1".into(),
            });
        }
        // An empty batch is a placeholder: its snapshots were condensed into an
        // earlier batch by the gateway's outbox (the numbering stays gap-free).
        if b.snapshots.len() > MAX_SNAPSHOTS_PER_BATCH {
            return Err(ConversionError::Invalid {
                field: "batch.snapshots".into(),
                reason: format!(
                    "{} snapshots, at most {MAX_SNAPSHOTS_PER_BATCH}",
                    b.snapshots.len()
                ),
            });
        }
        let snapshots = b
            .snapshots
            .iter()
            .enumerate()
            .map(|(i, s)| {
                ActorSnapshot::try_from(s).map_err(|e| prefix(&format!("batch.snapshots[{i}]"), e))
            })
            .collect::<Result<_, _>>()?;
        Ok(TelemetryBatch {
            seq: b.seq,
            snapshots,
        })
    }
}

impl From<&TelemetryBatch> for v1::TelemetryBatch {
    fn from(b: &TelemetryBatch) -> Self {
        v1::TelemetryBatch {
            seq: b.seq,
            snapshots: b.snapshots.iter().map(v1::ActorSnapshot::from).collect(),
        }
    }
}

/// Refuses a batch that names an actor the sender does not host.
pub fn check_known_actors(
    batch: &TelemetryBatch,
    known: impl Fn(&NodeId) -> bool,
) -> Result<(), ConversionError> {
    for (i, s) in batch.snapshots.iter().enumerate() {
        if !known(&s.actor_id) {
            return Err(ConversionError::UnknownNode {
                field: format!("batch.snapshots[{i}].actor_id"),
                id: s.actor_id.to_string(),
            });
        }
    }
    Ok(())
}

/// The compact stored form of a batch (its protobuf encoding).
pub fn encode_batch(batch: &TelemetryBatch) -> Vec<u8> {
    v1::TelemetryBatch::from(batch).encode_to_vec()
}

pub fn decode_batch(bytes: &[u8]) -> Result<TelemetryBatch, ConversionError> {
    let wire =
        v1::TelemetryBatch::decode(bytes).map_err(|e| ConversionError::Decode(e.to_string()))?;
    TelemetryBatch::try_from(&wire)
}

// ---- curves and commands -----------------------------------------------

/// A curve from the wire, checked against the limits `[lo, hi]` of the loop it will drive.
pub fn supply_curve(
    field: &str,
    c: Option<&v1::SupplyCurve>,
    limits: (f64, f64),
) -> Result<SupplyCurve, ConversionError> {
    let c = c.ok_or_else(|| missing(field))?;
    let points = c
        .points
        .iter()
        .map(|p| CurvePoint {
            outdoor_temp_c: p.outdoor_temp_c,
            supply_temp_c: p.supply_temp_c,
        })
        .collect();
    SupplyCurve::new(points, c.min_supply_temp_c, c.max_supply_temp_c, limits).map_err(|source| {
        ConversionError::Curve {
            field: field.to_string(),
            source,
        }
    })
}

impl From<&SupplyCurve> for v1::SupplyCurve {
    fn from(c: &SupplyCurve) -> Self {
        v1::SupplyCurve {
            points: c
                .points()
                .iter()
                .map(|p| v1::CurvePoint {
                    outdoor_temp_c: p.outdoor_temp_c,
                    supply_temp_c: p.supply_temp_c,
                })
                .collect(),
            min_supply_temp_c: c.min_supply_temp_c(),
            max_supply_temp_c: c.max_supply_temp_c(),
        }
    }
}

/// The widest range any supply setpoint may take (plants and substations); the
/// receiving actor checks its own, narrower limits.
pub const ANY_SUPPLY_LIMITS_C: (f64, f64) = (SECONDARY_SUPPLY_LIMITS_C.0, PLANT_SUPPLY_LIMITS_C.1);

impl TryFrom<&v1::Command> for Command {
    type Error = ConversionError;
    fn try_from(c: &v1::Command) -> Result<Self, Self::Error> {
        if c.command_id.is_empty() || c.command_id.len() > 128 {
            return Err(ConversionError::Invalid {
                field: "command.command_id".into(),
                reason: "must be 1 to 128 characters".into(),
            });
        }
        let actor_id = node_id("command.actor_id", &c.actor_id)?;
        if c.version == 0 {
            return Err(ConversionError::OutOfRange {
                field: "command.version".into(),
                value: 0.0,
                reason: "versions start at 1".into(),
            });
        }
        use v1::command::Action as A;
        let action = match c.action.as_ref().ok_or_else(|| missing("command.action"))? {
            A::SetSupplyTemp(s) => Action::SetSupplyTemp {
                supply_temp_c: in_range(
                    "command.set_supply_temp.supply_temp_c",
                    s.supply_temp_c,
                    ANY_SUPPLY_LIMITS_C,
                )?,
            },
            A::SetCurve(s) => Action::SetCurve {
                curve: supply_curve(
                    "command.set_curve.curve",
                    s.curve.as_ref(),
                    ANY_SUPPLY_LIMITS_C,
                )?,
                curve_version: s.curve_version,
            },
            A::SetOverride(s) => Action::SetOverride {
                supply_temp_c: in_range(
                    "command.set_override.supply_temp_c",
                    s.supply_temp_c,
                    ANY_SUPPLY_LIMITS_C,
                )?,
                expires_at_ms: positive_time(
                    "command.set_override.expires_at_ms",
                    s.expires_at_ms,
                )?,
            },
            A::ClearOverride(_) => Action::ClearOverride,
            A::SetHeatOutput(s) => Action::SetHeatOutput {
                heat_w: in_range(
                    "command.set_heat_output.heat_w",
                    s.heat_w,
                    (0.0, model::command::MAX_HEAT_OUTPUT_W),
                )?,
            },
            A::SetPumpHead(s) => Action::SetPumpHead {
                head_pa: in_range(
                    "command.set_pump_head.head_pa",
                    s.head_pa,
                    model::command::PUMP_HEAD_LIMITS_PA,
                )?,
            },
        };
        Ok(Command {
            command_id: c.command_id.clone(),
            actor_id,
            version: c.version,
            action,
        })
    }
}

impl From<&Command> for v1::Command {
    fn from(c: &Command) -> Self {
        use v1::command::Action as A;
        let action = match &c.action {
            Action::SetSupplyTemp { supply_temp_c } => A::SetSupplyTemp(v1::SetSupplyTemp {
                supply_temp_c: *supply_temp_c,
            }),
            Action::SetCurve {
                curve,
                curve_version,
            } => A::SetCurve(v1::SetCurve {
                curve: Some(curve.into()),
                curve_version: *curve_version,
            }),
            Action::SetOverride {
                supply_temp_c,
                expires_at_ms,
            } => A::SetOverride(v1::SetOverride {
                supply_temp_c: *supply_temp_c,
                expires_at_ms: *expires_at_ms,
            }),
            Action::ClearOverride => A::ClearOverride(v1::ClearOverride {}),
            Action::SetHeatOutput { heat_w } => {
                A::SetHeatOutput(v1::SetHeatOutput { heat_w: *heat_w })
            }
            Action::SetPumpHead { head_pa } => {
                A::SetPumpHead(v1::SetPumpHead { head_pa: *head_pa })
            }
        };
        v1::Command {
            command_id: c.command_id.clone(),
            actor_id: c.actor_id.to_string(),
            version: c.version,
            action: Some(action),
        }
    }
}

impl TryFrom<&v1::CommandResult> for CommandResult {
    type Error = ConversionError;
    fn try_from(r: &v1::CommandResult) -> Result<Self, Self::Error> {
        if r.command_id.is_empty() {
            return Err(missing("command_result.command_id"));
        }
        let outcome = if r.accepted {
            CommandOutcome::Accepted
        } else {
            if r.reason.is_empty() {
                return Err(missing("command_result.reason"));
            }
            CommandOutcome::Rejected {
                reason: r.reason.clone(),
            }
        };
        Ok(CommandResult {
            command_id: r.command_id.clone(),
            outcome,
        })
    }
}

impl From<&CommandResult> for v1::CommandResult {
    fn from(r: &CommandResult) -> Self {
        let (accepted, reason) = match &r.outcome {
            CommandOutcome::Accepted => (true, String::new()),
            CommandOutcome::Rejected { reason } => (false, reason.clone()),
        };
        v1::CommandResult {
            command_id: r.command_id.clone(),
            accepted,
            reason,
        }
    }
}

fn prefix(p: &str, e: ConversionError) -> ConversionError {
    let f = |field: String| {
        if field.starts_with("batch.") {
            field
        } else {
            format!("{p}.{field}")
        }
    };
    match e {
        ConversionError::MissingField { field } => {
            ConversionError::MissingField { field: f(field) }
        }
        ConversionError::Unspecified { field } => ConversionError::Unspecified { field: f(field) },
        ConversionError::UnknownEnum { field, value } => ConversionError::UnknownEnum {
            field: f(field),
            value,
        },
        ConversionError::OutOfRange {
            field,
            value,
            reason,
        } => ConversionError::OutOfRange {
            field: f(field),
            value,
            reason,
        },
        ConversionError::BadId { field, source } => ConversionError::BadId {
            field: f(field),
            source,
        },
        ConversionError::UnknownNode { field, id } => ConversionError::UnknownNode {
            field: f(field),
            id,
        },
        ConversionError::Curve { field, source } => ConversionError::Curve {
            field: f(field),
            source,
        },
        ConversionError::Invalid { field, reason } => ConversionError::Invalid {
            field: f(field),
            reason,
        },
        other @ ConversionError::Decode(_) => other,
    }
}

pub mod forecast;

#[cfg(test)]
mod tests;

// ---- hardware ----------------------------------------------------------

pub fn actuator(field: &str, raw: i32) -> Result<model::Actuator, ConversionError> {
    use model::Actuator as A;
    match v1::Actuator::try_from(raw) {
        Ok(v1::Actuator::PrimaryValve) => Ok(A::PrimaryValve),
        Ok(v1::Actuator::SecondaryPump) => Ok(A::SecondaryPump),
        Ok(v1::Actuator::BalancingValve) => Ok(A::BalancingValve),
        Ok(v1::Actuator::PlantSupplySetpointC) => Ok(A::PlantSupplySetpointC),
        Ok(v1::Actuator::PlantPump) => Ok(A::PlantPump),
        Ok(v1::Actuator::PlantPumpSpeed) => Ok(A::PlantPumpSpeed),
        Ok(v1::Actuator::SecondaryPumpSpeed) => Ok(A::SecondaryPumpSpeed),
        Ok(v1::Actuator::Unspecified) => Err(ConversionError::Unspecified {
            field: field.to_string(),
        }),
        Err(_) => Err(ConversionError::UnknownEnum {
            field: field.to_string(),
            value: raw,
        }),
    }
}

impl From<model::Actuator> for v1::Actuator {
    fn from(a: model::Actuator) -> Self {
        use model::Actuator as A;
        match a {
            A::PrimaryValve => v1::Actuator::PrimaryValve,
            A::SecondaryPump => v1::Actuator::SecondaryPump,
            A::BalancingValve => v1::Actuator::BalancingValve,
            A::PlantSupplySetpointC => v1::Actuator::PlantSupplySetpointC,
            A::PlantPump => v1::Actuator::PlantPump,
            A::PlantPumpSpeed => v1::Actuator::PlantPumpSpeed,
            A::SecondaryPumpSpeed => v1::Actuator::SecondaryPumpSpeed,
        }
    }
}

/// An actuator write from the wire, its value checked against the actuator's range.
pub fn actuator_write(
    field: &str,
    w: &v1::ActuatorWrite,
) -> Result<model::ActuatorWrite, ConversionError> {
    let a = actuator(&format!("{field}.actuator"), w.actuator)?;
    let value = in_range(&format!("{field}.value"), w.value, a.range())?;
    Ok(model::ActuatorWrite { actuator: a, value })
}

impl From<model::ActuatorWrite> for v1::ActuatorWrite {
    fn from(w: model::ActuatorWrite) -> Self {
        v1::ActuatorWrite {
            actuator: v1::Actuator::from(w.actuator) as i32,
            value: w.value,
        }
    }
}

// ---- edge alarms ---------------------------------------------------------

/// What an edge alarm is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EdgeAlarmKind {
    /// A reading failed the range, rate or stuck check and does not drive the loops.
    SensorImplausible,
    /// The outbox reached its disk budget and averaged its oldest batches.
    OutboxCondensed,
    /// A valve stays away from its commands (stuck valve, failed actuator).
    ValveStuck,
    /// The gateway's disk is nearly full: its scans are not recorded and its
    /// actors' state and commands are not saved (they control on).
    DiskLow,
}

impl EdgeAlarmKind {
    pub const ALL: [EdgeAlarmKind; 4] = [
        EdgeAlarmKind::SensorImplausible,
        EdgeAlarmKind::OutboxCondensed,
        EdgeAlarmKind::ValveStuck,
        EdgeAlarmKind::DiskLow,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EdgeAlarmKind::SensorImplausible => "sensor_implausible",
            EdgeAlarmKind::OutboxCondensed => "outbox_condensed",
            EdgeAlarmKind::ValveStuck => "valve_stuck",
            EdgeAlarmKind::DiskLow => "disk_low",
        }
    }
}

/// An alarm a gateway raises about itself or one of its nodes. (A domain type;
/// it lives here until `model::telemetry` can take it.)
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct EdgeAlarm {
    pub kind: EdgeAlarmKind,
    pub node_id: NodeId,
    /// `SensorImplausible`: the metric.
    pub metric: Option<Metric>,
    pub message: String,
}

/// Longest message of an edge alarm, bytes; most alarms in one set.
pub const MAX_EDGE_ALARM_MESSAGE: usize = 1024;
pub const MAX_EDGE_ALARMS: usize = 4096;

impl TryFrom<&v1::EdgeAlarm> for EdgeAlarm {
    type Error = ConversionError;
    fn try_from(a: &v1::EdgeAlarm) -> Result<Self, Self::Error> {
        let kind = match EdgeAlarmKind::ALL.into_iter().find(|k| k.name() == a.kind) {
            Some(k) => k,
            None if a.kind.is_empty() => return Err(missing("kind")),
            None => {
                let names: Vec<&str> = EdgeAlarmKind::ALL.iter().map(|k| k.name()).collect();
                return Err(ConversionError::Invalid {
                    field: "kind".into(),
                    reason: format!(
                        "unknown edge alarm kind {:?}: one of {}",
                        a.kind,
                        names.join(", ")
                    ),
                });
            }
        };
        let metric = match kind {
            EdgeAlarmKind::SensorImplausible => Some(metric("metric", a.metric)?),
            EdgeAlarmKind::OutboxCondensed | EdgeAlarmKind::ValveStuck | EdgeAlarmKind::DiskLow => {
                None
            }
        };
        if a.message.len() > MAX_EDGE_ALARM_MESSAGE {
            return Err(ConversionError::Invalid {
                field: "message".into(),
                reason: format!(
                    "{} bytes, at most {MAX_EDGE_ALARM_MESSAGE}",
                    a.message.len()
                ),
            });
        }
        Ok(EdgeAlarm {
            kind,
            node_id: node_id("node_id", &a.node_id)?,
            metric,
            message: a.message.clone(),
        })
    }
}

impl From<&EdgeAlarm> for v1::EdgeAlarm {
    fn from(a: &EdgeAlarm) -> Self {
        v1::EdgeAlarm {
            kind: a.kind.name().to_string(),
            node_id: a.node_id.to_string(),
            metric: a.metric.map_or(v1::Metric::Unspecified, v1::Metric::from) as i32,
            message: a.message.clone(),
        }
    }
}

/// A complete set of edge alarms from the wire.
pub fn edge_alarms(set: &v1::EdgeAlarms) -> Result<Vec<EdgeAlarm>, ConversionError> {
    if set.alarms.len() > MAX_EDGE_ALARMS {
        return Err(ConversionError::Invalid {
            field: "edge_alarms.alarms".into(),
            reason: format!("{} alarms, at most {MAX_EDGE_ALARMS}", set.alarms.len()),
        });
    }
    set.alarms
        .iter()
        .enumerate()
        .map(|(i, a)| {
            EdgeAlarm::try_from(a).map_err(|e| prefix(&format!("edge_alarms.alarms[{i}]"), e))
        })
        .collect()
}
