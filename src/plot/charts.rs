//! The charts. Each is one generic function over the plotters backend, so the same code
//! draws the PNG and the SVG. Titles, axis units, legends and reference lines are part of
//! the feature, not decoration.

use std::collections::BTreeMap;
use std::error::Error;

use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;

use super::data::{Band, SweepData, Table};
use super::style::{self, family_color, FONT, GREY};
use crate::simulate::timeline::STATES;

pub type R = Result<(), Box<dyn Error>>;

/// Points of one line, in chart coordinates.
type Series = Vec<(f64, f64)>;

fn hours(s: f64) -> f64 {
    s / 3600.0
}

fn title_font() -> TextStyle<'static> {
    (FONT, 26).into_font().style(FontStyle::Bold).into()
}

fn label_font() -> TextStyle<'static> {
    (FONT, 17).into()
}

fn legend_font() -> TextStyle<'static> {
    (FONT, 16).into()
}

/// The legend box every chart uses.
fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    pos: SeriesLabelPosition,
) -> R
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .position(pos)
        .background_style(WHITE.mix(0.92))
        .border_style(BLACK)
        .label_font(legend_font())
        .draw()?;
    Ok(())
}

fn legend_line(c: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(4))
}

/// Which roles to show, in legend order, with their display names and colours.
fn role_order(roles: impl Iterator<Item = String>) -> Vec<(String, String, RGBColor)> {
    let mut v: Vec<(String, String, RGBColor)> = roles
        .map(|r| {
            let fam = r.strip_prefix("best-").unwrap_or(&r).to_string();
            let name = match r.as_str() {
                "plan" => "tuned plan".to_string(),
                _ if r.starts_with("best-") => format!("best {fam}"),
                _ => r.clone(),
            };

            (r.clone(), name, family_color(&fam))
        })
        .collect();
    let rank = |r: &str| match r {
        "bulk" => 0,
        "seed-staged" => 1,
        "plan" => 9,
        _ => 5,
    };
    v.sort_by_key(|(r, _, _)| (rank(r), r.clone()));
    v
}

/// 1. Management-service CPU over time: median and 5–95% band over replications.
pub fn cpu_over_time<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    bands: &BTreeMap<String, Band>,
) -> R
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let t_max = bands
        .values()
        .flat_map(|b| b.t_s.iter().copied())
        .fold(60.0, f64::max);
    let x_range = (1.0 / 60.0)..hours(t_max).max(0.1) * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Management-service CPU during the rollout (median, 5–95% band over replications)",
            title_font(),
        )
        .margin(18)
        .x_label_area_size(55)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range.log_scale(), 0f64..105f64)?;
    chart
        .configure_mesh()
        .x_desc("time since the first command (hours, log scale)")
        .y_desc("management CPU (%)")
        .label_style(label_font())
        .axis_desc_style(label_font())
        .x_label_formatter(&|h| {
            if *h < 1.0 {
                format!("{:.0} min", h * 60.0)
            } else {
                format!("{h:.0} h")
            }
        })
        .draw()?;
    for (level, text) in [
        (95.0, "seed: 95% under bulk"),
        (45.0, "seed: 45% with the staged plan"),
    ] {
        chart
            .draw_series(DashedLineSeries::new(
                [(1.0 / 60.0, level), (hours(t_max) * 1.1, level)],
                8,
                6,
                GREY.stroke_width(2),
            ))?
            .label(text)
            .legend(legend_line(GREY));
    }
    for (role, name, c) in role_order(bands.keys().cloned()) {
        let (lo, mid, hi) = log_buckets(&bands[&role]);
        // One quad per step: plotters' fill of a single large non-convex polygon leaves spikes.
        // Zero-height quads (p5 = p95) are skipped: plotters draws them as a line to the axis.
        let quads = lo
            .windows(2)
            .zip(hi.windows(2))
            .filter(|(l, h)| h[0].1 - l[0].1 > 1e-6 || h[1].1 - l[1].1 > 1e-6)
            .map(|(l, h)| vec![l[0], l[1], h[1], h[0]]);
        chart.draw_series(quads.map(|q| Polygon::new(q, c.mix(0.18).filled())))?;
        chart
            .draw_series(LineSeries::new(mid, c.stroke_width(3)))?
            .label(name)
            .legend(legend_line(c));
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    root.present()?;
    Ok(())
}

