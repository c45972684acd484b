//! Node identities.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest id accepted, in bytes.
pub const MAX_ID_LEN: usize = 64;

/// Identity of a plant, substation, building or gateway: 1–64 characters of
/// `a-z`, `0-9`, `-`, `_` and `.`, starting with a letter or digit.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("id is empty")]
    Empty,
    #[error("id {id:?} is longer than {MAX_ID_LEN} bytes")]
    TooLong { id: String },
    #[error(
        "id {id:?} has character {ch:?}: use a-z, 0-9, '-', '_' and '.', starting with a letter or digit"
    )]
    BadChar { id: String, ch: char },
}

impl NodeId {
    pub fn new(id: impl Into<String>) -> Result<Self, IdError> {
        let id = id.into();
        if id.is_empty() {
            return Err(IdError::Empty);
        }
        if id.len() > MAX_ID_LEN {
            return Err(IdError::TooLong { id });
        }
        for (i, ch) in id.chars().enumerate() {
            let ok = ch.is_ascii_lowercase()
                || ch.is_ascii_digit()
                || (i > 0 && matches!(ch, '-' | '_' | '.'));
            if !ok {
                return Err(IdError::BadChar { id, ch });
            }
        }
        Ok(Self(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for NodeId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<NodeId> for String {
    fn from(value: NodeId) -> Self {
        value.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for NodeId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        assert!(NodeId::new("s01-b03").is_ok());
        assert!(NodeId::new("plant.a_1").is_ok());
        assert_eq!(NodeId::new(""), Err(IdError::Empty));
        assert!(matches!(
            NodeId::new("S01"),
            Err(IdError::BadChar { ch: 'S', .. })
        ));
        assert!(matches!(
            NodeId::new("-x"),
            Err(IdError::BadChar { ch: '-', .. })
        ));
        assert!(matches!(
            NodeId::new("a b"),
            Err(IdError::BadChar { ch: ' ', .. })
        ));
        assert!(matches!(
            NodeId::new("a".repeat(65)),
            Err(IdError::TooLong { .. })
        ));
    }
}
