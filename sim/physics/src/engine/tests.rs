use super::*;
use crate::solar::Tank;

#[test]
fn demo_heats_rooms_and_balances_heat() {
    let net = Network::sample("demo").unwrap();
    let mut e = Engine::new(&net);
    for s in e.state.substations.iter_mut() {
        s.valve_command = 1.0;
    }
    e.state.plants[0].supply_setpoint_c = 105.0;
    for _ in 0..(6 * 360) {
        e.step(10.0, -2.0, 0.0).unwrap();
    }
    let st = &e.state;
    let warm = st
        .substations
        .iter()
        .flat_map(|s| &s.buildings)
        .all(|b| b.air_c > 17.0);
    assert!(
        warm,
        "rooms did not warm: {:?}",
        st.substations
            .iter()
            .flat_map(|s| s.buildings.iter().map(|b| b.air_c))
            .collect::<Vec<_>>()
    );
    for s in &st.substations {
        // Exchanger balance: primary heat = secondary heat = sum of building heat.
        let primary =
            s.primary_flow_kg_s * WATER_CP_J_KG_K * (s.primary_supply_c - s.primary_return_c);
        let secondary =
            s.secondary_flow_kg_s * WATER_CP_J_KG_K * (s.secondary_supply_c - s.secondary_return_c);
        let rooms: f64 = s.buildings.iter().map(|b| b.heat_w).sum();
        assert!(
            (primary - s.heat_w).abs() / s.heat_w < 1e-6,
            "{primary} vs {}",
            s.heat_w
        );
        assert!(
            (secondary - s.heat_w).abs() / s.heat_w < 1e-3,
            "{secondary} vs {}",
            s.heat_w
        );
        assert!(
            (rooms - s.heat_w).abs() / s.heat_w < 1e-3,
            "{rooms} vs {}",
            s.heat_w
        );
    }
    assert!(st.plants[0].heat_w > 0.0);
}

#[test]
fn closed_valves_and_stopped_pumps_deliver_no_heat() {
    let net = Network::sample("demo").unwrap();
    let mut e = Engine::new(&net);
    e.state.substations[0].pump_tripped = true;
    e.state.substations[1].valve_command = 0.0;
    e.state.substations[1].valve_position = 0.0;
    e.step(10.0, 0.0, 0.0).unwrap();
    assert_eq!(e.state.substations[0].heat_w, 0.0);
    // A closed valve still passes its seat leakage (Kv × 1e-4), nothing more.
    let design = net.substations[1].design_heat_w() / (WATER_CP_J_KG_K * 55.0);
    assert!(
        e.state.substations[1].primary_flow_kg_s < 1e-3 * design,
        "{}",
        e.state.substations[1].primary_flow_kg_s
    );
    assert!(e.state.substations[1].heat_w < 1e-3 * net.substations[1].design_heat_w());
}

