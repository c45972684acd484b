//! The one way agents touch hardware: the [`Hardware`] trait, and its drivers.
//!
//! - [`SimHardware`]: the simulator's gRPC hardware API.
//! - [`ModbusHardware`]: Modbus TCP to a site server (a PLC, or the simulator's).
//!
//! A driver reads every device a gateway needs in one scan and writes one
//! device's actuators at a time. It never retries on its own: the scan loop
//! decides what a failed read or write means for control.

use std::collections::BTreeMap;
use std::future::Future;

use model::{ActuatorWrite, NodeId, Reading};
use proto::v1;
use proto::v1::simulator_service_client::SimulatorServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

mod modbus;
pub use modbus::ModbusHardware;

/// Readings of several devices taken in one scan.
#[derive(Clone, Debug, PartialEq)]
pub struct Scan {
    /// Time of the readings (the hardware's clock: network time in the simulator), Unix ms.
    pub time_ms: i64,
    pub devices: BTreeMap<NodeId, Vec<Reading>>,
}

#[derive(Clone, Debug, thiserror::Error)]
pub enum HardwareError {
    #[error("hardware unreachable at {address}: {reason}")]
    Unavailable { address: String, reason: String },
    #[error("hardware refused the request: {0}")]
    Refused(String),
    #[error("hardware answered with bad data: {0}")]
    BadData(String),
}

/// Sensors and actuators of the devices a gateway drives.
pub trait Hardware: Send + Sync + 'static {
    fn scan(&self, devices: &[NodeId]) -> impl Future<Output = Result<Scan, HardwareError>> + Send;
    fn write(
        &self,
        device: &NodeId,
        writes: &[ActuatorWrite],
    ) -> impl Future<Output = Result<(), HardwareError>> + Send;
    /// Several devices' writes: one outcome per device, in their order, each
    /// device's writes standing on their own. By default one [`write`]
    /// after another; a driver that can carries them in fewer requests.
    ///
    /// [`write`]: Hardware::write
    fn write_many(
        &self,
        writes: &[(NodeId, Vec<ActuatorWrite>)],
    ) -> impl Future<Output = Vec<Result<(), HardwareError>>> + Send {
        async move {
            let mut out = Vec::with_capacity(writes.len());
            for (device, w) in writes {
                out.push(self.write(device, w).await);
            }
            out
        }
    }
}

/// Most devices one `WriteActuatorsMany` request of [`SimHardware`] carries.
pub const MAX_DEVICES_PER_WRITE_CALL: usize = 1_000;

/// The simulator's lockstep clock, as a gateway sees it: each call reports the
/// step the gateway has finished with and waits for the next one. A test rig's
/// clock, not hardware; real PLCs keep their own time.
#[derive(Clone)]
pub struct LockstepClock {
    address: String,
    gateway_id: String,
    client: SimulatorServiceClient<InterceptedService<Channel, observe::grpc::TracePropagation>>,
}

impl LockstepClock {
    /// Connects lazily, like [`SimHardware`].
    pub fn new(address: &str, gateway_id: &NodeId) -> Result<Self, HardwareError> {
        let channel = observe::grpc::endpoint(address)
            .map_err(|e| HardwareError::Unavailable {
                address: address.to_string(),
                reason: e.to_string(),
            })?
            // The simulator holds an AwaitStep call up to 5 s.
            .timeout(std::time::Duration::from_secs(15))
            .connect_lazy();
        Ok(Self {
            address: address.to_string(),
            gateway_id: gateway_id.to_string(),
            client: SimulatorServiceClient::with_interceptor(
                channel,
                observe::grpc::TracePropagation,
            ),
        })
    }

    /// Reports `done_step`, the last step scanned, and returns the step to scan
    /// next once there is one. A simulator that restarted (fewer steps than we
    /// saw) starts the count over.
    pub async fn next(mut self, done_step: u64) -> Result<u64, HardwareError> {
        loop {
            let c = self
                .client
                .await_step(v1::AwaitStepRequest {
                    gateway_id: self.gateway_id.clone(),
                    done_step,
                    planner: false,
                })
                .await
                .map_err(|s| HardwareError::Unavailable {
                    address: self.address.clone(),
                    reason: s.message().to_string(),
                })?
                .into_inner();
            if c.steps != done_step {
                return Ok(c.steps);
            }
        }
    }
}

/// The simulator's gRPC hardware API.
#[derive(Clone)]
pub struct SimHardware {
    address: String,
    client: SimulatorServiceClient<InterceptedService<Channel, observe::grpc::TracePropagation>>,
}

impl SimHardware {
    /// Connects lazily: a simulator that is not up yet is an error on the first scan, not here.
    pub fn new(address: &str) -> Result<Self, HardwareError> {
        let channel = observe::grpc::endpoint(address)
            .map_err(|e| HardwareError::Unavailable {
                address: address.to_string(),
                reason: e.to_string(),
            })?
            .timeout(std::time::Duration::from_secs(5))
            .connect_lazy();
        Ok(Self {
            address: address.to_string(),
            client: SimulatorServiceClient::with_interceptor(
                channel,
                observe::grpc::TracePropagation,
            ),
        })
    }

