//! The one place progress bars are made: on stderr, hidden when stderr is not a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressState, ProgressStyle};

pub fn bar(len: u64, unit: &str) -> ProgressBar {
    // Cleared however it ends (an error, a halt), so no stale frame is left above the message.
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr())
        .with_finish(ProgressFinish::AndClear);
    let template = format!("{{bar:40}} {{pos}}/{{len}} {unit}  {{rate}}  ETA {{eta}}");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(
            style.with_key("rate", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = w.write_str(&rate(s.per_sec()));
            }),
        );
    }
    bar
}

/// A rate in the unit that keeps it readable: a rollout finishing a gateway every few minutes
/// shows `12/h`, not `0.0033/s`.
pub fn rate(per_sec: f64) -> String {
    if !per_sec.is_finite() || per_sec <= 0.0 {
        return "–".into();
    }
    let (x, unit) = if per_sec >= 1.0 {
        (per_sec, "s")
    } else if per_sec * 60.0 >= 1.0 {
        (per_sec * 60.0, "min")
    } else {
        (per_sec * 3600.0, "h")
    };
    if x >= 100.0 {
        format!("{x:.0}/{unit}")
    } else {
        format!("{x:.1}/{unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::rate;

    #[test]
    fn rates_are_shown_in_a_readable_unit() {
        assert_eq!(rate(2540.0), "2540/s");
        assert_eq!(rate(3.25), "3.2/s");
        assert_eq!(rate(0.5), "30.0/min");
        assert_eq!(rate(1.0 / 300.0), "12.0/h");
        assert_eq!(rate(0.0), "–");
        assert_eq!(rate(f64::NAN), "–");
    }
}
