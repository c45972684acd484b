//! Transport delay in a pipe: plug flow with Lagrangian parcels.
//!
//! Water enters as parcels (mass, temperature) at the inlet and leaves at the
//! outlet in the same order, so a temperature front arrives exactly one
//! residence time later without numerical smearing. Each parcel cools toward
//! the ground while it travels: `dT/dt = −U′·(T − T_g)/(ρ·A·c_p)`, which over
//! a residence time `τ = ρ·A·L/ṁ` gives the steady formula
//! `T_out = T_g + (T_in − T_g)·exp(−U′·L/(ṁ·c_p))` (node method: Benonysson
//! 1991; van der Heijde et al. 2017).

use std::collections::VecDeque;

use model::WATER_CP_J_KG_K;
use serde::{Deserialize, Serialize};

/// Parcels kept per pipe at most; beyond, the most similar neighbours merge.
pub const MAX_PARCELS: usize = 512;

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
struct Parcel {
    mass_kg: f64,
    temp_c: f64,
}

/// One pipe's water, inlet at the back of the queue, outlet at the front.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PlugPipe {
    parcels: VecDeque<Parcel>,
}

/// The fixed properties of a pipe the plug model needs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PipeSpec {
    pub length_m: f64,
    pub diameter_m: f64,
    pub loss_w_m_k: f64,
    pub ground_c: f64,
    pub density_kg_m3: f64,
}

impl PipeSpec {
    pub fn area_m2(&self) -> f64 {
        std::f64::consts::PI * self.diameter_m * self.diameter_m / 4.0
    }

    /// Mass of water the pipe holds, kg.
    pub fn mass_kg(&self) -> f64 {
        self.density_kg_m3 * self.area_m2() * self.length_m
    }
}

impl PlugPipe {
    /// A pipe full of water at `temp_c`.
    pub fn filled(spec: &PipeSpec, temp_c: f64) -> Self {
        let mut parcels = VecDeque::new();
        parcels.push_back(Parcel {
            mass_kg: spec.mass_kg(),
            temp_c,
        });
        Self { parcels }
    }

    pub fn is_empty(&self) -> bool {
        self.parcels.is_empty()
    }

    /// Heat the water holds above `ref_c`, J.
    pub fn heat_content_j(&self, ref_c: f64) -> f64 {
        self.parcels
            .iter()
            .map(|p| p.mass_kg * WATER_CP_J_KG_K * (p.temp_c - ref_c))
            .sum()
    }

    /// Advances `dt_s`: water at `inlet_c` enters at `flow_kg_s` (≥ 0) and as
    /// much leaves. Returns the mass-weighted temperature of what left (the
    /// outlet temperature over the step), and the heat lost to the ground, J.
    pub fn step(&mut self, spec: &PipeSpec, inlet_c: f64, flow_kg_s: f64, dt_s: f64) -> (f64, f64) {
        if self.parcels.is_empty() {
            *self = Self::filled(spec, inlet_c);
        }
        // Cool every parcel over the step (half before moving, half after, so
        // the water that leaves has cooled for its time in the pipe on average).
        let k = (-spec.loss_w_m_k * dt_s / (spec.density_kg_m3 * spec.area_m2() * WATER_CP_J_KG_K))
            .exp();
        let half = k.sqrt();
        let mut lost = self.cool(spec.ground_c, half);
        let moved = flow_kg_s.max(0.0) * dt_s;
        let mut out_mass = 0.0;
        let mut out_heat = 0.0;
        if moved > 0.0 {
            self.parcels.push_back(Parcel {
                mass_kg: moved,
                temp_c: inlet_c,
            });
            let mut to_remove = moved;
            while to_remove > 1e-12 {
                let Some(front) = self.parcels.front_mut() else {
                    break;
                };
                let take = front.mass_kg.min(to_remove);
                out_mass += take;
                out_heat += take * front.temp_c;
                front.mass_kg -= take;
                to_remove -= take;
                if front.mass_kg <= 1e-12 {
                    self.parcels.pop_front();
                }
            }
        }
        lost += self.cool(spec.ground_c, half);
        self.merge();
        let outlet = if out_mass > 0.0 {
            out_heat / out_mass
        } else {
            self.parcels.front().map_or(inlet_c, |p| p.temp_c)
        };
        (outlet, lost)
    }

    /// [`PlugPipe::step`] with the flow running `forward` (in at the back,
    /// out at the front) or backward (in at the front, out at the back).
    pub fn step_directed(
        &mut self,
        spec: &PipeSpec,
        inlet_c: f64,
        flow_kg_s: f64,
        forward: bool,
        dt_s: f64,
    ) -> (f64, f64) {
        if forward {
            return self.step(spec, inlet_c, flow_kg_s, dt_s);
        }
        self.parcels.make_contiguous().reverse();
        let out = self.step(spec, inlet_c, flow_kg_s, dt_s);
        self.parcels.make_contiguous().reverse();
        out
    }

