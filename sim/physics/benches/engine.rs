//! One dynamic simulation step (hydraulics, transport, exchangers, buildings)
//! of generated city networks, from the embedded `city` to the largest
//! platform's 3,323 substations.
//!
//! Run: `cargo bench -p physics --bench engine` (release build). Prints a
//! table of median step times over 300 s steps after a warm-up; record
//! results in docs/benchmarks.md.

use std::time::{Duration, Instant};

use physics::Engine;

fn main() {
    println!(
        "| substations | junctions | pipes | buildings | threads | first step (cold hydraulics) | step, median | step, min..max | runs |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    for n in [124usize, 500, 1_000, 3_323] {
        let net = match model::generate::city(n, model::generate::CITY_SEED) {
            Ok(net) => net,
            Err(e) => {
                println!("| {n} | generation failed: {e} |");
                continue;
            }
        };
        let buildings: usize = net.substations.iter().map(|s| s.buildings.len()).sum();
        let mut e = Engine::new(&net);
        let t = Instant::now();
        if let Err(err) = e.step(300.0, -5.0, 0.0) {
            println!("| {n} | step failed: {err} |");
            continue;
        }
        let first = t.elapsed();
        for _ in 0..5 {
            let _ = e.step(300.0, -5.0, 0.0);
        }
        let runs = if n >= 3_000 { 11 } else { 31 };
        let mut times: Vec<Duration> = (0..runs)
            .map(|i| {
                let t = Instant::now();
                let _ = e.step(300.0, -5.0 + 0.1 * i as f64, 100.0);
                t.elapsed()
            })
            .collect();
        times.sort();
        println!(
            "| {n} | {} | {} | {buildings} | {threads} | {:.1} ms | {:.2} ms | {:.2}..{:.2} ms | {runs} |",
            net.junctions.len(),
            net.pipes.len(),
            ms(first),
            ms(times[runs / 2]),
            ms(times[0]),
            ms(times[runs - 1]),
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
