//! Synthetic hardware over Modbus TCP: one server per site (a plant, or a
//! substation with its buildings), so a gateway cannot tell the simulator from
//! a PLC. Register map: `model::hardware::modbus` and docs/modbus.md.
//!
//! - unit 1: the plant or substation; units 2, 3, …: its buildings in order;
//! - input registers (FC 04): sensors as float32 pairs (high word first) in
//!   the device type's order, NaN where a reading is missing; registers
//!   100–103: the site clock (network time, Unix ms, big-endian u64);
//! - holding registers (FC 03, FC 16): actuators as float32 pairs.
//!
//! Refusals are Modbus exceptions: an unknown unit → gateway target device
//! failed to respond; an address outside the map or a write that splits a
//! float → illegal data address; a value the actuator refuses → illegal data value.

use std::future::{Ready, ready};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use model::hardware::modbus::{
    CLOCK_REGISTER, HEAD_UNIT, MAX_BUILDINGS_PER_SITE, decode_f32, encode_f32, encode_u64,
};
use model::{ActuatorWrite, Network, NodeId, NodeKind};
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};

use crate::world::World;

/// A site: its head device (plant or substation) and its buildings, by unit id.
#[derive(Clone, Debug, PartialEq)]
pub struct Site {
    pub head: NodeId,
    /// (device, kind) for unit ids 1, 2, …
    pub units: Vec<(NodeId, NodeKind)>,
}

/// Every site of a network: plants first, then substations (the order in
/// which `heatnet up` numbers gateways and ports).
pub fn sites(net: &Network) -> Result<Vec<Site>, String> {
    let mut out = Vec::new();
    for p in &net.plants {
        out.push(Site {
            head: p.id.clone(),
            units: vec![(p.id.clone(), NodeKind::Plant)],
        });
    }
    for s in &net.substations {
        if s.buildings.len() > MAX_BUILDINGS_PER_SITE {
            return Err(format!(
                "substation {} has {} buildings; one Modbus site addresses at most {MAX_BUILDINGS_PER_SITE}",
                s.id,
                s.buildings.len()
            ));
        }
        let mut units = vec![(s.id.clone(), NodeKind::Substation)];
        units.extend(
            s.buildings
                .iter()
                .map(|b| (b.id.clone(), NodeKind::Building)),
        );
        out.push(Site {
            head: s.id.clone(),
            units,
        });
    }
    Ok(out)
}

#[derive(Clone)]
struct SiteService {
    world: Arc<Mutex<World>>,
    site: Site,
}

impl SiteService {
    fn handle(&self, req: SlaveRequest<'static>) -> Result<Response, ExceptionCode> {
        let unit = usize::from(req.slave);
        if unit < usize::from(HEAD_UNIT) {
            return Err(ExceptionCode::GatewayTargetDevice);
        }
        let Some((device, kind)) = self.site.units.get(unit - usize::from(HEAD_UNIT)) else {
            return Err(ExceptionCode::GatewayTargetDevice);
        };
        let mut world = self
            .world
            .lock()
            .map_err(|_| ExceptionCode::ServerDeviceFailure)?;
        match req.request {
            Request::ReadInputRegisters(addr, count) => {
                let image = if addr >= CLOCK_REGISTER {
                    encode_u64(world.time_ms().max(0) as u64).to_vec()
                } else {
                    let readings = world
                        .read_sensors(device.as_str())
                        .map_err(|_| ExceptionCode::ServerDeviceFailure)?;
                    model::hardware::sensors(*kind)
                        .iter()
                        .flat_map(|m| {
                            let v = readings
                                .iter()
                                .find(|r| r.metric == *m)
                                .map_or(f64::NAN, |r| r.value);
                            encode_f32(v)
                        })
                        .collect()
                };
                let base = if addr >= CLOCK_REGISTER {
                    CLOCK_REGISTER
                } else {
                    0
                };
                slice(&image, addr - base, count).map(Response::ReadInputRegisters)
            }
            Request::ReadHoldingRegisters(addr, count) => {
                let values = world
                    .read_actuators(device.as_str())
                    .map_err(|_| ExceptionCode::ServerDeviceFailure)?;
                let image: Vec<u16> = model::hardware::actuators(*kind)
                    .iter()
                    .flat_map(|a| {
                        encode_f32(
                            values
                                .iter()
                                .find(|w| w.actuator == *a)
                                .map_or(f64::NAN, |w| w.value),
                        )
                    })
                    .collect();
                slice(&image, addr, count).map(Response::ReadHoldingRegisters)
            }
            Request::WriteMultipleRegisters(addr, words) => {
                let acts = model::hardware::actuators(*kind);
                if addr % 2 != 0
                    || words.len() % 2 != 0
                    || usize::from(addr) + words.len() > 2 * acts.len()
                {
                    return Err(ExceptionCode::IllegalDataAddress);
                }
                let first = usize::from(addr) / 2;
                let writes: Vec<ActuatorWrite> = words
                    .chunks(2)
                    .enumerate()
                    .map(|(i, w)| ActuatorWrite {
                        actuator: acts[first + i],
                        value: decode_f32([w[0], w[1]]),
                    })
                    .collect();
                for w in &writes {
                    let (lo, hi) = w.actuator.range();
                    if !(w.value.is_finite() && w.value >= lo && w.value <= hi) {
                        return Err(ExceptionCode::IllegalDataValue);
                    }
                }
                world
                    .write_actuators(device.as_str(), &writes)
                    .map_err(|_| ExceptionCode::IllegalDataValue)?;
                Ok(Response::WriteMultipleRegisters(addr, words.len() as u16))
            }
            _ => Err(ExceptionCode::IllegalFunction),
        }
    }
}

