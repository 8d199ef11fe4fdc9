//! The durable journal of a live rollout: versioned JSON Lines, one fsync'd record per line.
//! Every intent is written before the call that carries it out and every observation after,
//! so that a crash at any point can be reconciled: nothing lost, nothing done twice.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::scenario::InputError;

pub const VERSION: u32 = 1;

/// The first line: what this rollout is. A resume must match it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub journal: String,
    pub version: u32,
    pub plan: String,
    pub backend: String,
    pub endpoint: String,
    pub firmware_version: String,
    pub firmware_uri: String,
    pub devices: usize,
}

/// One record after the header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum Record {
    /// About to ask the backend to update these devices (attempt per device).
    Start {
        t: u64,
        devices: Vec<String>,
        attempts: Vec<u32>,
        phase: String,
    },
    /// The backend accepted: its reference (request or job id) for those devices.
    Submitted {
        t: u64,
        devices: Vec<String>,
        phase: String,
        reference: String,
    },
    /// A device reached a final result for its current attempt.
    Result {
        t: u64,
        device: String,
        attempt: u32,
        ok: bool,
        cause: Option<String>,
    },
    /// About to cancel a backend operation.
    Cancel { t: u64, reference: String },
    /// A wave was released.
    Wave { t: u64, wave: usize, size: usize },
    /// The rollout halted on a safety rule.
    Halt { t: u64, reason: String },
    /// The rollout finished.
    Done { t: u64 },
}

/// What the journal says about one device.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceState {
    pub attempts: u32,
    /// Backend references of the current attempt, by phase (e.g. download, update).
    pub references: BTreeMap<String, String>,
    /// A start intent with no `Submitted` after it: the call may or may not have happened.
    pub unconfirmed: Option<String>,
    pub result: Option<bool>,
}

pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Opens `path`: a new journal gets `header`; an existing one must carry the same header,
    /// and its records are returned for reconciliation.
    pub fn open(path: &Path, header: &Header) -> Result<(Journal, Vec<Record>), InputError> {
        let name = path.display().to_string();
        let existing = if path.exists() {
            let text = std::fs::read_to_string(path)
                .map_err(|e| InputError::new(format!("cannot read journal: {e}")).in_file(&name))?;
            Some(parse(&text).map_err(|e| e.in_file(&name))?)
        } else {
            None
        };
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| InputError::new(format!("cannot open journal: {e}")).in_file(&name))?;
        let records = match existing {
            Some((h, records, truncated)) => {
                if &h != header {
                    return Err(InputError::new(format!(
                        "this journal belongs to another rollout (plan `{}`, backend {}, firmware {}); use a new --journal or the original flags",
                        h.plan, h.backend, h.firmware_version
                    ))
                    .in_file(&name));
                }
                if truncated {
                    // The crash cut the last line: drop the fragment so the file holds whole records.
                    let keep =
                        whole_records_len(&std::fs::read_to_string(path).unwrap_or_default());
                    file.set_len(keep as u64)
                        .and_then(|_| file.sync_all())
                        .map_err(|e| InputError::new(e.to_string()).in_file(&name))?;
                }
                records
            }
            None => {
                let mut line =
                    serde_json::to_vec(header).map_err(|e| InputError::new(e.to_string()))?;
                line.push(b'\n');
                file.write_all(&line)
                    .and_then(|_| file.sync_all())
                    .map_err(|e| InputError::new(e.to_string()).in_file(&name))?;
                Vec::new()
            }
        };
        Ok((
            Journal {
                path: path.to_path_buf(),
                file,
            },
            records,
        ))
    }

    /// Appends one record and waits for it to reach the disk.
    pub fn write(&mut self, r: &Record) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(r).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.sync_data()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Bytes up to the end of the last complete line.
fn whole_records_len(text: &str) -> usize {
    text.rfind('\n').map_or(0, |i| i + 1)
}

