//! A heating season simulated standalone, as fast as the machine allows, under
//! a fixed weather-compensated curve controlled in-process: the baseline most
//! networks still run, and the simulator's own speed benchmark.
//!
//! Each substation's primary valve is driven by an integral controller toward
//! its curve's secondary supply temperature (quality regulation for its
//! design temperatures, rooms at 20 °C); each plant follows its own curve. No
//! processes, no network: physics, weather and the controller only.

use std::time::Instant;

use crate::world::World;
use model::{Network, SupplyCurve};
use serde::Serialize;

/// Valve travel per kelvin of supply error and minute.
const VALVE_GAIN_PER_K_MIN: f64 = 0.01;

#[derive(Clone, Debug)]
pub struct SeasonOptions {
    pub days: f64,
    pub step_s: f64,
    /// Faults and weather changes on the way.
    pub scenario: Option<crate::scenario::Scenario>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SeasonSummary {
    pub network: String,
    pub substations: usize,
    pub buildings: usize,
    pub days: f64,
    pub step_s: f64,
    pub steps: u64,
    pub wall_s: f64,
    /// Simulated time over wall time.
    pub realtime_factor: f64,
    pub ms_per_step: f64,
    /// Share of building-hours with the average room at or above 18 °C.
    pub comfort_share: f64,
    /// The same for the colder top-floor and gable-end flats.
    pub exposed_flat_comfort_share: f64,
    pub min_room_temp_c: f64,
    /// The building that got coldest, and when (network time, ms).
    pub coldest_building: String,
    pub coldest_at_ms: i64,
    pub mean_room_temp_c: f64,
    pub heat_produced_gj: f64,
    pub heat_delivered_gj: f64,
    pub heat_lost_gj: f64,
    pub heat_cost_yuan: f64,
    /// Largest per-step energy residual seen (fraction of the step's gross flow).
    pub worst_energy_residual: f64,
    pub hydraulic_failures: u64,
}

/// Runs the season; `progress` is called with the share done about once a percent.
pub fn run_season(
    net: &Network,
    opts: &SeasonOptions,
    progress: &mut dyn FnMut(f64),
) -> anyhow::Result<SeasonSummary> {
    anyhow::ensure!(
        opts.days > 0.0 && opts.days <= 366.0,
        "days {} is outside (0, 366]",
        opts.days
    );
    anyhow::ensure!(
        (1.0..=3600.0).contains(&opts.step_s),
        "step {} s is outside 1..3600 s",
        opts.step_s
    );
    physics::Engine::supports(net).map_err(anyhow::Error::msg)?;
    let mut world = World::new(net.clone());
    if let Some(s) = &opts.scenario {
        world.set_scenario(s.clone())?;
    }
    let curves = net
        .substations
        .iter()
        .map(|s| {
            SupplyCurve::quality_regulation(
                s.secondary_design_supply_temp_c,
                s.secondary_design_return_temp_c,
                20.0,
                net.outdoor_design_temp_c,
                (25.0, 95.0),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let plant_curves = net
        .plants
        .iter()
        .map(|p| {
            SupplyCurve::quality_regulation(
                p.design_supply_temp_c,
                p.design_return_temp_c,
                20.0,
                net.outdoor_design_temp_c,
                (70.0, 130.0),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let steps = (opts.days * 86_400.0 / opts.step_s).round() as u64;
    let buildings: usize = net.substations.iter().map(|s| s.buildings.len()).sum();
    let started = Instant::now();
    let mut next_report = 0u64;
    for step in 0..steps {
        if step >= next_report {
            progress(step as f64 / steps as f64);
            next_report += (steps / 100).max(1);
        }
        let outdoor = world.outdoor_temp_c();
        let st = world.state_mut();
        for (ps, curve) in st.plants.iter_mut().zip(&plant_curves) {
            ps.supply_setpoint_c = curve.supply_temp_c(outdoor);
        }
        let gain = VALVE_GAIN_PER_K_MIN * opts.step_s / 60.0;
        for (ss, curve) in st.substations.iter_mut().zip(&curves) {
            let error_k = curve.supply_temp_c(outdoor) - ss.secondary_supply_c;
            ss.valve_command = (ss.valve_command + gain * error_k).clamp(0.0, 1.0);
        }
        // A failed solve keeps the previous flows; it is counted below.
        let _ = world.step(opts.step_s);
    }
    progress(1.0);
    let wall_s = started.elapsed().as_secs_f64();
    let card = world.scorecard();
    Ok(SeasonSummary {
        network: net.name.clone(),
        substations: net.substations.len(),
        buildings,
        days: opts.days,
        step_s: opts.step_s,
        steps,
        wall_s,
        realtime_factor: opts.days * 86_400.0 / wall_s.max(1e-9),
        ms_per_step: wall_s * 1000.0 / steps.max(1) as f64,
        comfort_share: card.comfort_share_all(),
        exposed_flat_comfort_share: card.exposed_ok_hours / card.building_hours.max(1e-9),
        min_room_temp_c: card.min_room_c,
        coldest_building: card.coldest_building.clone(),
        coldest_at_ms: card.coldest_at_ms,
        mean_room_temp_c: card.mean_room_c(),
        heat_produced_gj: card.produced_j / 1.0e9,
        heat_delivered_gj: card.delivered_j / 1.0e9,
        heat_lost_gj: card.lost_j / 1.0e9,
        heat_cost_yuan: card.cost_yuan,
        worst_energy_residual: card.worst_energy_residual,
        hydraulic_failures: world.state().hydraulic_failures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_days_of_demo_keep_homes_warm_and_the_books_closed() {
        let net = Network::sample("demo").unwrap();
        let mut calls = 0;
        let s = run_season(
            &net,
            &SeasonOptions {
                days: 2.0,
                step_s: 300.0,
                scenario: None,
            },
            &mut |_| calls += 1,
        )
        .unwrap();
        assert_eq!(s.steps, 576);
        assert!(calls >= 100, "{calls}");
        assert!(
            s.worst_energy_residual <= 1e-3,
            "{}",
            s.worst_energy_residual
        );
        assert_eq!(s.hydraulic_failures, 0);
        assert!(s.heat_produced_gj > s.heat_delivered_gj && s.heat_lost_gj > 0.0);
        // The fixed curve aims at 20 °C rooms: once warmed up, homes are warm.
        assert!(s.mean_room_temp_c > 18.0, "{s:?}");
        assert!(s.heat_cost_yuan > 0.0);
    }

    #[test]
    fn a_scenario_plant_trip_costs_comfort_and_heat() {
        let net = Network::sample("demo").unwrap();
        let run = |scenario: Option<&str>| {
            let opts = SeasonOptions {
                days: 1.5,
                step_s: 300.0,
                scenario: scenario.map(|t| crate::scenario::Scenario::from_toml(t).unwrap()),
            };
            run_season(&net, &opts, &mut |_| {}).unwrap()
        };
        let calm = run(None);
        let tripped = run(Some(
            "[[events]]\nat_h = 12.0\ninject = { kind = \"plant_trip\", device = \"plant-a\" }\n",
        ));
        assert!(
            tripped.heat_produced_gj < 0.8 * calm.heat_produced_gj,
            "{} vs {} GJ",
            tripped.heat_produced_gj,
            calm.heat_produced_gj
        );
        assert!(tripped.min_room_temp_c < calm.min_room_temp_c - 1.0);
        assert!(tripped.worst_energy_residual <= 1e-3);
    }

    #[test]
    fn refuses_nonsense_durations() {
        let net = Network::sample("demo").unwrap();
        let bad = |days, step_s| {
            let opts = SeasonOptions {
                days,
                step_s,
                scenario: None,
            };
            run_season(&net, &opts, &mut |_| {})
                .unwrap_err()
                .to_string()
        };
        assert!(bad(0.0, 300.0).contains("days"));
        assert!(bad(10.0, 0.1).contains("step"));
    }
}