/// Merges band samples into log-spaced buckets about 1.5 px wide: the envelope (min p5,
/// max p95) and the mean median. Sub-pixel quads make plotters' bitmap fill leave spikes.
fn log_buckets(b: &Band) -> (Series, Series, Series) {
    const STEP: f64 = 0.004; // decades per bucket
    let (mut lo, mut mid, mut hi) = (Vec::new(), Vec::new(), Vec::new());
    let mut cur: Option<(i64, f64, f64, f64, f64, u32)> = None; // key, t, p5, p50 sum, p95, n
    let mut flush = |c: (i64, f64, f64, f64, f64, u32)| {
        lo.push((c.1, c.2));
        mid.push((c.1, c.3 / f64::from(c.5)));
        hi.push((c.1, c.4));
    };
    for i in 0..b.t_s.len() {
        let (t, p5, p50, p95) = (b.t_s[i], b.p5[i], b.p50[i], b.p95[i]);
        if t < 60.0 || !(p5.is_finite() && p50.is_finite() && p95.is_finite()) {
            continue;
        }
        let h = hours(t);
        let key = (h.log10() / STEP).floor() as i64;
        cur = match cur {
            Some(c) if c.0 == key => {
                Some((key, c.1, c.2.min(p5), c.3 + p50, c.4.max(p95), c.5 + 1))
            }
            Some(c) => {
                flush(c);
                Some((key, h, p5, p50, p95, 1))
            }
            None => Some((key, h, p5, p50, p95, 1)),
        };
    }
    if let Some(c) = cur {
        flush(c);
    }
    (lo, mid, hi)
}

/// Per family, the parameter that sizes its work in flight.
pub fn size_param(family: &str) -> &'static str {
    match family {
        "backoff" => "max_concurrent",
        "adaptive" => "adaptive.max",
        _ => "batch_size",
    }
}

/// Runs of each family pooled by the value of `param` (`release`: good or bad):
/// family → [(x, values)].
pub fn pooled(
    d: &SweepData,
    param_of: &dyn Fn(&str) -> Option<&'static str>,
    metric: &str,
    release: &str,
) -> BTreeMap<String, Vec<(f64, Vec<f64>)>> {
    let t = &d.runs;
    let mut out: BTreeMap<String, BTreeMap<u64, (f64, Vec<f64>)>> = BTreeMap::new();
    for r in &t.rows {
        if t.get(r, "release") != Some(release) {
            continue;
        }
        let (Some(fam), Some(v)) = (t.get(r, "family"), t.num(r, metric)) else {
            continue;
        };
        if crate::sweep::config::REFERENCES.contains(&t.get(r, "policy").unwrap_or("")) {
            continue;
        }
        let Some(param) = param_of(fam) else { continue };
        let Some(x) = t.num(r, param) else { continue };
        out.entry(fam.to_string())
            .or_default()
            .entry(x.to_bits())
            .or_insert((x, Vec::new()))
            .1
            .push(v);
    }
    out.into_iter()
        .map(|(f, m)| {
            let mut v: Vec<(f64, Vec<f64>)> = m.into_values().collect();
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            (f, v)
        })
        .collect()
}

/// A metric against a parameter: what to draw and how to label it.
pub struct MetricChart<'a> {
    pub title: String,
    pub x_desc: &'a str,
    pub y_desc: &'a str,
    pub series: BTreeMap<String, Vec<(f64, Vec<f64>)>>,
    /// Multiplies values for display (e.g. 100 for rates in %, 1/3600 for seconds in hours).
    pub scale: f64,
    pub y_floor: Option<f64>,
    /// A constraint drawn as a dashed line, with its legend text.
    pub limit: Option<(f64, String)>,
}

/// 2 and 3. A metric against a parameter, per family, with 95% CI error bars.
pub fn metric_vs_param<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, spec: &MetricChart) -> R
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    draw_metric(&root, spec, title_font())?;
    root.present()?;
    Ok(())
}

/// A trade-off: one parameter against several metrics, side by side (what it buys and what
/// it costs).
pub fn tradeoff<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    panels: &[MetricChart],
) -> R
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let root = root.titled(title, title_font())?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (area, spec) in areas.iter().zip(panels) {
        draw_metric(
            area,
            spec,
            (FONT, 19).into_font().style(FontStyle::Bold).into(),
        )?;
    }
    root.present()?;
    Ok(())
}

