use model::NodeId;

use super::*;

fn id(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

fn check_balances(st: &SteadyState) {
    assert!(
        st.energy_balance_error.abs() < 1e-3,
        "energy balance {}",
        st.energy_balance_error
    );
    assert!(
        st.mass_balance_error_kg_s < 1e-6,
        "mass balance {}",
        st.mass_balance_error_kg_s
    );
}

#[test]
fn demo_design_point_delivers_every_design_heat_and_balances() {
    let net = Network::sample("demo").unwrap();
    let st = solve(&net, &Conditions::default()).unwrap();
    check_balances(&st);
    assert!(
        st.energy_balance_error.abs() < 1e-9,
        "{}",
        st.energy_balance_error
    );
    for (s, r) in net.substations.iter().zip(&st.substations) {
        assert!(
            (r.heat_w - s.design_heat_w()).abs() / s.design_heat_w() < 1e-9,
            "{}",
            r.id
        );
        assert!((r.return_temp_c - 55.0).abs() < 1e-12);
        assert!(
            r.diff_pressure_pa > 0.0,
            "{}: no differential pressure",
            r.id
        );
    }
    // Pipe losses against a hand estimate: U′ = 0.37 W/(m·K) on 2 × 12.0 km of
    // pipe, supply near 110 °C and return at 55 °C over ground at 5 °C:
    // 0.37·12 000·(105 + 50) ≈ 688 kW (the supply cools a little on its way).
    let length: f64 = net
        .substations
        .iter()
        .map(|s| s.pipe_length_m.unwrap())
        .sum();
    let hand = 0.37 * length * ((110.0 - 5.0) + (55.0 - 5.0));
    assert!(
        (st.heat_lost_w - hand).abs() / hand < 0.02,
        "{} vs {hand}",
        st.heat_lost_w
    );
    assert!(st.warnings.is_empty(), "{:?}", st.warnings);
    assert_eq!(st.junctions.len(), 7);
    assert_eq!(st.pipes.len(), 6);
}

#[test]
fn a_pipe_outlet_matches_the_exponential_formula_within_0_05_k() {
    let net = Network::sample("demo").unwrap();
    let st = solve(&net, &Conditions::default()).unwrap();
    let s05 = net.substation(&id("s05")).unwrap();
    let pipe = st.pipes.iter().find(|p| p.to == "s05").unwrap();
    let flow = pipe.supply_flow_kg_s;
    // Hand: T_out = T_g + (T_in − T_g)·exp(−U′·L/(ṁ·c_p)), T_in = 110 °C at the plant.
    let l = s05.pipe_length_m.unwrap();
    let hand = 5.0 + (110.0 - 5.0) * (-0.37 * l / (flow * WATER_CP_J_KG_K)).exp();
    assert!(
        (pipe.supply_outlet_temp_c - hand).abs() < 0.05,
        "{} vs {hand}",
        pipe.supply_outlet_temp_c
    );
    let r = st.substations.iter().find(|r| r.id == "s05").unwrap();
    assert!((r.supply_temp_c - pipe.supply_outlet_temp_c).abs() < 1e-12);
    assert!((r.flow_kg_s - flow).abs() < 1e-9);
}

#[test]
fn a_meshed_network_with_two_plants_shares_the_load_and_balances() {
    let net = Network::sample("ring").unwrap();
    let st = solve(&net, &Conditions::default()).unwrap();
    check_balances(&st);
    let north = st.plants.iter().find(|p| p.id == "chp-north").unwrap();
    let south = st.plants.iter().find(|p| p.id == "boiler-south").unwrap();
    assert!(
        north.heat_w > 0.0 && south.heat_w > 0.0,
        "{north:?} {south:?} {:?}",
        st.warnings
    );
    assert!(st.warnings.is_empty(), "{:?}", st.warnings);
    // Every junction holds a pressure above the static pressure on the supply side.
    for j in &st.junctions {
        assert!(j.supply_pressure_pa > j.return_pressure_pa, "{}", j.id);
    }
    // Mixing: the centre sees water from both plants, between their temperatures.
    let centre = st.junctions.iter().find(|j| j.id == "j-centre").unwrap();
    assert!(
        centre.supply_temp_c < 110.0 && centre.supply_temp_c > 90.0,
        "{}",
        centre.supply_temp_c
    );
}

#[test]
fn a_plant_whose_pump_is_overpowered_is_reported_and_the_balance_still_closes() {
    let mut net = Network::sample("ring").unwrap();
    let weak = net
        .plants
        .iter_mut()
        .find(|p| p.id.as_str() == "boiler-south")
        .unwrap();
    weak.pump = Some(model::network::PumpRating {
        shutoff_head_m: 5.0,
        rated_flow_m3_h: 50.0,
        rated_head_m: 4.0,
    });
    let st = solve(&net, &Conditions::default()).unwrap();
    check_balances(&st);
    assert!(
        st.warnings
            .iter()
            .any(|w| w.starts_with("plant boiler-south: its pump cannot lift")),
        "{:?}",
        st.warnings
    );
    let south = st.plants.iter().find(|p| p.id == "boiler-south").unwrap();
    assert_eq!(south.heat_w, 0.0);
}

#[test]
fn a_fixed_flow_sets_the_return_temperature() {
    let net = Network::sample("demo").unwrap();
    let mut cond = Conditions::default();
    cond.substations.insert(
        id("s01"),
        Draw::HeatAndFlow {
            heat_w: 1.0e6,
            flow_kg_s: 8.0,
        },
    );
    cond.plants.insert(
        id("plant-a"),
        PlantCondition {
            supply_temp_c: 95.0,
        },
    );
    let st = solve(&net, &cond).unwrap();
    check_balances(&st);
    let r = st.substations.iter().find(|r| r.id == "s01").unwrap();
    assert_eq!(r.flow_kg_s, 8.0);
    let hand = r.supply_temp_c - 1.0e6 / (8.0 * WATER_CP_J_KG_K);
    assert!((r.return_temp_c - hand).abs() < 1e-9);
    assert!((r.heat_w - 1.0e6).abs() < 1e-6);
}

#[test]
fn impossible_or_unknown_conditions_are_refused() {
    let net = Network::sample("demo").unwrap();
    let mut cond = Conditions::default();
    cond.substations.insert(
        id("s02"),
        Draw::HeatAndReturn {
            heat_w: 1.0e6,
            return_temp_c: 120.0,
        },
    );
    let err = solve(&net, &cond).unwrap_err().to_string();
    assert!(
        err.starts_with("substation s02 cannot draw 1000000 W with return at 120 °C"),
        "{err}"
    );

    let mut cond = Conditions::default();
    cond.substations.insert(
        id("s99"),
        Draw::HeatAndFlow {
            heat_w: 1.0,
            flow_kg_s: 1.0,
        },
    );
    assert_eq!(
        solve(&net, &cond).unwrap_err(),
        SteadyError::UnknownNode {
            kind: "substation",
            id: "s99".into()
        }
    );

    let mut cond = Conditions::default();
    cond.substations.insert(
        id("s01"),
        Draw::HeatAndFlow {
            heat_w: 1.0,
            flow_kg_s: -1.0,
        },
    );
    assert_eq!(
        solve(&net, &cond).unwrap_err().to_string(),
        "substation s01: flow_kg_s must be a finite number > 0"
    );
}

#[test]
fn the_generated_grid_is_valid_and_solves_with_balances() {
    let net = grid_network(100, 1);
    net.validate().unwrap();
    assert_eq!(net.junctions.len(), 100);
    assert_eq!(net.substations.len(), 98);
    let st = solve(&net, &Conditions::default()).unwrap();
    check_balances(&st);
    assert!(st.warnings.is_empty(), "{:?}", st.warnings);
    for s in &st.substations {
        assert!(s.diff_pressure_pa > 0.0, "{}: {}", s.id, s.diff_pressure_pa);
        assert!(s.supply_temp_c > 100.0, "{}: {}", s.id, s.supply_temp_c);
    }
}

#[test]
fn the_generated_grid_settles_to_a_fixed_point_of_flows_and_temperatures() {
    // The answer is consistent: each substation draws its design heat at the
    // supply temperature that reaches it, returning at 55 °C.
    let net = grid_network(400, 2);
    let st = solve(&net, &Conditions::default()).unwrap();
    check_balances(&st);
    for (s, r) in net.substations.iter().zip(&st.substations) {
        let want = s.design_heat_w() / (WATER_CP_J_KG_K * (r.supply_temp_c - 55.0));
        assert!(
            (r.flow_kg_s - want).abs() / want < 1e-8,
            "{}: {} vs {want}",
            r.id,
            r.flow_kg_s
        );
    }
    // Every pipe's outlet follows the exponential formula from its inlet junction.
    let index: BTreeMap<&str, usize> = st
        .junctions
        .iter()
        .enumerate()
        .map(|(j, r)| (r.id.as_str(), j))
        .collect();
    for (p, gp) in st.pipes.iter().zip(&net.pipes) {
        let f = p.supply_flow_kg_s;
        if f.abs() < 1e-3 {
            continue;
        }
        let inlet = if f > 0.0 { &p.from } else { &p.to };
        let t_in = st.junctions[index[inlet.as_str()]].supply_temp_c;
        let hand =
            5.0 + (t_in - 5.0) * (-gp.loss_w_m_k * gp.length_m / (f.abs() * WATER_CP_J_KG_K)).exp();
        assert!((p.supply_outlet_temp_c - hand).abs() < 1e-9, "{}", p.id);
    }
}

#[test]
fn the_two_sides_propagate_on_two_threads_as_on_one() {
    let net = grid_network(2_500, 3);
    let st = solve(&net, &Conditions::default()).unwrap();
    let g = Graph::of(&net);
    let inc = Incidence::of(&g);
    assert!(g.junctions.len() >= PARALLEL_MIN_JUNCTIONS);
    let mut q: Vec<f64> = st
        .pipes
        .iter()
        .flat_map(|p| [p.supply_flow_kg_s, p.return_flow_kg_s])
        .collect();
    q.extend(st.plants.iter().map(|p| p.flow_kg_s));
    let p: Vec<f64> = st
        .junctions
        .iter()
        .flat_map(|j| [j.supply_pressure_pa, j.return_pressure_pa])
        .collect();
    let supply_c: Vec<f64> = st.plants.iter().map(|p| p.supply_temp_c).collect();
    let draws: Vec<Draw> = net
        .substations
        .iter()
        .map(|s| Draw::HeatAndReturn {
            heat_w: s.design_heat_w(),
            return_temp_c: 55.0,
        })
        .collect();
    let flows: Vec<f64> = st.substations.iter().map(|s| s.flow_kg_s).collect();
    let x = Flows {
        inc: &inc,
        q: &q,
        p: &p,
        supply_c: &supply_c,
        draws: &draws,
        flows: &flows,
    };
    let nj = g.junctions.len();
    let (mut sup2, mut ret2) = (vec![100.0; nj], vec![50.0; nj]);
    propagate(&x, &mut Orders::new(nj), &mut sup2, &mut ret2, None);
    let (mut sup1, mut ret1) = (vec![100.0; nj], vec![50.0; nj]);
    let mut orders = Orders::new(nj);
    propagate_supply(&x, &mut orders.sup, &mut sup1, None);
    propagate_return(&x, &mut orders.ret, &sup1, &mut ret1, None);
    let bits = |v: &[f64]| v.iter().map(|t| t.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&sup2), bits(&sup1));
    assert_eq!(bits(&ret2), bits(&ret1));
    // And both are the answer's temperatures.
    for (j, r) in st.junctions.iter().enumerate() {
        assert!((sup1[j] - r.supply_temp_c).abs() < 1e-6, "{}", r.id);
        assert!((ret1[j] - r.return_temp_c).abs() < 1e-6, "{}", r.id);
    }
}
