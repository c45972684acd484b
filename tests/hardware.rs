//! The same gateways control the simulator through its gRPC hardware API and
//! through Modbus TCP (one site server per plant and substation), equally well.

mod common;

use std::time::Duration;

use common::*;
use heatnet::configs::HardwareKind;
use model::Metric;
use proto::v1;

fn reading(n: &v1::NodeState, m: Metric) -> Option<f64> {
    n.readings
        .iter()
        .find(|r| proto::convert::metric("m", r.metric).ok() == Some(m))
        .map(|r| r.value)
}

/// Every substation's secondary supply within `tolerance_k` of the setpoint its loop follows.
async fn control_settles(hardware: HardwareKind, name: &str) {
    let _rng = seeded_rng(name);
    let sys = System::start_with(name, 60.0, 30_000, hardware).await;
    sys.wait_all_live(Duration::from_secs(60)).await;
    let opt = sys.opt_addr.clone();
    let worst = wait_for(
        Duration::from_secs(90),
        "every substation's secondary supply within 1 K of its setpoint",
        || {
            let opt = opt.clone();
            async move {
                let s = network_state(&opt).await?;
                let errors: Vec<f64> = s
                    .nodes
                    .iter()
                    .filter(|n| n.kind == v1::NodeKind::Substation as i32)
                    .filter_map(|n| {
                        Some(
                            (reading(n, Metric::SecondarySupplyTempC)?
                                - reading(n, Metric::SetpointC)?)
                            .abs(),
                        )
                    })
                    .collect();
                (errors.len() == 6 && errors.iter().all(|e| *e < 1.0))
                    .then(|| errors.iter().cloned().fold(0.0, f64::max))
            }
        },
    )
    .await;
    eprintln!("{name}: worst secondary supply error {worst:.2} K");
    // Actuator writes land: the primary valves in the simulator are the gateways'.
    for s in ["s01", "s04"] {
        let v = actuators(&sys.sim_addr, s).await;
        assert!(v[0].1 > 0.05 && v[0].1 < 1.0, "{s}: valve {:?}", v);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_control_the_simulator_over_grpc() {
    control_settles(HardwareKind::Grpc, "hardware-grpc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_control_the_simulator_over_modbus_tcp_as_well() {
    control_settles(HardwareKind::Modbus, "hardware-modbus").await;
}
