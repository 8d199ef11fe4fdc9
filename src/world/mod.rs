//! The simulated fleet: gateways, links, regional caches, the management service and faults.
//! It takes the engine's commands and answers with observations, exactly as a live backend
//! would. It must never decide policy: every choice of what to start, retry or stop is the engine's.

pub mod events;
pub mod gateway;
pub mod hazard;
pub mod network;
pub mod service;

use rand_distr::{Distribution, Exp1};

use crate::engine::{Cause, Command, Facts, GatewayInfo, Observation, Phase};
use crate::scenario::Scenario;
use crate::sim::queue::EventQueue;
use crate::sim::rng::{self, Purpose, Stream};
use crate::time::Time;
use gateway::Profile;
use hazard::{Channel, Hazard};
use network::{LinkId, Network};
use service::{Admission, Request, Service};

/// What is physically on the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truth {
    Old,
    Updated,
    RolledBack,
    /// Flash failed or interrupted by a physical cause: needs a technician.
    Bricked,
    /// The agent wedged on a dropped session, or gave up reconnecting: needs a power cycle.
    Stuck,
}

/// What the gateway is busy with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    None,
    /// The service holds a slot for it and its command is on its way.
    Dispatching,
    WaitingCache,
    Downloading,
    ChunkPause,
    Installing,
    RollingBack,
    /// Downloaded, holding the install until its region's maintenance window opens.
    AwaitingWindow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    None,
    Queued,
    Active,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    EngineWake,
    Tick,
    Dispatch {
        gw: u32,
        attempt: u32,
    },
    ChunkDone {
        gw: u32,
        generation: u32,
    },
    ChunkResume {
        gw: u32,
        attempt: u32,
    },
    CacheFilled {
        region: u16,
        /// The fill flow's generation when scheduled: a reshare makes earlier events stale.
        generation: u32,
    },
    InstallDone {
        gw: u32,
        attempt: u32,
    },
    /// A gateway holding its install for the maintenance window: the window has opened.
    WindowOpen {
        gw: u32,
        attempt: u32,
    },
    Report {
        gw: u32,
        attempt: u32,
        result: Result<(), Cause>,
    },
    OpTimeout {
        gw: u32,
        attempt: u32,
    },
    /// A drop channel's next threshold crossing (`LINK` or `SESSION`).
    Disconnect {
        channel: u8,
        generation: u32,
    },
    /// The agent tries to re-establish its session.
    ReconnectTry {
        gw: u32,
    },
    /// A reconnect was answered in time: the session is back.
    Reconnect {
        gw: u32,
    },
    RollbackDone {
        gw: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cache {
    Cold,
    Filling,
    Warm,
}

/// 128 bytes: a 16-byte-aligned record that grows past 128 straddles a third cache line
/// for most gateways (144 bytes cost fleet-1m about 10% of its wall time).
struct Gw {
    profile: Profile,
    luck: Stream,
    truth: Truth,
    activity: Activity,
    op: Op,
    attempt: u32,
    online: bool,
    last_reconnect: Time,
    bits_done: f64,
    /// Chunk failures of this download (saturating: the retry limit is far below).
    chunk_fails: u16,
    disconnected: bool,
    /// Failed reconnect tries since the session dropped (saturating).
    reconnect_tries: u16,
    held_report: Option<Result<(), Cause>>,
}

const _: () = assert!(std::mem::size_of::<Gw>() <= 128);

/// Per-run counters beyond the summary's headline figures.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    pub ops_started: u64,
    pub timeouts: u64,
    pub chunk_failures: u64,
    pub installs: u64,
    pub defective_installs: u64,
    pub health_failures: u64,
    pub cache_fills: u64,
    pub last_activity: Time,
}

