//! Charts and the HTML report: files exist and decode, and the report renders in a real
//! browser (headless Chromium) with its charts.

mod common;
use common::*;
use std::path::{Path, PathBuf};

const SWEEP_CHARTS: [&str; 10] = [
    "cpu_over_time",
    "peak_cpu_vs_batch_size",
    "blast_vs_batch_size",
    "success_vs_batch_size",
    "makespan_vs_batch_size",
    "delay_tradeoff",
    "overlap_tradeoff",
    "states_over_time",
    "bandwidth_over_time",
    "pareto",
];

fn sweep_tune_plot(dir: &Path) {
    let s = seed_scenario();
    let d = dir.to_str().unwrap();
    for args in [
        vec!["sweep", s.as_str(), "--replications", "6", "--out", d],
        vec![
            "tune",
            d,
            "--plan",
            &format!("{d}/plan.toml"),
            "--extra-replications",
            "6",
        ],
        vec!["plot", d],
    ] {
        let o = run(&args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    }
}

fn check_chart(dir: &Path, stem: &str) {
    let png = dir.join(format!("{stem}.png"));
    let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
    assert!(
        bytes.len() > 10_000,
        "{stem}.png is only {} bytes",
        bytes.len()
    );
    let img = image::load_from_memory(&bytes)
        .unwrap_or_else(|e| panic!("{stem}.png does not decode: {e}"));
    assert_eq!((img.width(), img.height()), (1200, 700), "{stem}.png size");
    let svg = std::fs::read_to_string(dir.join(format!("{stem}.svg"))).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
        "{stem}.svg is not a whole SVG"
    );
    assert!(
        svg.contains("<text"),
        "{stem}.svg has no text (title, axes)"
    );
}

#[test]
fn sweep_charts_exist_and_decode() {
    let d = tempfile::tempdir().unwrap();
    sweep_tune_plot(d.path());
    for stem in SWEEP_CHARTS {
        check_chart(d.path(), stem);
    }
    let html = std::fs::read_to_string(d.path().join("report.html")).unwrap();
    assert!(
        html.matches("<svg").count() >= SWEEP_CHARTS.len(),
        "charts are inline"
    );
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "self-contained"
    );
    for part in [
        "tuned plan",
        "seed-staged",
        "Calibration",
        "Top configurations",
        "fingerprint",
    ] {
        assert!(html.contains(part), "report lacks {part}");
    }
}

