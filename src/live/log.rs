//! Timestamped log lines for a live rollout's state changes, on stderr: text for people, or
//! one JSON object per line for log pipelines. Lines go above the progress bar, so no stale
//! bar frames are left between them.

use std::io::Write;
use std::time::SystemTime;

use indicatif::ProgressBar;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `2026-11-27T16:20:01.123Z rollout: wave 2 released (pilot): 20 gateways`
    #[default]
    Text,
    /// `{"ts":"…","event":"wave_released","msg":"…","wave":2,…}`; also one line per
    /// gateway state change (`gateway_started`, `gateway_succeeded`, `gateway_failed`).
    Json,
}

/// Where and how state changes are logged; `quiet` logs nothing (tests, benchmarks).
#[derive(Clone, Default)]
pub struct Log {
    format: Option<LogFormat>,
    bar: Option<ProgressBar>,
}

impl Log {
    pub fn quiet() -> Log {
        Log::default()
    }

    pub fn new(format: LogFormat) -> Log {
        Log {
            format: Some(format),
            bar: None,
        }
    }

    /// Prints lines above `bar` rather than through its frame.
    pub fn above(&mut self, bar: &ProgressBar) {
        self.bar = Some(bar.clone());
    }

    pub fn is_json(&self) -> bool {
        self.format == Some(LogFormat::Json)
    }

    /// A rollout-level event (both formats). `fields` are extra JSON keys.
    pub fn event(&self, event: &str, msg: &str, fields: &[(&str, Value)]) {
        let Some(format) = self.format else { return };
        self.write(&line(format, SystemTime::now(), event, msg, fields));
    }

    /// A gateway's state change: JSON only, where volume is not a reader's problem.
    pub fn gateway(&self, event: &str, msg: &str, fields: &[(&str, Value)]) {
        if self.is_json() {
            self.event(event, msg, fields);
        }
    }

    fn write(&self, line: &str) {
        let print = || {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        };
        match &self.bar {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }
}

/// One log line (pure, for tests).
pub fn line(
    format: LogFormat,
    at: SystemTime,
    event: &str,
    msg: &str,
    fields: &[(&str, Value)],
) -> String {
    let ts = humantime::format_rfc3339_millis(at).to_string();
    match format {
        LogFormat::Text => format!("{ts} rollout: {msg}"),
        LogFormat::Json => {
            let mut m = Map::new();
            m.insert("ts".into(), ts.into());
            m.insert("event".into(), event.into());
            m.insert("msg".into(), msg.into());
            for (k, v) in fields {
                m.insert((*k).into(), v.clone());
            }
            Value::Object(m).to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn lines_carry_a_utc_timestamp_and_json_keeps_the_fields() {
        let at = UNIX_EPOCH + Duration::from_millis(1_795_795_268_123);
        let text = line(LogFormat::Text, at, "halted", "HALT: x", &[]);
        assert_eq!(text, "2026-11-27T16:01:08.123Z rollout: HALT: x");
        let json = line(
            LogFormat::Json,
            at,
            "wave_released",
            "wave 2 released",
            &[("wave", 2.into()), ("stage", "pilot".into())],
        );
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["ts"], "2026-11-27T16:01:08.123Z");
        assert_eq!(v["event"], "wave_released");
        assert_eq!(v["wave"], 2);
        assert_eq!(v["stage"], "pilot");
    }
}
