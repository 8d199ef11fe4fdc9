//! Why a tune found no plan: for each limit, how many configurations meet it on their own in
//! enough rollouts, or which comes closest; then the configuration closest to meeting all of
//! them at once. Every verdict is the per-rollout one the tuner uses.

use crate::sweep::aggregate::ConfigSummary;
use crate::sweep::constraints::{Constraints, Limit, Tally, BOUND_LEVEL};

fn show(l: Limit, x: f64) -> String {
    match l {
        Limit::Success | Limit::Disconnect => format!("{:.2}%", x * 100.0),
        Limit::Cpu => format!("{x:.1}%"),
        Limit::Blast => format!("{x:.1} gateways"),
    }
}

fn statement(c: &Constraints, l: Limit) -> String {
    let op = if l == Limit::Success { "≥" } else { "≤" };
    format!("{} ({} {op} {})", l.flag(), l.metric(), show(l, c.limit(l)))
}

fn tally(s: &ConfigSummary, l: Limit) -> Tally {
    s.passes.on(l)
}

/// How far a tally's lower bound falls short of `confidence` (0 when met).
fn shortfall(c: &Constraints, t: Tally) -> f64 {
    (c.confidence - t.lower()).max(0.0)
}

fn evidence(t: Tally) -> String {
    format!(
        "{} of {} rollouts within it (lower bound {:.1}%)",
        t.k,
        t.n,
        t.lower() * 100.0
    )
}

/// The explanation, one line per limit and one for all together. `candidates` pairs each
/// configuration's label with its summary; an empty list says so.
pub fn explain(c: &Constraints, candidates: &[(String, &ConfigSummary)]) -> String {
    let mut out = format!(
        "no configuration keeps {:.1}% of its rollouts within the limits (one-sided {:.0}% Clopper–Pearson bound):\n",
        c.confidence * 100.0,
        BOUND_LEVEL * 100.0
    );
    if candidates.is_empty() {
        out += "  the sweep has no candidate configurations (only references)\n";
        return out;
    }
    for l in Limit::ALL {
        let meeting = candidates
            .iter()
            .filter(|(_, s)| shortfall(c, tally(s, l)) == 0.0)
            .count();
        let possible = candidates
            .iter()
            .filter(|(_, s)| tally(s, l).upper() >= c.confidence)
            .count();
        let closest = candidates
            .iter()
            .min_by(|x, y| {
                shortfall(c, tally(x.1, l))
                    .total_cmp(&shortfall(c, tally(y.1, l)))
                    .then(x.0.cmp(&y.0))
            })
            .expect("candidates is not empty");
        if meeting > 0 {
            out += &format!(
                "  {}: met by {meeting} of {} configurations\n",
                statement(c, l),
                candidates.len()
            );
        } else if possible > 0 {
            out += &format!(
                "  {}: shown by none yet, but {possible} of {} configurations could meet it with more replications (closest {} with {})\n",
                statement(c, l),
                candidates.len(),
                closest.0,
                evidence(tally(closest.1, l))
            );
        } else {
            out += &format!(
                "  {}: met by none; closest {} with {}\n",
                statement(c, l),
                closest.0,
                evidence(tally(closest.1, l))
            );
        }
    }
    let total = |s: &ConfigSummary| shortfall(c, s.passes.good) + shortfall(c, s.passes.bad);
    let (label, s) = candidates
        .iter()
        .min_by(|x, y| total(x.1).total_cmp(&total(y.1)).then(x.0.cmp(&y.0)))
        .expect("candidates is not empty");
    let misses: Vec<String> = Limit::ALL
        .into_iter()
        .filter(|l| shortfall(c, tally(s, *l)) > 0.0)
        .map(|l| format!("{} in {}", l.metric(), evidence(tally(s, l))))
        .collect();
    let misses = if misses.is_empty() {
        format!(
            "only jointly: {} of {} good-release rollouts within every limit (lower bound {:.1}%)",
            s.passes.good.k,
            s.passes.good.n,
            s.passes.good.lower() * 100.0
        )
    } else {
        misses.join(", ")
    };
    out += &format!("  all together: closest {label}, which misses {misses}\n");
    out += "Relax a limit or --confidence, widen the grid, or raise --max-replications (a bound needs enough rollouts to reach the confidence at all).";
    out
}
