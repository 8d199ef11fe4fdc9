//! `stagger calibrate`: prints the reference table (markdown) for a scenario.

use crate::calibrate;
use crate::cli::CalibrateArgs;
use crate::error::Failure;
use crate::scenario::InputError;

pub fn run(args: &CalibrateArgs) -> Result<(), Failure> {
    if args.seeds < 2 {
        return Err(
            InputError::new("--seeds must be at least 2 to form a confidence interval").into(),
        );
    }
    let path = args.scenario.display().to_string();
    let checks = calibrate::table(&path, &args.sets, args.seeds)?;
    print!("{}", calibrate::markdown(&checks, args.seeds));
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.holds())
        .map(|c| format!("{} {}", c.label, c.metric))
        .collect();
    if args.check && !failed.is_empty() {
        return Err(Failure::Runtime(format!(
            "outside the reference range: {}",
            failed.join(", ")
        )));
    }
    Ok(())
}
