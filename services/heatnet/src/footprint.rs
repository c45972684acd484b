//! `heatnet bench gateway-footprint`: resident memory and CPU of one gateway
//! hosting a substation with many buildings, measured on the real process
//! under `heatnet up` (release build recommended).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use model::{Network, NodeId};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

#[derive(Args, Clone, Debug)]
pub struct FootprintArgs {
    /// Buildings behind the one substation.
    #[arg(long, default_value_t = 50)]
    buildings: usize,
    /// Run this long before measuring, s (start-up, first connections).
    #[arg(long, default_value_t = 20)]
    warmup_s: u64,
    /// Measure CPU over this long, s.
    #[arg(long, default_value_t = 60)]
    measure_s: u64,
    /// Scratch directory (emptied first).
    #[arg(long, default_value = "/tmp/heatnet-footprint")]
    data_dir: PathBuf,
    #[arg(long, default_value_t = 7600)]
    base_port: u16,
    /// Print JSON instead of a table row.
    #[arg(long)]
    json: bool,
}

/// The `demo` network cut down to its first plant and substation, with
/// `n` buildings (the demo's buildings repeated).
pub fn network(n: usize) -> anyhow::Result<Network> {
    let mut net = Network::load("demo")?;
    anyhow::ensure!((1..=999).contains(&n), "--buildings {n}: give 1..999");
    net.name = format!("footprint-{n}");
    net.plants.truncate(1);
    net.substations.truncate(1);
    let sub = net
        .substations
        .first_mut()
        .context("the demo network has no substation")?;
    let templates = sub.buildings.clone();
    anyhow::ensure!(!templates.is_empty(), "the demo substation has no building");
    sub.buildings = (0..n)
        .map(|i| {
            let mut b = templates[i % templates.len()].clone();
            b.id = NodeId::new(format!("{}-b{:03}", sub.id, i + 1))?;
            Ok(b)
        })
        .collect::<anyhow::Result<_>>()?;
    net.validate()?;
    Ok(net)
}

#[derive(Debug, serde::Serialize)]
struct Footprint {
    buildings: usize,
    gateway_pid: u32,
    vm_rss_kb: u64,
    vm_hwm_kb: u64,
    threads: u64,
    cpu_s: f64,
    measured_s: f64,
    cpu_percent_of_one_core: f64,
}

fn status_kb(pid: u32, field: &str) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// utime + stime of a process, clock ticks.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc/<pid>/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .and_then(|v| v.parse().ok())
            .context("malformed /proc/<pid>/stat")
    };
    // utime is field 14 and stime field 15 (1-based), i.e. 11 and 12 here.
    Ok(get(11)? + get(12)?)
}

fn clock_ticks_per_s() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn gateway_pid(data_dir: &Path, gateway: &str) -> Option<u32> {
    let text = std::fs::read_to_string(heatnet::layout::up_file(data_dir)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["pids"][format!("gateway-{gateway}")]
        .as_u64()
        .map(|p| p as u32)
}

struct Up(Child);

impl Drop for Up {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.0.id() as i32), Signal::SIGINT);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(args: FootprintArgs) -> anyhow::Result<()> {
    let net = network(args.buildings)?;
    let _ = std::fs::remove_dir_all(&args.data_dir);
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let net_file = args.data_dir.join("network.toml");
    std::fs::write(&net_file, net.to_toml())?;
    let run_dir = args.data_dir.join("run");
    let log = std::fs::File::create(args.data_dir.join("up.log"))?;
    let sub = net
        .substations
        .first()
        .context("no substation")?
        .id
        .to_string();
    eprintln!(
        "starting heatnet up with 1 plant, 1 substation ({sub}) and {} buildings in {}",
        args.buildings,
        run_dir.display()
    );
    let up = Up(Command::new(std::env::current_exe()?)
        .args(["up", "--network"])
        .arg(&net_file)
        .arg("--data-dir")
        .arg(&run_dir)
        .args(["--base-port", &args.base_port.to_string()])
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .spawn()
        .context("starting heatnet up")?);
    let started = Instant::now();
    let pid = loop {
        if let Some(pid) = gateway_pid(&run_dir, &sub) {
            break pid;
        }
        if started.elapsed() > Duration::from_secs(60) {
            anyhow::bail!(
                "the gateway of {sub} did not start within 60 s; see {}",
                args.data_dir.join("up.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    std::thread::sleep(Duration::from_secs(args.warmup_s));
    let t0 = Instant::now();
    let c0 = cpu_ticks(pid)?;
    std::thread::sleep(Duration::from_secs(args.measure_s));
    let c1 = cpu_ticks(pid)?;
    let measured_s = t0.elapsed().as_secs_f64();
    let cpu_s = (c1.saturating_sub(c0)) as f64 / clock_ticks_per_s();
    let f = Footprint {
        buildings: args.buildings,
        gateway_pid: pid,
        vm_rss_kb: status_kb(pid, "VmRSS:")?,
        vm_hwm_kb: status_kb(pid, "VmHWM:")?,
        threads: status_kb(pid, "Threads:")?,
        cpu_s,
        measured_s,
        cpu_percent_of_one_core: 100.0 * cpu_s / measured_s,
    };
    drop(up);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&f)?);
    } else {
        println!(
            "gateway with {} buildings: VmRSS {:.1} MiB, VmHWM {:.1} MiB, {} threads, CPU {:.2} s in {:.0} s ({:.1} % of one core)",
            f.buildings,
            f.vm_rss_kb as f64 / 1024.0,
            f.vm_hwm_kb as f64 / 1024.0,
            f.threads,
            f.cpu_s,
            f.measured_s,
            f.cpu_percent_of_one_core
        );
    }
    Ok(())
}
