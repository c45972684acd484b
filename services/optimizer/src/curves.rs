//! Supply curves per substation group, versioned with who, when and why.

use std::collections::BTreeMap;

use model::SupplyCurve;
use serde::{Deserialize, Serialize};
use store::{StoreError, Table, seq_key};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurveVersion {
    pub group: String,
    pub version: u64,
    pub curve: SupplyCurve,
    pub author: String,
    pub reason: String,
    pub created_at_ms: i64,
}

/// Most versions kept per group.
pub const MAX_VERSIONS_PER_GROUP: usize = 1000;

pub struct CurveBook {
    table: Table,
    history: BTreeMap<String, Vec<CurveVersion>>,
}

fn prefix(group: &str) -> Vec<u8> {
    format!("c/{group}/").into_bytes()
}

impl CurveBook {
    pub fn load(table: Table) -> Result<Self, StoreError> {
        let mut history: BTreeMap<String, Vec<CurveVersion>> = BTreeMap::new();
        for entry in table.scan_prefix(b"c/") {
            let (_, v) = entry?;
            let c: CurveVersion = serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                key: "curve".into(),
                reason: e.to_string(),
            })?;
            history.entry(c.group.clone()).or_default().push(c);
        }
        Ok(Self { table, history })
    }

    pub fn current(&self, group: &str) -> Option<&CurveVersion> {
        self.history.get(group).and_then(|h| h.last())
    }

    pub fn history(&self, group: &str) -> Vec<CurveVersion> {
        self.history.get(group).cloned().unwrap_or_default()
    }

    /// Stores a new version (the caller flushes before acknowledging).
    pub fn set(
        &mut self,
        group: &str,
        curve: SupplyCurve,
        author: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<CurveVersion, StoreError> {
        let h = self.history.entry(group.to_string()).or_default();
        let version = h.last().map_or(1, |c| c.version + 1);
        let cv = CurveVersion {
            group: group.to_string(),
            version,
            curve,
            author: author.to_string(),
            reason: reason.to_string(),
            created_at_ms: now_ms,
        };
        self.table.put_json(seq_key(&prefix(group), version), &cv)?;
        h.push(cv.clone());
        if h.len() > MAX_VERSIONS_PER_GROUP {
            let old = h.remove(0);
            self.table.remove(seq_key(&prefix(group), old.version))?;
        }
        Ok(cv)
    }
}