#[test]
fn a_plant_supply_step_reaches_each_substation_one_residence_time_later() {
    let mut net = Network::sample("demo").unwrap();
    // Transport is under test, not capacity: let the plant follow its setpoint freely.
    net.plants[0].capacity_w = 1.0e9;
    let mut e = Engine::new(&net);
    for s in e.state.substations.iter_mut() {
        s.valve_command = 1.0;
        s.valve_position = 1.0;
    }
    let dt = 10.0;
    // Settle at 90 °C, then step the plant to 110 °C.
    e.state.plants[0].supply_setpoint_c = 90.0;
    for _ in 0..3000 {
        e.step(dt, 0.0, 0.0).unwrap();
    }
    e.state.plants[0].supply_setpoint_c = 110.0;
    let mut crossed = vec![None; net.substations.len()];
    let mut plant_crossed = None;
    // Mass through each substation's supply pipe since the plant crossed,
    // and when it first filled the pipe: the front's plug-flow arrival.
    let mut passed = vec![0.0; net.substations.len()];
    let mut expected = vec![None; net.substations.len()];
    for i in 1..=3000 {
        e.step(dt, 0.0, 0.0).unwrap();
        if plant_crossed.is_some() {
            for k in 0..passed.len() {
                passed[k] += e.state.pipes[k].supply_flow_kg_s * dt;
                if expected[k].is_none() && passed[k] >= e.pipes[k].spec.mass_kg() {
                    expected[k] = Some(i as f64 * dt);
                }
            }
        }
        if plant_crossed.is_none() && e.state.plants[0].supply_temp_c > 100.0 {
            plant_crossed = Some(i as f64 * dt);
        }
        for (k, s) in e.state.substations.iter().enumerate() {
            if crossed[k].is_none() && s.primary_supply_c > 100.0 {
                crossed[k] = Some(i as f64 * dt);
            }
        }
    }
    // Once the plant's supply crosses 100 °C, the water needs to push the
    // pipe's whole content ρ·A·L out before it reaches the substation.
    assert!(plant_crossed.is_some(), "the plant never reached 100 °C");
    for (k, sub) in net.substations.iter().enumerate() {
        let t = crossed[k].unwrap_or_else(|| panic!("{}: the step never arrived", sub.id));
        let want = expected[k].unwrap_or_else(|| panic!("{}: the pipe never flushed", sub.id));
        // Heat loss makes the arriving water slightly cooler: allow a few minutes late.
        assert!(
            t >= want - dt && t <= want + 300.0,
            "{}: arrived at {t} s, expected {want} s",
            sub.id,
        );
    }
    // The far substation (3.3 km) sees it over an hour after the near one (0.8 km).
    assert!(
        crossed[4].unwrap() - crossed[0].unwrap() > 3600.0,
        "{crossed:?}"
    );
}

#[test]
fn stuck_valves_do_not_move() {
    let net = Network::sample("demo").unwrap();
    let mut e = Engine::new(&net);
    e.state.substations[0].valve_stuck = true;
    e.state.substations[0].valve_command = 1.0;
    e.state.substations[1].valve_command = 1.0;
    let before = e.state.substations[0].valve_position;
    e.step(30.0, 0.0, 0.0).unwrap();
    assert_eq!(e.state.substations[0].valve_position, before);
    assert!((e.state.substations[1].valve_position - 1.0).abs() < 1e-12);
}

/// Steps `e` and checks the network-wide books after every step.
fn step_checked(e: &mut Engine, steps: usize, dt: f64, outdoor_c: f64) {
    for i in 0..steps {
        e.step(dt, outdoor_c, 0.0).unwrap();
        let b = &e.state.balance;
        assert!(
            b.energy_residual <= 1e-3,
            "step {i} at t={} ms: energy balance off by {:.3e} ({b:?})",
            e.state.time_ms,
            b.energy_residual
        );
        assert!(
            b.mass_residual_kg_s <= 1e-6,
            "step {i}: node mass imbalance {:.3e} kg/s",
            b.mass_residual_kg_s
        );
    }
}

#[test]
fn the_meshed_ring_runs_with_both_plants_and_closes_its_books_every_step() {
    let net = Network::sample("ring").unwrap();
    let mut e = Engine::new(&net);
    step_checked(&mut e, 6 * 60, 60.0, -5.0);
    for (p, ps) in net.plants.iter().zip(&e.state.plants) {
        assert!(ps.pump_running && ps.flow_kg_s > 1.0, "{}: {ps:?}", p.id);
        assert!(ps.heat_w > 0.0, "{}: {ps:?}", p.id);
    }
    for (s, ss) in net.substations.iter().zip(&e.state.substations) {
        assert!(ss.heat_w > 0.2 * s.design_heat_w(), "{}: {ss:?}", s.id);
        assert!(ss.diff_pressure_pa > 0.0, "{}", s.id);
    }
    let b = &e.state.balance;
    assert!(b.heat_lost_w > 0.0 && b.heat_produced_w > b.heat_delivered_w);
}

