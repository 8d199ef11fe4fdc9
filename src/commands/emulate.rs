//! `stagger emulate`: platform and device emulators for rehearsals and tests.

use crate::cli::{EmulateArgs, EmulateWhat};
use crate::emulate::watson::{self, Config};
use crate::error::Failure;
use crate::live::inventory::Inventory;
use crate::scenario::{self, InputError};

pub fn run(args: &EmulateArgs) -> Result<(), Failure> {
    match &args.what {
        EmulateWhat::Watson(a) => {
            if !(a.speed.is_finite() && a.speed > 0.0) {
                return Err(Failure::input("--speed must be positive"));
            }
            let faults = crate::emulate::parse_faults(&a.faults, &watson::FAULTS)
                .map_err(|m| InputError::new(format!("--faults: {m}")))?;
            let scenario = world_of_seed(&a.scenario, &a.sets, a.seed)?;
            let inventory = Inventory::load(&a.inventory.display().to_string(), true)?;
            if a.page_size == 0 {
                return Err(Failure::input("--page-size must be at least 1"));
            }
            let key = std::env::var("WIOTP_API_KEY").map_err(|_| {
                Failure::input(
                    "set WIOTP_API_KEY and WIOTP_API_TOKEN: the emulator accepts those credentials",
                )
            })?;
            let token = std::env::var("WIOTP_API_TOKEN")
                .map_err(|_| Failure::input("WIOTP_API_TOKEN is not set"))?;
            let cfg = Config {
                scenario,
                inventory,
                speed: a.speed,
                fail: a.fail.clone(),
                faults,
                page_size: a.page_size,
                seed: a.seed,
                auth: watson::expected_auth(&key, &token),
            };
            watson::serve(cfg, a.port).map_err(Failure::Runtime)
        }
        EmulateWhat::FaultProxy(a) => {
            if !a.upstream.starts_with("http://127.0.0.1")
                && !a.upstream.starts_with("http://localhost")
            {
                return Err(Failure::input(
                    "the fault proxy only forwards to a loopback upstream (http://127.0.0.1:PORT)",
                ));
            }
            let faults = crate::emulate::parse_faults(&a.faults, &crate::emulate::proxy::FAULTS)
                .map_err(|m| InputError::new(format!("--faults: {m}")))?;
            let cfg = crate::emulate::proxy::Config {
                upstream: a.upstream.trim_end_matches('/').to_string(),
                faults,
                seed: a.seed,
            };
            crate::emulate::proxy::serve(cfg, a.port).map_err(Failure::Runtime)
        }
        EmulateWhat::AwsFleet(a) => {
            if !a.endpoint.starts_with("http://127.0.0.1")
                && !a.endpoint.starts_with("http://localhost")
            {
                return Err(Failure::input(
                    "the emulated fleet only talks to a loopback endpoint (http://127.0.0.1:PORT)",
                ));
            }
            if !(a.speed.is_finite() && a.speed > 0.0) {
                return Err(Failure::input("--speed must be positive"));
            }
            let inventory = Inventory::load(&a.inventory.display().to_string(), false)?;
            // The world has one gateway per inventory thing.
            let mut sets = a.sets.clone();
            sets.push(format!("fleet.gateways={}", inventory.devices.len()));
            let scenario = world_of_seed(&a.scenario, &sets, a.seed)?;
            let mut fleet = crate::emulate::aws::Fleet {
                client: crate::live::aws::Signed::from_env(&a.endpoint, a.speed)
                    .map_err(Failure::input)?,
                scenario,
                inventory,
                speed: a.speed,
                fail: a.fail.clone(),
                offline: a.offline.clone(),
                publish_facts: a.publish_facts,
                seed: a.seed,
            };
            if a.create_things {
                fleet.create_things().map_err(Failure::Runtime)?;
            }
            println!(
                "fleet: playing {} things against {}",
                fleet.inventory.devices.len(),
                a.endpoint
            );
            use std::io::Write;
            let _ = std::io::stdout().flush();
            fleet.run().map_err(Failure::Runtime)
        }
    }
}

/// The scenario `simulate --seed` plays: the file with its overrides, and that replication's
/// draw of the uncertain values.
fn world_of_seed(
    path: &std::path::Path,
    sets: &[String],
    seed: u64,
) -> Result<scenario::Scenario, InputError> {
    let s = scenario::load(&path.display().to_string(), sets)?;
    Ok(scenario::uncertainty::for_seed(&s, seed).into_owned())
}
