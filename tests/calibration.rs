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
    // The same mechanisms must move the figures: a service with twice the capacity
    // (half the CPU per operation) should not melt down under bulk.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/seed-200.toml");
    let s = stagger::scenario::load(
        path,
        &[
            "service.cpu_per_active_op_pct=0.55".into(),
            "service.cpu_per_queued_op_pct=0.2".into(),
        ],
    )
    .unwrap();
    let runs = calibrate::runs(&s, "bulk", 10).unwrap();
    let success: f64 = runs.iter().map(|r| r.success_rate).sum::<f64>() / 10.0;
    let disconnect: f64 = runs.iter().map(|r| r.disconnect_rate).sum::<f64>() / 10.0;
    assert!(
        success > 0.85,
        "a bigger service should keep bulk healthy: {success}"
    );
    assert!(disconnect < 0.1, "{disconnect}");
}