#[test]
fn a_timeline_csv_can_be_plotted() {
    let d = tempfile::tempdir().unwrap();
    let tl = d.path().join("bulk.csv");
    let s = seed_scenario();
    let o = run(&[
        "simulate",
        &s,
        "--policy",
        "bulk",
        "--timeline",
        tl.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    let out = d.path().join("charts");
    let o = run(&["plot", tl.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    for stem in [
        "states_over_time",
        "service_over_time",
        "bandwidth_over_time",
    ] {
        check_chart(&out, stem);
    }
    let o = run(&["plot", s.as_str()]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "a scenario is not plottable: {}",
        stderr(&o)
    );
}

fn chromium() -> Option<PathBuf> {
    let candidates = [
        std::env::var("CHROMIUM").ok(),
        Some("chromium".into()),
        Some("chromium-browser".into()),
        Some("google-chrome".into()),
    ];
    candidates.into_iter().flatten().find_map(|c| {
        std::process::Command::new(&c)
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|_| PathBuf::from(c))
    })
}

#[test]
fn the_report_renders_in_headless_chromium() {
    let browser = chromium().expect(
        "headless Chromium is needed for this test: scripts/test.sh installs Debian's `chromium`",
    );
    let d = tempfile::tempdir().unwrap();
    sweep_tune_plot(d.path());
    let shot = d.path().join("shot.png");
    let profile = d.path().join("profile");
    let url = format!("file://{}", d.path().join("report.html").display());
    let o = std::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--hide-scrollbars",
            "--window-size=1300,6000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        shot.exists(),
        "no screenshot; chromium said: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let img = image::open(&shot)
        .expect("the screenshot decodes")
        .to_rgb8();
    assert!(img.width() >= 1200 && img.height() >= 5000);
    // The charts' palette colours must be on the page: the SVGs rendered.
    let near = |p: &image::Rgb<u8>, c: [u8; 3]| p.0.iter().zip(c).all(|(a, b)| a.abs_diff(b) < 30);
    let count = |c: [u8; 3]| img.pixels().filter(|p| near(p, c)).count();
    let (blue, vermillion, green) = (
        count([0, 114, 178]),
        count([213, 94, 0]),
        count([0, 158, 115]),
    );
    assert!(
        blue > 2_000 && vermillion > 500 && green > 2_000,
        "chart colours on the page: blue {blue}, vermillion {vermillion}, green {green}"
    );
    let white = img.pixels().filter(|p| p.0 == [255, 255, 255]).count();
    assert!(
        white < img.pixels().count() * 97 / 100,
        "the page is nearly blank"
    );
    // The DOM as the browser parsed it opens with the recommendation.
    let o = std::process::Command::new(chromium().unwrap())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&o.stdout);
    let rec = dom
        .find("id=\"recommendation\"")
        .expect("a recommendation paragraph");
    let charts = dom.find("<h2>Charts</h2>").expect("charts");
    assert!(rec < charts, "the recommendation comes first");
    let para = &dom[rec..dom[rec..].find("</p>").map_or(dom.len(), |e| rec + e)];
    assert!(
        para.contains("Run plan") && para.contains("The limit that binds is the"),
        "{para}"
    );
    // The charts made for the seed's questions are on the page, each an SVG with its
    // constraint drawn where it has one.
    for (stem, limit) in [
        ("peak_cpu_vs_batch_size", Some("--max-cpu 50")),
        ("blast_vs_batch_size", Some("--max-blast 10")),
        ("delay_tradeoff", Some("--max-cpu 50")),
        ("overlap_tradeoff", Some("--max-blast 10")),
        ("pareto", None),
    ] {
        let at = dom
            .find(&format!("<figure id=\"{stem}\">"))
            .unwrap_or_else(|| panic!("no {stem} figure"));
        let fig = &dom[at..at + dom[at..].find("</figure>").unwrap()];
        assert!(fig.contains("<svg"), "{stem} has no SVG");
        if let Some(limit) = limit {
            assert!(fig.contains(limit), "{stem} does not show {limit}");
        }
    }
    let pareto = &dom[dom.find("<figure id=\"pareto\">").unwrap()..];
    assert!(pareto.contains("step: best success within a makespan"));
    // The regenerate line is the real command, dated, with the revision.
    let regen = &dom[dom.find("id=\"regenerate\"").expect("a regenerate section")..];
    let date = &regen[regen.find("Made ").expect("a date") + 5..][..20];
    assert!(
        date.as_bytes()[..4].iter().all(u8::is_ascii_digit) && date.ends_with('Z'),
        "not an RFC 3339 date: {date}"
    );
    let d_str = d.path().to_str().unwrap();
    assert!(
        regen.contains(&format!(
            "stagger sweep {} --replications 6 --seed",
            seed_scenario()
        )) && regen.contains(&format!(
            "stagger tune {d_str} --plan {d_str}/plan.toml --min-success 0.96"
        )) && regen.contains("--confidence 0.95 --extra-replications 6 --max-replications 320")
            && regen.contains("revision "),
        "{}",
        &regen[..regen.len().min(800)]
    );
}

/// `tune` writes the plan it was asked to write and nothing else of the user's; `plot`
/// draws a plan from elsewhere, and refuses one tuned on another scenario.
#[test]
fn tune_writes_only_its_plan_and_plot_refuses_a_foreign_one() {
    let d = tempfile::tempdir().unwrap();
    let sweep = d.path().join("sweep");
    let (s, w) = (seed_scenario(), sweep.to_str().unwrap().to_string());
    let o = run(&["sweep", &s, "--replications", "6", "--out", &w]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The user's own file where older stagger put a copy of the plan.
    let mine = sweep.join("plan.toml");
    std::fs::write(&mine, "# my notes\n").unwrap();
    let plan = d.path().join("elsewhere.toml");
    let p = plan.to_str().unwrap();
    let o = run(&["tune", &w, "--plan", p, "--extra-replications", "6"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&mine).unwrap(), "# my notes\n");
    std::fs::remove_file(&mine).unwrap();
    let out = d.path().join("charts");
    let o = run(&["plot", &w, "--plan", p, "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("tuned plan"), "the plan is drawn");
    // The same plan claiming another scenario is refused.
    let text = std::fs::read_to_string(&plan).unwrap();
    let (at, end) = {
        let i = text.find("fingerprint = \"").unwrap() + "fingerprint = \"".len();
        (i, i + text[i..].find('"').unwrap())
    };
    let foreign = d.path().join("foreign.toml");
    std::fs::write(
        &foreign,
        format!("{}0000000000000000{}", &text[..at], &text[end..]),
    )
    .unwrap();
    let o = run(&[
        "plot",
        &w,
        "--plan",
        foreign.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("foreign.toml") && err.contains("tuned on scenario"),
        "{err}"
    );
}
