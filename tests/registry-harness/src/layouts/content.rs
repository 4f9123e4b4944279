//! Deterministic pseudo-random bytes: big layers are regenerated from a seed, never stored.

/// An endless byte stream determined by its seed (SplitMix64: fast, and well mixed even for
/// neighbouring seeds).
pub(crate) struct SeededBytes {
    state: u64,
}

impl SeededBytes {
    pub(crate) fn new(seed: u64) -> SeededBytes {
        SeededBytes { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Fills `buf` with the next bytes; `buf.len()` must be a multiple of 8 except at the
    /// very end of a stream.
    pub(crate) fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// Mixes a seed with a position (layer index, platform index) into a new seed.
pub(crate) fn derive(seed: u64, index: u64) -> u64 {
    SeededBytes::new(seed ^ index.wrapping_mul(0xD6E8_FEB8_6659_FD93)).next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let (mut a, mut b, mut c) = ([0; 64], [0; 64], [0; 64]);
        SeededBytes::new(7).fill(&mut a);
        SeededBytes::new(7).fill(&mut b);
        SeededBytes::new(8).fill(&mut c);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(derive(7, 0), derive(7, 1));
    }
}
