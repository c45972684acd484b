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

/// Most substations one gateway may host (`heatnet up --sites-per-gateway`).
pub const MAX_SITES_PER_GATEWAY: usize = 64;

/// The gateway that hosts each substation when every gateway hosts up to
/// `sites` of them, in the network's order: a run of substations on one edge
/// box, `edge-{first}-{last}`; a substation alone keeps its own id. Plants
/// always have their own gateway (not listed).
pub fn substation_hosts(
    net: &Network,
    sites: usize,
) -> anyhow::Result<std::collections::BTreeMap<model::NodeId, model::NodeId>> {
    anyhow::ensure!(
        (1..=MAX_SITES_PER_GATEWAY).contains(&sites),
        "--sites-per-gateway {sites} must be 1..{MAX_SITES_PER_GATEWAY}"
    );
    let mut out = std::collections::BTreeMap::new();
    for chunk in net.substations.chunks(sites) {
        let host = match chunk {
            [one] => one.id.clone(),
            [first, .., last] => model::NodeId::new(format!("edge-{}-{}", first.id, last.id))
                .with_context(|| format!("naming the gateway of {} to {}", first.id, last.id))?,
            [] => continue,
        };
        for s in chunk {
            out.insert(s.id.clone(), host.clone());
        }
    }
    Ok(out)
}

/// Puts the substations' gateways together, `sites` to a gateway (see
/// [`substation_hosts`]): an edge box serving a run of substations, as a
/// utility may install one per district, and far fewer processes for a
/// season on one machine. A group's gateway takes the actors of all its
/// substations, the health port of the first and a data directory of its
/// own. Simulator hardware only: a Modbus gateway reads one site server.
pub fn group_substations(
    configs: Vec<GatewayConfig>,
    net: &Network,
    sites: usize,
    data_dir: &Path,
) -> anyhow::Result<Vec<GatewayConfig>> {
    let hosts = substation_hosts(net, sites)?;
    let mut out: Vec<GatewayConfig> = Vec::new();
    for c in configs {
        let Some(host) = hosts.get(&c.gateway_id) else {
            out.push(c);
            continue;
        };
        anyhow::ensure!(
            sites == 1 || matches!(c.hardware, HardwareConfig::Simulator { .. }),
            "gateway {}: several substations on one gateway need the simulator's hardware, not Modbus (a Modbus gateway reads one site server)",
            c.gateway_id
        );
        match out.iter_mut().find(|g| &g.gateway_id == host) {
            Some(g) => g.actors.extend(c.actors),
            None => {
                let mut g = c;
                if &g.gateway_id != host {
                    g.gateway_id = host.clone();
                    g.data_dir = layout::gateway_data_dir(data_dir, host.as_str());
                }
                out.push(g);
            }
        }
    }
    for c in &out {
        c.validate().map_err(|e| {
            anyhow::anyhow!("generated configuration of gateway {}: {e}", c.gateway_id)
        })?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn city_configs(dir: &Path) -> (Network, Vec<GatewayConfig>) {
        let net = Network::sample("city").expect("city");
        let configs = gateway_configs(&net, dir, "127.0.0.1:1", "127.0.0.1:2", 20_000, 30_000)
            .expect("configs");
        (net, configs)
    }

    #[test]
    fn substations_grouped_on_gateways_keep_every_actor_once_and_plants_alone() {
        let dir = Path::new("/nonexistent/heatnet-group");
        let (net, one_each) = city_configs(dir);
        let actors = |cs: &[GatewayConfig]| -> Vec<String> {
            let mut v: Vec<String> = cs
                .iter()
                .flat_map(|c| c.actors.iter().map(|a| a.id.to_string()))
                .collect();
            v.sort();
            v
        };
        let grouped = group_substations(one_each.clone(), &net, 8, dir).expect("grouped");
        // 124 substations: 15 gateways of 8 and one of 4, besides the 3 plants'.
        assert_eq!(net.substations.len(), 124);
        assert_eq!(grouped.len(), 3 + 16);
        assert_eq!(actors(&grouped), actors(&one_each));
        let hosts = substation_hosts(&net, 8).expect("hosts");
        for g in &grouped {
            let heads: Vec<_> = g
                .actors
                .iter()
                .filter(|a| a.kind != NodeKind::Building)
                .collect();
            if heads[0].kind == NodeKind::Plant {
                assert_eq!((heads.len(), &g.gateway_id), (1, &heads[0].id));
                continue;
            }
            assert!(heads.len() <= 8);
            // Each substation's host is the gateway it is on, named after
            // its first and last; its buildings are on the same gateway.
            for h in &heads {
                assert_eq!(hosts[&h.id], g.gateway_id);
            }
            for b in g.actors.iter().filter(|a| a.kind == NodeKind::Building) {
                assert!(
                    heads.iter().any(|h| Some(&h.id) == b.parent.as_ref()),
                    "{}",
                    b.id
                );
            }
            assert!(g.data_dir.ends_with(g.gateway_id.as_str()));
        }
        assert_eq!(grouped[3].gateway_id.as_str(), "edge-c0001-c0008");
        // Distinct ids, distinct health ports.
        let ids: std::collections::BTreeSet<_> = grouped.iter().map(|g| &g.gateway_id).collect();
        let ports: std::collections::BTreeSet<_> =
            grouped.iter().map(|g| g.health_listen).collect();
        assert_eq!((ids.len(), ports.len()), (grouped.len(), grouped.len()));
        // One a gateway is the ungrouped layout.
        assert_eq!(
            group_substations(one_each.clone(), &net, 1, dir).expect("1"),
            one_each
        );
    }

    #[test]
    fn grouping_refuses_modbus_and_sizes_out_of_range() {
        let dir = Path::new("/nonexistent/heatnet-group");
        let (net, mut configs) = city_configs(dir);
        for bad in [0, MAX_SITES_PER_GATEWAY + 1] {
            let err = group_substations(configs.clone(), &net, bad, dir).unwrap_err();
            assert!(err.to_string().contains("--sites-per-gateway"), "{err}");
        }
        use_modbus(&mut configs, std::net::Ipv4Addr::LOCALHOST.into(), 20_500);
        let err = group_substations(configs, &net, 4, dir).unwrap_err();
        assert!(err.to_string().contains("not Modbus"), "{err}");
    }

    #[test]
    fn a_gateway_hosting_several_sites_is_validated_whole() {
        let dir = Path::new("/nonexistent/heatnet-group");
        let (net, configs) = city_configs(dir);
        let grouped = group_substations(configs, &net, 4, dir).expect("grouped");
        let edge = grouped[3].clone();
        assert!(edge.validate().is_ok());
        // A building whose substation is on another gateway.
        let mut stray = edge.clone();
        let b = stray
            .actors
            .iter_mut()
            .find(|a| a.kind == NodeKind::Building)
            .expect("a building");
        b.parent = Some(model::NodeId::new("c0099").expect("id"));
        let err = stray.validate().unwrap_err();
        assert!(
            err.contains("belongs to substation c0099, which this gateway does not host"),
            "{err}"
        );
        // A plant shares its gateway with nothing.
        let mut mixed = edge;
        mixed.actors.extend(grouped[0].actors.clone());
        let err = mixed.validate().unwrap_err();
        assert!(
            err.contains("a plant's gateway hosts that plant alone"),
            "{err}"
        );
    }
}