fn draw_metric<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    spec: &MetricChart,
    title_style: TextStyle,
) -> R
where
    DB::ErrorType: 'static,
{
    let scale = spec.scale;
    let est: BTreeMap<&String, Vec<(f64, crate::stats::Estimate)>> = spec
        .series
        .iter()
        .map(|(f, pts)| {
            (
                f,
                pts.iter()
                    .map(|(x, v)| (*x, crate::stats::mean_ci95(v)))
                    .collect(),
            )
        })
        .collect();
    let xs: Vec<f64> = est.values().flatten().map(|(x, _)| *x).collect();
    let ys: Vec<f64> = est
        .values()
        .flatten()
        .flat_map(|(_, e)| [e.lo * scale, e.hi * scale])
        .chain(spec.limit.as_ref().map(|(l, _)| *l))
        .filter(|y| y.is_finite())
        .collect();
    if xs.is_empty() {
        return Err("no swept configurations to plot".into());
    }
    let (x0, x1) = (
        xs.iter().copied().fold(f64::INFINITY, f64::min),
        xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    let pad = if x1 > x0 { (x1 - x0) * 0.08 } else { 0.5 };

    let (mut y0, mut y1) = (
        ys.iter().copied().fold(f64::INFINITY, f64::min),
        ys.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    if let Some(f) = spec.y_floor {
        y0 = y0.min(f);
    }
    let ypad = ((y1 - y0) * 0.1).max(0.05);
    y1 += ypad;
    y0 = match spec.y_floor {
        Some(f) => (y0 - ypad).max(f),
        None => y0 - ypad,
    };
    let mut chart = ChartBuilder::on(root)
        .caption(&spec.title, title_style)
        .margin(18)
        .x_label_area_size(55)
        .y_label_area_size(80)
        .build_cartesian_2d((x0 - pad)..(x1 + pad), y0..y1)?;
    chart
        .configure_mesh()
        .x_desc(spec.x_desc)
        .y_desc(spec.y_desc)
        .label_style(label_font())
        .axis_desc_style(label_font())
        .x_label_formatter(&|x| {
            if x.fract().abs() < 1e-9 {
                format!("{x:.0}")
            } else {
                format!("{x:.2}")
            }
        })
        .draw()?;
    if let Some((level, text)) = &spec.limit {
        chart
            .draw_series(DashedLineSeries::new(
                [(x0 - pad, *level), (x1 + pad, *level)],
                8,
                6,
                style::color(1).stroke_width(2),
            ))?
            .label(text.as_str())
            .legend(legend_line(style::color(1)));
    }
    let n = est.len().max(1) as f64;
    for (i, (fam, pts)) in est.iter().enumerate() {
        let c = family_color(fam);
        // Offset families slightly so their error bars do not overlap.
        let dx = (i as f64 - (n - 1.0) / 2.0) * pad * 0.12;
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|(x, e)| (x + dx, e.mean * scale)),
                c.stroke_width(2),
            ))?
            .label(fam.as_str())
            .legend(legend_line(c));
        chart.draw_series(pts.iter().map(|(x, e)| {
            ErrorBar::new_vertical(
                x + dx,
                e.lo * scale,
                e.mean * scale,
                e.hi * scale,
                c.stroke_width(2),
                12,
            )
        }))?;
        chart.draw_series(
            pts.iter()
                .map(|(x, e)| Circle::new((x + dx, e.mean * scale), 5, c.filled())),
        )?;
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    Ok(())
}

/// 4. Gateway states over time, stacked.
pub fn states_over_time<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    tl: &Table,
    who: &str,
) -> R
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let t: Vec<f64> = tl.column("t_s").into_iter().map(hours).collect();
    let cols: Vec<Vec<f64>> = STATES.iter().map(|s| tl.column(s)).collect();
    let total: f64 = (0..STATES.len())
        .map(|k| cols[k].first().copied().unwrap_or(0.0))
        .sum();
    let t_max = t.last().copied().unwrap_or(1.0).max(0.01);
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("Gateway states over time: {who}"), title_font())
        .margin(18)
        .x_label_area_size(55)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..t_max, 0f64..total.max(1.0) * 1.02)?;
    chart
        .configure_mesh()
        .x_desc("time since the first command (hours)")
        .y_desc("gateways")
        .y_label_formatter(&|y| format!("{y:.0}"))
        .label_style(label_font())
        .axis_desc_style(label_font())
        .draw()?;
    // Cumulative from the bottom in STATES order; draw the tallest first.
    let colors = [
        GREY,
        style::color(6),
        style::color(5),
        style::color(0),
        style::color(4),
        style::color(2),
        style::color(1),
        style::color(7),
        style::color(3),
    ];
    let mut cum = vec![vec![0.0; t.len()]; STATES.len()];
    for i in 0..t.len() {
        let mut acc = 0.0;
        for k in 0..STATES.len() {
            acc += cols[k][i].max(0.0);
            cum[k][i] = acc;
        }
    }
    for k in (0..STATES.len()).rev() {
        let c = colors[k];
        chart
            .draw_series(
                AreaSeries::new(
                    t.iter().copied().zip(cum[k].iter().copied()),
                    0.0,
                    c.mix(0.85),
                )
                .border_style(c),
            )?
            .label(STATES[k].replace('_', " "))
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 18, y + 6)], c.filled()));
    }
    legend(&mut chart, SeriesLabelPosition::MiddleRight)?;
    root.present()?;
    Ok(())
}