    fn map_status(&self, s: tonic::Status) -> HardwareError {
        match s.code() {
            tonic::Code::Unavailable
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Cancelled
            | tonic::Code::Unknown => HardwareError::Unavailable {
                address: self.address.clone(),
                reason: s.message().to_string(),
            },
            _ => HardwareError::Refused(format!("{:?}: {}", s.code(), s.message())),
        }
    }
}

impl Hardware for SimHardware {
    async fn scan(&self, devices: &[NodeId]) -> Result<Scan, HardwareError> {
        let req = v1::ReadSensorsRequest {
            device_ids: devices.iter().map(|d| d.to_string()).collect(),
        };
        let resp = self
            .client
            .clone()
            .read_sensors(req)
            .await
            .map_err(|s| self.map_status(s))?
            .into_inner();
        let mut out = BTreeMap::new();
        for d in resp.devices {
            let id = proto::convert::node_id("device_id", &d.device_id)
                .map_err(|e| HardwareError::BadData(e.to_string()))?;
            // A reading the wire conversion refuses (NaN, out of range) is left out:
            // the control loop sees the sensor as missing and reacts to that.
            let readings = d
                .readings
                .iter()
                .filter_map(|r| {
                    let m = proto::convert::metric("metric", r.metric).ok()?;
                    proto::convert::in_range("value", r.value, m.plausible_range())
                        .ok()
                        .map(|v| Reading::new(m, v))
                })
                .collect();
            out.insert(id, readings);
        }
        Ok(Scan {
            time_ms: resp.time_ms,
            devices: out,
        })
    }

    async fn write(&self, device: &NodeId, writes: &[ActuatorWrite]) -> Result<(), HardwareError> {
        self.client
            .clone()
            .write_actuators(write_request(device, writes))
            .await
            .map_err(|s| self.map_status(s))?;
        Ok(())
    }

    /// In requests of up to [`MAX_DEVICES_PER_WRITE_CALL`] devices (found on
    /// the `city`: a fixed-curve season's buildings move their valves every
    /// scan, and one request per device kept the simulator busy with TCP).
    async fn write_many(
        &self,
        writes: &[(NodeId, Vec<ActuatorWrite>)],
    ) -> Vec<Result<(), HardwareError>> {
        let mut out = Vec::with_capacity(writes.len());
        for chunk in writes.chunks(MAX_DEVICES_PER_WRITE_CALL) {
            let req = v1::WriteActuatorsManyRequest {
                devices: chunk.iter().map(|(d, w)| write_request(d, w)).collect(),
            };
            match self.client.clone().write_actuators_many(req).await {
                Ok(resp) => {
                    let outcomes = resp.into_inner().outcomes;
                    let matches = outcomes.len() == chunk.len()
                        && outcomes
                            .iter()
                            .zip(chunk)
                            .all(|(o, (d, _))| o.device_id == d.as_str());
                    if matches {
                        out.extend(outcomes.into_iter().map(|o| {
                            if o.error.is_empty() {
                                Ok(())
                            } else {
                                Err(HardwareError::Refused(o.error))
                            }
                        }));
                    } else {
                        let e = HardwareError::BadData(format!(
                            "{} write outcomes for {} devices, or out of order",
                            outcomes.len(),
                            chunk.len()
                        ));
                        out.extend(chunk.iter().map(|_| Err(e.clone())));
                    }
                }
                Err(s) => {
                    let e = self.map_status(s);
                    out.extend(chunk.iter().map(|_| Err(e.clone())));
                }
            }
        }
        out
    }
}

fn write_request(device: &NodeId, writes: &[ActuatorWrite]) -> v1::WriteActuatorsRequest {
    v1::WriteActuatorsRequest {
        device_id: device.to_string(),
        writes: writes.iter().map(|w| v1::ActuatorWrite::from(*w)).collect(),
    }
}

/// Any of the drivers, chosen by configuration.
pub enum Driver {
    Sim(SimHardware),
    Modbus(ModbusHardware),
}

impl Hardware for Driver {
    async fn scan(&self, devices: &[NodeId]) -> Result<Scan, HardwareError> {
        match self {
            Driver::Sim(h) => h.scan(devices).await,
            Driver::Modbus(h) => h.scan(devices).await,
        }
    }

    async fn write(&self, device: &NodeId, writes: &[ActuatorWrite]) -> Result<(), HardwareError> {
        match self {
            Driver::Sim(h) => h.write(device, writes).await,
            Driver::Modbus(h) => h.write(device, writes).await,
        }
    }

    async fn write_many(
        &self,
        writes: &[(NodeId, Vec<ActuatorWrite>)],
    ) -> Vec<Result<(), HardwareError>> {
        match self {
            Driver::Sim(h) => h.write_many(writes).await,
            Driver::Modbus(h) => h.write_many(writes).await,
        }
    }
}
