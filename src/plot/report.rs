//! The HTML report: one self-contained file (SVG charts inline, no external assets) with the
//! plan against the references, the charts, the calibration table and the top configurations.

use std::fmt::Write;
use std::path::Path;

use super::data::{SweepData, Table};
use crate::error::Failure;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const CAPTIONS: [(&str, &str); 11] = [
    ("cpu_over_time", "Management-service CPU over time. The seed reported 95% under bulk and 45% with its staged plan."),
    ("pareto", "Every configuration's makespan against its success rate, coloured by peak CPU; the front is a step (the best success reachable within a makespan) and its points are labelled."),
    ("peak_cpu_vs_batch_size", "What concurrency is safe, by CPU: peak management CPU against batch size per family, with the CPU constraint dashed."),
    ("blast_vs_batch_size", "What concurrency is safe, by risk: how many gateways a bad release reaches before the rollout halts, against batch size, with the blast-radius constraint dashed."),
    ("success_vs_batch_size", "Success rate against batch size per family, with the success constraint dashed."),
    ("makespan_vs_batch_size", "Makespan against batch size per family."),
    ("delay_tradeoff", "A delay between fixed batches costs makespan (left); what it buys in CPU headroom and a smaller blast radius is in the other two panels."),
    ("overlap_tradeoff", "Overlap between pipelined batches (a lower gate) buys makespan (left); its cost in CPU and blast radius is in the other two panels."),
    ("states_over_time", "Where the gateways are, over the rollout."),
    ("bandwidth_over_time", "Throughput on the origin and on each regional link."),
    ("service_over_time", "Management service load."),
];

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn row_of(t: &Table, policy: &str) -> Option<Vec<String>> {
    t.rows
        .iter()
        .find(|r| t.get(r, "policy") == Some(policy))
        .cloned()
}

fn metric_cells(t: &Table, r: &[String]) -> String {
    let m = |k: &str| t.num(r, &format!("{k}_mean")).unwrap_or(f64::NAN);
    let ci = |k: &str, scale: f64, d: usize| {
        let (lo, hi) = (
            t.num(r, &format!("{k}_ci95_lo")).unwrap_or(f64::NAN),
            t.num(r, &format!("{k}_ci95_hi")).unwrap_or(f64::NAN),
        );
        format!(
            "<small>[{:.d$} – {:.d$}]</small>",
            lo * scale,
            hi * scale,
            d = d
        )
    };
    format!(
        "<td>{} {}</td><td>{:.1}%</td><td>{:.2}%</td><td>{:.1}</td><td>{:.2} h {}</td><td>{:.1}</td>",
        pct(m("success_rate")),
        ci("success_rate", 100.0, 1),
        m("peak_mgmt_cpu_pct"),
        m("disconnect_rate") * 100.0,
        m("manual_interventions"),
        m("makespan_s") / 3600.0,
        ci("makespan_s", 1.0 / 3600.0, 2),
        m("blast_radius"),
    )
}