/// Log-axis tick labels: only round hours, so labels never collide.
fn log_hours(h: &f64) -> String {
    let r = h.round();
    if (h - r).abs() < 1e-6 && [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0].contains(&r) {
        format!("{r:.0} h")
    } else if (h - 0.5).abs() < 1e-6 {
        "30 min".into()
    } else {
        String::new()
    }
}

/// A point of the Pareto chart.
pub struct ParetoPoint {
    pub family: String,
    /// A short name of the configuration (family and swept values).
    pub label: String,
    pub makespan_h: f64,
    pub success: f64,
    pub cpu: f64,
    pub front: bool,
}

/// 5. Makespan against success rate, coloured by peak CPU, with the plan and the seed plan marked.
pub fn pareto<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    pts: &[ParetoPoint],
    marks: &[(String, f64, f64)],
) -> R
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let (area, bar) = root.split_horizontally(1080);
    let mk = pts
        .iter()
        .map(|p| p.makespan_h)
        .chain(marks.iter().map(|m| m.1))
        .filter(|v| *v > 0.0);
    let (x0, x1) = mk.fold((f64::INFINITY, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
    let y0 = pts
        .iter()
        .map(|p| p.success)
        .chain(marks.iter().map(|m| m.2))
        .fold(1.0f64, f64::min);
    let mut chart = ChartBuilder::on(&area)
        .caption(
            "Pareto front: makespan against success rate (colour: peak management CPU)",
            title_font(),
        )
        .margin(18)
        .x_label_area_size(55)
        .y_label_area_size(80)
        .build_cartesian_2d(
            ((x0 * 0.8).max(0.01)..x1 * 1.25).log_scale(),
            ((y0 - 0.03).max(0.0) * 100.0)..100.5,
        )?;
    chart
        .configure_mesh()
        .x_desc("makespan (hours, log scale)")
        .y_desc("success rate (%)")
        .label_style(label_font())
        .axis_desc_style(label_font())
        .x_label_formatter(&log_hours)
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    for p in pts.iter().filter(|p| p.family == "bulk" && !p.front) {
        chart.draw_series(std::iter::once(Text::new(
            "bulk",
            (p.makespan_h * 1.06, p.success * 100.0 + 0.6),
            label_font(),
        )))?;
    }
    let mut front: Vec<&ParetoPoint> = pts.iter().filter(|p| p.front).collect();
    front.sort_by(|a, b| a.makespan_h.total_cmp(&b.makespan_h));
    // A step: the best success reachable within a makespan holds until a slower plan buys more.
    let mut steps: Vec<(f64, f64)> = Vec::new();
    for p in &front {
        if let Some(&(_, prev)) = steps.last() {
            steps.push((p.makespan_h, prev));
        }
        steps.push((p.makespan_h, p.success * 100.0));
    }
    if let Some(&(_, last)) = steps.last() {
        steps.push((x1 * 1.25, last));
    }
    chart
        .draw_series(LineSeries::new(steps, BLACK.stroke_width(2)))?
        .label("Pareto front (step: best success within a makespan)")
        .legend(legend_line(BLACK));
    // Front points are labelled where they stand apart (at least 12% in makespan from the
    // last label), on three staggered rows, so that labels do not print over each other.
    let span = (y0 - 0.03).max(0.0) * 100.0;
    let row = (100.5 - span) / 30.0;
    let mut last: Option<f64> = None;
    let mut k = 0;
    for p in &front {
        if last.is_some_and(|l| p.makespan_h < l * 1.12) {
            continue;
        }
        last = Some(p.makespan_h);
        let dy = [1.6, -1.2, 3.2][k % 3] * row;
        k += 1;
        chart.draw_series(std::iter::once(Circle::new(
            (p.makespan_h, p.success * 100.0),
            9,
            BLACK.stroke_width(1),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            p.label.clone(),
            (p.makespan_h * 1.02, p.success * 100.0 + dy),
            (FONT, 14).into_font(),
        )))?;
    }
    chart.draw_series(pts.iter().map(|p| {
        Circle::new(
            (p.makespan_h, p.success * 100.0),
            6,
            style::ramp(p.cpu / 100.0).filled(),
        )
    }))?;
    for (i, (name, m, s)) in marks.iter().enumerate() {
        let c = if i == 0 {
            style::color(2)
        } else {
            style::color(7)
        };
        chart
            .draw_series(std::iter::once(TriangleMarker::new(
                (*m, s * 100.0),
                12,
                c.filled(),
            )))?
            .label(name.clone())
            .legend(move |(x, y)| TriangleMarker::new((x + 10, y), 8, c.filled()));
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    // Colour bar for CPU.
    let mut cb = ChartBuilder::on(&bar)
        .margin_top(70)
        .margin_bottom(73)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..1f64, 0f64..100f64)?;
    cb.configure_mesh()
        .disable_x_mesh()
        .disable_x_axis()
        .y_desc("peak CPU (%)")
        .label_style(label_font())
        .axis_desc_style(label_font())
        .draw()?;
    cb.draw_series((0..100).map(|v| {
        Rectangle::new(
            [(0.0, f64::from(v)), (1.0, f64::from(v + 1))],
            style::ramp(f64::from(v) / 100.0).filled(),
        )
    }))?;
    root.present()?;
    Ok(())
}

/// 6. Bandwidth over time per link: the origin, regional uplinks and caches.
pub fn bandwidth<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, tl: &Table, who: &str) -> R
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let t: Vec<f64> = tl.column("t_s").into_iter().map(hours).collect();
    let links: Vec<(String, Vec<f64>)> = tl
        .header
        .iter()
        .filter(|h| h.ends_with("_mbps"))
        .map(|h| (h.clone(), tl.column(h)))
        .filter(|(_, v)| v.iter().any(|x| *x > 0.0))
        .collect();
    let y_max = links
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(1.0, f64::max);
    let t_max = t.last().copied().unwrap_or(1.0).max(0.01);
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("Bandwidth per link: {who}"), title_font())
        .margin(18)
        .x_label_area_size(55)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..t_max, 0f64..y_max * 1.1)?;
    chart
        .configure_mesh()
        .x_desc("time since the first command (hours)")
        .y_desc("throughput (Mbps)")
        .label_style(label_font())
        .axis_desc_style(label_font())
        .draw()?;
    for (i, (name, v)) in links.iter().enumerate() {
        let c = if name == "origin_mbps" {
            BLACK
        } else {
            style::color(i)
        };
        let label = name.trim_end_matches("_mbps").replace('_', " ");
        chart
            .draw_series(LineSeries::new(
                t.iter().copied().zip(v.iter().copied()),
                c.stroke_width(if name == "origin_mbps" { 3 } else { 2 }),
            ))?
            .label(label)
            .legend(legend_line(c));
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    root.present()?;
    Ok(())
}

