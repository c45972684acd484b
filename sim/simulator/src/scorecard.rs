//! The season's scorecard, kept from the simulated truth at every step: what
//! the people in the homes felt and what the heat cost. It is what a season
//! run is judged on, whoever controls the network; the optimizer never sees it.

use std::collections::BTreeSet;

use model::{COMFORT_MIN_ROOM_TEMP_C, Network};
use physics::State;
use serde::{Deserialize, Serialize};

/// Rooms above this are overheated, °C.
pub const OVERHEATED_ROOM_C: f64 = 22.0;
/// Days kept day by day (a season is about 120).
pub const MAX_DAYS: usize = 400;
const DAY_MS: i64 = 86_400_000;

/// One network-time day.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Day {
    pub day_start_ms: i64,
    pub seconds: f64,
    pub outdoor_sum_c_s: f64,
    pub outdoor_min_c: f64,
    pub healthy_hours: f64,
    pub healthy_ok_hours: f64,
    pub building_hours: f64,
    pub room_sum_c_h: f64,
    pub min_room_c: f64,
    pub produced_j: f64,
    pub cost_yuan: f64,
    pub peak_w: f64,
    pub overheated_hours: f64,
    pub plant_j: Vec<f64>,
}

impl Day {
    pub fn outdoor_mean_c(&self) -> f64 {
        self.outdoor_sum_c_s / self.seconds.max(1e-9)
    }
    pub fn comfort_share(&self) -> f64 {
        share(self.healthy_ok_hours, self.healthy_hours)
    }
    pub fn mean_room_c(&self) -> f64 {
        self.room_sum_c_h / self.building_hours.max(1e-9)
    }
}

fn share(part: f64, whole: f64) -> f64 {
    if whole > 0.0 { part / whole } else { 1.0 }
}

/// The running totals. Building-hours are "healthy" when no fault is aimed at
/// the building or its substation (a stuck valve, a tripped pump, drained
/// water): comfort is judged on those, and reported over all hours beside.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scorecard {
    pub start_ms: i64,
    pub time_ms: i64,
    pub steps: u64,
    pub building_hours: f64,
    pub healthy_hours: f64,
    pub healthy_ok_hours: f64,
    pub all_ok_hours: f64,
    pub exposed_ok_hours: f64,
    pub overheated_hours: f64,
    pub min_room_c: f64,
    pub coldest_building: String,
    pub coldest_at_ms: i64,
    pub room_sum_c_h: f64,
    pub produced_j: f64,
    pub delivered_j: f64,
    pub lost_j: f64,
    pub cost_yuan: f64,
    pub peak_w: f64,
    pub peak_at_ms: i64,
    pub worst_energy_residual: f64,
    pub days: Vec<Day>,
}

impl Scorecard {
    pub fn new(start_ms: i64) -> Self {
        Self {
            start_ms,
            time_ms: start_ms,
            steps: 0,
            building_hours: 0.0,
            healthy_hours: 0.0,
            healthy_ok_hours: 0.0,
            all_ok_hours: 0.0,
            exposed_ok_hours: 0.0,
            overheated_hours: 0.0,
            min_room_c: f64::INFINITY,
            coldest_building: String::new(),
            coldest_at_ms: start_ms,
            room_sum_c_h: 0.0,
            produced_j: 0.0,
            delivered_j: 0.0,
            lost_j: 0.0,
            cost_yuan: 0.0,
            peak_w: 0.0,
            peak_at_ms: start_ms,
            worst_energy_residual: 0.0,
            days: Vec::new(),
        }
    }