pub struct World {
    pub scenario: Scenario,
    gws: Vec<Gw>,
    net: Network,
    pub service: Service,
    /// Session drops by cause: link faults, and responses that miss their deadline.
    channels: [Channel; 2],
    /// Scratch for gateways a channel drops.
    dropping: Vec<u32>,
    /// The time of the event being handled: exposure changes accrue hazard up to it.
    now: Time,
    /// A weight changed since the drop events were last scheduled.
    exposure_changed: bool,
    caches: Vec<Cache>,
    cache_waiters: Vec<Vec<u32>>,
    queue: EventQueue<Event>,
    busy_gateways: u32,
    online: u32,
    /// Online gateways with an outstanding operation: their agents poll its state.
    polling: u32,
    /// A polling gateway's message rate relative to heartbeats alone.
    polling_weight: f32,
    /// Scratch for flows whose rate changed in a reshare.
    changed: Vec<u32>,
    /// Each region's maintenance windows and the UTC time of day at t = 0, if any.
    install_windows: Option<crate::engine::maintenance::Schedule>,
    /// Gateways whose state may have changed since the last `take_touched`, when watched.
    touched: Option<Vec<u32>>,
    pub counters: Counters,
    tick: Time,
    chunk_bits: f64,
    image_bits: f64,
}

/// Drop channels.
const LINK: usize = 0;
const SESSION: usize = 1;

/// Link layout: 0 = origin, then one uplink per region, then one cache link per region.
fn uplink(region: u16) -> LinkId {
    1 + region
}

impl World {
    pub fn new(scenario: &Scenario, seed: u64) -> World {
        let n = scenario.fleet.gateways as usize;
        let regions = scenario.fleet.regions.len();
        let net_cfg = &scenario.network;
        let mut links = vec![net_cfg.origin_mbps * 1e6];
        links.extend(std::iter::repeat_n(
            net_cfg.region_uplink_mbps * 1e6,
            regions,
        ));
        links.extend(std::iter::repeat_n(net_cfg.cache_mbps * 1e6, regions));
        let mut link = Hazard::new(n);
        let mut session = Hazard::new(n);
        let gws: Vec<Gw> = (0..n as u32)
            .map(|i| {
                let mut luck = rng::stream(seed, Purpose::Luck, u64::from(i));
                link.renew(i, Exp1.sample(&mut luck));
                session.renew(i, Exp1.sample(&mut luck));
                Gw {
                    profile: Profile::draw(scenario, seed, i),
                    luck,
                    truth: Truth::Old,
                    activity: Activity::None,
                    op: Op::None,
                    attempt: 0,
                    online: true,
                    last_reconnect: Time::ZERO,
                    bits_done: 0.0,
                    chunk_fails: 0,
                    disconnected: false,
                    reconnect_tries: 0,
                    held_report: None,
                }
            })
            .collect();
        let mut w = World {
            service: Service::new(
                &scenario.service,
                scenario.agent.status_poll_s,
                rng::stream(seed, Purpose::Service, 0),
            ),
            net: Network::new(links, n + regions),
            channels: [Channel::new(link), Channel::new(session)],
            dropping: Vec::new(),
            now: Time::ZERO,
            exposure_changed: false,
            caches: vec![Cache::Cold; regions],
            cache_waiters: vec![Vec::new(); regions],
            queue: EventQueue::default(),
            busy_gateways: 0,
            online: n as u32,
            polling: 0,
            polling_weight: (1.0
                + scenario.service.heartbeat_interval_s / scenario.agent.status_poll_s)
                as f32,
            changed: Vec::new(),
            touched: None,
            install_windows: scenario
                .maintenance
                .as_ref()
                .map(crate::engine::maintenance::Schedule::new),
            counters: Counters::default(),
            tick: Time::from_secs(scenario.service.tick_s),
            chunk_bits: scenario.firmware.chunk_mb * 8e6,
            image_bits: scenario.firmware.size_mb * 8e6,
            gws,
            scenario: scenario.clone(),
        };
        for g in 0..n as u32 {
            w.refresh_exposure(g);
        }
        w.queue.push(Time::ZERO, Event::Tick);
        w
    }

    pub fn inventory(&self) -> Vec<GatewayInfo> {
        self.gws
            .iter()
            .map(|g| GatewayInfo {
                region: g.profile.region,
                hw: g.profile.hw,
            })
            .collect()
    }

    pub fn gateways(&self) -> usize {
        self.gws.len()
    }

