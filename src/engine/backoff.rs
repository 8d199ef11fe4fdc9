//! Retry delays: min(base·factor^n, cap) with deterministic jitter.
//! The engine owns no RNG, so jitter is a hash of (seed, gateway, attempt): the same inputs
//! always give the same delay, in the simulator and live.

use super::policy::Retry;
use crate::time::Time;

/// Delay before retry number `n` (1 = first retry) of gateway `gw`.
pub fn delay(retry: &Retry, n: u32, gw: u32, seed: u64) -> Time {
    let exp = retry.factor.powi(n.min(64) as i32);
    let raw = (retry.base.secs() * exp).min(retry.cap.secs());
    let u = unit(seed ^ (u64::from(gw) << 20) ^ u64::from(n));
    let jittered = raw * (1.0 + retry.jitter * (2.0 * u - 1.0));
    Time::from_secs(jittered.max(0.0))
}

/// SplitMix64 finaliser mapped to [0, 1).
pub fn unit(x: u64) -> f64 {
    (mix(x) >> 11) as f64 / (1u64 << 53) as f64
}

pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_formula_without_jitter() {
        let r = Retry {
            max_attempts: 6,
            base: Time::from_secs(300.0),
            factor: 2.0,
            cap: Time::from_secs(3600.0),
            jitter: 0.0,
        };
        let secs: Vec<f64> = (1..=5).map(|n| delay(&r, n, 7, 1).secs()).collect();
        assert_eq!(secs, vec![600.0, 1200.0, 2400.0, 3600.0, 3600.0]);
    }

    #[test]
    fn jitter_stays_within_bounds_and_varies() {
        let r = Retry {
            max_attempts: 6,
            base: Time::from_secs(100.0),
            factor: 2.0,
            cap: Time::from_secs(3600.0),
            jitter: 0.2,
        };
        let ds: Vec<f64> = (0..200).map(|gw| delay(&r, 1, gw, 9).secs()).collect();
        assert!(ds.iter().all(|d| (160.0..=240.0).contains(d)), "{ds:?}");
        let distinct: std::collections::BTreeSet<u64> = ds.iter().map(|d| *d as u64).collect();
        assert!(distinct.len() > 20);
    }
}
