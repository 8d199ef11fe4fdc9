//! Summary statistics: mean and Student-t 95% confidence interval, and exact binomial
//! (Clopper–Pearson) bounds on proportions (statrs).

use statrs::distribution::{Beta, ContinuousCDF, StudentsT};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub n: usize,
    pub mean: f64,
    pub lo: f64,
    pub hi: f64,
    pub sd: f64,
}

/// Streaming mean and variance (Welford): constant memory however many samples arrive.
/// Samples must arrive in a fixed order for byte-identical results.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Running {
    n: usize,
    mean: f64,
    m2: f64,
}

impl Running {
    pub fn add(&mut self, x: f64) {
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
    }

    /// Mean with a two-sided 95% Student-t interval. One sample gives a zero-width interval.
    pub fn estimate(&self) -> Estimate {
        let n = self.n;
        if n == 0 {
            return Estimate {
                n,
                mean: f64::NAN,
                lo: f64::NAN,
                hi: f64::NAN,
                sd: f64::NAN,
            };
        }
        if n == 1 {
            return Estimate {
                n,
                mean: self.mean,
                lo: self.mean,
                hi: self.mean,
                sd: 0.0,
            };
        }
        let sd = (self.m2.max(0.0) / (n - 1) as f64).sqrt();
        let t = StudentsT::new(0.0, 1.0, (n - 1) as f64)
            .map(|d| d.inverse_cdf(0.975))
            .unwrap_or(1.96);
        let half = t * sd / (n as f64).sqrt();
        Estimate {
            n,
            mean: self.mean,
            lo: self.mean - half,
            hi: self.mean + half,
            sd,
        }
    }
}

/// Mean with a two-sided 95% Student-t interval. One sample gives a zero-width interval.
pub fn mean_ci95(xs: &[f64]) -> Estimate {
    let mut r = Running::default();
    xs.iter().for_each(|x| r.add(*x));
    r.estimate()
}

/// Wilson score 95% interval of a proportion: `k` successes in `n` trials. It stays inside
/// [0, 1], unlike a normal interval on a mean of rates.
pub fn wilson95(k: f64, n: f64) -> (f64, f64) {
    if n <= 0.0 {
        return (0.0, 1.0);
    }
    const Z: f64 = 1.959_963_984_540_054;
    let p = k / n;
    let d = 1.0 + Z * Z / n;
    let c = p + Z * Z / (2.0 * n);
    let h = Z * (p * (1.0 - p) / n + Z * Z / (4.0 * n * n)).sqrt();
    (((c - h) / d).max(0.0), ((c + h) / d).min(1.0))
}

/// One-sided Clopper–Pearson lower bound at `level` on a proportion seen `k` times in `n`:
/// the smallest p under which k or more successes would still have probability 1 − level.
/// Exact, so it never claims more than the data show, even at k = n.
pub fn cp_lower(k: u64, n: u64, level: f64) -> f64 {
    if n == 0 || k == 0 {
        return 0.0;
    }
    let k = k.min(n);
    Beta::new(k as f64, (n - k + 1) as f64)
        .map(|b| b.inverse_cdf(1.0 - level))
        .unwrap_or(0.0)
}

/// One-sided Clopper–Pearson upper bound at `level` (the mirror of [`cp_lower`]).
pub fn cp_upper(k: u64, n: u64, level: f64) -> f64 {
    if n == 0 || k >= n {
        return 1.0;
    }
    1.0 - cp_lower(n - k, n, level)
}

/// Two-sided Clopper–Pearson 95% interval of a proportion.
pub fn cp95(k: u64, n: u64) -> (f64, f64) {
    (cp_lower(k, n, 0.975), cp_upper(k, n, 0.975))
}

/// The q-quantile (0..=1) by linear interpolation of sorted values.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos.fract());
    let next = sorted[(i + 1).min(sorted.len() - 1)];
    sorted[i] + (next - sorted[i]) * frac
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal};

    #[test]
    fn interval_covers_known_mean_about_95_percent() {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(42);
        let d = Normal::new(10.0, 3.0).unwrap();
        let trials = 4000;
        let covered = (0..trials)
            .filter(|_| {
                let xs: Vec<f64> = (0..8).map(|_| d.sample(&mut rng)).collect();
                let e = mean_ci95(&xs);
                e.lo <= 10.0 && 10.0 <= e.hi
            })
            .count();
        let rate = covered as f64 / trials as f64;
        // Binomial sd at p = 0.95, n = 4000 is 0.0034; allow about 3 sd.
        assert!((rate - 0.95).abs() < 0.011, "coverage {rate}");
    }

    #[test]
    fn small_samples_use_t_not_z() {
        let e = mean_ci95(&[1.0, 3.0]);
        // t(1) = 12.706; sd = sqrt(2); half = 12.706 * sqrt(2)/sqrt(2).
        assert!((e.hi - e.mean - 12.706).abs() < 0.01, "{e:?}");
    }

    #[test]
    fn quantiles_interpolate() {
        let v = [0.0, 10.0, 20.0, 30.0];
        assert_eq!(quantile(&v, 0.5), 15.0);
        assert_eq!(quantile(&v, 0.0), 0.0);
        assert_eq!(quantile(&v, 1.0), 30.0);
    }

    #[test]
    fn clopper_pearson_matches_closed_forms_and_covers() {
        // k = n: the lower bound solves p^n = 1 − level.
        assert!((cp_lower(59, 59, 0.95) - 0.05f64.powf(1.0 / 59.0)).abs() < 1e-9);
        // k = 0: the upper bound solves (1 − p)^n = 1 − level.
        assert!((cp_upper(0, 20, 0.95) - (1.0 - 0.05f64.powf(1.0 / 20.0))).abs() < 1e-9);
        // 81 of 263, against bisection on the exact binomial tail sums (done outside Rust).
        let (lo, hi) = cp95(81, 263);
        assert!(
            (lo - 0.252_737).abs() < 1e-5 && (hi - 0.367_622).abs() < 1e-5,
            "{lo} {hi}"
        );
        assert_eq!(cp_lower(0, 10, 0.95), 0.0);
        assert_eq!(cp_upper(10, 10, 0.95), 1.0);
        // Coverage of the one-sided lower bound is at least its level, at a p near 1.
        let mut rng = rand_pcg::Pcg64::seed_from_u64(7);
        let (p, n, trials) = (0.96, 60u64, 4000);
        let covered = (0..trials)
            .filter(|_| {
                let k = (0..n)
                    .filter(|_| rand::Rng::random::<f64>(&mut rng) < p)
                    .count();
                cp_lower(k as u64, n, 0.95) <= p
            })
            .count();
        assert!(covered as f64 / trials as f64 >= 0.95 - 0.01, "{covered}");
    }

    #[test]
    fn wilson_matches_the_closed_form_and_stays_in_bounds() {
        let (lo, hi) = wilson95(81.0, 263.0);
        assert!((lo - 0.255_289).abs() < 1e-5 && (hi - 0.366_210).abs() < 1e-5);
        let (lo, hi) = wilson95(10.0, 10.0);
        assert!((lo - 0.722_467).abs() < 1e-5 && hi <= 1.0);
        assert_eq!(wilson95(0.0, 10.0).0, 0.0);
    }
}
