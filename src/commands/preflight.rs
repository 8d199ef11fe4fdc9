//! `stagger rollout --preflight`: read-only checks that a rollout can run, each named with
//! its outcome. Nothing is created or changed.

use crate::cli::RolloutArgs;
use crate::engine::Policy;
use crate::error::Failure;
use crate::live::http::{CallError, Http};
use crate::live::inventory::Inventory;

/// How a failed check ends the command: bad input (2) or a run-time problem (1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Severity {
    Runtime,
    Input,
}

fn severity(e: &CallError) -> Severity {
    match e {
        CallError::NotFound(_) | CallError::Invalid(_) => Severity::Input,
        _ => Severity::Runtime,
    }
}

pub fn run(args: &RolloutArgs, policy: &Policy, inv: &Inventory) -> Result<(), Failure> {
    let mut failed: Vec<(String, Severity)> = Vec::new();
    let mut report = |name: &str, outcome: Result<String, (String, Severity)>| match outcome {
        Ok(detail) => println!("  ok     {name}: {detail}"),
        Err((why, sev)) => {
            println!("  FAILED {name}: {why}");
            failed.push((name.to_string(), sev));
        }
    };
    println!(
        "preflight of {} at {} (read-only):",
        super::rollout::backend_name(args.backend),
        args.endpoint
    );
    let mut backend = super::rollout::backend(args, policy)?;
    let reached = backend.ping();
    let reachable = reached.is_ok();
    report(
        "credentials and endpoint",
        reached
            .map(|()| "an authenticated read was answered".to_string())
            .map_err(|e| (e.to_string(), severity(&e))),
    );
    if reachable {
        let mut missing = Vec::new();
        let mut error = None;
        for d in &inv.devices {
            match backend.exists(d) {
                Ok(true) => {}
                Ok(false) => missing.push(match &d.type_id {
                    Some(t) => format!("{} (type {t})", d.id),
                    None => d.id.clone(),
                }),
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        let outcome = match (error, missing.is_empty()) {
            (Some(e), _) => Err((e.to_string(), severity(&e))),
            (None, true) => Ok(format!("all {} found", inv.devices.len())),
            (None, false) => Err((
                format!(
                    "{} of {} not on the platform: {}",
                    missing.len(),
                    inv.devices.len(),
                    missing.join(", ")
                ),
                Severity::Input,
            )),
        };
        report("inventory devices exist", outcome);
    }
    let head = Http::new(1.0).once("HEAD", &args.firmware_uri, &[], None);
    report(
        "firmware URI answers HEAD",
        head.map(|_| args.firmware_uri.clone())
            .map_err(|e| (e.to_string(), severity(&e))),
    );
    let Some(worst) = failed.iter().map(|(_, s)| *s).max() else {
        println!("preflight passed");
        return Ok(());
    };
    let names: Vec<&str> = failed.iter().map(|(n, _)| n.as_str()).collect();
    let msg = format!("preflight failed: {}", names.join("; "));
    Err(match worst {
        Severity::Input => Failure::input(msg),
        Severity::Runtime => Failure::Runtime(msg),
    })
}
