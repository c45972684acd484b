//! Steady-state hydraulic solve of meshed networks with two sources.
//!
//! Run: `cargo bench -p physics --bench hydraulics` (release build). Prints a
//! table of median solve times; record results in docs/benchmarks.md.

use std::time::{Duration, Instant};

use physics::hydraulics::{Options, grid_problem};

fn main() {
    let sizes = [50usize, 500, 5_000, 50_000];
    println!("| junctions | links | Newton iterations | median solve | min | runs |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for &size in &sizes {
        let pb = grid_problem(size, 1);
        let runs = if size >= 50_000 {
            3
        } else if size >= 5_000 {
            7
        } else {
            21
        };
        let mut times = Vec::with_capacity(runs);
        let mut iterations = 0;
        for _ in 0..runs {
            let start = Instant::now();
            match pb.solve(&Options::default(), None) {
                Ok(s) => iterations = s.iterations,
                Err(e) => {
                    println!(
                        "| {} | {} | failed: {e} | | | |",
                        pb.node_count,
                        pb.links.len()
                    );
                    break;
                }
            }
            times.push(start.elapsed());
        }
        if times.is_empty() {
            continue;
        }
        times.sort();
        let median = times[times.len() / 2];
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            pb.node_count,
            pb.links.len(),
            iterations,
            fmt(median),
            fmt(times[0]),
            times.len()
        );
    }
}

fn fmt(d: Duration) -> String {
    if d.as_secs_f64() >= 1.0 {
        format!("{:.2} s", d.as_secs_f64())
    } else {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    }
}
