//! Configurations that `heatnet up` (and the cross-process tests) generate for
//! every gateway of a network description.

use std::path::Path;

use anyhow::Context as _;
use control::NodeConfig;
use gateway::config::{ClockConfig, GatewayConfig, HardwareConfig, Limits};
use model::network::{PLANT_SUPPLY_LIMITS_C, SECONDARY_SUPPLY_LIMITS_C};
use model::{CurvePoint, Network, NodeKind, SupplyCurve};

use crate::layout;

/// The curve a substation falls back on: quality regulation for its design temperatures.
fn substation_curve(
    s: &model::Substation,
    outdoor_design_c: f64,
    limits: (f64, f64),
) -> anyhow::Result<SupplyCurve> {
    SupplyCurve::quality_regulation(
        s.secondary_design_supply_temp_c,
        s.secondary_design_return_temp_c,
        20.0,
        outdoor_design_c,
        limits,
    )
    .with_context(|| format!("fallback curve of substation {}", s.id))
}

fn plant_curve(p: &model::Plant, outdoor_design_c: f64) -> anyhow::Result<SupplyCurve> {
    let top = p.design_supply_temp_c.min(PLANT_SUPPLY_LIMITS_C.1);
    SupplyCurve::new(
        vec![
            CurvePoint {
                outdoor_temp_c: outdoor_design_c,
                supply_temp_c: top,
            },
            CurvePoint {
                outdoor_temp_c: 10.0,
                supply_temp_c: 70.0_f64.min(top),
            },
        ],
        60.0_f64.min(top - 1.0),
        top,
        PLANT_SUPPLY_LIMITS_C,
    )
    .with_context(|| format!("fallback curve of plant {}", p.id))
}

/// Gateway configurations for every plant and substation of the network.
/// How gateways reach the (simulated) hardware.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum HardwareKind {
    /// The simulator's gRPC hardware API.
    #[default]
    Grpc,
    /// Modbus TCP: one simulated site server per plant and substation.
    Modbus,
}

/// Paces every gateway's scans by the simulator's lockstep clock at
/// `simulator`, with the optimizer planning on every step: a gateway reports
/// a step done only once the optimizer has stored all its batches, so the
/// planning round of that step sees every gateway's scan of it.
pub fn use_lockstep(configs: &mut [GatewayConfig], simulator: &str) {
    for c in configs {
        c.clock = ClockConfig::Lockstep {
            simulator: simulator.to_string(),
            max_unacked_batches: 0,
            ack_wait_ms: gateway::config::DEFAULT_ACK_WAIT_MS,
        };
    }
}

/// First Modbus site port for a given base port.
pub fn modbus_base_port(base_port: u16, gateways: usize) -> u16 {
    base_port + port_offsets(gateways).modbus
}

/// Where the ports of one `heatnet up` lie, as offsets from its base port:
/// simulator +0, optimizer +1, Prometheus of simulator/optimizer/dashboard
/// +2..+4, dashboard +100, then per gateway a health and a metrics port and
/// per site a Modbus port. Small networks fit below +256; large ones put the
/// gateways' ports from +300 on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortOffsets {
    pub gateway_health: u16,
    pub gateway_metrics: u16,
    pub modbus: u16,
}

pub fn port_offsets(gateways: usize) -> PortOffsets {
    let n = u16::try_from(gateways).unwrap_or(u16::MAX / 4);
    if n <= 45 {
        // Health and metrics within +10..+100, Modbus +200..+256.
        PortOffsets {
            gateway_health: 10,
            gateway_metrics: 10 + n,
            modbus: 200,
        }
    } else {
        PortOffsets {
            gateway_health: 300,
            gateway_metrics: 300 + n,
            modbus: 300 + 2 * n,
        }
    }
}

/// Switches generated gateway configurations to Modbus TCP: site i (plants,
/// then substations, as the simulator numbers them) at `modbus_base_port + i`,
/// unit 1 for the plant or substation and 2, 3, … for its buildings.
pub fn use_modbus(configs: &mut [GatewayConfig], host: std::net::IpAddr, modbus_base_port: u16) {
    for (i, c) in configs.iter_mut().enumerate() {
        let units = c
            .actors
            .iter()
            .enumerate()
            .map(|(k, a)| (a.id.clone(), (k + 1) as u8))
            .collect();
        c.hardware = HardwareConfig::Modbus {
            address: std::net::SocketAddr::new(host, modbus_base_port + i as u16),
            units,
        };
    }
}

