//! Estimators with intervals: a duration distribution chosen among the scenario's families by
//! AIC, Beta posteriors for probabilities and Gamma posteriors for rates (Jeffreys priors, whose
//! equal-tailed intervals have close to their nominal frequentist coverage).

use statrs::distribution::{ChiSquared, ContinuousCDF, Gamma, Normal};

/// The two-sided level of every interval the fit reports.
pub const LEVEL: f64 = 0.90;
/// The level of the range an `[uncertainty]` entry spans (its tails beyond the 90% interval).
pub const WIDE: f64 = 0.99;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub est: f64,
    pub lo: f64,
    pub hi: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Uniform,
    Normal,
    LogNormal,
}

impl Family {
    pub const ALL: [Family; 3] = [Family::Uniform, Family::Normal, Family::LogNormal];

    pub fn name(self) -> &'static str {
        match self {
            Family::Uniform => "uniform",
            Family::Normal => "normal",
            Family::LogNormal => "lognormal",
        }
    }

    /// The scenario's parameter names, in the order `DurationFit::params` holds them.
    pub fn params(self) -> [&'static str; 2] {
        match self {
            Family::Uniform => ["min", "max"],
            Family::Normal => ["mean", "sd"],
            Family::LogNormal => ["median", "sigma"],
        }
    }
}

/// A duration distribution fitted to observations.
#[derive(Debug, Clone)]
pub struct DurationFit {
    pub family: Family,
    /// Each parameter at the reporting level, and at the wide level for `[uncertainty]`.
    pub params: [(Interval, Interval); 2],
    /// AIC of every family, in `Family::ALL` order (lower is better).
    pub aic: [f64; 3],
    /// Kolmogorov–Smirnov distance between the data and the chosen fit.
    pub ks: f64,
    pub n: usize,
}

fn z(level: f64) -> f64 {
    Normal::new(0.0, 1.0)
        .expect("the standard normal exists")
        .inverse_cdf(0.5 + level / 2.0)
}

fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let m = xs.iter().sum::<f64>() / n;
    let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, v.sqrt())
}

/// Interval of a normal sample's sd from the chi-square law of (n−1)s²/σ².
fn sd_interval(s: f64, n: usize, level: f64) -> Interval {
    let df = (n - 1) as f64;
    let chi = ChiSquared::new(df).expect("df > 0");
    let a = (1.0 - level) / 2.0;
    Interval {
        est: s,
        lo: s * (df / chi.inverse_cdf(1.0 - a)).sqrt(),
        hi: s * (df / chi.inverse_cdf(a)).sqrt(),
    }
}

fn normal_cdf(x: f64, m: f64, s: f64) -> f64 {
    Normal::new(m, s.max(1e-12)).map_or(0.5, |d| d.cdf(x))
}