/// Header, records, and whether the last line was cut short (tolerated, dropped).
pub fn parse(text: &str) -> Result<(Header, Vec<Record>, bool), InputError> {
    let mut lines = text.split_inclusive('\n').enumerate();
    let (_, first) = lines
        .next()
        .ok_or_else(|| InputError::new("empty journal"))?;
    let header: Header = serde_json::from_str(first.trim()).map_err(|e| {
        let mut err = InputError::new(format!("not a stagger journal header: {e}"));
        err.line = Some(1);
        err
    })?;
    if header.journal != "stagger" || header.version != VERSION {
        return Err(InputError::new(format!(
            "journal version {} is not supported (this stagger writes {VERSION})",
            header.version
        )));
    }
    let mut records = Vec::new();
    let mut truncated = false;
    for (i, line) in lines {
        let complete = line.ends_with('\n');
        let body = line.trim();
        if body.is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(body) {
            Ok(r) => records.push(r),
            Err(_) if !complete => truncated = true,
            Err(e) => {
                let mut err = InputError::new(format!("corrupt journal record: {e}"));
                err.line = Some(i + 1);
                return Err(err);
            }
        }
    }
    if !text.ends_with('\n') && !truncated {
        truncated = true;
    }
    Ok((header, records, truncated))
}

/// Folds records into the state of each device.
pub fn replay(records: &[Record]) -> BTreeMap<String, DeviceState> {
    let mut s: BTreeMap<String, DeviceState> = BTreeMap::new();
    for r in records {
        match r {
            Record::Start {
                devices,
                attempts,
                phase,
                ..
            } => {
                for (d, a) in devices.iter().zip(attempts) {
                    let st = s.entry(d.clone()).or_default();
                    if *a != st.attempts {
                        st.references.clear();
                        st.result = None;
                    }
                    st.attempts = *a;
                    st.unconfirmed = Some(phase.clone());
                }
            }
            Record::Submitted {
                devices,
                phase,
                reference,
                ..
            } => {
                for d in devices {
                    let st = s.entry(d.clone()).or_default();
                    st.references.insert(phase.clone(), reference.clone());
                    if st.unconfirmed.as_deref() == Some(phase) {
                        st.unconfirmed = None;
                    }
                }
            }
            Record::Result {
                device,
                attempt,
                ok,
                ..
            } => {
                let st = s.entry(device.clone()).or_default();
                if *attempt == st.attempts {
                    st.result = Some(*ok);
                    st.unconfirmed = None;
                }
            }
            _ => {}
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            journal: "stagger".into(),
            version: VERSION,
            plan: "p".into(),
            backend: "watson-iot".into(),
            endpoint: "http://127.0.0.1:1".into(),
            firmware_version: "1".into(),
            firmware_uri: "u".into(),
            devices: 2,
        }
    }

    #[test]
    fn survives_a_cut_last_line_and_replays() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("j.jsonl");
        {
            let (mut j, recs) = Journal::open(&p, &header()).unwrap();
            assert!(recs.is_empty());
            j.write(&Record::Start {
                t: 1,
                devices: vec!["a".into(), "b".into()],
                attempts: vec![1, 1],
                phase: "download".into(),
            })
            .unwrap();
            j.write(&Record::Submitted {
                t: 2,
                devices: vec!["a".into()],
                phase: "download".into(),
                reference: "r1".into(),
            })
            .unwrap();
            j.write(&Record::Result {
                t: 3,
                device: "a".into(),
                attempt: 1,
                ok: true,
                cause: None,
            })
            .unwrap();
        }
        // A crash in the middle of a write.
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(br#"{"k":"result","t":4,"device":"b","att"#)
            .unwrap();
        drop(f);
        let (mut j, recs) = Journal::open(&p, &header()).unwrap();
        assert_eq!(recs.len(), 3);
        let s = replay(&recs);
        assert_eq!(s["a"].result, Some(true));
        assert_eq!(
            s["b"].unconfirmed.as_deref(),
            Some("download"),
            "b's start was never confirmed"
        );
        j.write(&Record::Done { t: 5 }).unwrap();
        let (_, recs, cut) = parse(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert!(!cut);
        assert_eq!(recs.last(), Some(&Record::Done { t: 5 }));
        let mut other = header();
        other.firmware_version = "2".into();
        assert!(
            Journal::open(&p, &other).is_err(),
            "a journal of another rollout is refused"
        );
    }
}