/// CPU, queue and latency of a single timeline (for `simulate --timeline` files).
pub fn cpu_of_timeline<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, tl: &Table, who: &str) -> R
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let t: Vec<f64> = tl.column("t_s").into_iter().map(hours).collect();
    let cpu = tl.column("mgmt_cpu_pct");
    let active = tl.column("active_ops");
    let queued = tl.column("queued_ops");
    let t_max = t.last().copied().unwrap_or(1.0).max(0.01);
    let ops_max = active.iter().chain(&queued).copied().fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("Management service: {who}"), title_font())
        .margin(18)
        .x_label_area_size(55)
        .y_label_area_size(80)
        .right_y_label_area_size(80)
        .build_cartesian_2d(0f64..t_max, 0f64..105f64)?
        .set_secondary_coord(0f64..t_max, 0f64..ops_max * 1.1);
    chart
        .configure_mesh()
        .x_desc("time since the first command (hours)")
        .y_desc("management CPU (%)")
        .label_style(label_font())
        .axis_desc_style(label_font())
        .draw()?;
    chart
        .configure_secondary_axes()
        .y_desc("operations")
        .label_style(label_font())
        .axis_desc_style(label_font())
        .draw()?;
    chart
        .draw_series(LineSeries::new(
            t.iter().copied().zip(cpu),
            style::color(1).stroke_width(3),
        ))?
        .label("CPU (%)")
        .legend(legend_line(style::color(1)));
    chart
        .draw_secondary_series(LineSeries::new(
            t.iter().copied().zip(active),
            style::color(0).stroke_width(2),
        ))?
        .label("running operations")
        .legend(legend_line(style::color(0)));
    chart
        .draw_secondary_series(LineSeries::new(
            t.iter().copied().zip(queued),
            style::color(2).stroke_width(2),
        ))?
        .label("queued operations")
        .legend(legend_line(style::color(2)));
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    root.present()?;
    Ok(())
}
