//! Cold design calculation (hydraulics and temperatures, as `heatnet sim
//! steady` does) of meshed grid networks with two plants.
//!
//! Run: `cargo bench -p physics --bench steady` (release build). Prints a
//! table of median times; record results in docs/benchmarks.md. Each run
//! starts from nothing: the graph, the ordering and factor structure, the
//! hydraulic solve from a flat start and the temperatures, iterated to the
//! fixed point, exactly as `physics::steady::solve` is called by the CLI.
//! `STEADY_SIZES=5000 STEADY_RUNS=31` picks the sizes and the runs.

use std::time::{Duration, Instant};

use physics::steady::{Conditions, grid_network, solve};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let sizes: Vec<usize> = std::env::var("STEADY_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![50, 500, 5_000]);
    let runs_override: Option<usize> = std::env::var("STEADY_RUNS")
        .ok()
        .and_then(|s| s.parse().ok());
    println!(
        "| junctions | pipes | substations | cold steady state, median | min | outer iterations | energy balance | runs |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for size in sizes {
        let net = grid_network(size, 1);
        let cond = Conditions::default();
        let runs = runs_override.unwrap_or(if size >= 5_000 { 21 } else { 51 });
        let mut times = Vec::with_capacity(runs);
        let mut last = None;
        for _ in 0..runs {
            let t = Instant::now();
            let st = solve(&net, &cond);
            times.push(t.elapsed());
            last = Some(st);
        }
        let min = times.iter().min().copied().unwrap_or_default();
        match last {
            Some(Ok(st)) => println!(
                "| {} | {} | {} | {} | {} | {} | {:.1e} | {runs} |",
                net.junctions.len(),
                net.pipes.len(),
                net.substations.len(),
                fmt(median(times)),
                fmt(min),
                st.iterations,
                st.energy_balance_error,
            ),
            Some(Err(e)) => println!("| {} | failed: {e} |", net.junctions.len()),
            None => {}
        }
    }
}

fn fmt(d: Duration) -> String {
    if d.as_secs_f64() >= 1.0 {
        format!("{:.2} s", d.as_secs_f64())
    } else {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    }
}