    pub fn truth(&self, g: u32) -> Truth {
        self.gws[g as usize].truth
    }

    pub fn activity(&self, g: u32) -> Activity {
        self.gws[g as usize].activity
    }

    pub fn is_queued(&self, g: u32) -> bool {
        self.gws[g as usize].op == Op::Queued
    }

    /// From now on, remember which gateways may have changed state (for incremental timelines).
    pub fn watch_changes(&mut self) {
        self.touched.get_or_insert_with(Vec::new);
    }

    /// Moves the gateways touched since the last call into `out` (possibly repeated).
    pub fn take_touched(&mut self, out: &mut Vec<u32>) {
        if let Some(touched) = &mut self.touched {
            out.append(touched);
        }
    }

    fn touch(&mut self, g: u32) {
        if let Some(touched) = &mut self.touched {
            touched.push(g);
        }
    }

    /// Gateways currently offline.
    pub fn offline(&self) -> u32 {
        self.gws.len() as u32 - self.online
    }

    pub fn is_online(&self, g: u32) -> bool {
        self.gws[g as usize].online
    }

    pub fn disconnected_ever(&self, g: u32) -> bool {
        self.gws[g as usize].disconnected
    }

    /// Gateways still doing something physical (downloading, installing, rolling back...).
    pub fn busy(&self) -> bool {
        self.busy_gateways > 0
    }

    pub fn events(&self) -> u64 {
        self.queue.popped()
    }

    pub fn schedule(&mut self, t: Time, e: Event) {
        self.queue.push(t, e);
    }

    /// When the next event is due, if any.
    pub fn next_event_time(&self) -> Option<Time> {
        self.queue.peek_time()
    }

    pub fn pop(&mut self) -> Option<(Time, Event)> {
        self.queue.pop()
    }

    /// Current load on the origin and on each regional cache, in Mbps.
    pub fn link_loads_mbps(&self) -> (f64, Vec<f64>, Vec<f64>) {
        let regions = self.caches.len() as u16;
        let origin = self.net.link_load_bps(0) / 1e6;
        let uplinks = (0..regions)
            .map(|r| self.net.link_load_bps(uplink(r)) / 1e6)
            .collect();
        let caches = (0..regions)
            .map(|r| self.net.link_load_bps(1 + regions + r) / 1e6)
            .collect();
        (origin, uplinks, caches)
    }

    /// Bits carried so far by the origin, each region's uplink and each regional cache.
    pub fn link_bits(&self) -> (f64, Vec<f64>, Vec<f64>) {
        let regions = self.caches.len() as u16;
        let origin = self.net.carried_bits(0);
        let uplinks = (0..regions)
            .map(|r| self.net.carried_bits(uplink(r)))
            .collect();
        let caches = (0..regions)
            .map(|r| self.net.carried_bits(1 + regions + r))
            .collect();
        (origin, uplinks, caches)
    }

    pub fn tick_period(&self) -> Time {
        self.tick
    }

    fn set_activity(&mut self, g: u32, a: Activity) {
        self.touch(g);
        let gw = &mut self.gws[g as usize];
        let was_busy = gw.activity != Activity::None;
        gw.activity = a;
        let is_busy = a != Activity::None;
        match (was_busy, is_busy) {
            (false, true) => self.busy_gateways += 1,
            (true, false) => self.busy_gateways -= 1,
            _ => {}
        }
    }

    /// A gateway's exposure to session drops while it holds a session: its link's flakiness
    /// to link faults, and its message rate (heartbeats, plus status polls while an operation
    /// is outstanding) to responses that miss their deadline.
    fn refresh_exposure(&mut self, g: u32) {
        // The hazard so far accrued at the old weights.
        self.advance_hazard(self.now);
        self.exposure_changed = true;
        let gw = &self.gws[g as usize];
        let alive = gw.online && !matches!(gw.truth, Truth::Bricked | Truth::Stuck);
        let link = if alive { gw.profile.flakiness } else { 0.0 };
        let session = self.session_weight(g);
        self.channels[LINK].hazard.set_weight(g, link);
        self.channels[SESSION].hazard.set_weight(g, session);
    }

