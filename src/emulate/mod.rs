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

/// Binds 127.0.0.1:`port` (0 picks one) and announces the address on stdout as the first
/// line, which is how tests and scripts find an emulator.
pub fn listen(port: u16) -> Result<tiny_http::Server, String> {
    let server = tiny_http::Server::http(("127.0.0.1", port))
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    let addr = server.server_addr().to_ip().ok_or("no IP address")?;
    println!("listening on http://{addr}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    Ok(server)
}

/// One seeded draw among the faults (cumulative probabilities), or none.
pub fn draw_fault(u: f64, faults: &[(String, f64)]) -> Option<String> {
    let mut acc = 0.0;
    for (k, p) in faults {
        acc += p;
        if u < acc {
            return Some(k.clone());
        }
    }
    None
}