/// The report's opening: which plan, why, and which limit binds and by how much (each judged
/// at the plan's confidence: the rollout at that percentile of the fresh-seed predictions).
fn recommendation(pf: &crate::tune::plan::PlanFile, seed_staged_makespan_s: Option<f64>) -> String {
    let c = &pf.constraints;
    let p = &pf.predicted;
    // (name, predicted worst side at 95%, limit, slack as a fraction of the limit)
    let margins = [
        (
            "success rate",
            format!("{:.1}% (p05)", p.success_rate.p05 * 100.0),
            format!("at least {:.1}%", c.min_success * 100.0),
            (p.success_rate.p05 - c.min_success) / c.min_success,
        ),
        (
            "peak management CPU",
            format!("{:.1}% (p95)", p.peak_mgmt_cpu_pct.p95),
            format!("at most {:.0}%", c.max_cpu_pct),
            (c.max_cpu_pct - p.peak_mgmt_cpu_pct.p95) / c.max_cpu_pct,
        ),
        (
            "disconnect rate",
            format!("{:.2}% (p95)", p.disconnect_rate.p95 * 100.0),
            format!("at most {:.1}%", c.max_disconnect * 100.0),
            (c.max_disconnect - p.disconnect_rate.p95) / c.max_disconnect,
        ),
        (
            "blast radius of a bad release",
            format!("{:.1} gateways (p95)", p.blast_radius.p95),
            format!("at most {:.0}", c.max_blast),
            (c.max_blast - p.blast_radius.p95) / c.max_blast,
        ),
    ];
    let binding = margins
        .iter()
        .min_by(|a, b| a.3.total_cmp(&b.3))
        .map(|m| {
            format!(
                "The limit that binds is the {}: {} against a limit of {}, a margin of {:.0}% of the limit.",
                m.0,
                m.1,
                m.2,
                m.3 * 100.0
            )
        })
        .unwrap_or_default();
    let speed = seed_staged_makespan_s
        .filter(|s| *s > 0.0)
        .map(|s| {
            format!(
                " It finishes in {:.1} h (p95 {:.1} h) where the seed's hand-made staged plan takes {:.1} h ({:.1}× faster).",
                p.makespan_s.mean / 3600.0,
                p.makespan_s.p95 / 3600.0,
                s / 3600.0,
                s / p.makespan_s.mean.max(1.0)
            )
        })
        .unwrap_or_else(|| {
            format!(
                " It finishes in {:.1} h (p95 {:.1} h).",
                p.makespan_s.mean / 3600.0,
                p.makespan_s.p95 / 3600.0
            )
        });
    let w = &p.within_limits;
    format!(
        "<h2>Recommendation</h2>\n<p id=\"recommendation\"><b>Run plan <code>{}</code>.</b> Of every configuration swept and raced, it is the fastest that keeps at least {:.0}% of its rollouts within every limit (one-sided {:.0}% Clopper–Pearson bound: {:.1}% on {} replications). On {} fresh seeds that the selection never saw, {} of {} rollouts stayed within every limit (95% CI {:.1}–{:.1}%).{speed} {binding}</p>\n",
        esc(&pf.name),
        c.confidence * 100.0,
        c.bound_level * 100.0,
        pf.selection.within_limits_lower * 100.0,
        pf.selection.replications,
        p.replications,
        w.within,
        w.rollouts,
        w.ci95_lo * 100.0,
        w.ci95_hi * 100.0,
    )
}

