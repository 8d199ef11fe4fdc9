//! `stagger approve`: lets a rollout paused at an approval gate go on.

use crate::cli::ApproveArgs;
use crate::error::Failure;
use crate::live::{approvals, journal, status};

pub fn run(args: &ApproveArgs) -> Result<(), Failure> {
    let parsed = journal::read(&args.journal)?;
    let text_len = std::fs::metadata(&args.journal).map_or(0, |m| m.len() as usize);
    let p = status::progress(&parsed, text_len);
    let stage = match (&args.stage, &p.paused) {
        (Some(s), _) => s.clone(),
        (None, Some(s)) => s.clone(),
        (None, None) => {
            return Err(Failure::input(format!(
                "{}: the rollout is not paused at an approval gate; name a later stage with --stage to approve it in advance",
                args.journal.display()
            )))
        }
    };
    approvals::approve(&args.journal, &stage).map_err(|e| Failure::io(&args.journal, e))?;
    if p.paused.as_deref() == Some(stage.as_str()) {
        println!("approved `{stage}`: the rollout goes on at its next poll (or when its command is re-run)");
    } else {
        println!("approved `{stage}` in advance: the rollout will not stop there");
    }
    Ok(())
}