pub fn gateway_configs(
    net: &Network,
    data_dir: &Path,
    optimizer: &str,
    simulator: &str,
    base_port: u16,
    fallback_after_ms: u64,
) -> anyhow::Result<Vec<GatewayConfig>> {
    let mut out = Vec::new();
    let limits = Limits {
        fallback_after_ms,
        ..Limits::default()
    };
    let mut port =
        base_port + port_offsets(net.plants.len() + net.substations.len()).gateway_health;
    let mut next_port = || {
        let p = port;
        port += 1;
        p
    };
    for p in &net.plants {
        out.push(GatewayConfig {
            clock: ClockConfig::Interval,
            gateway_id: p.id.clone(),
            data_dir: layout::gateway_data_dir(data_dir, p.id.as_str()),
            optimizer: optimizer.to_string(),
            health_listen: format!("127.0.0.1:{}", next_port()).parse()?,
            hardware: HardwareConfig::Simulator {
                address: simulator.to_string(),
            },
            limits: limits.clone(),
            actors: vec![NodeConfig {
                id: p.id.clone(),
                kind: NodeKind::Plant,
                parent: None,
                group: None,
                supply_limits_c: Some(PLANT_SUPPLY_LIMITS_C),
                fallback_curve: Some(plant_curve(p, net.outdoor_design_temp_c)?),
                max_setpoint_rate_k_per_min: 1.0,
                return_limit_c: None,
                // Constant-head pump control exists in the plant law
                // (`pump_dp_setpoint_pa`), but is off here: with it on, the
                // demo's substations did not settle within 1 K (issue 4 notes).
                pump_dp_setpoint_pa: None,
            }],
        });
    }
    for s in &net.substations {
        let lim = (
            SECONDARY_SUPPLY_LIMITS_C.0,
            (s.secondary_design_supply_temp_c + 10.0).min(SECONDARY_SUPPLY_LIMITS_C.1),
        );
        let mut actors = vec![NodeConfig {
            id: s.id.clone(),
            kind: NodeKind::Substation,
            parent: None,
            group: Some(s.group.clone()),
            supply_limits_c: Some(lim),
            fallback_curve: Some(substation_curve(s, net.outdoor_design_temp_c, lim)?),
            max_setpoint_rate_k_per_min: 2.0,
            // The primary return may exceed its plant's design return by 5 K at most.
            return_limit_c: net
                .plants
                .iter()
                .find(|p| p.id == s.plant)
                .map(|p| (p.design_return_temp_c + 5.0).clamp(20.0, 120.0)),
            // The secondary pump holds the circuit's design differential pressure.
            pump_dp_setpoint_pa: Some(model::network::SECONDARY_DESIGN_DP_PA),
        }];
        for b in &s.buildings {
            actors.push(NodeConfig {
                id: b.id.clone(),
                kind: NodeKind::Building,
                parent: Some(s.id.clone()),
                group: None,
                supply_limits_c: None,
                fallback_curve: None,
                max_setpoint_rate_k_per_min: 2.0,
                return_limit_c: None,
                pump_dp_setpoint_pa: None,
            });
        }
        out.push(GatewayConfig {
            clock: ClockConfig::Interval,
            gateway_id: s.id.clone(),
            data_dir: layout::gateway_data_dir(data_dir, s.id.as_str()),
            optimizer: optimizer.to_string(),
            health_listen: format!("127.0.0.1:{}", next_port()).parse()?,
            hardware: HardwareConfig::Simulator {
                address: simulator.to_string(),
            },
            limits: limits.clone(),
            actors,
        });
    }
    for c in &out {
        c.validate().map_err(|e| {
            anyhow::anyhow!("generated configuration of gateway {}: {e}", c.gateway_id)
        })?;
    }
    Ok(out)
}
