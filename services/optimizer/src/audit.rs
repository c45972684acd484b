//! The audit log: every control-room write (curve set, override set/clear,
//! alarm acknowledgement, forecast load), accepted or refused, with who, when
//! (wall-clock and network time), what and why. Persisted in sled, bounded to
//! the newest [`MAX_AUDIT_ENTRIES`].
//!
//! The log has its own lock and never takes the core's.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use store::{StoreError, Table, seq_key};

/// Most entries kept.
pub const MAX_AUDIT_ENTRIES: usize = 10_000;
/// Longest user, target or reason kept, characters (longer text is cut, marked with …).
pub const MAX_FIELD_CHARS: usize = 256;
/// Longest detail kept, characters.
pub const MAX_DETAIL_CHARS: usize = 1024;

const PREFIX: &[u8] = b"a/";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    CurveSet,
    OverrideSet,
    OverrideClear,
    AlarmAck,
    ForecastLoad,
}

impl Action {
    pub const ALL: [Action; 5] = [
        Action::CurveSet,
        Action::OverrideSet,
        Action::OverrideClear,
        Action::AlarmAck,
        Action::ForecastLoad,
    ];

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Action::CurveSet => "curve_set",
            Action::OverrideSet => "override_set",
            Action::OverrideClear => "override_clear",
            Action::AlarmAck => "alarm_ack",
            Action::ForecastLoad => "forecast_load",
        }
    }
}

/// What became of the request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    Accepted,
    /// `code`: the gRPC status code's name, e.g. `InvalidArgument`.
    Refused {
        code: String,
        message: String,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: u64,
    pub wall_ms: i64,
    /// The optimizer's network time then (0: no telemetry yet).
    pub network_ms: i64,
    pub user: String,
    pub action: Action,
    pub target: String,
    pub detail: String,
    pub reason: String,
    pub outcome: Outcome,
}

/// An entry before it gets its id.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub wall_ms: i64,
    pub network_ms: i64,
    pub user: String,
    pub action: Action,
    pub target: String,
    pub detail: String,
    pub reason: String,
}

struct Inner {
    entries: VecDeque<AuditEntry>,
    next_id: u64,
}

pub struct AuditLog {
    table: Table,
    inner: Mutex<Inner>,
}

/// Cuts text to `max` characters (marking the cut with …) and drops control characters.
pub fn clip(s: &str, max: usize) -> String {
    let clean: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.chars().count() <= max {
        clean
    } else {
        let mut out: String = clean.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

impl AuditLog {
    pub fn load(table: Table) -> Result<Self, StoreError> {
        let mut entries = VecDeque::new();
        for entry in table.scan_prefix(PREFIX) {
            let (_, v) = entry?;
            let e: AuditEntry = serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                key: "audit entry".into(),
                reason: e.to_string(),
            })?;
            entries.push_back(e);
        }
        let next_id = entries.back().map_or(1, |e| e.id + 1);
        Ok(Self {
            table,
            inner: Mutex::new(Inner { entries, next_id }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends an entry (the caller flushes) and drops the oldest beyond the bound.
    pub fn record(&self, req: Request, outcome: Outcome) -> Result<AuditEntry, StoreError> {
        let mut inner = self.lock();
        let outcome = match outcome {
            Outcome::Accepted => Outcome::Accepted,
            Outcome::Refused { code, message } => Outcome::Refused {
                code,
                message: clip(&message, MAX_DETAIL_CHARS),
            },
        };
        let e = AuditEntry {
            id: inner.next_id,
            wall_ms: req.wall_ms,
            network_ms: req.network_ms,
            user: clip(&req.user, MAX_FIELD_CHARS),
            action: req.action,
            target: clip(&req.target, MAX_FIELD_CHARS),
            detail: clip(&req.detail, MAX_DETAIL_CHARS),
            reason: clip(&req.reason, MAX_FIELD_CHARS),
            outcome,
        };
        self.table.put_json(seq_key(PREFIX, e.id), &e)?;
        inner.next_id += 1;
        inner.entries.push_back(e.clone());
        while inner.entries.len() > MAX_AUDIT_ENTRIES {
            if let Some(old) = inner.entries.pop_front() {
                self.table.remove(seq_key(PREFIX, old.id))?;
            }
        }
        Ok(e)
    }

    /// The newest `limit` entries (of one action, if given), oldest first.
    pub fn recent(&self, limit: usize, action: Option<Action>) -> Vec<AuditEntry> {
        let inner = self.lock();
        let mut out: Vec<AuditEntry> = inner
            .entries
            .iter()
            .rev()
            .filter(|e| action.is_none_or(|a| e.action == a))
            .take(limit)
            .cloned()
            .collect();
        out.reverse();
        out
    }
}

#[cfg(test)]
mod tests {
    use store::Store;

    use super::*;

    fn req(user: &str, action: Action) -> Request {
        Request {
            wall_ms: 10,
            network_ms: 20,
            user: user.into(),
            action,
            target: "g1".into(),
            detail: "points -10:80,10:45".into(),
            reason: "cold week".into(),
        }
    }

    #[test]
    fn entries_persist_in_order_refusals_included_and_text_is_clipped() {
        let dir = crate::testing::scratch_dir("audit");
        let cfg = crate::testing::store_config();
        {
            let s = Store::open(&dir, &cfg).expect("store");
            let log = AuditLog::load(s.table("audit").expect("table")).expect("load");
            log.record(req("alice", Action::CurveSet), Outcome::Accepted)
                .expect("record");
            let refused = log
                .record(
                    req(&"x\ny".repeat(200), Action::OverrideSet),
                    Outcome::Refused {
                        code: "InvalidArgument".into(),
                        message: "supply_temp_c: 200 is out of range".into(),
                    },
                )
                .expect("record");
            assert_eq!(refused.id, 2);
            assert_eq!(refused.user.chars().count(), MAX_FIELD_CHARS);
            assert!(refused.user.ends_with('…') && !refused.user.contains('\n'));
        }
        let s = Store::open(&dir, &cfg).expect("reopen");
        let log = AuditLog::load(s.table("audit").expect("table")).expect("reload");
        let all = log.recent(100, None);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].user, "alice");
        assert_eq!(all[0].outcome, Outcome::Accepted);
        assert!(
            matches!(&all[1].outcome, Outcome::Refused { code, .. } if code == "InvalidArgument")
        );
        assert_eq!(log.recent(1, None)[0].id, 2);
        let curves = log.recent(10, Some(Action::CurveSet));
        assert_eq!(curves.len(), 1);
        assert_eq!(curves[0].id, 1);
        assert_eq!(Action::from_name("alarm_ack"), Some(Action::AlarmAck));
        assert_eq!(Action::from_name("nope"), None);
        let next = log
            .record(req("bob", Action::AlarmAck), Outcome::Accepted)
            .expect("record");
        assert_eq!(next.id, 3);
        drop(log);
        drop(s);
        let _ = std::fs::remove_dir_all(dir);
    }
}
