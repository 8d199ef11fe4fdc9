//! The seed's reference figures (SPEC), on seeds 1..30: the table must hold.

use stagger::calibrate;

#[test]
fn seed_200_reproduces_the_seed_figures() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/seed-200.toml");
    let checks = calibrate::table(path, &[], 30).expect("scenario loads");
    let table = calibrate::markdown(&checks, 30);
    println!("{table}");
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.holds())
        .map(|c| format!("{} {}", c.label, c.metric))
        .collect();
    assert!(
        failed.is_empty(),
        "outside the reference range: {failed:?}\n{table}"
    );
    assert_eq!(checks.len(), 11);
}

#[test]
fn the_calibration_is_not_a_constant() {
    // The same mechanisms must move the figures: a service with twice the cores should not
    // melt down under bulk, and agents that poll half as often should not either.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/seed-200.toml");
    for set in ["service.cores=4", "agent.status_poll_s=10"] {
        let s = stagger::scenario::load(path, &[set.into()]).unwrap();
        let runs = calibrate::runs(&s, "bulk", 10).unwrap();
        let success: f64 = runs.iter().map(|r| r.success_rate).sum::<f64>() / 10.0;
        let disconnect: f64 = runs.iter().map(|r| r.disconnect_rate).sum::<f64>() / 10.0;
        assert!(
            success > 0.85,
            "{set}: a service with room should keep bulk healthy: {success}"
        );
        assert!(disconnect < 0.1, "{set}: {disconnect}");
    }
}
