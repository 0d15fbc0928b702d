//! A router's phase in a phased rollout, computed exactly as Ubuntu's system-image client does:
//! `random.Random("<channel>.<build>.<machine-id>").randint(0, 100)` in CPython 3
//! (<https://gitlab.com/ubports/development/core/system-image>, `systemimage/scores.py` and
//! `helpers.py`), so a fleet migrated from system-image keeps its phases and an operator can
//! recompute any router's phase with one line of Python.
//!
//! CPython seeds its Mersenne Twister from a `str` like this (`random.Random.seed`, version 2,
//! <https://github.com/python/cpython/blob/main/Lib/random.py>): the seed's UTF-8 bytes followed
//! by their SHA-512 digest are read as one big-endian integer, which is cut into 32-bit words,
//! least significant first, and fed to MT19937's `init_by_array`
//! (<https://github.com/python/cpython/blob/main/Modules/_randommodule.c>). `randint(0, 100)`
//! draws 32-bit outputs, keeps their top 7 bits, and rejects values above 100.
//!
//! The generator is written out here (about 60 lines) rather than taken from a crate: the
//! agent needs only seeding from a word array and 32-bit draws, and every byte counts on a
//! router.

use ring::digest::{SHA512, digest};

/// The largest phase; a build's `phased-percentage` is compared against the phase with `<=`.
pub const MAX_PHASE: u8 = 100;

/// The router's phase for `build` of `channel`: 0 to 100.
pub fn phase(channel: &str, build: u64, machine_id: &str) -> u8 {
    let seed = format!("{channel}.{build}.{machine_id}");
    let mut generator = Mt19937::from_str_seed(&seed);
    loop {
        // `_randbelow(101)`: 101 needs 7 bits; draws of 101..=127 are rejected.
        let value = generator.next_u32() >> 25;
        if let Ok(phase) = u8::try_from(value)
            && phase <= MAX_PHASE
        {
            return phase;
        }
    }
}

const N: usize = 624;
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// MT19937 (Matsumoto and Nishimura, 1998), as in CPython's `_randommodule.c`.
struct Mt19937 {
    state: [u32; N],
    index: usize,
}

#[expect(
    clippy::indexing_slicing,
    reason = "every index is below N = 624, the state's length: loop bounds, wrap-arounds and `% N` keep it there"
)]
impl Mt19937 {
    /// CPython's seeding from a `str`.
    fn from_str_seed(seed: &str) -> Self {
        let mut bytes = seed.as_bytes().to_vec();
        bytes.extend_from_slice(digest(&SHA512, seed.as_bytes()).as_ref());
        // The bytes are one big-endian integer; its 32-bit words, least significant first, are
        // the key. Leading zero bytes do not count (CPython takes the integer's absolute value,
        // which has no leading zeros), and the digest's 64 bytes make the integer non-zero.
        let first = bytes
            .iter()
            .position(|byte| *byte != 0)
            .unwrap_or(bytes.len());
        let key: Vec<u32> = bytes
            .get(first..)
            .unwrap_or_default()
            .rchunks(4)
            .map(|chunk| {
                chunk
                    .iter()
                    .fold(0u32, |word, byte| (word << 8) | u32::from(*byte))
            })
            .collect();
        Self::from_key(&key)
    }

    fn from_seed(seed: u32) -> Self {
        let mut state = [0u32; N];
        state[0] = seed;
        for i in 1..N {
            let previous = state[i - 1];
            state[i] = 1_812_433_253u32
                .wrapping_mul(previous ^ (previous >> 30))
                .wrapping_add(i as u32);
        }
        Self { state, index: N }
    }

    /// `init_by_array`.
    fn from_key(key: &[u32]) -> Self {
        let mut generator = Self::from_seed(19_650_218);
        let state = &mut generator.state;
        let mut i = 1usize;
        let mut j = 0usize;
        let length = key.len().max(1);
        for _ in 0..N.max(length) {
            let previous = state[i - 1];
            state[i] = (state[i] ^ (previous ^ (previous >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(key.get(j).copied().unwrap_or(0))
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                state[0] = state[N - 1];
                i = 1;
            }
            if j >= length {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            let previous = state[i - 1];
            state[i] = (state[i] ^ (previous ^ (previous >> 30)).wrapping_mul(1_566_083_941))
                .wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                state[0] = state[N - 1];
                i = 1;
            }
        }
        state[0] = 0x8000_0000;
        generator
    }

    fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    fn twist(&mut self) {
        for i in 0..N {
            let y = (self.state[i] & UPPER_MASK) | (self.state[(i + 1) % N] & LOWER_MASK);
            let mut next = self.state[(i + M) % N] ^ (y >> 1);
            if y & 1 != 0 {
                next ^= MATRIX_A;
            }
            self.state[i] = next;
        }
        self.index = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_vectors() {
        // Computed with CPython 3.11 and system-image's own formula.
        assert_eq!(phase("ubuntu", 11, "0123456789abcdef"), 51);
        assert_eq!(phase("devel", 11, "0123456789abcdef"), 96);
        assert_eq!(phase("ubuntu", 12, "0123456789abcdef"), 1);
        assert_eq!(phase("ubuntu", 11, "fedcba9876543210"), 25);
        // system-image's seed for an ordinary channel held the literal `None`.
        assert_eq!(phase("None", 11, "0123456789abcdef"), 46);
    }

    #[test]
    fn integer_seed_matches_the_mt19937_reference_output() {
        // The first output of `init_by_array({0x123, 0x234, 0x345, 0x456})` in Matsumoto and
        // Nishimura's mt19937ar.c test output.
        let mut generator = Mt19937::from_key(&[0x123, 0x234, 0x345, 0x456]);
        assert_eq!(generator.next_u32(), 1_067_595_299);
        assert_eq!(generator.next_u32(), 955_945_823);
    }

    #[test]
    fn agrees_with_python3() {
        let Ok(output) = std::process::Command::new("python3")
            .arg("-c")
            .arg(
                "import random\n\
                 for c, b, m in [('stable', 7, 'a' * 32), ('lab/canary', 1, '0123'), ('stable', 65536, 'ü')]:\n\
                 \x20   print(random.Random(f'{c}.{b}.{m}').randint(0, 100))",
            )
            .output()
        else {
            panic!("python3 is needed to cross-check the phase against CPython");
        };
        assert!(output.status.success(), "{output:?}");
        let expected: Vec<u8> = String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(|line| line.parse().unwrap())
            .collect();
        let ours = vec![
            phase("stable", 7, &"a".repeat(32)),
            phase("lab/canary", 1, "0123"),
            phase("stable", 65536, "ü"),
        ];
        assert_eq!(ours, expected);
    }
}