#[test]
fn a_leak_is_made_up_and_its_outflow_follows_the_pressure() {
    let net = Network::sample("ring").unwrap();
    let mut e = Engine::new(&net);
    step_checked(&mut e, 30, 60.0, -5.0);
    let k = e.pipe_index("p-e-se").unwrap();
    // 2 cm² hole: C_d·A·√(2ρp) at a few bar is about 2–4 kg/s.
    e.set_leak(k, Side::Supply, 2.0e-4, None);
    step_checked(&mut e, 30, 60.0, -5.0);
    let leak = &e.state.leaks[0];
    let j = e.pipes[k].b;
    let rho = crate::water::Water::at(e.state.supply_temp_c[j]).density_kg_m3;
    let hand =
        LEAK_DISCHARGE_COEFFICIENT * 2.0e-4 * (2.0 * rho * e.state.supply_pressure_pa[j]).sqrt();
    // Water properties are refreshed every 2 K: allow half a percent.
    assert!(
        (leak.flow_kg_s - hand).abs() < 5e-3 * hand,
        "{} vs {hand}",
        leak.flow_kg_s
    );
    let h = &e.state.holdings[0];
    assert!(
        (h.makeup_kg_s - leak.flow_kg_s).abs() < 1e-9,
        "make-up {} for a leak of {}",
        h.makeup_kg_s,
        leak.flow_kg_s
    );
    assert_eq!(h.deficit_kg, 0.0);
    assert!(!h.pumps_tripped);
    assert!((e.state.balance.leak_kg_s - leak.flow_kg_s).abs() < 1e-12);
}

#[test]
fn losing_water_faster_than_make_up_drops_the_pressure_and_trips_the_pumps() {
    let net = Network::sample("ring").unwrap();
    let mut e = Engine::new(&net);
    step_checked(&mut e, 10, 60.0, -5.0);
    let k = e.pipe_index("p-s-w").unwrap();
    e.set_leak(k, Side::Return, 30.0e-4, None);
    let mut tripped_at = None;
    for i in 0..240 {
        step_checked(&mut e, 1, 30.0, -5.0);
        if tripped_at.is_none() && e.state.holdings[0].pumps_tripped {
            tripped_at = Some(i);
        }
    }
    let h = &e.state.holdings[0];
    assert!(tripped_at.is_some(), "pumps never tripped: {h:?}");
    assert!(h.pressure_pa < 1.3e5, "{h:?}");
    assert!(
        e.state
            .plants
            .iter()
            .all(|p| !p.pump_running && p.flow_kg_s < 1.0)
    );
    // The crew closes the hole: make-up refills, pressure returns, pumps restart.
    e.clear_leak(k, Side::Return);
    step_checked(&mut e, 240, 30.0, -5.0);
    let h = &e.state.holdings[0];
    assert!(!h.pumps_tripped && h.deficit_kg < 1.0, "{h:?}");
    assert!(
        e.state
            .plants
            .iter()
            .all(|p| p.pump_running && p.flow_kg_s > 1.0)
    );
}

#[test]
fn a_burst_section_is_isolated_on_time_and_the_rest_keeps_running() {
    let net = Network::sample("ring").unwrap();
    let mut e = Engine::new(&net);
    step_checked(&mut e, 10, 60.0, -5.0);
    let k = e.pipe_index("p-n-e").unwrap();
    let area = BURST_AREA_SHARE * e.pipe_area_m2(k);
    let isolate_at = e.state.time_ms + 10 * 60_000;
    e.set_leak(k, Side::Supply, area, Some(isolate_at));
    let mut worst = 0.0f64;
    let mut tripped = false;
    for _ in 0..9 {
        step_checked(&mut e, 1, 60.0, -5.0);
        worst = worst.max(e.state.leaks[0].flow_kg_s);
        tripped |= e.state.holdings[0].pumps_tripped;
        assert!(!e.state.pipes[k].isolated);
    }
    // The burst empties the vessel within minutes and the pumps trip on
    // loss of water; the supply side, sealed by the check valves, stops leaking.
    assert!(worst > 50.0, "{:?}", e.state.leaks[0]);
    assert!(tripped, "{:?}", e.state.holdings[0]);
    step_checked(&mut e, 1, 60.0, -5.0);
    assert!(e.state.pipes[k].isolated);
    assert!(e.state.leaks[0].flow_kg_s < 0.01, "{:?}", e.state.leaks[0]);
    // After isolation the make-up refills the network, the pumps restart and
    // r1 at j-east is fed the other way round the ring.
    step_checked(&mut e, 120, 60.0, -5.0);
    let p = &e.state.pipes[k];
    assert!(
        p.supply_flow_kg_s.abs() < 0.05 && p.return_flow_kg_s.abs() < 0.05,
        "{p:?}"
    );
    assert!(
        e.state.plants.iter().all(|p| p.pump_running),
        "{:?}",
        e.state.holdings[0]
    );
    assert!(e.state.substations[0].primary_flow_kg_s > 1.0);
}

