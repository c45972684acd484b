//! Hand calculations (values computed independently: Colebrook by bisection).

use super::*;

fn water80() -> Water {
    Water::at(80.0)
}

fn pipe(from: usize, to: usize, length_m: f64, diameter_m: f64) -> Link {
    Link {
        from,
        to,
        kind: LinkKind::Pipe {
            length_m,
            diameter_m,
            roughness_m: 5e-5,
            minor_loss: 0.0,
        },
        water: water80(),
    }
}

#[test]
fn friction_factor_matches_colebrook_and_moody() {
    // Smooth pipe at Re = 1e6: λ = 0.011645 (Moody chart ≈ 0.0116).
    assert!((friction_factor(1e6, 0.0) - 0.011_645_04).abs() < 1e-7);
    assert!((friction_factor(1e5, 1e-4) - 0.018_513_87).abs() < 1e-7);
    // Laminar.
    assert!((friction_factor(1000.0, 1e-3) - 0.064).abs() < 1e-12);
    // Continuous through the transition.
    let below = friction_factor(RE_TURBULENT - 1e-6, 1e-4);
    assert!((below - colebrook(RE_TURBULENT, 1e-4)).abs() < 1e-6);
    // Swamee–Jain stays within 1 % of Colebrook in the turbulent range.
    for re in [1e4, 1e5, 1e6, 1e7] {
        for rr in [0.0, 1e-5, 1e-4, 1e-3] {
            let (sj, cw) = (swamee_jain(re, rr), colebrook(re, rr));
            assert!(
                (sj - cw).abs() / cw < 0.01,
                "Re {re}, k/D {rr}: {sj} vs {cw}"
            );
        }
    }
}

