//! A small seeded PRNG (xorshift64*): the soak's mix needs repeatable choices,
//! not statistical quality or security.

/// xorshift64* (Vigna, 2016).
pub(crate) struct Rng(u64);

/// SplitMix64's output function: spreads nearby seeds (0, 1, 2 ...) far apart
/// and never yields the all-zero state xorshift cannot leave.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)).max(1)
}

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(splitmix(seed))
    }

    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (the modulo bias is below 2^-40 for the small `n` used).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in `low..=high`.
    pub(crate) fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low + 1)
    }

    /// An independent generator seeded from this one.
    pub(crate) fn fork(&mut self) -> Rng {
        Rng::new(self.next())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_ranges_hold() {
        let (mut a, mut b) = (Rng::new(1), Rng::new(1));
        let mut c = Rng::new(2);
        let xs: Vec<u64> = (0..8).map(|_| a.next()).collect();
        assert_eq!(xs, (0..8).map(|_| b.next()).collect::<Vec<_>>());
        assert_ne!(xs, (0..8).map(|_| c.next()).collect::<Vec<_>>());
        let mut seen = [false; 3];
        for _ in 0..1000 {
            let n = a.range(5, 7);
            assert!((5..=7).contains(&n));
            seen[(n - 5) as usize] = true;
        }
        assert_eq!(seen, [true; 3]);
    }
}
