//! The optimal checkpointing schedule of a uniform chain (Griewank's "revolve" recursion),
//! the oracle the budget policy is measured against.
//!
//! The chain model matches what [`super::schedule::peak_count`] measures on an n-layer
//! chain graph: states `a_0 … a_n`, `a_0` is a graph input (free); the backward step of
//! layer `i` reads `a_{i−1}` and `a_i` (as a `tanh` layer does: its own output and, for
//! the weight gradient, its input); advancing `a_{t−1} → a_t` may release `a_{t−1}` as
//! `a_t` appears. Memory is the number of states `a_1 … a_n` held at once (the working
//! one included); cost is the number of layer evaluations after the first forward sweep,
//! which itself is free and may leave states behind.
//!
//! With `S(l, c)` the cost of reversing a segment of `l` layers whose first state is held
//! by the caller and whose last is held within the `c` slots:
//!
//! ```text
//! S(1, c) = 0                                  (c ≥ 1)
//! S(l, c) = min_{1≤j<l} j + S(l−j, c−1) + S(j, c)   (c ≥ 2; advance j, hold, recurse)
//! R(1, c) = 0,  R(l, c) = min_{1≤j<l} R(l−j, c−1) + S(j, c)   (first sweep free)
//! ```
//!
//! `R(n, c)` is the optimum; the tests check it against exhaustive search.

/// Minimal recomputed layer evaluations to backpropagate an `n`-layer chain holding at
/// most `slots` states, or `None` if no schedule fits. `O(n²·slots)`.
pub fn optimal_recompute(n: usize, slots: usize) -> Option<u64> {
    if n == 0 {
        return Some(0);
    }
    let c_max = slots.min(n);
    const INF: u64 = u64::MAX / 4;
    // s[c][l], r[c][l] for l in 0..=n, c in 0..=c_max.
    let mut s = vec![vec![INF; n + 1]; c_max + 1];
    let mut r = vec![vec![INF; n + 1]; c_max + 1];
    for c in 1..=c_max {
        s[c][1] = 0;
        r[c][1] = 0;
    }
    for c in 2..=c_max {
        for l in 2..=n {
            let mut best_s = INF;
            let mut best_r = INF;
            for j in 1..l {
                let head = s[c][j];
                let ts = s[c - 1][l - j];
                if head < INF && ts < INF {
                    best_s = best_s.min(j as u64 + ts + head);
                }
                let tr = r[c - 1][l - j];
                if head < INF && tr < INF {
                    best_r = best_r.min(tr + head);
                }
            }
            s[c][l] = best_s;
            r[c][l] = best_r;
        }
    }
    if c_max == 0 {
        return None;
    }
    let v = r[c_max][n];
    (v < INF).then_some(v)
}

/// The fewest slots with which an `n`-layer chain can be backpropagated at all, and the
/// optimum there.
pub fn min_slots(n: usize) -> usize {
    (1..=n.max(1))
        .find(|&c| optimal_recompute(n, c).is_some())
        .unwrap_or(n.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BinaryHeap, HashMap};

    /// Exhaustive search of the chain model (Dijkstra over held sets).
    fn brute(n: usize, c: usize) -> Option<u64> {
        // State: held mask over a_1..a_n, sweep position p (0..=n), layers reversed k.
        type State = (u32, usize, usize);
        let mut dist: HashMap<State, u64> = HashMap::new();
        let mut heap = BinaryHeap::new();
        let start: State = (0, 0, 0);
        dist.insert(start, 0);
        heap.push(std::cmp::Reverse((0u64, start)));
        let held = |m: u32, i: usize| i == 0 || m & (1 << (i - 1)) != 0;
        while let Some(std::cmp::Reverse((d, st))) = heap.pop() {
            if dist.get(&st).is_some_and(|&x| x < d) {
                continue;
            }
            let (m, p, k) = st;
            if k == n {
                return Some(d);
            }
            let mut next: Vec<(u64, State)> = Vec::new();
            // Drop any held state.
            for i in 1..=n {
                if held(m, i) {
                    next.push((0, (m & !(1 << (i - 1)), p, k)));
                }
            }
            let top = n - k; // highest layer not yet reversed
            for t in 0..top {
                if !held(m, t) {
                    continue;
                }
                let sweeping = p < n;
                if sweeping && t != p {
                    continue;
                }
                let cost = if sweeping { 0 } else { 1 };
                let np = if sweeping { p + 1 } else { p };
                let with = m | (1 << t);
                for nm in [with, if t > 0 { with & !(1 << (t - 1)) } else { with }] {
                    if nm.count_ones() as usize <= c {
                        next.push((cost, (nm, np, k)));
                    }
                }
            }
            // Reverse layer `top` once the sweep is done.
            if p == n && held(m, top) && held(m, top - 1) {
                next.push((0, (m & !(1 << (top - 1)), p, k + 1)));
            }
            for (w, ns) in next {
                let nd = d + w;
                if dist.get(&ns).is_none_or(|&x| nd < x) {
                    dist.insert(ns, nd);
                    heap.push(std::cmp::Reverse((nd, ns)));
                }
            }
        }
        None
    }

    #[test]
    fn recursion_matches_exhaustive_search() {
        for n in 1..=9 {
            for c in 1..=6 {
                assert_eq!(optimal_recompute(n, c), brute(n, c), "n={n} c={c}");
            }
        }
    }

    #[test]
    fn more_slots_never_cost_more_and_enough_slots_cost_nothing() {
        for n in [10, 33, 64] {
            let mut prev = u64::MAX;
            for c in min_slots(n)..=n {
                let v = optimal_recompute(n, c).unwrap();
                assert!(v <= prev);
                prev = v;
            }
            assert_eq!(optimal_recompute(n, n), Some(0));
            assert!(optimal_recompute(n, n - 1).unwrap() > 0);
        }
    }
}
