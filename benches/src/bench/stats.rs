//! What every scenario shares: when to stop, latency samples per operation,
//! percentiles, message size distributions.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;
use serde::Serialize;

/// When a scenario's sessions stop: after a deadline, after a number of
/// operations shared by all sessions, or whichever comes first.
pub struct Budget {
    deadline: Option<Instant>,
    remaining: Option<AtomicU64>,
}

impl Budget {
    pub fn new(duration: Option<Duration>, count: Option<u64>) -> Self {
        Budget {
            deadline: duration.map(|d| Instant::now() + d),
            remaining: count.map(AtomicU64::new),
        }
    }

    /// Claims one more operation; false once the budget is spent.
    pub fn take(&self) -> bool {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        match &self.remaining {
            None => true,
            Some(r) => r
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
        }
    }
}

/// Latency samples and bytes per named operation, for one session or merged.
#[derive(Default)]
pub struct Recorder {
    ops: BTreeMap<&'static str, Samples>,
    counters: BTreeMap<&'static str, u64>,
    notes: Vec<String>,
}

/// Notes kept per run (e.g. rejection texts): the first few are enough.
const MAX_NOTES: usize = 5;

#[derive(Default)]
struct Samples {
    latencies: Vec<Duration>,
    bytes: u64,
}

impl Recorder {
    pub fn record(&mut self, op: &'static str, latency: Duration) {
        self.record_bytes(op, latency, 0);
    }

    pub fn record_bytes(&mut self, op: &'static str, latency: Duration, bytes: u64) {
        let s = self.ops.entry(op).or_default();
        s.latencies.push(latency);
        s.bytes += bytes;
    }

    /// Counts an event that has no latency (a rejected message, ...).
    pub fn count(&mut self, event: &'static str) {
        *self.counters.entry(event).or_default() += 1;
    }

    pub fn counter(&self, event: &str) -> u64 {
        self.counters.get(event).copied().unwrap_or(0)
    }

    /// Keeps a message for the report, up to a few.
    pub fn note(&mut self, text: impl Into<String>) {
        if self.notes.len() < MAX_NOTES {
            self.notes.push(text.into());
        }
    }

    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    pub fn merge(&mut self, other: Recorder) {
        for (op, s) in other.ops {
            let mine = self.ops.entry(op).or_default();
            mine.latencies.extend(s.latencies);
            mine.bytes += s.bytes;
        }
        for (event, n) in other.counters {
            *self.counters.entry(event).or_default() += n;
        }
        for note in other.notes {
            self.note(note);
        }
    }

    /// One row per operation, rates over `elapsed`, in `order` (others after).
    pub fn rows(mut self, elapsed: Duration, order: &[&str]) -> Vec<Row> {
        let mut names: Vec<&'static str> = self.ops.keys().copied().collect();
        names.sort_by_key(|n| order.iter().position(|o| o == n).unwrap_or(order.len()));
        names
            .into_iter()
            .filter_map(|name| {
                let s = self.ops.remove(name)?;
                Some(Row::new(name, s.latencies, s.bytes, elapsed))
            })
            .collect()
    }
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles; `None` without samples.
    pub fn of(mut samples: Vec<Duration>) -> Option<Self> {
        samples.sort_unstable();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        Some(Percentiles {
            p50: ms(nearest_rank(&samples, 50.0)?),
            p90: ms(nearest_rank(&samples, 90.0)?),
            p99: ms(nearest_rank(&samples, 99.0)?),
            max: ms(*samples.last()?),
        })
    }
}

/// The smallest sample that at least `p` percent of the sorted samples are
/// less than or equal to.
pub fn nearest_rank(sorted: &[Duration], p: f64) -> Option<Duration> {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len().max(1)) - 1).copied()
}

/// One line of a report table.
#[derive(Debug, Serialize)]
pub struct Row {
    pub operation: String,
    pub count: u64,
    pub per_second: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mb_per_second: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<Percentiles>,
}

impl Row {
    pub fn new(name: &str, latencies: Vec<Duration>, bytes: u64, elapsed: Duration) -> Row {
        let seconds = elapsed.as_secs_f64().max(f64::EPSILON);
        Row {
            operation: name.to_string(),
            count: latencies.len() as u64,
            per_second: latencies.len() as f64 / seconds,
            mb_per_second: (bytes > 0).then(|| bytes as f64 / 1e6 / seconds),
            latency_ms: Percentiles::of(latencies),
        }
    }
}