/// Fits `xs` (at least 8 values), each known to within ±`slack` (timing resolution and
/// report latency), choosing the family of lowest AIC.
pub fn durations(xs: &[f64], slack: f64) -> Option<DurationFit> {
    let n = xs.len();
    if n < 8 || xs.iter().any(|x| !(x.is_finite() && *x > 0.0)) {
        return None;
    }
    let mut sorted = xs.to_vec();
    sorted.sort_by(f64::total_cmp);
    let nf = n as f64;
    let (lo_x, hi_x) = (sorted[0], sorted[n - 1]);
    let range = (hi_x - lo_x).max(1e-9);
    let (m, s) = mean_sd(xs);
    let logs: Vec<f64> = xs.iter().map(|x| x.ln()).collect();
    let (lm, ls) = mean_sd(&logs);
    let sum_logs: f64 = logs.iter().sum();
    // Log-likelihoods at the maximum (MLE variances divide by n).
    let s_mle = s * ((nf - 1.0) / nf).sqrt();
    let ls_mle = ls * ((nf - 1.0) / nf).sqrt();
    let ll_uniform = -nf * range.ln();
    let ll_normal = -nf / 2.0 * (2.0 * std::f64::consts::PI * s_mle * s_mle).ln() - nf / 2.0;
    let ll_lognormal =
        -sum_logs - nf / 2.0 * (2.0 * std::f64::consts::PI * ls_mle * ls_mle).ln() - nf / 2.0;
    let aic = [
        4.0 - 2.0 * ll_uniform,
        4.0 - 2.0 * ll_normal,
        4.0 - 2.0 * ll_lognormal,
    ];
    let best = (0..3)
        .min_by(|&a, &b| aic[a].total_cmp(&aic[b]))
        .expect("three families");
    let family = Family::ALL[best];
    let params = |level: f64| -> [Interval; 2] {
        match family {
            Family::Uniform => {
                // (x(1) − a)/(b − a) ~ Beta(1, n): quantile p is 1 − (1 − p)^(1/n).
                let r = range * (nf + 1.0) / (nf - 1.0);
                let q = |p: f64| r * (1.0 - (1.0 - p).powf(1.0 / nf));
                let a_tail = (1.0 - level) / 2.0;
                let step = range / (nf - 1.0);
                [
                    Interval {
                        est: lo_x - step,
                        lo: lo_x - q(1.0 - a_tail) - slack,
                        hi: lo_x - q(a_tail) + slack,
                    },
                    Interval {
                        est: hi_x + step,
                        lo: hi_x + q(a_tail) - slack,
                        hi: hi_x + q(1.0 - a_tail) + slack,
                    },
                ]
            }
            Family::Normal => {
                let half = z(level) * s / nf.sqrt() + slack;
                [
                    Interval {
                        est: m,
                        lo: m - half,
                        hi: m + half,
                    },
                    sd_interval(s, n, level),
                ]
            }
            Family::LogNormal => {
                let half = z(level) * ls / nf.sqrt();
                [
                    Interval {
                        est: lm.exp(),
                        lo: (lm - half).exp() - slack,
                        hi: (lm + half).exp() + slack,
                    },
                    sd_interval(ls, n, level),
                ]
            }
        }
    };
    let cdf = |x: f64| match family {
        Family::Uniform => ((x - lo_x) / range).clamp(0.0, 1.0),
        Family::Normal => normal_cdf(x, m, s),
        Family::LogNormal => normal_cdf(x.ln(), lm, ls),
    };
    let ks = sorted
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let f = cdf(x);
            (f - i as f64 / nf)
                .abs()
                .max(((i + 1) as f64 / nf - f).abs())
        })
        .fold(0.0, f64::max);
    let (report, wide) = (params(LEVEL), params(WIDE));
    Some(DurationFit {
        family,
        params: [(report[0], wide[0]), (report[1], wide[1])],
        aic,
        ks,
        n,
    })
}

/// A probability seen `k` times in `n`: the exact (Clopper–Pearson) interval, which never
/// covers less than its level (Jeffreys' dips well below it when n·p is about 2), and the
/// Jeffreys posterior Beta(k + ½, n − k + ½) that the fitted scenario draws from.
#[derive(Debug, Clone, Copy)]
pub struct Proportion {
    pub k: u64,
    pub n: u64,
    pub a: f64,
    pub b: f64,
    pub interval: Interval,
}

pub fn proportion(k: u64, n: u64) -> Proportion {
    let (a, b) = (k as f64 + 0.5, (n - k.min(n)) as f64 + 0.5);
    let one_sided = 1.0 - (1.0 - LEVEL) / 2.0;
    Proportion {
        k,
        n,
        a,
        b,
        interval: Interval {
            est: a / (a + b),
            lo: crate::stats::cp_lower(k, n, one_sided),
            hi: crate::stats::cp_upper(k, n, one_sided),
        },
    }
}

/// The Jeffreys posterior Gamma(k + ½, rate = exposure) of an event rate: `k` events in
/// `exposure` units of time.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub k: u64,
    pub exposure: f64,
    pub shape: f64,
    pub scale: f64,
    pub interval: Interval,
    /// The wide upper quantile (an `[uncertainty]` entry must be bounded).
    pub wide_hi: f64,
}

