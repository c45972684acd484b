//! Does a valve follow its commands? A stuck valve, a seized stem or a
//! broken actuator shows as a position reading that stays away from what was
//! commanded long after a healthy valve would have arrived.
//!
//! [`ValveWatch`] compares each scan's position reading with the command
//! written at the scan before (the one the valve has had a whole scan to
//! follow). A gap above [`FOLLOW_TOLERANCE`] held for [`STUCK_AFTER_MS`] of
//! network time is a [`ValveFault`]; it ends at the first scan with the gap
//! back within [`FOLLOWING_AGAIN`]. Pure: time comes from the tick.

use serde::{Deserialize, Serialize};

/// Gap between command and position (fraction of the stroke) above which a
/// valve is not where it was sent. Far above the position sensor's noise and
/// a Modbus register's resolution (0.1 %).
pub const FOLLOW_TOLERANCE: f64 = 0.05;

/// Gap at or below which a valve that was not following follows again
/// (hysteresis, so a valve at the edge does not raise and clear by turns).
pub const FOLLOWING_AGAIN: f64 = 0.03;

/// How long, network time, the gap must last: ten times the full stroke of a
/// district heating control valve (60 s), so that no healthy valve on its way
/// to a new command is ever taken for a stuck one, and two lockstep scans of
/// 300 s.
pub const STUCK_AFTER_MS: i64 = 600_000;

/// A valve not following its commands, as it was found: it stays the same
/// while the fault lasts, so that an alarm's text does not change every scan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValveFault {
    /// What the valve had been sent when found, fraction open.
    pub commanded: f64,
    /// Where it was when found, fraction open.
    pub position: f64,
    /// Network time since when the gap has lasted, Unix ms.
    pub since_ms: i64,
    /// Network time it was found, Unix ms.
    pub found_ms: i64,
}

impl ValveFault {
    /// One line for an operator.
    pub fn describe(&self) -> String {
        format!(
            "valve at {:.0} % while commanded {:.0} % for {:.0} min: stuck valve or failed actuator, check on site",
            self.position * 100.0,
            self.commanded * 100.0,
            (self.found_ms - self.since_ms) as f64 / 60_000.0
        )
    }
}

/// The watch over one valve, kept in the node's saved state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ValveWatch {
    /// The command written at the last scan.
    #[serde(default)]
    commanded: Option<f64>,
    /// Since when (network ms) the position has been away from the command.
    #[serde(default)]
    off_since_ms: Option<i64>,
    #[serde(default)]
    fault: Option<ValveFault>,
}