#[test]
fn illegal_draining_is_made_up_from_the_primary_and_trips_the_secondary_pump_when_too_much() {
    let net = Network::sample("demo").unwrap();
    let mut e = Engine::new(&net);
    e.state.substations[0].buildings[0].drain_kg_s = 0.2;
    e.state.substations[1].buildings[0].drain_kg_s = 2.0;
    step_checked(&mut e, 60, 60.0, 0.0);
    let (a, b) = (&e.state.substations[0], &e.state.substations[1]);
    assert!((a.secondary_makeup_kg_s - 0.2).abs() < 1e-12 && a.pump_running);
    assert!(
        b.secondary_low_pressure && !b.pump_running && b.heat_w == 0.0,
        "{b:?}"
    );
    let lost: f64 = e.state.holdings.iter().map(|h| h.loss_kg_s).sum();
    assert!((lost - 0.2 - SECONDARY_MAKEUP_KG_S).abs() < 1e-9, "{lost}");
}

#[test]
fn the_city_runs_meshed_with_three_plants_sharing_the_load() {
    let net = Network::sample("city").unwrap();
    let design = crate::steady::solve(&net, &crate::steady::Conditions::default()).unwrap();
    let worst_dp = design
        .substations
        .iter()
        .map(|s| s.diff_pressure_pa)
        .fold(f64::INFINITY, f64::min);
    assert!(
        worst_dp > 0.3e5,
        "critical substation gets only {worst_dp} Pa"
    );
    let mut e = Engine::new(&net);
    step_checked(&mut e, 12, 300.0, -5.0);
    // Every plant runs: the tie lines between them stay shut.
    let ties: Vec<usize> = (0..net.pipes.len()).filter(|&k| net.pipes[k].tie).collect();
    assert_eq!(ties.len(), 3, "a ring of ties between the three plants");
    for &k in &ties {
        let flow = e.state.pipes[k].supply_flow_kg_s.abs();
        assert!(flow < 0.1, "tie {}: {flow} kg/s", net.pipes[k].id);
    }
    let heat: Vec<f64> = e.state.plants.iter().map(|p| p.heat_w).collect();
    let total: f64 = heat.iter().sum();
    for (p, h) in net.plants.iter().zip(&heat) {
        assert!(*h > 0.1 * total, "{}: {h} W of {total} W", p.id);
    }
    // Exposed flats run colder than the building's average.
    let b = &e.state.substations[0].buildings[0];
    assert!(b.exposed_flat_c < b.air_c - 0.5, "{b:?}");
}