    /// Books one step of `dt_s` seconds that ended in `st`. `unhealthy` holds
    /// the substations and buildings (ids) a fault is aimed at.
    pub fn record(&mut self, net: &Network, st: &State, dt_s: f64, unhealthy: &BTreeSet<&str>) {
        if dt_s.is_nan() || dt_s <= 0.0 {
            return;
        }
        let hours = dt_s / 3600.0;
        let day_start_ms = st.time_ms.div_euclid(DAY_MS) * DAY_MS;
        if self
            .days
            .last()
            .is_none_or(|d| d.day_start_ms != day_start_ms)
        {
            if self.days.len() >= MAX_DAYS {
                self.days.remove(0);
            }
            self.days.push(Day {
                day_start_ms,
                outdoor_min_c: f64::INFINITY,
                min_room_c: f64::INFINITY,
                plant_j: vec![0.0; net.plants.len()],
                ..Day::default()
            });
        }
        let Some(day) = self.days.last_mut() else {
            return;
        };
        day.seconds += dt_s;
        day.outdoor_sum_c_s += st.outdoor_c * dt_s;
        day.outdoor_min_c = day.outdoor_min_c.min(st.outdoor_c);
        for (sub, ss) in net.substations.iter().zip(&st.substations) {
            let sub_faulted = unhealthy.contains(sub.id.as_str());
            for (b, bs) in sub.buildings.iter().zip(&ss.buildings) {
                let healthy = !sub_faulted && !unhealthy.contains(b.id.as_str());
                let warm = bs.air_c >= COMFORT_MIN_ROOM_TEMP_C;
                self.building_hours += hours;
                day.building_hours += hours;
                self.room_sum_c_h += bs.air_c * hours;
                day.room_sum_c_h += bs.air_c * hours;
                if warm {
                    self.all_ok_hours += hours;
                }
                if healthy {
                    self.healthy_hours += hours;
                    day.healthy_hours += hours;
                    if warm {
                        self.healthy_ok_hours += hours;
                        day.healthy_ok_hours += hours;
                    }
                    if bs.exposed_flat_c >= COMFORT_MIN_ROOM_TEMP_C {
                        self.exposed_ok_hours += hours;
                    }
                }
                if bs.air_c > OVERHEATED_ROOM_C {
                    self.overheated_hours += hours;
                    day.overheated_hours += hours;
                }
                if bs.air_c < self.min_room_c {
                    self.min_room_c = bs.air_c;
                    self.coldest_building = b.id.to_string();
                    self.coldest_at_ms = st.time_ms;
                }
                day.min_room_c = day.min_room_c.min(bs.air_c);
            }
        }
        let bal = &st.balance;
        let produced_w: f64 = st.plants.iter().map(|p| p.heat_w.max(0.0)).sum();
        self.produced_j += bal.heat_produced_w * dt_s;
        self.delivered_j += bal.heat_delivered_w * dt_s;
        self.lost_j += bal.heat_lost_w * dt_s;
        day.produced_j += bal.heat_produced_w * dt_s;
        for ((plant, ps), j) in net.plants.iter().zip(&st.plants).zip(&mut day.plant_j) {
            let heat_j = ps.heat_w.max(0.0) * dt_s;
            *j += heat_j;
            let cost = heat_j / 1.0e9 * plant.heat_price_yuan_per_gj;
            self.cost_yuan += cost;
            day.cost_yuan += cost;
        }
        if produced_w > self.peak_w {
            self.peak_w = produced_w;
            self.peak_at_ms = st.time_ms;
        }
        day.peak_w = day.peak_w.max(produced_w);
        if bal.energy_residual.is_finite() {
            self.worst_energy_residual = self.worst_energy_residual.max(bal.energy_residual);
        }
        self.steps += 1;
        self.time_ms = st.time_ms;
    }

    /// Share of healthy building-hours at or above 18 °C.
    pub fn comfort_share(&self) -> f64 {
        share(self.healthy_ok_hours, self.healthy_hours)
    }
    pub fn comfort_share_all(&self) -> f64 {
        share(self.all_ok_hours, self.building_hours)
    }
    pub fn exposed_flat_comfort_share(&self) -> f64 {
        share(self.exposed_ok_hours, self.healthy_hours)
    }
    pub fn mean_room_c(&self) -> f64 {
        self.room_sum_c_h / self.building_hours.max(1e-9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_heat_cost_and_days_add_up_by_hand() {
        let net = Network::sample("demo").unwrap();
        let mut world = crate::World::new(net.clone());
        let mut card = Scorecard::new(world.time_ms());
        let buildings: usize = net.substations.iter().map(|s| s.buildings.len()).sum();
        let faulted = net.substations[0].id.to_string();
        let faulted_buildings = net.substations[0].buildings.len();
        let unhealthy: BTreeSet<&str> = [faulted.as_str()].into();
        let (mut heat_j, mut cost) = (0.0, 0.0);
        // 30 h in 10-minute steps: a second day is opened.
        for _ in 0..180 {
            world.step(600.0).unwrap();
            let st = world.state();
            for (p, ps) in net.plants.iter().zip(&st.plants) {
                heat_j += ps.heat_w.max(0.0) * 600.0;
                cost += ps.heat_w.max(0.0) * 600.0 / 1e9 * p.heat_price_yuan_per_gj;
            }
            card.record(&net, st, 600.0, &unhealthy);
        }
        assert_eq!(card.steps, 180);
        assert!((card.building_hours - 30.0 * buildings as f64).abs() < 1e-6);
        assert!((card.healthy_hours - 30.0 * (buildings - faulted_buildings) as f64).abs() < 1e-6);
        assert!((cost - card.cost_yuan).abs() < 1e-6 * cost.max(1.0));
        let plant_j: f64 = card.days.iter().flat_map(|d| &d.plant_j).sum();
        assert!((plant_j - heat_j).abs() < 1e-6 * heat_j.max(1.0));
        assert!(card.days.len() >= 2, "{} days", card.days.len());
        let day_hours: f64 = card.days.iter().map(|d| d.seconds / 3600.0).sum();
        assert!((day_hours - 30.0).abs() < 1e-9);
        assert!(card.min_room_c <= card.mean_room_c());
        assert!((0.0..=1.0).contains(&card.comfort_share()));
        assert!(card.peak_w > 0.0);
    }
}
