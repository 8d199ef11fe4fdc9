//! Safety limits judged per rollout. A configuration is acceptable when, with 95% statistical
//! confidence, at least `confidence` of its rollouts meet every limit: a mean can hide one
//! rollout in ten that goes badly, a per-rollout bound cannot. The bound is the one-sided
//! Clopper–Pearson bound on the fraction of rollouts that met the limits.

use super::aggregate::ConfigSummary;
use super::run::metric_index;
use crate::stats::{cp_lower, cp_upper};

/// Statistical confidence of the one-sided bound behind every verdict.
pub const BOUND_LEVEL: f64 = 0.95;

/// One safety limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Success,
    Cpu,
    Disconnect,
    Blast,
}

impl Limit {
    pub const ALL: [Limit; 4] = [Limit::Success, Limit::Cpu, Limit::Disconnect, Limit::Blast];

    pub fn metric(self) -> &'static str {
        match self {
            Limit::Success => "success_rate",
            Limit::Cpu => "peak_mgmt_cpu_pct",
            Limit::Disconnect => "disconnect_rate",
            Limit::Blast => "blast_radius",
        }
    }

    pub fn flag(self) -> &'static str {
        match self {
            Limit::Success => "--min-success",
            Limit::Cpu => "--max-cpu",
            Limit::Disconnect => "--max-disconnect",
            Limit::Blast => "--max-blast",
        }
    }

    /// Blast radius is measured on a bad release; the others on a good one.
    pub fn on_bad_release(self) -> bool {
        self == Limit::Blast
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// k of n rollouts met a limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub k: u64,
    pub n: u64,
}

impl Tally {
    pub fn add(&mut self, ok: bool) {
        self.n += 1;
        self.k += u64::from(ok);
    }

    pub fn fraction(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.k as f64 / self.n as f64
        }
    }

    /// The one-sided lower bound at [`BOUND_LEVEL`].
    pub fn lower(&self) -> f64 {
        cp_lower(self.k, self.n, BOUND_LEVEL)
    }

    /// The one-sided upper bound at [`BOUND_LEVEL`].
    pub fn upper(&self) -> f64 {
        cp_upper(self.k, self.n, BOUND_LEVEL)
    }
}

/// Per-rollout verdicts of one configuration: good-release rollouts that met every good-release
/// limit, bad-release rollouts that met the blast limit, and each limit alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Passes {
    pub good: Tally,
    pub bad: Tally,
    pub each: [Tally; 4],
}

impl Passes {
    /// Tallies runs given as (bad release?, values as in runs.csv).
    pub fn of_runs(c: &Constraints, runs: &[(bool, Vec<f64>)]) -> Passes {
        let mut p = Passes::default();
        for (bad, v) in runs {
            c.tally(&mut p, *bad, v);
        }
        p
    }

    /// The verdicts on one limit alone.
    pub fn on(&self, l: Limit) -> Tally {
        self.each[l.index()]
    }

    /// The lower bound of the weaker of the two releases' fractions.
    pub fn lower(&self) -> f64 {
        self.good.lower().min(self.bad.lower())
    }
}

/// Safety limits a configuration must meet in at least `confidence` of its rollouts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Constraints {
    pub min_success: f64,
    pub max_cpu: f64,
    pub max_disconnect: f64,
    pub max_blast: f64,
    /// Fraction of rollouts that must meet every limit.
    pub confidence: f64,
}

impl Default for Constraints {
    /// What the seed's hand plan achieves rollout by rollout: it averages 97% success, but
    /// reaches 97% in only 93% of rollouts (279 of 300 seeds) and 96% in 99% (296 of 300); CPU
    /// 45–50%, under 2% disconnects, a blast radius within 10.
    fn default() -> Self {
        Constraints {
            min_success: 0.96,
            max_cpu: 50.0,
            max_disconnect: 0.02,
            max_blast: 10.0,
            confidence: 0.95,
        }
    }
}

impl Constraints {
    pub fn limit(&self, l: Limit) -> f64 {
        match l {
            Limit::Success => self.min_success,
            Limit::Cpu => self.max_cpu,
            Limit::Disconnect => self.max_disconnect,
            Limit::Blast => self.max_blast,
        }
    }

    /// Whether one rollout's value of `l` is within the limit.
    pub fn within(&self, l: Limit, value: f64) -> bool {
        match l {
            Limit::Success => value >= self.min_success,
            _ => value <= self.limit(l),
        }
    }

    /// Records one run's verdicts; `values` are indexed as in runs.csv.
    pub fn tally(&self, passes: &mut Passes, bad_release: bool, values: &[f64]) {
        let mut all = true;
        for l in Limit::ALL
            .into_iter()
            .filter(|l| l.on_bad_release() == bad_release)
        {
            let v = metric_index(l.metric()).and_then(|i| values.get(i).copied());
            let ok = v.is_some_and(|v| self.within(l, v));
            passes.each[l.index()].add(ok);
            all &= ok;
        }
        if bad_release {
            passes.bad.add(all);
        } else {
            passes.good.add(all);
        }
    }

    /// Acceptable: both releases' fractions of rollouts within the limits have a lower bound
    /// of at least `confidence`.
    pub fn hold(&self, s: &ConfigSummary) -> bool {
        s.n > 0 && s.passes.lower() >= self.confidence
    }

    /// Clearly unacceptable: an upper bound already below `confidence`, so more replications
    /// would be wasted.
    pub fn clearly_fail(&self, s: &ConfigSummary) -> bool {
        s.passes.good.upper() < self.confidence || s.passes.bad.upper() < self.confidence
    }

    /// Rollouts needed before `hold` can pass at all (every one of them within the limits).
    pub fn min_replications(&self) -> u64 {
        let c = self.confidence.clamp(0.0, 0.999_999);
        if c <= 0.0 {
            return 1;
        }
        ((1.0 - BOUND_LEVEL).ln() / c.ln()).ceil().max(1.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_failure_in_sixty_is_not_enough_evidence_for_95_percent() {
        let c = Constraints::default();
        assert_eq!(c.min_replications(), 59);
        let t = |k, n| Tally { k, n };
        assert!(t(59, 59).lower() >= 0.95);
        assert!(t(58, 59).lower() < 0.95);
        assert!(t(16, 20).upper() < 0.95 && t(17, 20).upper() >= 0.95);
    }

    #[test]
    fn a_run_is_judged_on_its_own_release() {
        let c = Constraints::default();
        let mut values = vec![0.0; crate::sweep::run::RUN_METRICS.len()];
        let set = |v: &mut Vec<f64>, m: &str, x: f64| v[metric_index(m).unwrap()] = x;
        set(&mut values, "success_rate", 0.98);
        set(&mut values, "peak_mgmt_cpu_pct", 40.0);
        set(&mut values, "blast_radius", 50.0);
        let mut p = Passes::default();
        c.tally(&mut p, false, &values);
        assert_eq!((p.good, p.bad), (Tally { k: 1, n: 1 }, Tally::default()));
        c.tally(&mut p, true, &values);
        assert_eq!(p.bad, Tally { k: 0, n: 1 });
        set(&mut values, "disconnect_rate", 0.03);
        c.tally(&mut p, false, &values);
        assert_eq!(p.good, Tally { k: 1, n: 2 });
        assert_eq!(p.each[Limit::Disconnect.index()], Tally { k: 1, n: 2 });
        assert_eq!(p.each[Limit::Success.index()], Tally { k: 2, n: 2 });
    }
}