fn slice(image: &[u16], addr: u16, count: u16) -> Result<Vec<u16>, ExceptionCode> {
    let (a, n) = (usize::from(addr), usize::from(count));
    if n == 0 || a + n > image.len() {
        return Err(ExceptionCode::IllegalDataAddress);
    }
    Ok(image[a..a + n].to_vec())
}

impl tokio_modbus::server::Service for SiteService {
    type Request = SlaveRequest<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = Ready<Result<Response, ExceptionCode>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        ready(self.handle(req))
    }
}

/// Serves every site on consecutive ports from `base_port`; returns the bound addresses.
pub async fn serve(
    world: Arc<Mutex<World>>,
    net: &Network,
    host: std::net::IpAddr,
    base_port: u16,
) -> anyhow::Result<Vec<(Site, SocketAddr)>> {
    let mut bound = Vec::new();
    for (i, site) in sites(net)
        .map_err(|e| anyhow::anyhow!(e))?
        .into_iter()
        .enumerate()
    {
        let addr = SocketAddr::new(host, base_port + i as u16);
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            anyhow::anyhow!(
                "binding the Modbus server of site {} to {addr}: {e}",
                site.head
            )
        })?;
        let service = SiteService {
            world: world.clone(),
            site: site.clone(),
        };
        let server = tokio_modbus::server::tcp::Server::new(listener);
        tokio::spawn(async move {
            let on_connected = |stream, socket_addr| {
                let service = service.clone();
                async move {
                    tokio_modbus::server::tcp::accept_tcp_connection(
                        stream,
                        socket_addr,
                        move |_| Ok(Some(service.clone())),
                    )
                }
            };
            if let Err(e) = server
                .serve(
                    &on_connected,
                    |e| tracing::warn!(error = %e, "modbus connection failed"),
                )
                .await
            {
                tracing::error!(error = %e, "modbus server stopped");
            }
        });
        bound.push((site, addr));
    }
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use model::hardware::modbus::decode_u64;
    use model::{Actuator, Metric};
    use tokio_modbus::Slave;
    use tokio_modbus::client::{Reader, Writer};
    use tokio_modbus::prelude::SlaveContext;

    use super::*;

    fn free_port_pair() -> u16 {
        for _ in 0..100 {
            let p = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            if p < 60_000
                && (0..7).all(|i| std::net::TcpListener::bind(("127.0.0.1", p + i)).is_ok())
            {
                return p;
            }
        }
        panic!("no free ports");
    }

    #[tokio::test]
    async fn a_solar_site_serves_its_tank_and_collectors_and_others_read_nan() {
        let net = Network::sample("solar").unwrap();
        let world = Arc::new(Mutex::new(World::new(net.clone())));
        {
            // Noon of the first day: the collectors work.
            let mut w = world.lock().unwrap();
            for _ in 0..72 {
                w.step(600.0).unwrap();
            }
        }
        let port = free_port_pair();
        let bound = serve(world.clone(), &net, "127.0.0.1".parse().unwrap(), port)
            .await
            .unwrap();
        let regs = |site: usize| {
            let addr = bound[site].1;
            async move {
                let mut ctx = tokio_modbus::client::tcp::connect_slave(addr, Slave(1))
                    .await
                    .unwrap();
                let n = model::hardware::sensors(NodeKind::Plant).len() as u16;
                ctx.read_input_registers(0, 2 * n).await.unwrap().unwrap()
            }
        };
        // Plants come first, in file order: solar-east is site 2.
        assert_eq!(bound[2].0.head.as_str(), "solar-east");
        let solar = regs(2).await;
        let at = |regs: &[u16], m| {
            let r = model::hardware::modbus::sensor_register(NodeKind::Plant, m).unwrap() as usize;
            decode_f32([regs[r], regs[r + 1]])
        };
        let truth = world.lock().unwrap().state().plants[2].clone();
        let tank = truth.solar.unwrap();
        assert_eq!(
            at(&solar, Metric::TankTempC),
            tank.tank_temp_c as f32 as f64
        );
        assert_eq!(
            at(&solar, Metric::CollectorHeatW),
            tank.collector_heat_w as f32 as f64
        );
        assert_eq!(at(&solar, Metric::HeatW), truth.heat_w as f32 as f64);
        assert!(tank.collector_heat_w > 0.0);
        // The CHP plant has no tank: NaN.
        let chp = regs(0).await;
        assert!(at(&chp, Metric::TankTempC).is_nan());
        assert!(at(&chp, Metric::CollectorHeatW).is_nan());
    }

    #[tokio::test]
    async fn a_site_reads_and_writes_like_a_plc_and_refuses_what_it_must() {
        let net = Network::sample("demo").unwrap();
        let world = Arc::new(Mutex::new(World::new(net.clone())));
        let port = free_port_pair();
        let bound = serve(world.clone(), &net, "127.0.0.1".parse().unwrap(), port)
            .await
            .unwrap();
        // Site 1 is substation s01 (site 0 is the plant).
        let (site, addr) = &bound[1];
        assert_eq!(site.head.as_str(), "s01");
        let mut ctx = tokio_modbus::client::tcp::connect_slave(*addr, Slave(1))
            .await
            .unwrap();

        let clock = ctx
            .read_input_registers(CLOCK_REGISTER, 4)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            decode_u64([clock[0], clock[1], clock[2], clock[3]]) as i64,
            world.lock().unwrap().time_ms()
        );

        let n = model::hardware::sensors(NodeKind::Substation).len() as u16;
        let regs = ctx.read_input_registers(0, 2 * n).await.unwrap().unwrap();
        let at = |m| {
            let r =
                model::hardware::modbus::sensor_register(NodeKind::Substation, m).unwrap() as usize;
            decode_f32([regs[r], regs[r + 1]])
        };
        let truth = world.lock().unwrap().read_sensors("s01").unwrap();
        let want = truth
            .iter()
            .find(|r| r.metric == Metric::OutdoorTempC)
            .unwrap()
            .value;
        assert!((at(Metric::OutdoorTempC) - want).abs() < 1e-4);

        // Write the primary valve of s01 and the balancing valve of s01-b01 (unit 2).
        let reg = model::hardware::modbus::actuator_register(
            NodeKind::Substation,
            Actuator::PrimaryValve,
        )
        .unwrap();
        ctx.write_multiple_registers(reg, &encode_f32(0.8))
            .await
            .unwrap()
            .unwrap();
        ctx.set_slave(Slave(2));
        ctx.write_multiple_registers(0, &encode_f32(0.4))
            .await
            .unwrap()
            .unwrap();
        {
            let w = world.lock().unwrap();
            assert!((w.read_actuators("s01").unwrap()[0].value - 0.8).abs() < 1e-6);
            assert!((w.read_actuators("s01-b01").unwrap()[0].value - 0.4).abs() < 1e-6);
        }
        let held = ctx.read_holding_registers(0, 2).await.unwrap().unwrap();
        assert!((decode_f32([held[0], held[1]]) - 0.4).abs() < 1e-6);

        // Refusals are Modbus exceptions, and change nothing.
        assert_eq!(
            ctx.write_multiple_registers(0, &encode_f32(f64::NAN))
                .await
                .unwrap(),
            Err(ExceptionCode::IllegalDataValue)
        );
        assert_eq!(
            ctx.write_multiple_registers(0, &encode_f32(1.5))
                .await
                .unwrap(),
            Err(ExceptionCode::IllegalDataValue)
        );
        assert_eq!(
            ctx.write_multiple_registers(1, &encode_f32(0.5))
                .await
                .unwrap(),
            Err(ExceptionCode::IllegalDataAddress)
        );
        assert_eq!(
            ctx.read_input_registers(0, 99).await.unwrap(),
            Err(ExceptionCode::IllegalDataAddress)
        );
        ctx.set_slave(Slave(99));
        assert_eq!(
            ctx.read_input_registers(0, 2).await.unwrap(),
            Err(ExceptionCode::GatewayTargetDevice)
        );
        assert!(
            (world.lock().unwrap().read_actuators("s01-b01").unwrap()[0].value - 0.4).abs() < 1e-6
        );
    }
}
