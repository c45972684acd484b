//! Modbus TCP driver: one connection to a site server (a PLC, or the
//! simulator), units and registers per `model::hardware::modbus`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use model::hardware::modbus::{
    CLOCK_REGISTER, HEAD_UNIT, actuator_register, decode_f32, decode_u64, encode_f32,
};
use model::{ActuatorWrite, NodeId, NodeKind, Reading};
use tokio_modbus::Slave;
use tokio_modbus::client::{Context, Reader, Writer};
use tokio_modbus::prelude::SlaveContext;

use crate::{Hardware, HardwareError, Scan};

/// How long one Modbus request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

pub struct ModbusHardware {
    address: SocketAddr,
    /// Unit id and kind of every device.
    units: BTreeMap<NodeId, (u8, NodeKind)>,
    ctx: tokio::sync::Mutex<Option<Context>>,
}

impl ModbusHardware {
    /// A driver for the site at `address` whose devices sit at the given unit ids.
    pub fn new(address: SocketAddr, units: BTreeMap<NodeId, (u8, NodeKind)>) -> Self {
        Self {
            address,
            units,
            ctx: tokio::sync::Mutex::new(None),
        }
    }

    fn unavailable(&self, reason: impl std::fmt::Display) -> HardwareError {
        HardwareError::Unavailable {
            address: self.address.to_string(),
            reason: reason.to_string(),
        }
    }

    async fn connected<'a>(
        &self,
        guard: &'a mut Option<Context>,
    ) -> Result<&'a mut Context, HardwareError> {
        if guard.is_none() {
            let ctx = tokio::time::timeout(
                REQUEST_TIMEOUT,
                tokio_modbus::client::tcp::connect_slave(self.address, Slave(HEAD_UNIT)),
            )
            .await
            .map_err(|_| self.unavailable("connect timed out"))?
            .map_err(|e| self.unavailable(e))?;
            *guard = Some(ctx);
        }
        guard
            .as_mut()
            .ok_or_else(|| self.unavailable("not connected"))
    }

    /// Reads input registers; a transport failure drops the connection.
    async fn read(
        &self,
        guard: &mut Option<Context>,
        unit: u8,
        addr: u16,
        count: u16,
    ) -> Result<Vec<u16>, HardwareError> {
        let ctx = self.connected(guard).await?;
        ctx.set_slave(Slave(unit));
        let result =
            tokio::time::timeout(REQUEST_TIMEOUT, ctx.read_input_registers(addr, count)).await;
        match result {
            Ok(Ok(Ok(words))) if words.len() == usize::from(count) => Ok(words),
            Ok(Ok(Ok(words))) => Err(HardwareError::BadData(format!(
                "unit {unit}: asked {count} registers at {addr}, got {}",
                words.len()
            ))),
            Ok(Ok(Err(exception))) => Err(HardwareError::Refused(format!(
                "unit {unit}: {exception:?}"
            ))),
            Ok(Err(e)) => {
                *guard = None;
                Err(self.unavailable(e))
            }
            Err(_) => {
                *guard = None;
                Err(self.unavailable("request timed out"))
            }
        }
    }
}

impl Hardware for ModbusHardware {
    async fn scan(&self, devices: &[NodeId]) -> Result<Scan, HardwareError> {
        let mut guard = self.ctx.lock().await;
        let clock = self.read(&mut guard, HEAD_UNIT, CLOCK_REGISTER, 4).await?;
        let time_ms = decode_u64([clock[0], clock[1], clock[2], clock[3]]) as i64;
        let mut out = BTreeMap::new();
        for d in devices {
            let &(unit, kind) = self.units.get(d).ok_or_else(|| {
                HardwareError::Refused(format!("no Modbus unit configured for {d}"))
            })?;
            let metrics = model::hardware::sensors(kind);
            let words = self
                .read(&mut guard, unit, 0, 2 * metrics.len() as u16)
                .await?;
            // NaN marks a missing reading; implausible values are left out too,
            // so the control loop sees the sensor as failed.
            let readings = metrics
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    let v = decode_f32([words[2 * i], words[2 * i + 1]]);
                    let (lo, hi) = m.plausible_range();
                    (v.is_finite() && v >= lo && v <= hi).then_some(Reading::new(*m, v))
                })
                .collect();
            out.insert(d.clone(), readings);
        }
        Ok(Scan {
            time_ms,
            devices: out,
        })
    }

    async fn write(&self, device: &NodeId, writes: &[ActuatorWrite]) -> Result<(), HardwareError> {
        let &(unit, kind) = self.units.get(device).ok_or_else(|| {
            HardwareError::Refused(format!("no Modbus unit configured for {device}"))
        })?;
        let mut guard = self.ctx.lock().await;
        for w in writes {
            let reg = actuator_register(kind, w.actuator).ok_or_else(|| {
                HardwareError::Refused(format!("{device} has no actuator {}", w.actuator.name()))
            })?;
            let ctx = self.connected(&mut guard).await?;
            ctx.set_slave(Slave(unit));
            let words = encode_f32(w.value);
            match tokio::time::timeout(REQUEST_TIMEOUT, ctx.write_multiple_registers(reg, &words))
                .await
            {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(exception))) => {
                    return Err(HardwareError::Refused(format!(
                        "{device} {}: {exception:?}",
                        w.actuator.name()
                    )));
                }
                Ok(Err(e)) => {
                    *guard = None;
                    return Err(self.unavailable(e));
                }
                Err(_) => {
                    *guard = None;
                    return Err(self.unavailable("request timed out"));
                }
            }
        }
        Ok(())
    }
}
