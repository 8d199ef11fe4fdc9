//! Chart style: an embedded font (no system fonts needed) and the Okabe–Ito colour-blind-safe
//! palette. Sizes and fonts are shared so every chart reads the same.

use std::sync::Once;

use plotters::style::{FontStyle, RGBColor};

pub const WIDTH: u32 = 1200;
pub const HEIGHT: u32 = 700;
pub const FONT: &str = "sans-serif";

static REGULAR: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
static BOLD: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-Bold.ttf");

/// Registers the embedded DejaVu Sans with plotters once per process.
pub fn fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Both files are compiled in and known-good; a failure here would only mean
        // plotters falls back to no text, never a crash.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, REGULAR);
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, BOLD);
    });
}

/// Okabe & Ito (2008), distinguishable under the common colour-vision deficiencies.
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(213, 94, 0),    // vermillion
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(230, 159, 0),   // orange
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(86, 180, 233),  // sky blue
    RGBColor(240, 228, 66),  // yellow
    RGBColor(0, 0, 0),       // black
];

pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

pub const GREY: RGBColor = RGBColor(120, 120, 120);

/// A fixed colour per policy family, so a family looks the same in every chart.
pub fn family_color(family: &str) -> RGBColor {
    match family {
        "bulk" => PALETTE[1],
        "staged" | "seed-staged" => PALETTE[7],
        "fixed" => PALETTE[3],
        "backoff" => PALETTE[0],
        "pipelined" => PALETTE[2],
        "adaptive" => PALETTE[4],
        "plan" => PALETTE[5],
        _ => GREY,
    }
}

/// A perceptually ordered blue→orange ramp for a value in [0, 1] (CPU colouring).
pub fn ramp(t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0);
    let (a, b) = (PALETTE[0], PALETTE[1]);
    let mix = |x: u8, y: u8| (f64::from(x) + (f64::from(y) - f64::from(x)) * t).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}