/// "Three sources, one network": with one plant tripped and its pump
/// stopped, the others feed its district through the interconnectors.
#[test]
fn the_citys_neighbours_carry_a_tripped_plants_district() {
    let net = Network::sample("city").unwrap();
    let mut e = Engine::new(&net);
    let east = net
        .plants
        .iter()
        .position(|p| p.id.as_str() == "chp-east")
        .unwrap();
    e.state.plants[east].tripped = true;
    e.state.plants[east].pump_on = false;
    step_checked(&mut e, 12, 300.0, -2.0);
    let district: Vec<(&model::Substation, &SubstationState)> = net
        .substations
        .iter()
        .zip(&e.state.substations)
        .filter(|(s, _)| s.plant.as_str() == "chp-east")
        .collect();
    assert!(district.len() > 30, "{} substations", district.len());
    let (s, ss) = district
        .iter()
        .min_by(|a, b| a.1.diff_pressure_pa.total_cmp(&b.1.diff_pressure_pa))
        .unwrap();
    // Found without interconnectors: 0-1 kPa and about 5 % of the design
    // flow at every substation of the tripped district.
    assert!(
        ss.diff_pressure_pa > 0.5e5,
        "{}: {:.0} Pa across the tripped district's critical substation",
        s.id,
        ss.diff_pressure_pa
    );
    let flow_kg_s: f64 = district.iter().map(|(_, ss)| ss.primary_flow_kg_s).sum();
    let design_kg_s: f64 = district
        .iter()
        .map(|(s, _)| s.design_primary_flow_kg_s(&net.plants[east]))
        .sum();
    assert!(
        flow_kg_s > 0.5 * design_kg_s,
        "the district draws {flow_kg_s:.0} kg/s of its {design_kg_s:.0} kg/s design flow"
    );
    // It comes through the ties at the stopped plant.
    let tied: f64 = net
        .pipes
        .iter()
        .zip(&e.state.pipes)
        .filter(|(p, _)| p.tie && (p.from.as_str() == "j-plant-2" || p.to.as_str() == "j-plant-2"))
        .map(|(_, ps)| ps.supply_flow_kg_s.abs())
        .sum();
    assert!(tied > 0.5 * design_kg_s, "{tied:.0} kg/s through the ties");
}

#[test]
fn the_secondary_pump_curve_sets_the_buildings_flows() {
    let net = Network::sample("demo").unwrap();
    let mut e = Engine::new(&net);
    let design: Vec<f64> = e.substations[0]
        .buildings
        .iter()
        .map(|b| b.design_flow_kg_s)
        .collect();
    e.step(60.0, 0.0, 0.0).unwrap();
    // Rated speed, every valve open: the design pressure and design flows.
    let s = &e.state.substations[0];
    let dp0 = model::network::SECONDARY_DESIGN_DP_PA;
    assert!(
        (s.secondary_dp_pa - dp0).abs() < 1e-6,
        "{}",
        s.secondary_dp_pa
    );
    for (b, q) in s.buildings.iter().zip(&design) {
        assert!((b.flow_kg_s - q).abs() < 1e-9 * q);
    }
    // Half the valves shut: the pump rides up its curve (hand: Δp = Δp₀·(10/7)/(1 + 3/7·r²)).
    let shut: f64 = design.iter().take(5).sum::<f64>() / design.iter().sum::<f64>();
    for b in e.state.substations[0].buildings.iter_mut().take(5) {
        b.valve_command = 0.0;
        b.valve_position = 0.0;
    }
    e.step(60.0, 0.0, 0.0).unwrap();
    let r = 1.0 - shut;
    let hand = dp0 * (10.0 / 7.0) / (1.0 + 3.0 / 7.0 * r * r);
    let s = &e.state.substations[0];
    assert!(
        (s.secondary_dp_pa - hand).abs() < 1e-6 * hand,
        "{} vs {hand}",
        s.secondary_dp_pa
    );
    assert!(s.buildings[9].flow_kg_s > design[9]);
    // At 80 % speed the pressure falls with the square of the speed.
    e.state.substations[0].pump_speed = 0.8;
    e.step(60.0, 0.0, 0.0).unwrap();
    let s = &e.state.substations[0];
    assert!((s.secondary_dp_pa - 0.64 * hand).abs() < 1e-6 * hand);
    assert_eq!(s.buildings[0].flow_kg_s, 0.0);
}

