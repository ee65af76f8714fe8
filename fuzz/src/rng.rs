//! [`Rng`]: SplitMix64, the deterministic generator every mutation draws from.
//!
//! One exec's generator is derived from the campaign seed and the exec index alone
//! ([`Rng::for_exec`]), so any input of a run is reproduced without replaying the ones
//! before it.

/// SplitMix64 (Steele, Lea and Flood, 2014): 64 bits of state, full period, and good
/// enough statistics for choosing mutations.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// The generator of exec `index` of the campaign seeded with `seed`.
    pub fn for_exec(seed: u64, index: u64) -> Self {
        let mut r = Rng::new(seed ^ index.wrapping_mul(0xa076_1d64_78bd_642f));
        r.next_u64();
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform integer below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// True with probability `1/n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// A uniformly chosen element, or `None` for an empty slice.
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> Option<&'a T> {
        if xs.is_empty() {
            None
        } else {
            xs.get(self.below(xs.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn below_stays_in_range_and_is_deterministic() {
        let mut a = Rng::for_exec(7, 3);
        let mut b = Rng::for_exec(7, 3);
        for n in 1..100 {
            let x = a.below(n);
            assert!(x < n);
            assert_eq!(x, b.below(n));
        }
        assert_ne!(
            Rng::for_exec(7, 3).next_u64(),
            Rng::for_exec(7, 4).next_u64()
        );
    }
}