    /// Cools every parcel by factor `k` toward the ground; returns the heat lost, J.
    fn cool(&mut self, ground_c: f64, k: f64) -> f64 {
        let mut lost = 0.0;
        for p in self.parcels.iter_mut() {
            let t = ground_c + (p.temp_c - ground_c) * k;
            lost += p.mass_kg * WATER_CP_J_KG_K * (p.temp_c - t);
            p.temp_c = t;
        }
        lost
    }

    /// Keeps the parcel count bounded by merging the most alike neighbours
    /// (mass and heat are conserved).
    fn merge(&mut self) {
        while self.parcels.len() > MAX_PARCELS {
            let mut best = (f64::INFINITY, 0);
            for i in 0..self.parcels.len() - 1 {
                let d = (self.parcels[i].temp_c - self.parcels[i + 1].temp_c).abs();
                if d < best.0 {
                    best = (d, i);
                }
            }
            let i = best.1;
            let (a, b) = (self.parcels[i], self.parcels[i + 1]);
            let m = a.mass_kg + b.mass_kg;
            self.parcels[i] = Parcel {
                mass_kg: m,
                temp_c: (a.mass_kg * a.temp_c + b.mass_kg * b.temp_c) / m,
            };
            self.parcels.remove(i + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> PipeSpec {
        PipeSpec {
            length_m: 1000.0,
            diameter_m: 0.2,
            loss_w_m_k: 0.0,
            ground_c: 5.0,
            density_kg_m3: 970.0,
        }
    }

    #[test]
    fn a_temperature_step_arrives_within_one_step_of_length_over_velocity() {
        let s = spec();
        // 0.5 m/s: residence time L/v = 2000 s.
        let flow = 0.5 * s.density_kg_m3 * s.area_m2();
        let dt = 60.0;
        let mut pipe = PlugPipe::filled(&s, 50.0);
        let mut arrival = None;
        for i in 1..=60 {
            let (out, _) = pipe.step(&s, 80.0, flow, dt);
            if arrival.is_none() && out > 65.0 {
                arrival = Some(i as f64 * dt);
            }
            // No smearing: the outlet is the old water, the new water, or one
            // step's mix of the two.
            assert!(
                out == 50.0 || out == 80.0 || (i as f64 * dt - 2000.0).abs() <= dt,
                "t {} out {out}",
                i as f64 * dt
            );
        }
        let t = arrival.expect("the front never arrived");
        assert!(
            (t - 2000.0).abs() <= dt,
            "front arrived at {t} s, expected 2000 s"
        );
    }

    #[test]
    fn steady_cooling_matches_the_exponential_formula() {
        let s = PipeSpec {
            loss_w_m_k: 0.37,
            ..spec()
        };
        let flow = 10.0;
        let mut pipe = PlugPipe::filled(&s, 100.0);
        let mut out = 0.0;
        for _ in 0..400 {
            out = pipe.step(&s, 100.0, flow, 30.0).0;
        }
        let hand = 5.0 + 95.0 * (-0.37 * 1000.0 / (flow * WATER_CP_J_KG_K)).exp();
        assert!((out - hand).abs() < 0.05, "{out} vs {hand}");
    }

    #[test]
    fn mass_and_energy_are_conserved() {
        let s = PipeSpec {
            loss_w_m_k: 0.37,
            ..spec()
        };
        let mut pipe = PlugPipe::filled(&s, 70.0);
        let mut rng = 12345u64;
        for _ in 0..2000 {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let inlet = 60.0 + (rng >> 40) as f64 / (1u64 << 24) as f64 * 40.0;
            let flow = (rng >> 20 & 0xff) as f64 / 16.0;
            let before = pipe.heat_content_j(0.0);
            let (out, lost) = pipe.step(&s, inlet, flow, 20.0);
            let after = pipe.heat_content_j(0.0);
            let m = flow * 20.0;
            let balance =
                before + m * WATER_CP_J_KG_K * inlet - m * WATER_CP_J_KG_K * out - lost - after;
            assert!(
                balance.abs() <= 1e-6 * before.abs(),
                "energy balance off by {balance} J"
            );
            let mass: f64 = pipe.parcels.iter().map(|p| p.mass_kg).sum();
            assert!((mass - s.mass_kg()).abs() < 1e-6 * s.mass_kg());
            assert!(pipe.parcels.len() <= MAX_PARCELS);
        }
    }

    #[test]
    fn no_flow_holds_the_water_and_lets_it_cool() {
        let s = PipeSpec {
            loss_w_m_k: 0.37,
            ..spec()
        };
        let mut pipe = PlugPipe::filled(&s, 90.0);
        let (out, lost) = pipe.step(&s, 20.0, 0.0, 3600.0);
        assert!(out < 90.0 && out > 80.0, "{out}");
        assert!(lost > 0.0);
    }
}
