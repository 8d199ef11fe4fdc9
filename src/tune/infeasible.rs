//! Why a tune found no plan: for each constraint, whether any configuration meets it on its
//! own (conservatively), and the configuration that comes closest; then the configuration
//! closest to meeting all of them at once.

use crate::sweep::aggregate::ConfigSummary;
use crate::sweep::representatives::Constraints;

/// One constraint: the metric, which side is unsafe, the limit, and how to print values.
struct Bound {
    label: &'static str,
    metric: &'static str,
    at_least: bool,
    limit: f64,
    /// Values are rates printed as percentages.
    rate: bool,
}

fn bounds(c: &Constraints) -> [Bound; 4] {
    let b = |label, metric, at_least, limit, rate| Bound {
        label,
        metric,
        at_least,
        limit,
        rate,
    };
    [
        b("--min-success", "success_rate", true, c.min_success, true),
        b("--max-cpu", "peak_mgmt_cpu_pct", false, c.max_cpu, false),
        b(
            "--max-disconnect",
            "disconnect_rate",
            false,
            c.max_disconnect,
            true,
        ),
        b("--max-blast", "blast_radius", false, c.max_blast, false),
    ]
}

impl Bound {
    /// The CI bound on the unsafe side.
    fn value(&self, s: &ConfigSummary) -> f64 {
        let e = s.get(self.metric);
        if self.at_least {
            e.lo
        } else {
            e.hi
        }
    }

    /// How far past the limit, relative to the limit's scale (0 when met).
    fn shortfall(&self, s: &ConfigSummary) -> f64 {
        let v = self.value(s);
        let past = if self.at_least {
            self.limit - v
        } else {
            v - self.limit
        };
        past.max(0.0) / self.limit.abs().max(1e-9)
    }

    fn show(&self, x: f64) -> String {
        if self.rate {
            format!("{:.2}%", x * 100.0)
        } else if self.metric == "blast_radius" {
            format!("{x:.1} gateways")
        } else {
            format!("{x:.1}%")
        }
    }

    fn statement(&self) -> String {
        let op = if self.at_least { "≥" } else { "≤" };
        format!(
            "{} ({} {op} {})",
            self.label,
            self.metric,
            self.show(self.limit)
        )
    }
}

/// The explanation, one line per constraint and one for all together. `candidates` pairs each
/// configuration's label with its summary; an empty list says so.
pub fn explain(c: &Constraints, candidates: &[(String, &ConfigSummary)]) -> String {
    let mut out = String::from(
        "no configuration meets the constraints conservatively (each judged by its 95% CI bound on the unsafe side):\n",
    );
    if candidates.is_empty() {
        out += "  the sweep has no candidate configurations (only references)\n";
        return out;
    }
    let side = |b: &Bound| if b.at_least { "CI low" } else { "CI high" };
    for b in bounds(c) {
        let meeting = candidates
            .iter()
            .filter(|(_, s)| b.shortfall(s) == 0.0)
            .count();
        if meeting > 0 {
            out += &format!(
                "  {}: met by {meeting} of {} configurations\n",
                b.statement(),
                candidates.len()
            );
            continue;
        }
        let (label, s) = candidates
            .iter()
            .min_by(|x, y| {
                b.shortfall(x.1)
                    .total_cmp(&b.shortfall(y.1))
                    .then(x.0.cmp(&y.0))
            })
            .expect("candidates is not empty");
        out += &format!(
            "  {}: met by none; closest {label} with {} {}\n",
            b.statement(),
            side(&b),
            b.show(b.value(s))
        );
    }
    let total = |s: &ConfigSummary| bounds(c).iter().map(|b| b.shortfall(s)).sum::<f64>();
    let (label, s) = candidates
        .iter()
        .min_by(|x, y| total(x.1).total_cmp(&total(y.1)).then(x.0.cmp(&y.0)))
        .expect("candidates is not empty");
    let misses: Vec<String> = bounds(c)
        .iter()
        .filter(|b| b.shortfall(s) > 0.0)
        .map(|b| {
            format!(
                "{} {} {} vs {}",
                b.metric,
                side(b),
                b.show(b.value(s)),
                b.show(b.limit)
            )
        })
        .collect();
    out += &format!(
        "  all together: closest {label}, which misses {}\n",
        misses.join(", ")
    );
    out += "Relax a constraint, widen the grid, or add replications to tighten the intervals.";
    out
}
