//! Where `heatnet up` keeps things inside its data directory, and the
//! `up.json` file through which `heatnet status` finds the running system.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const DEFAULT_DATA_DIR: &str = "heatnet-data";
pub const DEFAULT_BASE_PORT: u16 = 7400;

/// The address book of a running `heatnet up`, written to `<data-dir>/up.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UpFile {
    pub network: String,
    pub simulator: String,
    pub optimizer: String,
    /// The control-room dashboard's HTTP address, if one runs.
    #[serde(default)]
    pub dashboard: Option<String>,
    /// Prometheus endpoints (`GET /metrics`) by process name.
    #[serde(default)]
    pub metrics: std::collections::BTreeMap<String, String>,
    pub supervisor_pid: u32,
    pub gateways: Vec<GatewayEntry>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GatewayEntry {
    pub gateway_id: String,
    pub config: PathBuf,
    pub health: String,
}

pub fn up_file(data_dir: &Path) -> PathBuf {
    data_dir.join("up.json")
}

/// Reads `up.json` if a `heatnet up` wrote one.
pub fn read_up_file(data_dir: &Path) -> Option<UpFile> {
    let text = std::fs::read_to_string(up_file(data_dir)).ok()?;
    serde_json::from_str(&text).ok()
}

pub fn gateway_config_path(data_dir: &Path, gateway: &str) -> PathBuf {
    data_dir.join("gateways").join(format!("{gateway}.toml"))
}

pub fn gateway_data_dir(data_dir: &Path, gateway: &str) -> PathBuf {
    data_dir.join("gateways").join(gateway)
}

pub fn log_path(data_dir: &Path, process: &str) -> PathBuf {
    data_dir.join("logs").join(format!("{process}.log"))
}