#[test]
fn heat_output_ramps_at_most_its_rate_and_holds_the_minimum_load() {
    // 1 MW → 5 MW wanted at 1 kW/s in 60 s steps: 60 kW a step, so 1.6 MW
    // after 10 steps and the full 5 MW only after 67 steps.
    let mut q = 1.0e6;
    for _ in 0..10 {
        q = limit_heat_w(5.0e6, Some(q), 0.0, 8.0e6, Some(1.0e3), 60.0);
    }
    assert!((q - 1.6e6).abs() < 1e-6, "{q}");
    for _ in 0..57 {
        q = limit_heat_w(5.0e6, Some(q), 0.0, 8.0e6, Some(1.0e3), 60.0);
    }
    assert!((q - 5.0e6).abs() < 1e-6, "{q}");
    // Wanting less than the minimum load: the minimum is held.
    assert_eq!(
        limit_heat_w(0.5e6, Some(2.0e6), 2.0e6, 8.0e6, Some(1.0e3), 60.0),
        2.0e6
    );
    // Below the minimum (after start-up) the plant is brought up to it at once.
    assert_eq!(
        limit_heat_w(0.5e6, Some(0.0), 2.0e6, 8.0e6, Some(1.0e3), 60.0),
        2.0e6
    );
    // No previous output: no ramp; the capacity caps everything.
    assert_eq!(
        limit_heat_w(9.0e6, None, 2.0e6, 8.0e6, Some(1.0e3), 60.0),
        8.0e6
    );
    // Never negative: a plant does not cool the water.
    assert_eq!(limit_heat_w(-1.0e6, None, 0.0, 8.0e6, None, 60.0), 0.0);
}

#[test]
fn a_slow_plant_ramps_its_heat_after_a_setpoint_step() {
    let mut net = Network::sample("demo").unwrap();
    let ramp = 2.0e3;
    net.plants[0].ramp_w_per_s = Some(ramp);
    net.plants[0].min_load_w = 0.0;
    let mut e = Engine::new(&net);
    for s in e.state.substations.iter_mut() {
        s.valve_command = 1.0;
    }
    e.state.plants[0].supply_setpoint_c = 80.0;
    step_checked(&mut e, 360, 10.0, 0.0);
    let before = e.state.plants[0].output_w.unwrap();
    e.state.plants[0].supply_setpoint_c = 120.0;
    let mut prev = before;
    for _ in 0..30 {
        e.step(10.0, 0.0, 0.0).unwrap();
        let now = e.state.plants[0].output_w.unwrap();
        // 2 kW/s · 10 s = 20 kW a step at most.
        assert!(now - prev <= ramp * 10.0 + 1.0, "{prev} → {now}");
        prev = now;
    }
    // The step asked for much more: the ramp bound all the way, 30 · 20 kW.
    assert!(
        (prev - before - 30.0 * ramp * 10.0).abs() < 1.0,
        "{before} → {prev}"
    );
}

#[test]
fn a_plant_restarting_after_a_stop_puts_in_at_most_its_capacity() {
    // Derated to 30 %: while its pump stands still its outlet water creeps to
    // the setpoint; the first step after the restart must not then lift the
    // whole flow to it (found on the city: 460-510 MW for a step from plants
    // of 237-398 MW, when pumps restarted or took over flow).
    let net = Network::sample("demo").unwrap();
    let mut e = Engine::new(&net);
    for s in e.state.substations.iter_mut() {
        s.valve_command = 1.0;
    }
    e.state.plants[0].capacity_factor = 0.3;
    let max_w = 0.3 * net.plants[0].capacity_w;
    step_checked(&mut e, 60, 60.0, -5.0);
    e.state.plants[0].pump_on = false;
    step_checked(&mut e, 60, 60.0, -5.0);
    e.state.plants[0].pump_on = true;
    // The outlet is capped for the return temperature of the step before
    // (this step's is known only after the water has moved): within 5 %.
    for i in 0..30 {
        step_checked(&mut e, 1, 60.0, -5.0);
        let p = &e.state.plants[0];
        assert!(
            p.heat_w <= max_w * 1.05,
            "step {i} after the restart: {:.3} MW from a plant derated to {:.3} MW ({p:?})",
            p.heat_w / 1e6,
            max_w / 1e6
        );
    }
}

