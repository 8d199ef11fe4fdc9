//! Scalar distributions for scenario values: a constant or a `{ dist = "...", ... }` table.
//! Sampling never yields a value outside `[lo, hi]`; it must never panic on validated input.

use rand::Rng;
use rand_distr::{Beta, Distribution, Exp, Gamma, LogNormal, Normal, Triangular};

use super::error::InputError;

/// A validated distribution with its truncation bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct Dist {
    kind: Kind,
    lo: f64,
    hi: f64,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Constant(f64),
    Uniform(f64, f64),
    Normal(Normal<f64>),
    LogNormal(LogNormal<f64>, [f64; 2]),
    Exponential(Exp<f64>, f64),
    Triangular(Triangular<f64>, [f64; 3]),
    /// A posterior for a probability (`stagger fit` writes these): parameters a and b.
    Beta(Beta<f64>, [f64; 2]),
    /// A posterior for a rate: shape and scale.
    Gamma(Gamma<f64>, [f64; 2]),
}

impl Dist {
    pub fn constant(v: f64) -> Dist {
        Dist {
            kind: Kind::Constant(v),
            lo: f64::NEG_INFINITY,
            hi: f64::INFINITY,
        }
    }

    /// Draws one value. Truncation resamples a few times, then clamps, so a far tail
    /// cannot stall the simulator.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        for _ in 0..8 {
            let v = self.raw_sample(rng);
            if v >= self.lo && v <= self.hi {
                return v;
            }
        }
        self.raw_sample(rng).clamp(self.lo, self.hi)
    }

    fn raw_sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        match &self.kind {
            Kind::Constant(v) => *v,
            Kind::Uniform(a, b) => {
                if a == b {
                    *a
                } else {
                    rng.random_range(*a..*b)
                }
            }
            Kind::Normal(d) => d.sample(rng),
            Kind::LogNormal(d, _) => d.sample(rng),
            Kind::Exponential(d, _) => d.sample(rng),
            Kind::Triangular(d, _) => d.sample(rng),
            Kind::Beta(d, _) => d.sample(rng),
            Kind::Gamma(d, _) => d.sample(rng),
        }
    }

    /// The untruncated mean, used for documentation and closed-form checks.
    pub fn mean(&self) -> f64 {
        match &self.kind {
            Kind::Constant(v) => *v,
            Kind::Uniform(a, b) => (a + b) / 2.0,
            Kind::Normal(d) => d.mean(),
            Kind::LogNormal(_, [mu, s]) => (mu + s * s / 2.0).exp(),
            Kind::Exponential(_, mean) => *mean,
            Kind::Triangular(_, [a, c, b]) => (a + b + c) / 3.0,
            Kind::Beta(_, [a, b]) => a / (a + b),
            Kind::Gamma(_, [k, theta]) => k * theta,
        }
        .clamp(self.lo, self.hi)
    }

    /// Smallest value the distribution can yield.
    pub fn min_value(&self) -> f64 {
        match &self.kind {
            Kind::Constant(v) => *v,
            Kind::Uniform(a, _) => *a,
            Kind::Triangular(_, p) => p[0],
            _ => self.lo,
        }
        .max(self.lo)
    }

    /// Largest value the distribution can yield.
    pub fn max_value(&self) -> f64 {
        match &self.kind {
            Kind::Constant(v) => *v,
            Kind::Uniform(_, b) => *b,
            Kind::Triangular(_, p) => p[2],
            _ => self.hi,
        }
        .min(self.hi)
    }
}

/// The bounds a quantity may take, applied as truncation.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub lo: f64,
    pub hi: f64,
}

impl Bounds {
    pub const NON_NEGATIVE: Bounds = Bounds {
        lo: 0.0,
        hi: f64::INFINITY,
    };
    pub const POSITIVE: Bounds = Bounds {
        lo: 1e-9,
        hi: f64::INFINITY,
    };
    pub const PERCENT: Bounds = Bounds { lo: 0.0, hi: 100.0 };
}

