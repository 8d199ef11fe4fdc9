//! Named, seedable RNG streams (PCG-64). Seeds are derived per (replication, gateway,
//! purpose), so two policies run on the same seed see the same fleet and the same luck.

use rand::SeedableRng;
use rand_pcg::Pcg64;

use crate::engine::backoff::mix;

pub type Stream = Pcg64;

/// What a stream is for; each purpose gets an independent stream.
#[derive(Debug, Clone, Copy)]
#[repr(u64)]
pub enum Purpose {
    Profile = 1,
    Luck = 2,
    Service = 3,
    Uncertainty = 4,
}

/// Derives a 64-bit seed from parts by chained mixing.
pub fn derive(parts: &[u64]) -> u64 {
    parts
        .iter()
        .fold(0x5EED_5EED_u64, |acc, p| mix(acc ^ mix(*p)))
}

pub fn stream(seed: u64, purpose: Purpose, index: u64) -> Stream {
    Pcg64::seed_from_u64(derive(&[seed, purpose as u64, index]))
}