impl ValveWatch {
    /// Judges this scan's `position` (none: no plausible reading, the watch
    /// holds) against the command of the scan before, then remembers
    /// `commanding`, this scan's command. Returns the fault while it lasts.
    pub fn check(
        &mut self,
        time_ms: i64,
        position: Option<f64>,
        commanding: f64,
    ) -> Option<ValveFault> {
        let fault = match (self.commanded, position) {
            (Some(commanded), Some(position)) => {
                let gap = (position - commanded).abs();
                if gap > FOLLOW_TOLERANCE {
                    let since_ms = *self.off_since_ms.get_or_insert(time_ms);
                    if self.fault.is_none() && time_ms - since_ms >= STUCK_AFTER_MS {
                        self.fault = Some(ValveFault {
                            commanded,
                            position,
                            since_ms,
                            found_ms: time_ms,
                        });
                    }
                } else if gap <= FOLLOWING_AGAIN || self.fault.is_none() {
                    self.off_since_ms = None;
                    self.fault = None;
                }
                self.fault.clone()
            }
            // No reading to judge: the watch holds, and shows nothing.
            _ => None,
        };
        if commanding.is_finite() {
            self.commanded = Some(commanding);
        }
        fault
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    /// A valve model: moves toward its command at a full stroke per 60 s,
    /// unless stuck.
    fn follow(position: f64, command: f64, dt_s: f64, stuck: bool) -> f64 {
        if stuck {
            position
        } else {
            position + (command - position).clamp(-dt_s / 60.0, dt_s / 60.0)
        }
    }

    /// Drives a watch through `scans` scans of `period_s` with a command
    /// swinging between 0.2 and 0.9 every `swing_every` scans; the valve is
    /// stuck from scan `stuck_from` to `stuck_until`. Returns the first and
    /// last scan (index) that reported a fault.
    fn drive(
        period_s: f64,
        scans: usize,
        swing_every: usize,
        stuck: std::ops::Range<usize>,
    ) -> (Option<usize>, Option<usize>) {
        let mut w = ValveWatch::default();
        let mut position = 0.5;
        let (mut first, mut last) = (None, None);
        for k in 0..scans {
            let t_ms = (k as f64 * period_s * 1000.0) as i64;
            // The scan reads where the valve got to since the last write...
            let fault = w.check(t_ms, Some(position), next_command(k, swing_every));
            if fault.is_some() {
                first.get_or_insert(k);
                last = Some(k);
            }
            // ... then writes, and the valve has a scan to follow.
            let command = next_command(k, swing_every);
            position = follow(position, command, period_s, stuck.contains(&k));
        }
        (first, last)
    }

    fn next_command(k: usize, swing_every: usize) -> f64 {
        if (k / swing_every).is_multiple_of(2) {
            0.2
        } else {
            0.9
        }
    }

    #[test]
    fn a_healthy_valve_is_never_taken_for_a_stuck_one() {
        // One-second scans: the valve lags a swing of 70 % for 42 s.
        assert_eq!(drive(1.0, 20_000, 90, 0..0), (None, None));
        // Lockstep scans of 300 s, the command swinging at every scan.
        assert_eq!(drive(300.0, 2_000, 1, 0..0), (None, None));
    }

    #[test]
    fn a_valve_stuck_away_from_its_commands_is_found_after_ten_minutes_and_cleared_when_it_moves() {
        // One-second scans, stuck at scan 1000 (at 0.2), commanded 0.9 from
        // scan 1080: the gap starts at scan 1081 and the fault ten minutes later.
        let (first, last) = drive(1.0, 5_000, 1_080, 1_000..2_000);
        assert_eq!(first, Some(1_081 + 600));
        // Freed at scan 2000: back within 3 % of 0.9 after 41 s (0.67 to
        // travel at 1/60 a second), so the last fault is scan 2040.
        assert_eq!(last, Some(2_040));

        // Lockstep scans of 300 s, the command 0.2 for 8 scans then 0.9 for
        // 8: stuck at 0.2 from scan 4 to 20. The gap shows at scan 9 (the
        // first to read what scan 8 commanded), the fault two scans later,
        // and it ends when the command comes back to 0.2 (scan 17 reads it).
        assert_eq!(drive(300.0, 40, 8, 4..20), (Some(11), Some(16)));
    }

    #[test]
    fn a_valve_stuck_where_it_is_commanded_raises_nothing() {
        // Stuck at 0.2 (where the first scan sent it) while commanded 0.2 all along.
        assert_eq!(drive(300.0, 100, 1_000, 2..100), (None, None));
    }

    #[test]
    fn a_gap_between_the_two_thresholds_neither_raises_nor_clears() {
        let mut w = ValveWatch::default();
        w.check(0, Some(0.5), 0.5);
        // 4 % off: within tolerance, nothing starts.
        for k in 1..=20 {
            assert_eq!(w.check(k * MIN, Some(0.54), 0.5), None);
        }
        // 10 % off for ten minutes: a fault.
        w.check(21 * MIN, Some(0.6), 0.5);
        assert!(w.check(31 * MIN, Some(0.6), 0.5).is_some());
        // Back to 4 % off: still a fault (hysteresis), since 21 min.
        let f = w.check(32 * MIN, Some(0.54), 0.5).expect("held");
        assert_eq!(f.since_ms, 21 * MIN);
        assert_eq!(
            (f.commanded, f.position, f.found_ms),
            (0.5, 0.6, 31 * MIN),
            "as found"
        );
        assert!(
            f.describe()
                .starts_with("valve at 60 % while commanded 50 % for 10 min"),
            "{}",
            f.describe()
        );
        // Within 3 %: cleared, and a new gap starts its ten minutes afresh.
        assert_eq!(w.check(33 * MIN, Some(0.52), 0.5), None);
        assert_eq!(w.check(34 * MIN, Some(0.7), 0.5), None);
        assert_eq!(w.check(43 * MIN, Some(0.7), 0.5), None);
        assert!(w.check(44 * MIN, Some(0.7), 0.5).is_some());
    }

    #[test]
    fn no_position_reading_holds_the_watch_and_reports_nothing() {
        let mut w = ValveWatch::default();
        w.check(0, Some(0.2), 0.9);
        // The first gap, at 1 min; a fault ten minutes on.
        assert_eq!(w.check(MIN, Some(0.2), 0.9), None);
        assert!(w.check(11 * MIN, Some(0.2), 0.9).is_some());
        // The position sensor withheld (implausible): nothing to show...
        assert_eq!(w.check(12 * MIN, None, 0.9), None);
        // ... and the fault is back with its reading, since the same time.
        assert_eq!(
            w.check(13 * MIN, Some(0.2), 0.9).map(|f| f.since_ms),
            Some(MIN)
        );
    }

    #[test]
    fn a_saved_watch_from_before_it_existed_starts_empty() {
        let w: ValveWatch = serde_json::from_str("{}").expect("empty");
        assert_eq!(w, ValveWatch::default());
    }
}
