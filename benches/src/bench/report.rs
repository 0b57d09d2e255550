//! A scenario's results: a table for people, one JSON line for scripts.

use serde::Serialize;
use serde_json::Value;

use crate::stats::Row;

#[derive(Debug, Serialize)]
pub struct Report {
    /// Which server this was (`--label`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub scenario: &'static str,
    pub target: String,
    /// What the scenario was asked to do (sessions, sizes, ...).
    pub parameters: Value,
    pub seconds: f64,
    pub rows: Vec<Row>,
    /// Single figures: memory per session, failed sessions, ...
    pub figures: Vec<Figure>,
    /// The first few errors sessions ended with.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Figure {
    pub name: &'static str,
    pub value: f64,
    pub unit: &'static str,
}

impl Figure {
    pub fn new(name: &'static str, value: f64, unit: &'static str) -> Self {
        Figure { name, value, unit }
    }
}

impl Report {
    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    pub fn table(&self) -> String {
        let label = self
            .label
            .as_deref()
            .map(|l| format!("{l}: "))
            .unwrap_or_default();
        let mut out = format!(
            "== {label}{} against {} ({:.1} s) {}\n",
            self.scenario, self.target, self.seconds, self.parameters
        );
        out.push_str(&format!(
            "{:<28} {:>9} {:>10} {:>8} {:>9} {:>9} {:>9} {:>9}\n",
            "operation", "count", "per s", "MB/s", "p50 ms", "p90 ms", "p99 ms", "max ms"
        ));
        for row in &self.rows {
            let mb = row
                .mb_per_second
                .map_or(String::from("-"), |m| format!("{m:.2}"));
            let lat = |f: fn(&crate::stats::Percentiles) -> f64| {
                row.latency_ms
                    .as_ref()
                    .map_or(String::from("-"), |p| format!("{:.2}", f(p)))
            };
            out.push_str(&format!(
                "{:<28} {:>9} {:>10.1} {:>8} {:>9} {:>9} {:>9} {:>9}\n",
                row.operation,
                row.count,
                row.per_second,
                mb,
                lat(|p| p.p50),
                lat(|p| p.p90),
                lat(|p| p.p99),
                lat(|p| p.max),
            ));
        }
        for f in &self.figures {
            let value = if f.value.fract() == 0.0 {
                format!("{}", f.value)
            } else {
                format!("{:.1}", f.value)
            };
            let unit = if f.unit.is_empty() { "" } else { " " };
            out.push_str(&format!("{}: {value}{unit}{}\n", f.name, f.unit));
        }
        for e in &self.errors {
            out.push_str(&format!("error: {e}\n"));
        }
        out
    }
}

/// Collects session errors, keeping the first few messages.
#[derive(Default)]
pub struct Failures {
    pub count: u64,
    pub first: Vec<String>,
}

impl Failures {
    pub fn add(&mut self, error: impl std::fmt::Display) {
        self.count += 1;
        if self.first.len() < 5 {
            self.first.push(error.to_string());
        }
    }
}

/// The server's process or processes, for memory figures.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ServerProcess {
    /// Server process id: its resident memory (VmRSS) is reported.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Or every process with this command name (repeatable, e.g. `imap` and
    /// `imap-login` for Dovecot): the sum of their proportional set sizes (Pss).
    #[arg(long = "process", conflicts_with = "pid")]
    pub names: Vec<String>,
}

impl ServerProcess {
    /// Resident memory now, KiB.
    pub fn resident_kib(&self) -> Option<u64> {
        if let Some(pid) = self.pid {
            return kib_field(&format!("/proc/{pid}/status"), "VmRSS");
        }
        if self.names.is_empty() {
            return None;
        }
        let mut total = 0;
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let path = entry.path();
            let Ok(comm) = std::fs::read_to_string(path.join("comm")) else {
                continue;
            };
            if self.names.iter().any(|n| n == comm.trim_end()) {
                let rollup = path.join("smaps_rollup");
                total += kib_field(&rollup.to_string_lossy(), "Pss").unwrap_or(0);
            }
        }
        Some(total)
    }

    /// Peak resident memory of the `--pid` process (VmHWM), KiB.
    pub fn peak_kib(&self) -> Option<u64> {
        kib_field(&format!("/proc/{}/status", self.pid?), "VmHWM")
    }
}

/// A `Field:   123 kB` line of a /proc file.
fn kib_field(path: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