pub fn html(d: &SweepData, out: &Path, charts: &[String]) -> Result<String, Failure> {
    let m = &d.manifest;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>stagger report: {name}</title>\n<style>\
body{{font-family:'DejaVu Sans',Arial,sans-serif;max-width:1260px;margin:2em auto;padding:0 1em;color:#222}}\
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #bbb;padding:4px 8px;text-align:right}}\
th{{background:#eef}}td:first-child,th:first-child{{text-align:left}}figure{{margin:1.5em 0}}\
figcaption{{color:#555;font-size:0.95em}}svg{{max-width:100%;height:auto;border:1px solid #ddd}}\
.ok{{color:#007a52}}.no{{color:#b3400a;font-weight:bold}}code{{background:#f4f4f4;padding:1px 4px}}</style></head><body>\n\
<h1>stagger report: {name}</h1>\n<p>Scenario <code>{path}</code>, fingerprint <code>{fp}</code>, stagger {ver}. \
Sweep: {configs} configurations × {reps} replications × 2 releases = {runs} runs (bad release: defect rate {defect}).</p>\n",
        name = esc(&m.scenario_name),
        path = esc(&m.scenario_path),
        fp = esc(&m.scenario_fingerprint),
        ver = esc(&m.stagger_version),
        configs = m.configs.len(),
        reps = m.replications,
        runs = m.runs_total,
        defect = m.defect_rate,
    );
    if let Some(path) = &d.plan_path {
        let (pf, _) = crate::tune::plan::PlanFile::load(&path.display().to_string())?;
        let staged =
            row_of(&d.summary, "seed-staged").and_then(|r| d.summary.num(&r, "makespan_s_mean"));
        h += &recommendation(&pf, staged);
    }
    h += "<h2>The tuned plan against the seed's plan and bulk</h2>\n";
    h += "<table><tr><th></th><th>success [95% CI]</th><th>peak CPU</th><th>disconnects</th><th>manual</th><th>makespan [95% CI]</th><th>blast radius (bad release)</th></tr>\n";
    if let (Some(p), Some(plan_path)) = (&d.plan, &d.plan_path) {
        let (pf, _) = crate::tune::plan::PlanFile::load(&plan_path.display().to_string())?;
        let pr = &pf.predicted;
        let _ = writeln!(
            h,
            "<tr><td><b>tuned plan</b><br><small>{}</small></td><td>{} <small>[{:.1} – {:.1}]</small></td><td>{:.1}%</td><td>{:.2}%</td><td>{:.1}</td><td>{:.2} h <small>[{:.2} – {:.2}]</small></td><td>{:.1}</td></tr>",
            esc(&p.name),
            pct(pr.success_rate.mean),
            pr.success_rate.ci95_lo * 100.0,
            pr.success_rate.ci95_hi * 100.0,
            pr.peak_mgmt_cpu_pct.mean,
            pr.disconnect_rate.mean * 100.0,

            pr.manual_interventions.mean,
            pr.makespan_s.mean / 3600.0,
            pr.makespan_s.ci95_lo / 3600.0,
            pr.makespan_s.ci95_hi / 3600.0,
            pr.blast_radius.mean
        );
        let _ = writeln!(
            h,
            "<caption style=\"caption-side:bottom;text-align:left\">Limits, each to hold in at least {}% of rollouts: success ≥ {}, CPU ≤ {}%, disconnects ≤ {}, blast radius ≤ {}. The plan's row is predicted on {} fresh seeds. Runs: {} in the sweep, {} in refinement, {} for the prediction.</caption>",
            pf.constraints.confidence * 100.0, pf.constraints.min_success, pf.constraints.max_cpu_pct, pf.constraints.max_disconnect, pf.constraints.max_blast, pf.predicted.replications, pf.runs.sweep, pf.runs.refinement, pf.runs.prediction
        );
    }
    for policy in ["seed-staged", "bulk"] {
        if let Some(r) = row_of(&d.summary, policy) {
            let _ = writeln!(
                h,
                "<tr><td>{policy}</td>{}</tr>",
                metric_cells(&d.summary, &r)
            );
        }
    }
    h += "</table>\n<h2>Charts</h2>\n";
    let ordered = CAPTIONS
        .iter()
        .map(|(s, _)| *s)
        .filter(|s| charts.iter().any(|c| c.as_str() == *s));
    for stem in ordered {
        let svg = std::fs::read_to_string(out.join(format!("{stem}.svg")))
            .map_err(|e| Failure::io(&out.join(stem), e))?;
        let svg = svg.trim_start_matches(|c| c != '<');
        let svg = if svg.starts_with("<?xml") {
            svg.split_once("?>").map_or(svg, |(_, s)| s)
        } else {
            svg
        };
        let caption = CAPTIONS
            .iter()
            .find(|(s, _)| *s == stem)
            .map_or("", |(_, c)| c);
        let _ = writeln!(
            h,
            "<figure id=\"{stem}\">{svg}<figcaption>{}</figcaption></figure>",
            esc(caption)
        );
    }
    let cal = d.dir.join("calibration.csv");
    if cal.exists() {
        let t = Table::read(&cal)?;
        h += "<h2>Calibration against the seed's figures</h2>\n<p>Mean of seeds 1..30; see docs/calibration.md for the parameter-by-parameter reasoning.</p>\n";
        h += "<table><tr><th>policy</th><th>metric</th><th>mean</th><th>95% CI</th><th>target</th><th>seed reports</th><th>holds</th></tr>\n";
        for r in &t.rows {
            let g = |k: &str| esc(t.get(r, k).unwrap_or(""));
            let holds = t.get(r, "holds") == Some("yes");
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} – {}</td><td>{} – {}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
                g("policy"),
                g("metric"),
                g("mean"),
                g("ci95_lo"),
                g("ci95_hi"),
                g("target_lo"),
                g("target_hi"),
                g("seed_reports"),
                if holds { "ok" } else { "no" },
                if holds { "yes" } else { "NO" }
            );
        }
        h += "</table>\n";
    }
    let d0 = crate::sweep::constraints::Constraints::default();
    let _ = writeln!(
        h,
        "<h2>Top configurations per family</h2>\n<p>Fastest first among those the sweep cannot rule out: their fraction of rollouts within the default limits (success ≥ {}, CPU ≤ {}%, disconnects ≤ {}, blast radius ≤ {}) could still be {:.0}% or more (one-sided 95% Clopper–Pearson bound). The tuner then gives the leaders enough replications to decide.</p>",
        d0.min_success, d0.max_cpu, d0.max_disconnect, d0.max_blast, d0.confidence * 100.0
    );
    h += "<table><tr><th>configuration</th><th>success [95% CI]</th><th>peak CPU</th><th>disconnects</th><th>manual</th><th>makespan [95% CI]</th><th>blast radius</th></tr>\n";
    let s = &d.summary;
    let safe = |r: &Vec<String>| s.num(r, "within_limits_upper").unwrap_or(0.0) >= d0.confidence;
    let mut families: Vec<&str> = s.rows.iter().filter_map(|r| s.get(r, "family")).collect();
    families.sort();
    families.dedup();
    for fam in families {
        let mut rows: Vec<&Vec<String>> = s
            .rows
            .iter()
            .filter(|r| s.get(r, "family") == Some(fam))
            .collect();
        rows.sort_by(|a, b| {
            (!safe(a)).cmp(&!safe(b)).then(
                s.num(a, "makespan_s_mean")
                    .unwrap_or(f64::MAX)
                    .total_cmp(&s.num(b, "makespan_s_mean").unwrap_or(f64::MAX)),
            )
        });
        for r in rows.iter().take(3) {
            let mark = if safe(r) {
                ""
            } else {
                " <small class=\"no\">(ruled out)</small>"
            };
            let _ = writeln!(
                h,
                "<tr><td>{}{mark}</td>{}</tr>",
                esc(s.get(r, "label").unwrap_or("?")),
                metric_cells(s, r)
            );
        }
    }
    h += "</table>\n";
    h += &regenerate(d, out)?;
    h += "</body></html>\n";
    Ok(h)
}

/// The commands that made this report, as they would be typed again, with the date and the
/// revision of stagger that made it. The date honours SOURCE_DATE_EPOCH (reproducible builds).
fn regenerate(d: &SweepData, out: &Path) -> Result<String, Failure> {
    let m = &d.manifest;
    let q = |p: &Path| shell_word(&p.display().to_string());
    let mut sweep = format!(
        "stagger sweep {} --replications {} --seed {}",
        shell_word(&m.scenario_path),
        m.replications,
        m.base_seed
    );
    for s in &m.sets {
        sweep += &format!(" --set {}", shell_word(s));
    }
    sweep += &format!(" --out {}", q(&d.dir));
    let mut lines = vec![sweep];
    let mut plot = format!("stagger plot {}", q(&d.dir));
    if let Some(path) = &d.plan_path {
        let (pf, _) = crate::tune::plan::PlanFile::load(&path.display().to_string())?;
        let c = &pf.constraints;
        lines.push(format!(
            "stagger tune {} --plan {} --min-success {} --max-cpu {} --max-disconnect {} --max-blast {} --confidence {} --extra-replications {} --max-replications {} --candidates {} --rounds {} --prediction-replications {}",
            q(&d.dir),
            q(path),
            c.min_success,
            c.max_cpu_pct,
            c.max_disconnect,
            c.max_blast,
            c.confidence,
            pf.selection.extra_replications,
            pf.selection.max_replications,
            pf.selection.candidates,
            pf.selection.rounds,
            pf.predicted.replications
        ));
        if let Some(b) = &pf.selection.backend {
            if let Some(last) = lines.last_mut() {
                *last += &format!(" --backend {b}");
            }
        }
        plot += &format!(" --plan {}", q(path));
    }
    if out != d.dir {
        plot += &format!(" --out {}", q(out));
    }
    lines.push(plot);
    let now = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map_or_else(std::time::SystemTime::now, |s| {
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(s)
        });
    let date = humantime::format_rfc3339_seconds(now);
    Ok(format!(
        "<h2>Regenerate</h2>\n<p id=\"regenerate\">Made {date} by stagger {} (revision {}). To make it again:</p>\n<pre><code>{}</code></pre>\n",
        env!("CARGO_PKG_VERSION"),
        env!("STAGGER_REVISION"),
        esc(&lines.join(" &&\n  "))
    ))
}

/// A word as a POSIX shell would need it: quoted only when it must be.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
