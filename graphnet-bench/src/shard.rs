//! `--shard i/n`: deterministic split of a sample list across machines.
//!
//! Samples are sorted by name (byte order, duplicates removed); the sample at sorted
//! position `k` belongs to shard `k mod n`. Every sample lands in exactly one shard whatever
//! order the list was given in, and shard sizes differ by at most one.

use std::fmt;
use std::str::FromStr;

use crate::error::BenchError;

/// Shard `index` of `count` (`0 ≤ index < count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard {
    index: usize,
    count: usize,
}

impl Shard {
    /// The whole list as a single shard (`0/1`).
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Shard `index` of `count`; fails unless `index < count`.
    pub fn new(index: usize, count: usize) -> Result<Self, BenchError> {
        if count == 0 || index >= count {
            return Err(BenchError::InvalidArgument(format!(
                "shard {index}/{count}: need 0 <= i < n"
            )));
        }
        Ok(Shard { index, count })
    }

    /// Zero-based shard index `i`.
    pub fn index(self) -> usize {
        self.index
    }

    /// Number of shards `n`.
    pub fn count(self) -> usize {
        self.count
    }

    /// The names belonging to this shard, sorted and deduplicated.
    pub fn select<S: AsRef<str>>(self, names: &[S]) -> Vec<String> {
        let mut sorted: Vec<&str> = names.iter().map(AsRef::as_ref).collect();
        sorted.sort_unstable();
        sorted.dedup();
        sorted
            .into_iter()
            .enumerate()
            .filter(|(k, _)| k % self.count == self.index)
            .map(|(_, s)| s.to_string())
            .collect()
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = BenchError;

    /// Parses `i/n`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BenchError::InvalidArgument(format!("shard {s:?}: expected i/n, e.g. 0/4"));
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let i = i.trim().parse::<usize>().map_err(|_| bad())?;
        let n = n.trim().parse::<usize>().map_err(|_| bad())?;
        Shard::new(i, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        assert_eq!("1/4".parse::<Shard>().ok(), Shard::new(1, 4).ok());
        assert_eq!(
            Shard::new(1, 4).map(|s| s.to_string()).ok(),
            Some("1/4".into())
        );
        for bad in ["", "1", "4/4", "0/0", "-1/2", "a/b", "1/2/3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn round_robin_over_sorted_names() {
        let names = ["d", "a", "c", "b", "e", "a"];
        let s0 = Shard::new(0, 2).expect("shard").select(&names);
        let s1 = Shard::new(1, 2).expect("shard").select(&names);
        assert_eq!(s0, vec!["a", "c", "e"]);
        assert_eq!(s1, vec!["b", "d"]);
        assert_eq!(Shard::ALL.select(&names).len(), 5);
    }

    #[test]
    fn shards_partition_the_list() {
        let names: Vec<String> = (0..23).map(|i| format!("s{i:02}")).collect();
        let mut all: Vec<String> = (0..5)
            .flat_map(|i| Shard::new(i, 5).expect("shard").select(&names))
            .collect();
        all.sort();
        assert_eq!(all, names);
    }
}