/// Colebrook–White by bisection on `x = 1/√λ` (the slow, sure reference).
fn colebrook_by_bisection(re: f64, rr: f64) -> f64 {
    let f = |x: f64| x + 2.0 * (rr / 3.7 + 2.51 * x / re).log10();
    let (mut lo, mut hi) = (1.0, 100.0);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if f(mid) > 0.0 {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    let x = 0.5 * (lo + hi);
    1.0 / (x * x)
}

#[test]
fn colebrook_by_newton_matches_bisection_across_the_turbulent_range() {
    for re in [4.0e3, 1e4, 3.3e4, 1e5, 4.2e5, 1e6, 1e7, 1e8] {
        for rr in [0.0, 1e-6, 1e-5, 1e-4, 5e-4, 1e-3, 1e-2, 5e-2] {
            let (newton, sure) = (colebrook(re, rr), colebrook_by_bisection(re, rr));
            assert!(
                (newton - sure).abs() / sure < 1e-10,
                "Re {re}, k/D {rr}: {newton} vs {sure}"
            );
        }
    }
}

#[test]
fn colebrook_from_any_start_finds_the_same_root() {
    // Warm starts from the root at a nearby or a distant Reynolds number, and
    // starts that are no use at all (zero, negative, NaN, far too large).
    for re in [4.0e3, 1e4, 1e5, 1e6, 1e8] {
        for rr in [0.0, 1e-5, 1e-3, 5e-2] {
            let sure = colebrook_by_bisection(re, rr);
            let near = colebrook_from(re * (1.0 + 1e-6), rr, f64::NAN).1;
            let far = colebrook_from(re * 30.0, rr, f64::NAN).1;
            for start in [near, far, 0.0, -3.0, f64::NAN, 1e6] {
                let (lambda, x) = colebrook_from(re, rr, start);
                assert!(
                    (lambda - sure).abs() / sure < 1e-10,
                    "Re {re}, k/D {rr}, start {start}: {lambda} vs {sure}"
                );
                assert!((1.0 / (x * x) - lambda).abs() < 1e-15);
            }
        }
    }
}

#[test]
fn a_single_pipe_matches_the_hand_calculation_within_half_a_percent() {
    // 1 km of DN200 (k = 0.05 mm) carrying 20 kg/s of water at 80 °C:
    // v = 0.65482 m/s, Re = 359 369, λ = 0.0163289, Δp = λ·L/D·ρv²/2 = 17 017.6 Pa.
    let pb = Problem {
        node_count: 2,
        links: vec![pipe(0, 1, 1000.0, 0.2)],
        fixed_pressure_pa: vec![(0, 500_000.0)],
        demand_kg_s: vec![0.0, 20.0],
    };
    let s = pb.solve(&Options::default(), None).unwrap();
    let dp = s.pressure_pa[0] - s.pressure_pa[1];
    assert!((dp - 17_017.63).abs() / 17_017.63 < 0.005, "Δp {dp}");
    assert!(
        (dp - 17_017.63).abs() < 0.5,
        "Δp {dp}: the solver should be far better than 0.5 %"
    );
    assert!((s.flow_kg_s[0] - 20.0).abs() < 1e-9);
}

#[test]
fn parallel_pipes_split_by_equal_pressure_drop() {
    // DN200 and DN100 in parallel, 500 m each, 30 kg/s in total (hand: bisection on equal Δp).
    let pb = Problem {
        node_count: 2,
        links: vec![pipe(0, 1, 500.0, 0.2), pipe(0, 1, 500.0, 0.1)],
        fixed_pressure_pa: vec![(0, 500_000.0)],
        demand_kg_s: vec![0.0, 30.0],
    };
    let s = pb.solve(&Options::default(), None).unwrap();
    assert!(
        (s.flow_kg_s[0] - 25.852_25).abs() < 1e-3,
        "{:?}",
        s.flow_kg_s
    );
    assert!((s.flow_kg_s[1] - 4.147_75).abs() < 1e-3);
    assert!((s.pressure_pa[0] - s.pressure_pa[1] - 13_899.29).abs() < 1.0);
}

/// A ring main fed by two sources at different pressures, with five consumers
/// and a cross-connection: the meshed case.
fn ring() -> Problem {
    let mut links = Vec::new();
    for i in 0..7 {
        links.push(pipe(i, (i + 1) % 8, 400.0 + 50.0 * i as f64, 0.15));
    }
    links.push(pipe(7, 0, 600.0, 0.15));
    links.push(pipe(2, 6, 900.0, 0.1));
    Problem {
        node_count: 8,
        links,
        fixed_pressure_pa: vec![(0, 600_000.0), (4, 580_000.0)],
        demand_kg_s: vec![0.0, 5.0, 8.0, 3.0, 0.0, 6.0, 4.0, 7.0],
    }
}

#[test]
fn a_meshed_network_balances_mass_exactly_and_closes_every_loop() {
    let pb = ring();
    let s = pb.solve(&Options::default(), None).unwrap();
    assert!(
        s.max_imbalance_kg_s < 1e-9,
        "imbalance {}",
        s.max_imbalance_kg_s
    );
    // Every link's pressure drop matches its characteristic (so every loop closes).
    for (k, l) in pb.links.iter().enumerate() {
        let (f, _) = l.drop_pa(s.flow_kg_s[k]);
        assert!(
            (f - (s.pressure_pa[l.from] - s.pressure_pa[l.to])).abs() < 0.1,
            "link {k}"
        );
    }
    // The sources supply exactly the demand.
    let supplied: f64 = [0usize, 4]
        .iter()
        .map(|&src| {
            pb.links
                .iter()
                .enumerate()
                .map(|(k, l)| {
                    if l.from == src {
                        s.flow_kg_s[k]
                    } else if l.to == src {
                        -s.flow_kg_s[k]
                    } else {
                        0.0
                    }
                })
                .sum::<f64>()
        })
        .sum();
    assert!((supplied - 33.0).abs() < 1e-9, "supplied {supplied}");
    assert!(s.iterations < 30, "{} iterations", s.iterations);
}

#[test]
fn a_pump_lifts_pressure_along_its_curve() {
    // Pump 50 m shut-off, 40 m at 100 m³/h; then a valve to a fixed outlet pressure.
    let w = water80();
    let curve = PumpCurve::from_rated(50.0, 100.0, 40.0);
    let pb = Problem {
        node_count: 3,
        links: vec![
            Link {
                from: 0,
                to: 1,
                kind: LinkKind::Pump { curve, speed: 1.0 },
                water: w,
            },
            Link {
                from: 1,
                to: 2,
                kind: LinkKind::Valve {
                    kv_m3_h: 60.0,
                    opening: 1.0,
                },
                water: w,
            },
        ],
        fixed_pressure_pa: vec![(0, 200_000.0), (2, 500_000.0)],
        demand_kg_s: vec![0.0; 3],
    };
    let s = pb.solve(&Options::default(), None).unwrap();
    let q_m3_h = s.flow_kg_s[0] / w.density_kg_m3 * 3600.0;
    // Hand: ρg(50 − 10·(Q/100)²) − 300 000 = 1e5·(Q/60)², Q in m³/h.
    let rho_g = w.density_kg_m3 * G_M_S2;
    let lhs = rho_g * (50.0 - 10.0 * (q_m3_h / 100.0).powi(2)) - 300_000.0;
    let rhs = 1.0e5 * (q_m3_h / 60.0).powi(2);
    assert!((lhs - rhs).abs() < 1.0, "Q {q_m3_h} m³/h: {lhs} vs {rhs}");
    assert!(s.pressure_pa[1] > 500_000.0);
}

#[test]
fn bad_networks_are_refused_with_the_reason() {
    let mut pb = ring();
    pb.fixed_pressure_pa.clear();
    assert_eq!(
        pb.solve(&Options::default(), None),
        Err(SolveError::NoReference)
    );

    let mut pb = ring();
    pb.node_count = 10;
    pb.demand_kg_s.extend([1.0, 1.0]);
    pb.links.push(pipe(8, 9, 100.0, 0.1));
    assert_eq!(
        pb.solve(&Options::default(), None),
        Err(SolveError::Island { nodes: vec![8, 9] })
    );

    let mut pb = ring();
    pb.links.push(pipe(3, 42, 100.0, 0.1));
    assert_eq!(
        pb.solve(&Options::default(), None),
        Err(SolveError::BadLink { link: 9, node: 42 })
    );

    let mut pb = ring();
    pb.demand_kg_s[3] = f64::NAN;
    assert!(matches!(
        pb.solve(&Options::default(), None),
        Err(SolveError::BadInput { .. })
    ));
}

#[test]
fn non_convergence_is_an_error_not_an_answer() {
    let opts = Options {
        max_iterations: 2,
        ..Options::default()
    };
    match ring().solve(&opts, None) {
        Err(SolveError::NotConverged {
            iterations: 2,
            max_residual_pa,
            ..
        }) => {
            assert!(max_residual_pa > 0.1)
        }
        other => panic!("expected NotConverged, got {other:?}"),
    }
}

#[test]
fn a_generated_meshed_grid_converges_with_exact_mass_balance() {
    let pb = grid_problem(500, 7);
    assert_eq!(pb.node_count, 529);
    let s = pb.solve(&Options::default(), None).unwrap();
    assert!(s.max_imbalance_kg_s < 1e-8, "{}", s.max_imbalance_kg_s);
    let total: f64 = pb.demand_kg_s.iter().sum();
    let out_of_sources: f64 = pb
        .links
        .iter()
        .enumerate()
        .map(|(k, l)| {
            let mut v = 0.0;
            if l.from == 0 || l.from == pb.node_count - 1 {
                v += s.flow_kg_s[k];
            }
            if l.to == 0 || l.to == pb.node_count - 1 {
                v -= s.flow_kg_s[k];
            }
            v
        })
        .sum();
    assert!(
        (out_of_sources - total).abs() < 1e-8,
        "{out_of_sources} vs {total}"
    );
    // Same seed, same network; another seed, another one.
    assert_eq!(grid_problem(500, 7).demand_kg_s, pb.demand_kg_s);
    assert_ne!(grid_problem(500, 8).demand_kg_s, pb.demand_kg_s);
}

#[test]
fn a_reused_factorization_gives_the_same_answer_with_fewer_factorizations() {
    let pb = grid_problem(500, 3);
    let opts = Options::default();
    let mut plain = Solver::new(&pb).unwrap();
    let mut reusing = Solver::new(&pb).unwrap();
    reusing.reuse_factorization(true);
    let base = plain.solve(&pb, &opts, None).unwrap();
    // Demands move by up to ±1 %, as between the design calculation's rounds.
    let mut moved = pb.clone();
    for (i, d) in moved.demand_kg_s.iter_mut().enumerate() {
        *d *= 1.0 + 0.01 * (((i * 37) % 21) as f64 / 10.0 - 1.0);
    }
    let a = plain.solve(&moved, &opts, Some(&base.flow_kg_s)).unwrap();
    let _ = reusing.solve(&pb, &opts, None).unwrap();
    let before = reusing.factorizations();
    let b = reusing.solve(&moved, &opts, Some(&base.flow_kg_s)).unwrap();
    let after = reusing.factorizations();
    assert!(after.1 > before.1, "no reuse: {before:?} → {after:?}");
    assert!(
        after.0 - before.0 < b.iterations,
        "{before:?} → {after:?} in {} iterations",
        b.iterations
    );
    assert!(b.max_imbalance_kg_s < 1e-9, "{}", b.max_imbalance_kg_s);
    for (x, y) in a.flow_kg_s.iter().zip(&b.flow_kg_s) {
        assert!((x - y).abs() < 1e-6 * (1.0 + x.abs()), "{x} vs {y}");
    }
    for (x, y) in a.pressure_pa.iter().zip(&b.pressure_pa) {
        assert!((x - y).abs() < 0.1, "{x} vs {y}");
    }
}

#[test]
fn iterate_returns_an_unconverged_iterate_and_converges_in_one_step_from_the_answer() {
    let pb = ring();
    let opts = Options {
        max_iterations: 1,
        ..Options::default()
    };
    let mut s = Solver::new(&pb).unwrap();
    // One step from a flat start is not an answer, and says so…
    let (first, converged) = s.iterate(&pb, &opts, None, None).unwrap();
    assert!(!converged);
    assert_eq!(first.iterations, 1);
    // …and `solve` turns the same into an error.
    assert!(matches!(
        s.solve(&pb, &opts, None),
        Err(SolveError::NotConverged { iterations: 1, .. })
    ));
    // From the answer with its pressures, one step confirms it.
    let answer = pb.solve(&Options::default(), None).unwrap();
    let (again, converged) = s
        .iterate(
            &pb,
            &opts,
            Some(&answer.flow_kg_s),
            Some(&answer.pressure_pa),
        )
        .unwrap();
    assert!(converged, "{again:?} from {answer:?}");
    for (x, y) in again.flow_kg_s.iter().zip(&answer.flow_kg_s) {
        assert!((x - y).abs() < 1e-5, "{x} vs {y}");
    }
}

#[test]
fn link_drops_on_two_threads_are_those_of_one() {
    let pb = grid_problem(10_000, 4);
    let m = pb.links.len();
    assert!(m >= PARALLEL_MIN_LINKS);
    let q: Vec<f64> = (0..m).map(|k| ((k as f64) * 0.731).sin() * 3.0).collect();
    let p: Vec<f64> = (0..pb.node_count)
        .map(|i| 5.0e5 + ((i as f64) * 0.37).cos() * 1.0e4)
        .collect();
    let (mut f, mut g, mut r) = (vec![0.0; m], vec![0.0; m], vec![0.0; m]);
    let mut x = vec![f64::NAN; m];
    link_drops(&pb.links, &q, &p, &mut x, &mut f, &mut g, &mut r);
    for (k, l) in pb.links.iter().enumerate() {
        let mut xk = f64::NAN;
        let (fk, gk) = l.drop_pa_from(q[k], &mut xk);
        let rk = fk - (p[l.from] - p[l.to]);
        assert_eq!(
            (fk.to_bits(), gk.to_bits(), rk.to_bits(), xk.to_bits()),
            (
                f[k].to_bits(),
                g[k].to_bits(),
                r[k].to_bits(),
                x[k].to_bits()
            ),
            "link {k}"
        );
    }
}

#[test]
fn a_solver_refuses_a_problem_of_another_topology_cold_or_warm() {
    let pb = grid_problem(400, 5);
    let mut solver = Solver::new(&pb).unwrap();
    let s = solver.solve(&pb, &Options::default(), None).unwrap();
    let mut other = pb.clone();
    let last = other.links.len() - 1;
    // Another node, and one that does not exist.
    for to in [other.links[last].to + 1, pb.node_count + 7] {
        other.links[last].to = to;
        for start in [None, Some(s.flow_kg_s.as_slice())] {
            assert!(
                matches!(
                    solver.iterate(&other, &Options::default(), start, Some(&s.pressure_pa)),
                    Err(SolveError::BadInput { .. })
                ),
                "to {to}, warm {}",
                start.is_some()
            );
        }
    }
}