#[test]
fn a_plant_holds_its_minimum_load_when_the_network_wants_less() {
    let mut net = Network::sample("demo").unwrap();
    net.plants[0].min_load_w = 6.0e6;
    net.plants[0].ramp_w_per_s = None;
    let mut e = Engine::new(&net);
    // A mild day and a low setpoint: the network would take less than 6 MW.
    e.state.plants[0].supply_setpoint_c = 60.0;
    step_checked(&mut e, 180, 10.0, 12.0);
    let p = &e.state.plants[0];
    let made = p.output_w.unwrap();
    assert!(
        (made - 6.0e6).abs() < 1.0 || p.supply_temp_c >= PLANT_MAX_SUPPLY_C - 1e-9,
        "output {made} W at {} °C",
        p.supply_temp_c
    );
    assert!(p.supply_temp_c > 60.0 + 1.0, "{}", p.supply_temp_c);
}

/// The `solar` sample through a clear December day and night at −2 °C,
/// minute by minute: the books (tanks included) close at every step.
/// One minute of the solar plant: (irradiance W/m², tank °C, collector W,
/// heat into the network W, delivering).
type SolarMinute = (f64, f64, f64, f64, bool);

fn sunny_solar_day(hours: usize) -> (Network, Engine, Vec<SolarMinute>) {
    let net = Network::sample("solar").unwrap();
    let mut e = Engine::new(&net);
    let k = net.plants.iter().position(|p| p.solar.is_some()).unwrap();
    let mut trace = Vec::new();
    for i in 0..hours * 60 {
        let ghi = crate::weather::clear_sky_ghi_w_m2(39.1, e.state.time_ms + 30_000);
        e.step(60.0, -2.0, ghi).unwrap();
        let b = &e.state.balance;
        assert!(
            b.energy_residual <= 1e-3,
            "step {i} at t={} ms: energy balance off by {:.3e} ({b:?})",
            e.state.time_ms,
            b.energy_residual
        );
        let ps = &e.state.plants[k];
        let s = ps.solar.as_ref().unwrap();
        trace.push((
            ghi,
            s.tank_temp_c,
            s.collector_heat_w,
            ps.heat_w,
            s.delivering,
        ));
    }
    (net, e, trace)
}

#[test]
fn a_solar_tank_charges_by_day_and_discharges_into_the_network_in_the_evening() {
    let (net, e, trace) = sunny_solar_day(48);
    let k = net.plants.iter().position(|p| p.solar.is_some()).unwrap();
    let spec = net.plants[k].solar.clone().unwrap();
    let tank = Tank::of(&spec);
    // The state at h:00 local time (the run starts at midnight).
    let at = |h: usize| trace[h * 60 - 1];
    // Night: a cold tank (55 °C, below its useful 60 °C) and an idle plant.
    let (_, t7, _, q7, d7) = at(7);
    assert!(t7 < 55.0 && q7 == 0.0 && !d7, "07:00 {:?}", at(7));
    // Morning sun charges the tank; it starts delivering once hot enough.
    let (_, t11, c11, q11, _) = at(11);
    assert!(
        c11 > 2.0e6 && t11 > t7 + 10.0 && q11 > 0.5e6,
        "11:00 {:?}",
        at(11)
    );
    let peak = trace[..24 * 60]
        .iter()
        .map(|s| s.1)
        .fold(f64::NEG_INFINITY, f64::max);
    assert!(peak > 80.0 && peak < spec.tank_max_temp_c, "peak {peak}");
    // After sunset the tank runs down into the network.
    let (_, t17, c17, q17, d17) = at(17);
    let (_, t19, _, q19, _) = at(19);
    assert!(
        c17 == 0.0 && d17 && q17 > 0.5e6 && q19 > 0.3e6,
        "{:?} {:?}",
        at(17),
        at(19)
    );
    assert!(t19 < t17 - 5.0);
    // What the tank gave up between 17:00 and 19:00 went into the network
    // (and a little to the air): C·ΔT = Σ Q·dt + losses.
    let drawn_j: f64 = trace[17 * 60..19 * 60].iter().map(|s| s.3 * 60.0).sum();
    let fall_j = tank.capacity_j_k * (t17 - t19);
    assert!(
        (fall_j - drawn_j).abs() < 0.01 * fall_j,
        "tank gave {fall_j:.3e} J, network got {drawn_j:.3e} J"
    );
    // Then it stops above the return again, idles, and the next day repeats.
    let (_, t23, _, q23, d23) = at(23);
    assert!(!d23 && q23 == 0.0 && t23 > 55.0, "23:00 {:?}", at(23));
    // Idle, the plant's return sensor still reads the network's return there.
    let j = e.plant_junction(k).unwrap();
    let idle = &e.state.plants[k];
    assert!(!idle.pump_running && idle.flow_kg_s == 0.0);
    assert_eq!(idle.return_temp_c, e.state.return_temp_c[j]);
    assert!(trace[24 * 60..].iter().any(|s| s.4 && s.3 > 0.5e6));
    // Whenever it delivers, it supplies no hotter than its tank and within
    // its capacity; heat is free but not unlimited.
    let ps = &e.state.plants[k];
    assert!(ps.supply_temp_c <= ps.solar.as_ref().unwrap().tank_temp_c + 1e-9);
    assert!(trace.iter().all(|s| s.3 <= net.plants[k].capacity_w));
    // Nothing was dumped: the tank never filled.
    assert_eq!(ps.solar.as_ref().unwrap().dumped_total_j, 0.0);
}

