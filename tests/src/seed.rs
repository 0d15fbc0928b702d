//! Deterministic values derived from the fixture seed.
//!
//! Everything that varies between fixture mirrors (git hashes in revisions, kernel vermagic,
//! checksums in package indexes, the usign key) is SHA-256 of the seed and a label, so the same
//! seed always gives the same bytes and two labels never share a value.

use sha2::{Digest, Sha256};

/// The seed of one fixture mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Seed(pub u64);

impl Seed {
    /// The 32 bytes derived from the seed for `label`.
    pub fn bytes(&self, label: &str) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(b"attendant-fixture-v1\0");
        hasher.update(self.0.to_be_bytes());
        hasher.update(label.as_bytes());
        hasher.finalize().into()
    }

    /// `len` lowercase hex digits (at most 64) derived for `label`.
    pub fn hex(&self, label: &str, len: usize) -> String {
        let mut text = hex::encode(self.bytes(label));
        text.truncate(len);
        text
    }

    /// A number in `0..bound` derived for `label` (`0` when `bound` is `0`).
    pub fn below(&self, label: &str, bound: u64) -> u64 {
        let bytes = self.bytes(label);
        let mut first = [0_u8; 8];
        first.copy_from_slice(bytes.get(..8).unwrap_or(&[0; 8]));
        u64::from_be_bytes(first).checked_rem(bound).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_and_label_give_same_value() {
        assert_eq!(Seed(7).hex("a", 10), Seed(7).hex("a", 10));
        assert_eq!(Seed(7).hex("a", 10).len(), 10);
    }

    #[test]
    fn different_seeds_or_labels_differ() {
        assert_ne!(Seed(7).hex("a", 64), Seed(8).hex("a", 64));
        assert_ne!(Seed(7).hex("a", 64), Seed(7).hex("b", 64));
    }

    #[test]
    fn below_stays_in_range_and_tolerates_zero() {
        for label in ["x", "y", "z"] {
            assert!(Seed(1).below(label, 5) < 5);
        }
        assert_eq!(Seed(1).below("x", 0), 0);
    }
}
