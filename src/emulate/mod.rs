//! Emulators for rehearsals and tests. They bind to loopback only and play devices with
//! the simulator's world model (durations and fault rates), sped up by a factor.

pub mod aws;
pub mod proxy;
pub mod watson;

/// Parses a fault list such as `429=0.1,reset=0.05` against the kinds an emulator knows.
pub fn parse_faults(s: &str, known: &[&str]) -> Result<Vec<(String, f64)>, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (k, v) = p
                .split_once('=')
                .ok_or_else(|| format!("fault `{p}`: expected KIND=PROBABILITY"))?;
            let k = k.trim();
            if !known.contains(&k) {
                return Err(format!("unknown fault `{k}` ({})", known.join(", ")));
            }
            let v: f64 = v
                .trim()
                .parse()
                .ok()
                .filter(|v| (0.0..=1.0).contains(v))
                .ok_or_else(|| format!("fault `{p}`: not a probability in [0, 1]"))?;
            Ok((k.to_string(), v))
        })
        .collect()
}
