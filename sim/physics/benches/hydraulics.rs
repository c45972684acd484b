//! Steady-state hydraulic solve of meshed networks with two sources.
//!
//! Run: `cargo bench -p physics --bench hydraulics` (release build). Prints a
//! table of median times; record results in docs/benchmarks.md.
//! - analysis: ordering and factor structure, once per topology;
//! - cold solve: from a flat start (as `heatnet sim steady` does);
//! - warm solve: from the previous flows after every demand moved by up to ±5 %
//!   (as a simulator step does).

use std::time::{Duration, Instant};

use physics::hydraulics::{Options, Solver, grid_problem};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    println!(
        "| junctions | links | fill of L | analysis | cold solve (iterations) | warm solve (iterations) | runs |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let sizes: Vec<usize> = std::env::var("HYDRAULICS_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![50, 500, 5_000, 50_000]);
    for size in sizes {
        let pb = grid_problem(size, 1);
        let runs = if size >= 50_000 { 5 } else { 21 };
        let t = Instant::now();
        let mut solver = match Solver::new(&pb) {
            Ok(s) => s,
            Err(e) => {
                println!("| {} | {} | failed: {e} |", pb.node_count, pb.links.len());
                continue;
            }
        };
        let analysis = t.elapsed();
        let opts = Options::default();
        let (mut cold, mut warm) = (Vec::new(), Vec::new());
        let (mut cold_it, mut warm_it) = (0, 0);
        let mut failed = None;
        for run in 0..runs {
            let t = Instant::now();
            let base = match solver.solve(&pb, &opts, None) {
                Ok(s) => s,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            };
            cold.push(t.elapsed());
            cold_it = base.iterations;
            let mut moved = pb.clone();
            for (i, d) in moved.demand_kg_s.iter_mut().enumerate() {
                *d *= 1.0 + 0.05 * (((i * 7919 + run * 104_729) % 201) as f64 / 100.0 - 1.0);
            }
            let t = Instant::now();
            match solver.solve(&moved, &opts, Some(&base.flow_kg_s)) {
                Ok(s) => warm_it = s.iterations,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
            warm.push(t.elapsed());
        }
        if let Some(e) = failed {
            println!(
                "| {} | {} | solve failed: {e} |",
                pb.node_count,
                pb.links.len()
            );
            continue;
        }
        println!(
            "| {} | {} | {} | {} | {} ({cold_it}) | {} ({warm_it}) | {runs} |",
            pb.node_count,
            pb.links.len(),
            solver_fill(&solver),
            fmt(analysis),
            fmt(median(cold)),
            fmt(median(warm)),
        );
    }
}

fn solver_fill(s: &Solver) -> usize {
    s.factor_nonzeros()
}

fn fmt(d: Duration) -> String {
    if d.as_secs_f64() >= 1.0 {
        format!("{:.2} s", d.as_secs_f64())
    } else {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    }
}
