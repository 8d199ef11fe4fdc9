//! Maintenance windows: daily intervals, per region, in which installs may start. Downloads
//! may run ahead of a window by at most `lead`; an install waits on the device for its
//! window (in the simulator, the world's device agent; on AWS, the job's scheduling).

use crate::time::Time;

const DAY_MS: u64 = 24 * 3600 * 1000;

/// Each region's windows (index order) as (UTC opening ms after midnight, duration ms).
pub type RegionWindows = Vec<Vec<(u64, u64)>>;

/// One daily window, in UTC: opens `open_ms` after midnight UTC and lasts `duration_ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct DailyWindow {
    /// Regions it covers by name; empty covers every region.
    pub regions: Vec<String>,
    pub open_ms: u64,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Maintenance {
    pub windows: Vec<DailyWindow>,
    /// How long before a window opens a gateway may be started (its download runs ahead).
    pub lead: Time,
    /// UTC milliseconds after midnight at plan time zero: set by the driver (the scenario's
    /// `maintenance.start_utc` in simulation, the rollout's first start when live).
    pub epoch_ms_of_day: u64,
    /// Region names by region index (the driver's: the scenario's or the inventory's).
    pub region_names: Vec<String>,
}

impl Maintenance {
    /// The windows of each region index.
    pub fn by_region(&self) -> RegionWindows {
        self.region_names
            .iter()
            .map(|name| {
                self.windows
                    .iter()
                    .filter(|w| w.regions.is_empty() || w.regions.iter().any(|r| r == name))
                    .map(|w| (w.open_ms, w.duration_ms))
                    .collect()
            })
            .collect()
    }

    /// Region names the windows mention that are not in `names`.
    pub fn unknown_regions<'a>(&'a self, names: &[String]) -> Vec<&'a str> {
        let mut out: Vec<&str> = self
            .windows
            .iter()
            .flat_map(|w| w.regions.iter())
            .filter(|r| !names.contains(r))
            .map(String::as_str)
            .collect();
        out.dedup();
        out
    }
}

/// Windows resolved for lookups: each region index's windows, the epoch and the lead. The
/// engine (when to start) and the simulated device agents (when to install) share it.
#[derive(Debug, Clone)]
pub struct Schedule {
    by_region: RegionWindows,
    epoch_ms_of_day: u64,
    pub lead: Time,
}

impl Schedule {
    pub fn new(m: &Maintenance) -> Schedule {
        Schedule {
            by_region: m.by_region(),
            epoch_ms_of_day: m.epoch_ms_of_day,
            lead: m.lead,
        }
    }

    /// When a gateway of region index `region` may install at or after `t`.
    pub fn open_at(&self, region: u16, t: Time) -> Time {
        self.by_region
            .get(usize::from(region))
            .map_or(t, |w| next_open(w, self.epoch_ms_of_day, t))
    }
}

/// The first time at or after `t` (plan time) inside one of `windows` (UTC, daily), with plan
/// time zero at `epoch_ms_of_day` UTC. No windows: `t` (unrestricted).
pub fn next_open(windows: &[(u64, u64)], epoch_ms_of_day: u64, t: Time) -> Time {
    if windows.is_empty() {
        return t;
    }
    // One day of margin so that "yesterday" exists even at plan time zero.
    let utc = DAY_MS + epoch_ms_of_day + t.0;
    let day_start = utc - utc % DAY_MS;
    let mut best = u64::MAX;
    for &(open, duration) in windows {
        // The window that opened yesterday may still be open; then today's, then tomorrow's.
        for day in [day_start - DAY_MS, day_start, day_start + DAY_MS] {
            let (from, to) = (day + open, day + open + duration);
            if utc < to {
                best = best.min(from.max(utc));
            }
        }
    }
    Time(best - epoch_ms_of_day - DAY_MS)
}

/// Whether `t` is inside one of `windows`.
pub fn is_open(windows: &[(u64, u64)], epoch_ms_of_day: u64, t: Time) -> bool {
    next_open(windows, epoch_ms_of_day, t) == t
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3600 * 1000;

    #[test]
    fn next_open_finds_todays_tomorrows_or_the_current_window() {
        // A window 01:00–05:00 UTC; plan time zero is 22:00 UTC.
        let w = [(H, 4 * H)];
        let epoch = 22 * H;
        assert_eq!(next_open(&w, epoch, Time(0)), Time(3 * H));
        assert_eq!(
            next_open(&w, epoch, Time(4 * H)),
            Time(4 * H),
            "open at 02:00"
        );
        assert_eq!(
            next_open(&w, epoch, Time(7 * H)),
            Time(27 * H),
            "closed at 05:00"
        );
        assert!(is_open(&w, epoch, Time(3 * H)) && !is_open(&w, epoch, Time(7 * H)));
        // A window across midnight, 23:00–02:00, seen at 01:00: still open.
        let late = [(23 * H, 3 * H)];
        assert_eq!(next_open(&late, 0, Time(H)), Time(H));
        assert_eq!(next_open(&late, 0, Time(3 * H)), Time(23 * H));
        assert_eq!(next_open(&[], 0, Time(5)), Time(5), "no windows: any time");
    }
}
