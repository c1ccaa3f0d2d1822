//! Node counters and the manager's one-minute series, as pure bookkeeping.
//!
//! Nodes report cumulative counters; the manager samples them every few seconds and
//! turns the per-node deltas into one point per minute, keeping the last 30. A
//! counter that goes backwards means the node restarted: its new value is the delta.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

/// Cumulative counters a cache node reports (since it started).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCounters {
    pub items: u64,
    pub used_bytes: u64,
    pub requests: u64,
    pub gets: u64,
    pub hits: u64,
}

impl NodeCounters {
    /// Hits per GET; `None` without GETs.
    pub fn hit_rate(&self) -> Option<f64> {
        (self.gets > 0).then(|| self.hits.min(self.gets) as f64 / self.gets as f64)
    }

    /// Misses per GET; `None` without GETs.
    pub fn miss_rate(&self) -> Option<f64> {
        self.hit_rate().map(|rate| 1.0 - rate)
    }
}

/// The growth of a cumulative counter between two readings.
pub fn counter_delta(before: u64, after: u64) -> u64 {
    if after >= before {
        after - before
    } else {
        after
    }
}

/// Milliseconds in a minute.
pub const MINUTE_MS: u64 = 60_000;

/// One finished minute of the pool.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct MinutePoint {
    /// Minute number since the manager started.
    pub minute: u64,
    pub hit_rate: Option<f64>,
    pub miss_rate: Option<f64>,
    pub items: u64,
    pub size_mb: f64,
    pub requests_per_minute: u64,
    pub gets: u64,
    pub hits: u64,
    pub nodes: usize,
}

/// The minute being filled.
#[derive(Clone, Copy, Debug, Default)]
struct OpenMinute {
    requests: u64,
    gets: u64,
    hits: u64,
}

/// Accumulates samples of every node into one-minute points, keeping the last 30.
#[derive(Debug, Default)]
pub struct SeriesRecorder {
    /// Each node's previous reading.
    previous: BTreeMap<String, NodeCounters>,
    /// Totals of the latest sample, and how many nodes it covered.
    latest: NodeCounters,
    latest_nodes: usize,
    /// The minute being filled, and its number.
    open: OpenMinute,
    open_minute: u64,
    points: VecDeque<MinutePoint>,
}

impl SeriesRecorder {
    pub const POINTS_MAX: usize = 30;

    pub fn new() -> Self {
        Self::default()
    }

    /// Records a sample, taken at `at_ms`, of the nodes now in the pool. Closes any
    /// minute that ended before it.
    pub fn record(&mut self, at_ms: u64, nodes: &[(String, NodeCounters)]) {
        self.close_minutes(at_ms);
        let mut totals = NodeCounters::default();
        for (node, counters) in nodes {
            if let Some(before) = self.previous.get(node) {
                self.open.requests += counter_delta(before.requests, counters.requests);
                self.open.gets += counter_delta(before.gets, counters.gets);
                self.open.hits += counter_delta(before.hits, counters.hits);
            }
            self.previous.insert(node.clone(), *counters);
            totals.items += counters.items;
            totals.used_bytes += counters.used_bytes;
            totals.requests += counters.requests;
            totals.gets += counters.gets;
            totals.hits += counters.hits;
        }
        self.latest = totals;
        self.latest_nodes = nodes.len();
    }

    /// Closes every minute that ended at or before `now_ms`.
    pub fn close_minutes(&mut self, now_ms: u64) {
        let current = now_ms / MINUTE_MS;
        while self.open_minute < current {
            let open = std::mem::take(&mut self.open);
            let window = NodeCounters {
                gets: open.gets,
                hits: open.hits,
                ..NodeCounters::default()
            };
            self.points.push_back(MinutePoint {
                minute: self.open_minute,
                hit_rate: window.hit_rate(),
                miss_rate: window.miss_rate(),
                items: self.latest.items,
                size_mb: self.latest.used_bytes as f64 / (1024.0 * 1024.0),
                requests_per_minute: open.requests,
                gets: open.gets,
                hits: open.hits,
                nodes: self.latest_nodes,
            });
            if self.points.len() > Self::POINTS_MAX {
                self.points.pop_front();
            }
            self.open_minute += 1;
        }
    }

    /// The finished minutes, oldest first, at most 30.
    pub fn points(&self) -> Vec<MinutePoint> {
        self.points.iter().copied().collect()
    }

    /// The last finished minute.
    pub fn last_minute(&self) -> Option<MinutePoint> {
        self.points.back().copied()
    }

    /// Totals of the latest sample, summed over the nodes it covered.
    pub fn latest_totals(&self) -> NodeCounters {
        self.latest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(gets: u64, hits: u64) -> NodeCounters {
        NodeCounters {
            items: 3,
            used_bytes: 2 * 1024 * 1024,
            requests: gets + 1,
            gets,
            hits,
        }
    }

    #[test]
    fn rates_and_deltas() {
        assert_eq!(NodeCounters::default().hit_rate(), None);
        assert_eq!(sample(4, 1).hit_rate(), Some(0.25));
        assert_eq!(sample(4, 1).miss_rate(), Some(0.75));
        assert_eq!(counter_delta(5, 9), 4);
        assert_eq!(counter_delta(9, 4), 4);
    }

    #[test]
    fn ten_gets_per_sample_make_120_a_minute() {
        let mut recorder = SeriesRecorder::new();
        for i in 0..=12u64 {
            recorder.record(i * 5_000, &[("a".into(), sample(i * 10, i * 5))]);
        }
        recorder.close_minutes(60_000);
        let points = recorder.points();
        assert_eq!(points.len(), 1);
        // Samples at 5..55 s fall in minute 0 (11 deltas); the one at 60 s opens minute 1.
        assert_eq!(points[0].gets, 110);
        assert_eq!(points[0].hit_rate, Some(0.5));
        assert_eq!(points[0].requests_per_minute, 110);
        recorder.record(65_000, &[("a".into(), sample(130, 65))]);
        recorder.close_minutes(120_000);
        let last = recorder.last_minute().unwrap();
        assert_eq!(last.minute, 1);
        assert_eq!(last.gets, 20);
        assert_eq!(last.items, 3);
        assert_eq!(last.size_mb, 2.0);
        assert_eq!(last.nodes, 1);
    }

    #[test]
    fn a_restarted_node_counts_from_zero() {
        let mut recorder = SeriesRecorder::new();
        recorder.record(0, &[("a".into(), sample(100, 50))]);
        recorder.record(5_000, &[("a".into(), sample(7, 7))]);
        recorder.close_minutes(60_000);
        assert_eq!(recorder.last_minute().unwrap().gets, 7);
    }

    #[test]
    fn empty_minutes_get_points_and_only_30_are_kept() {
        let mut recorder = SeriesRecorder::new();
        recorder.record(0, &[("a".into(), sample(1, 1))]);
        recorder.close_minutes(45 * 60_000);
        let points = recorder.points();
        assert_eq!(points.len(), 30);
        assert_eq!(points[0].minute, 15);
        assert_eq!(points[29].minute, 44);
        assert!(points.iter().all(|p| p.gets == 0 && p.hit_rate.is_none()));
        assert_eq!(points[29].items, 3);
    }

    #[test]
    fn totals_sum_the_nodes() {
        let mut recorder = SeriesRecorder::new();
        recorder.record(0, &[("a".into(), sample(1, 1)), ("b".into(), sample(2, 0))]);
        let totals = recorder.latest_totals();
        assert_eq!(totals.gets, 3);
        assert_eq!(totals.items, 6);
    }
}
