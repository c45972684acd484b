//! `heatnet sim steady`: the design calculation, printed as tables or JSON.

use std::fmt::Write as _;

use anyhow::Context as _;
use model::Network;
use physics::steady::{self, Conditions, SteadyState};

use crate::procs::SteadyArgs;

pub fn run(args: &SteadyArgs) -> anyhow::Result<()> {
    let net = Network::load(&args.network)?;
    let cond = match &args.conditions {
        None => Conditions::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            toml::from_str(&text).with_context(|| {
                format!(
                    "{}: not valid design conditions (per plant `supply_temp_c`; per substation `heat_w` with `return_temp_c` or `flow_kg_s`)",
                    path.display()
                )
            })?
        }
    };
    let st = steady::solve(&net, &cond)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&st)?);
    } else {
        print!("{}", render(&st));
    }
    Ok(())
}

fn render(st: &SteadyState) -> String {
    let mut o = String::new();
    let bar = |pa: f64| pa / 1.0e5;
    let _ = writeln!(
        o,
        "steady state of {}: produced {:.3} MW, delivered {:.3} MW, lost in pipes {:.3} MW ({:.1} %); energy balance {:.1e}, mass balance {:.1e} kg/s; {} iterations\n",
        st.network,
        st.heat_produced_w / 1e6,
        st.heat_delivered_w / 1e6,
        st.heat_lost_w / 1e6,
        100.0 * st.heat_lost_w / st.heat_produced_w.max(1.0),
        st.energy_balance_error,
        st.mass_balance_error_kg_s,
        st.iterations
    );
    let _ = writeln!(
        o,
        "{:<14} {:>10} {:>10} {:>9} {:>9} {:>10}",
        "plant", "flow kg/s", "heat MW", "supply °C", "return °C", "head bar"
    );
    for p in &st.plants {
        let _ = writeln!(
            o,
            "{:<14} {:>10.2} {:>10.3} {:>9.2} {:>9.2} {:>10.3}",
            p.id,
            p.flow_kg_s,
            p.heat_w / 1e6,
            p.supply_temp_c,
            p.return_temp_c,
            bar(p.pump_head_pa)
        );
    }
    let _ = writeln!(
        o,
        "\n{:<14} {:>10} {:>10} {:>9} {:>9} {:>10}",
        "substation", "flow kg/s", "heat MW", "supply °C", "return °C", "Δp bar"
    );
    for s in &st.substations {
        let _ = writeln!(
            o,
            "{:<14} {:>10.2} {:>10.3} {:>9.2} {:>9.2} {:>10.3}",
            s.id,
            s.flow_kg_s,
            s.heat_w / 1e6,
            s.supply_temp_c,
            s.return_temp_c,
            bar(s.diff_pressure_pa)
        );
    }
    let _ = writeln!(
        o,
        "\n{:<14} {:>12} {:>12} {:>9} {:>9}",
        "junction", "supply bar", "return bar", "supply °C", "return °C"
    );
    for j in &st.junctions {
        let _ = writeln!(
            o,
            "{:<14} {:>12.3} {:>12.3} {:>9.2} {:>9.2}",
            j.id,
            bar(j.supply_pressure_pa),
            bar(j.return_pressure_pa),
            j.supply_temp_c,
            j.return_temp_c
        );
    }
    let _ = writeln!(
        o,
        "\n{:<14} {:<14} {:<14} {:>11} {:>10} {:>11} {:>10} {:>9}",
        "pipe", "from", "to", "supply kg/s", "out °C", "return kg/s", "out °C", "loss kW"
    );
    for p in &st.pipes {
        let _ = writeln!(
            o,
            "{:<14} {:<14} {:<14} {:>11.2} {:>10.2} {:>11.2} {:>10.2} {:>9.1}",
            p.id,
            p.from,
            p.to,
            p.supply_flow_kg_s,
            p.supply_outlet_temp_c,
            p.return_flow_kg_s,
            p.return_outlet_temp_c,
            p.heat_loss_w / 1e3
        );
    }
    for w in &st.warnings {
        let _ = writeln!(o, "\nwarning: {w}");
    }
    o
}