pub fn rate(k: u64, exposure: f64) -> Option<Rate> {
    if exposure.is_nan() || exposure <= 0.0 {
        return None;
    }
    let shape = k as f64 + 0.5;
    let d = Gamma::new(shape, exposure).ok()?;
    // By bisection on the CDF: statrs' inverse loses the lower tail of small shapes.
    let quantile = |p: f64| {
        let (mut lo, mut hi) = (0.0, (shape + 10.0 * shape.sqrt() + 10.0) / exposure);
        for _ in 0..200 {
            let mid = (lo + hi) / 2.0;
            if d.cdf(mid) < p {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        (lo + hi) / 2.0
    };
    let tail = (1.0 - LEVEL) / 2.0;
    Some(Rate {
        k,
        exposure,
        shape,
        scale: 1.0 / exposure,
        interval: Interval {
            est: shape / exposure,
            lo: quantile(tail),
            hi: quantile(1.0 - tail),
        },
        wide_hi: quantile(1.0 - (1.0 - WIDE) / 2.0),
    })
}

/// A distribution-free interval for the median of `xs` (order statistics, normal
/// approximation to the binomial).
pub fn median(xs: &[f64]) -> Option<Interval> {
    if xs.is_empty() {
        return None;
    }
    let mut s = xs.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len() as f64;
    let half = z(LEVEL) * n.sqrt() / 2.0;
    let at = |r: f64| s[(r.round().max(0.0) as usize).min(s.len() - 1)];
    Some(Interval {
        est: crate::stats::quantile(&s, 0.5),
        lo: at(n / 2.0 - half - 1.0),
        hi: at(n / 2.0 + half),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn aic_picks_the_family_that_made_the_data() {
        let mut r = rand_pcg::Pcg64::seed_from_u64(3);
        let uniform: Vec<f64> = (0..400).map(|_| r.random_range(180.0..300.0)).collect();
        assert_eq!(durations(&uniform, 0.0).unwrap().family, Family::Uniform);
        let d = rand_distr::LogNormal::new(5.0, 0.5).unwrap();
        let logn: Vec<f64> = (0..400)
            .map(|_| rand_distr::Distribution::sample(&d, &mut r))
            .collect();
        assert_eq!(durations(&logn, 0.0).unwrap().family, Family::LogNormal);
        let d = rand_distr::Normal::new(240.0, 20.0).unwrap();
        let norm: Vec<f64> = (0..400)
            .map(|_| rand_distr::Distribution::sample(&d, &mut r))
            .collect();
        assert_eq!(durations(&norm, 0.0).unwrap().family, Family::Normal);
    }

    #[test]
    fn uniform_end_intervals_cover_the_truth_at_their_level() {
        let mut covered = [0; 2];
        for seed in 0..400 {
            let mut r = rand_pcg::Pcg64::seed_from_u64(seed);
            let xs: Vec<f64> = (0..150).map(|_| r.random_range(180.0..300.0)).collect();
            let f = durations(&xs, 0.0).unwrap();
            assert_eq!(f.family, Family::Uniform);
            for (i, truth) in [180.0, 300.0].into_iter().enumerate() {
                let iv = f.params[i].0;
                covered[i] += usize::from(iv.lo <= truth && truth <= iv.hi);
            }
        }
        for c in covered {
            let rate = c as f64 / 400.0;
            assert!((0.86..=0.94).contains(&rate), "coverage {rate}");
        }
    }

    #[test]
    fn a_rate_seen_zero_times_has_a_lower_bound_of_almost_zero() {
        let r = rate(0, 100.0).unwrap();
        assert!(
            r.interval.lo >= 0.0 && r.interval.lo < 1e-4,
            "{:?}",
            r.interval
        );
        // Gamma(½, 100): its 95% quantile is χ²₁(0.95) / 200 = 3.841 / 200.
        assert!(
            (r.interval.hi - 3.8415 / 200.0).abs() < 1e-4,
            "{:?}",
            r.interval
        );
    }

    #[test]
    fn exact_intervals_are_inside_zero_one_and_cover() {
        let p = proportion(0, 50);
        assert!(p.interval.lo >= 0.0 && p.interval.hi < 0.1);
        let mut covered = 0;
        for seed in 0..1000 {
            let mut r = rand_pcg::Pcg64::seed_from_u64(seed);
            let k = (0..200).filter(|_| r.random_bool(0.02)).count() as u64;
            let iv = proportion(k, 200).interval;
            covered += usize::from(iv.lo <= 0.02 && 0.02 <= iv.hi);
        }
        assert!(covered >= 850, "coverage {covered}/1000");
    }
}