/// Parses a TOML value into a distribution. `key` is the dotted path used in errors.
pub fn parse(value: &toml::Value, key: &str, bounds: Bounds) -> Result<Dist, InputError> {
    let err = |msg: String| InputError::at_key(key, msg);
    let num = |v: &toml::Value| -> Option<f64> {
        match v {
            toml::Value::Integer(i) => Some(*i as f64),
            toml::Value::Float(f) if f.is_finite() => Some(*f),
            _ => None,
        }
    };
    if let Some(v) = num(value) {
        if v < bounds.lo || v > bounds.hi {
            return Err(err(format!(
                "{v} is outside the allowed range {}",
                show_range(bounds)
            )));
        }
        return Ok(Dist {
            kind: Kind::Constant(v),
            lo: bounds.lo,
            hi: bounds.hi,
        });
    }
    let table = value.as_table().ok_or_else(|| {
        err(format!(
            "expected a number or a table like {{ dist = \"uniform\", min = 1, max = 2 }}, found {}",
            value.type_str()
        ))
    })?;
    let kind_name = table
        .get("dist")
        .ok_or_else(|| {
            err(
                "missing `dist` (one of: uniform, normal, lognormal, exponential, triangular, beta, gamma)"
                    .into(),
            )
        })?
        .as_str()
        .ok_or_else(|| err("`dist` must be a string".into()))?;
    let allowed: &[&str] = match kind_name {
        "constant" => &["value"],
        "uniform" => &["min", "max"],
        "normal" => &["mean", "sd", "min", "max"],
        "lognormal" => &["median", "sigma", "mean", "sd", "min", "max"],
        "exponential" => &["mean", "min", "max"],
        "triangular" => &["min", "mode", "max"],
        "beta" => &["a", "b", "min", "max"],
        "gamma" => &["shape", "scale", "min", "max"],
        other => {
            return Err(err(format!(
                "unknown dist `{other}` (expected constant, uniform, normal, lognormal, exponential, triangular, beta or gamma)"
            )))
        }
    };
    for (k, v) in table {
        if k == "dist" {
            continue;
        }
        if !allowed.contains(&k.as_str()) {
            return Err(InputError::at_key(
                &format!("{key}.{k}"),
                format!(
                    "unknown parameter for dist `{kind_name}` (expected {})",
                    allowed.join(", ")
                ),
            ));
        }
        if num(v).is_none() {
            return Err(InputError::at_key(
                &format!("{key}.{k}"),
                format!("expected a finite number, found {}", v.type_str()),
            ));
        }
    }
    let get = |k: &str| table.get(k).and_then(num);
    let need = |k: &str| {
        get(k).ok_or_else(|| InputError::at_key(key, format!("dist `{kind_name}` needs `{k}`")))
    };
    let mut lo = bounds.lo;
    let mut hi = bounds.hi;
    if kind_name != "uniform" && kind_name != "triangular" {
        if let Some(m) = get("min") {
            lo = lo.max(m);
        }
        if let Some(m) = get("max") {
            hi = hi.min(m);
        }
    }
    let kind = match kind_name {
        "constant" => Kind::Constant(need("value")?),
        "uniform" | "normal" | "lognormal" | "exponential" | "triangular" | "beta" | "gamma" => {
            Kind::Constant(0.0)
        }
        _ => return Err(err(format!("unknown dist `{kind_name}`"))),
    };
    let kind = match (kind_name, kind) {
        ("constant", k) => k,
        ("uniform", _) => {
            let (a, b) = (need("min")?, need("max")?);
            if a > b {
                return Err(err(format!(
                    "uniform needs min <= max (got min = {a}, max = {b})"
                )));
            }
            Kind::Uniform(a, b)
        }
        ("normal", _) => {
            let sd = need("sd")?;
            if sd < 0.0 {
                return Err(err(format!("normal needs sd >= 0 (got {sd})")));
            }
            Kind::Normal(Normal::new(need("mean")?, sd).map_err(|e| err(e.to_string()))?)
        }
        ("lognormal", _) => {
            let (mu, sigma) = match (get("median"), get("sigma"), get("mean"), get("sd")) {
                (Some(median), Some(sigma), None, None) => {
                    if median <= 0.0 || sigma < 0.0 {
                        return Err(err("lognormal needs median > 0 and sigma >= 0".into()));
                    }
                    (median.ln(), sigma)
                }
                (None, None, Some(mean), Some(sd)) => {
                    if mean <= 0.0 || sd < 0.0 {
                        return Err(err("lognormal needs mean > 0 and sd >= 0".into()));
                    }
                    let s2 = (1.0 + (sd / mean).powi(2)).ln();
                    (mean.ln() - s2 / 2.0, s2.sqrt())
                }
                _ => {
                    return Err(err(
                        "lognormal takes either { median, sigma } or { mean, sd }".into(),
                    ))
                }
            };
            Kind::LogNormal(
                LogNormal::new(mu, sigma).map_err(|e| err(e.to_string()))?,
                [mu, sigma],
            )
        }
        ("exponential", _) => {
            let mean = need("mean")?;
            if mean <= 0.0 {
                return Err(err(format!("exponential needs mean > 0 (got {mean})")));
            }
            Kind::Exponential(Exp::new(1.0 / mean).map_err(|e| err(e.to_string()))?, mean)
        }
        ("beta", _) => {
            let (a, b) = (need("a")?, need("b")?);
            if !(a > 0.0 && b > 0.0) {
                return Err(err(format!("beta needs a > 0 and b > 0 (got {a}, {b})")));
            }
            // A probability: never outside [0, 1], whatever the bounds allow.
            lo = lo.max(0.0);
            hi = hi.min(1.0);
            Kind::Beta(Beta::new(a, b).map_err(|e| err(e.to_string()))?, [a, b])
        }
        ("gamma", _) => {
            let (k, theta) = (need("shape")?, need("scale")?);
            if !(k > 0.0 && theta > 0.0) {
                return Err(err(format!(
                    "gamma needs shape > 0 and scale > 0 (got {k}, {theta})"
                )));
            }
            lo = lo.max(0.0);
            Kind::Gamma(
                Gamma::new(k, theta).map_err(|e| err(e.to_string()))?,
                [k, theta],
            )
        }
        (_, _) => {
            let (a, c, b) = (need("min")?, need("mode")?, need("max")?);
            if !(a <= c && c <= b) || a == b {
                return Err(err(format!(
                    "triangular needs min <= mode <= max and min < max (got {a}, {c}, {b})"
                )));
            }
            Kind::Triangular(
                Triangular::new(a, b, c).map_err(|e| err(e.to_string()))?,
                [a, c, b],
            )
        }
    };
    let d = Dist { kind, lo, hi };
    if lo > hi {
        return Err(err(format!("min {lo} is above max {hi}")));
    }
    // Bounded kinds must lie inside the allowed range as written; unbounded kinds are truncated.
    let written = match &d.kind {
        Kind::Constant(v) => Some((*v, *v)),
        Kind::Uniform(a, b) => Some((*a, *b)),
        Kind::Triangular(_, [a, _, b]) => Some((*a, *b)),
        _ => None,
    };
    if let Some((a, b)) = written {
        if a < bounds.lo || b > bounds.hi {
            return Err(err(format!(
                "values from {a} to {b} fall outside the allowed range {}",
                show_range(bounds)
            )));
        }
    }
    Ok(d)
}

fn show_range(b: Bounds) -> String {
    match (b.lo, b.hi) {
        (lo, hi) if hi.is_infinite() && lo <= 1e-9 && lo > 0.0 => "(0, ∞)".to_string(),
        (lo, hi) if hi.is_infinite() => format!("[{lo}, ∞)"),
        (lo, hi) => format!("[{lo}, {hi}]"),
    }
}