    /// Messages per heartbeat interval, relative to heartbeats alone (0 without a session).
    fn session_weight(&self, g: u32) -> f32 {
        let gw = &self.gws[g as usize];
        if !gw.online || matches!(gw.truth, Truth::Bricked | Truth::Stuck) {
            0.0
        } else if gw.op != Op::None {
            self.polling_weight
        } else {
            1.0
        }
    }

    /// Whether `g`'s agent is polling the state of an outstanding operation.
    fn polls(&self, g: u32) -> bool {
        let gw = &self.gws[g as usize];
        gw.online && gw.op != Op::None && !matches!(gw.truth, Truth::Bricked | Truth::Stuck)
    }

    /// Keeps the polling count right after a change to `g` that began with `polled_before`.
    fn repoll(&mut self, g: u32, polled_before: bool) {
        match (polled_before, self.polls(g)) {
            (false, true) => self.polling += 1,
            (true, false) => self.polling -= 1,
            _ => {}
        }
        // An operation changes only the message rate: the session channel's weight.
        let w = self.session_weight(g);
        if self.channels[SESSION].hazard.weight(g) != w {
            self.advance_hazard(self.now);
            self.exposure_changed = true;
            self.channels[SESSION].hazard.set_weight(g, w);
        }
    }

    fn advance_hazard(&mut self, now: Time) {
        for c in &mut self.channels {
            c.advance(now);
        }
    }

    /// Makes sure each channel's Disconnect event is pending no later than its next crossing.
    fn schedule_disconnect(&mut self, now: Time, force: bool) {
        self.advance_hazard(now);
        self.exposure_changed = false;
        for (i, c) in self.channels.iter_mut().enumerate() {
            if let Some((at, generation)) = c.reschedule(now, force) {
                self.queue.push(
                    at,
                    Event::Disconnect {
                        channel: i as u8,
                        generation,
                    },
                );
            }
        }
    }

    /// Carries out one engine command at `now`.
    pub fn apply(&mut self, now: Time, cmd: &Command, obs: &mut Vec<Observation>) {
        self.now = now;
        match *cmd {
            Command::Check { gw } => {
                let facts = self.facts(now, gw);
                obs.push(Observation::Checked { gw, facts });
            }
            Command::Start { gw, attempt } => self.submit(now, gw, attempt, obs),
            Command::Cancel { gw, attempt } => self.cancel(now, gw, attempt, obs),
            Command::Rollback { gw } => {
                if self.gws[gw as usize].truth == Truth::Updated
                    && self.gws[gw as usize].activity == Activity::None
                {
                    self.set_activity(gw, Activity::RollingBack);
                    let d = self
                        .scenario
                        .install
                        .seconds
                        .sample(&mut self.gws[gw as usize].luck);
                    self.queue
                        .push(now + Time::from_secs(d), Event::RollbackDone { gw });
                }
            }
            Command::WaveReleased { .. }
            | Command::Halt { .. }
            | Command::Paused { .. }
            | Command::Refit { .. } => {}
        }
        if self.exposure_changed {
            self.schedule_disconnect(now, false);
        }
    }

    /// What a pre-update check reads off a gateway; the engine judges it.
    fn facts(&self, now: Time, g: u32) -> Facts {
        let gw = &self.gws[g as usize];
        let fleet = &self.scenario.fleet;
        let online = gw.online && !matches!(gw.truth, Truth::Bricked | Truth::Stuck);
        Facts {
            online,
            cpu_pct: Some(gw.profile.cpu_at(now, fleet.busy_cpu_pct)),
            disk_mb: Some(f64::from(gw.profile.free_disk_mb)),
            battery_pct: gw.profile.battery_at(now, fleet.battery_charge_pct_per_h),
            busy: Some(gw.profile.busy_at(now)),
            // A link that never dropped has been stable for as long as we can tell.
            stable_for: Some(if gw.disconnected {
                now - gw.last_reconnect
            } else {
                Time::NEVER
            }),
        }
    }
}