#[test]
fn a_full_tank_stagnates_dumps_its_excess_and_the_books_still_close() {
    let net = Network::sample("solar").unwrap();
    let mut e = Engine::new(&net);
    let k = net.plants.iter().position(|p| p.solar.is_some()).unwrap();
    // The plant may not deliver: the sun fills the tank.
    e.state.plants[k].pump_on = false;
    let mut dumped_j = 0.0;
    for i in 0..12 * 60 {
        e.step(60.0, 0.0, 700.0).unwrap();
        let b = &e.state.balance;
        assert!(b.energy_residual <= 1e-3, "step {i}: {b:?}");
        assert_eq!(e.state.plants[k].heat_w, 0.0);
        dumped_j += b.solar_dumped_w * 60.0;
    }
    let s = e.state.plants[k].solar.clone().unwrap();
    assert_eq!(s.tank_temp_c, 95.0);
    assert!(s.dumped_w > 0.0 && s.dumped_w <= s.collector_heat_w);
    assert!((dumped_j - s.dumped_total_j).abs() < 1e-6 * dumped_j);
    // At 95 °C and 0 °C outdoor, 1.8·700 = 1260 W/m² on the plane:
    // 0.8·1260 − 3.5·95 − 0.015·95² = 1008 − 332.5 − 135.4 = 540.1 W/m²,
    // 5.401 MW, all dumped but the tank's loss (60 W/K · 95 K = 5.7 kW).
    assert!(
        (s.collector_heat_w - 5.401e6).abs() < 1e3,
        "{}",
        s.collector_heat_w
    );
    assert!(
        (s.dumped_w - (s.collector_heat_w - 60.0 * 95.0)).abs() < 1.0,
        "{s:?}"
    );
}

#[test]
fn a_tripped_solar_plant_stops_delivering() {
    let (net, mut e, _) = sunny_solar_day(12);
    let k = net.plants.iter().position(|p| p.solar.is_some()).unwrap();
    assert!(e.state.plants[k].heat_w > 0.5e6);
    e.state.plants[k].tripped = true;
    for _ in 0..3 {
        e.step(60.0, -2.0, 400.0).unwrap();
    }
    let ps = &e.state.plants[k];
    assert!(!ps.pump_running && ps.heat_w == 0.0, "{ps:?}");
    assert!(ps.solar.as_ref().unwrap().collector_heat_w > 0.0);
}
