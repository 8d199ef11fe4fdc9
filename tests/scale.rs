//! The million-gateway scenario at a reduced size (CI smoke test): it asserts the model's
//! invariants, not its speed. Speed lives in the README's Performance section.

mod common;
use common::*;

#[test]
fn fleet_1m_at_50k_keeps_its_invariants() {
    let s = root().join("scenarios/fleet-1m.toml").display().to_string();
    let args = [
        "simulate",
        s.as_str(),
        "--set",
        "fleet.gateways=50000",
        "--json",
    ];
    let v = json(&args);
    let n = v["gateways"].as_u64().unwrap();
    assert_eq!(n, 50_000);
    assert_eq!(
        v["succeeded"].as_u64().unwrap() + v["failed"].as_u64().unwrap(),
        n,
        "every gateway ends in one final state"
    );
    assert!(v["manual_interventions"].as_u64().unwrap() <= v["failed"].as_u64().unwrap());
    assert!(
        v["success_rate"].as_f64().unwrap() > 0.95,
        "a sized service and a pipelined plan keep the fleet healthy: {v}"
    );
    assert!(v["peak_mgmt_cpu_pct"].as_f64().unwrap() < 95.0, "{v}");
    assert!(
        v["peak_in_flight"].as_u64().unwrap() <= 4000,
        "the plan's cap holds"
    );
    assert!(
        v["cache_fills"].as_u64().unwrap() <= 100,
        "each regional cache fills once"
    );
    assert_eq!(v["truncated"], false);
    assert_eq!(json(&args), v, "deterministic at scale");
}