/// Message sizes with weights, e.g. `2k:70,20k:25,500k:5`.
#[derive(Clone, Debug, PartialEq)]
pub struct SizeDistribution {
    classes: Vec<(usize, u32)>,
    total_weight: u32,
}

impl SizeDistribution {
    pub fn sizes(&self) -> impl Iterator<Item = usize> + '_ {
        self.classes.iter().map(|&(size, _)| size)
    }

    /// The index of a size class drawn by weight.
    pub fn pick(&self, rng: &mut impl Rng) -> usize {
        let mut ticket = rng.random_range(0..self.total_weight);
        for (i, &(_, weight)) in self.classes.iter().enumerate() {
            if ticket < weight {
                return i;
            }
            ticket -= weight;
        }
        self.classes.len() - 1
    }

    pub fn mean(&self) -> f64 {
        let sum: f64 = self.classes.iter().map(|&(s, w)| s as f64 * w as f64).sum();
        sum / self.total_weight as f64
    }
}

impl std::fmt::Display for SizeDistribution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (size, weight)) in self.classes.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(f, "{sep}{size}:{weight}")?;
        }
        Ok(())
    }
}

impl FromStr for SizeDistribution {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        let mut classes = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (size, weight) = part.split_once(':').unwrap_or((part, "1"));
            let weight: u32 = weight
                .parse()
                .map_err(|_| format!("bad weight in {part:?}"))?;
            classes.push((parse_size(size)?, weight));
        }
        let total_weight = classes.iter().map(|&(_, w)| w).sum::<u32>();
        if total_weight == 0 {
            return Err(format!("{spec:?}: no size with a weight above 0"));
        }
        Ok(SizeDistribution {
            classes,
            total_weight,
        })
    }
}

/// `500`, `2k`/`2K` (2,000), `1m`/`1M` (1,000,000), `2KiB` (2,048), `1MiB`.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits);
    let multiplier = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        _ => return Err(format!("bad size unit in {s:?}")),
    };
    let n: usize = number.parse().map_err(|_| format!("bad size {s:?}"))?;
    n.checked_mul(multiplier)
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("size {s:?} out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn nearest_rank_percentiles() {
        let sorted = ms(&(1..=100).collect::<Vec<_>>());
        assert_eq!(nearest_rank(&sorted, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(nearest_rank(&sorted, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(
            nearest_rank(&sorted, 100.0),
            Some(Duration::from_millis(100))
        );
        assert_eq!(
            nearest_rank(&ms(&[7]), 99.0),
            Some(Duration::from_millis(7))
        );
        assert_eq!(nearest_rank(&[], 50.0), None);
        let p = Percentiles::of(ms(&[4, 1, 3, 2])).unwrap();
        assert_eq!((p.p50, p.p90, p.max), (2.0, 4.0, 4.0));
        assert_eq!(Percentiles::of(Vec::new()), None);
    }

    #[test]
    fn size_distribution_parsing() {
        let d: SizeDistribution = "2k:70,20k:25,500k:5".parse().unwrap();
        assert_eq!(d.sizes().collect::<Vec<_>>(), [2_000, 20_000, 500_000]);
        assert_eq!(
            d.mean(),
            (2_000.0 * 70.0 + 20_000.0 * 25.0 + 500_000.0 * 5.0) / 100.0
        );
        let one: SizeDistribution = "10KiB".parse().unwrap();
        assert_eq!(one.sizes().collect::<Vec<_>>(), [10_240]);
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert!("2k:0".parse::<SizeDistribution>().is_err());
        assert!("2q:5".parse::<SizeDistribution>().is_err());
        assert!("k:5".parse::<SizeDistribution>().is_err());
        assert!("0".parse::<SizeDistribution>().is_err());
    }

    #[test]
    fn budget_counts_down_across_takers() {
        let b = Budget::new(None, Some(2));
        assert!(b.take() && b.take());
        assert!(!b.take());
        assert!(!Budget::new(Some(Duration::ZERO), None).take());
    }
}
