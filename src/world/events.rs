//! How the simulated fleet reacts to commands and to the passage of time.

use rand::Rng;
use rand_distr::{Distribution, Exp1};

use super::gateway::Profile;
use super::network::NO_LINK;
use super::*;

impl World {
    pub(super) fn submit(&mut self, now: Time, g: u32, attempt: u32, obs: &mut Vec<Observation>) {
        self.touch(g);
        self.counters.ops_started += 1;
        match self.service.admit(g, attempt) {
            Admission::Rejected => obs.push(Observation::Rejected { gw: g, attempt }),
            Admission::Queued => {
                let gw = &mut self.gws[g as usize];
                gw.op = Op::Queued;
                gw.attempt = attempt;
                obs.push(Observation::Accepted { gw: g, attempt });
                obs.push(Observation::Progress {
                    gw: g,
                    attempt,
                    phase: Phase::Queued,
                });
            }
            Admission::Active => {
                obs.push(Observation::Accepted { gw: g, attempt });
                self.activate(now, g, attempt);
            }
        }
    }

    /// The op holds a service slot from now: the command travels at the service's latency.
    fn activate(&mut self, now: Time, g: u32, attempt: u32) {
        self.touch(g);
        let gw = &mut self.gws[g as usize];
        gw.op = Op::Active;
        gw.attempt = attempt;
        if self.scenario.failures.enabled {
            let timeout = Time::from_secs(self.scenario.service.op_timeout_s);
            self.queue
                .push(now + timeout, Event::OpTimeout { gw: g, attempt });
        }
        self.queue.push(
            now + self.service.latency(),
            Event::Dispatch { gw: g, attempt },
        );
        if self.gws[g as usize].activity == Activity::None {
            self.set_activity(g, Activity::Dispatching);
        }
    }

    pub(super) fn cancel(&mut self, now: Time, g: u32, attempt: u32, obs: &mut Vec<Observation>) {
        self.touch(g);
        let gw = &self.gws[g as usize];
        if gw.attempt != attempt {
            return;
        }
        match gw.op {
            Op::None => {}
            Op::Queued => {
                self.gws[g as usize].op = Op::None;
                self.service.unqueue();
                obs.push(Observation::Failed {
                    gw: g,
                    attempt,
                    cause: Cause::Cancelled,
                });
            }
            Op::Active => {
                // Flashing cannot be interrupted; anything before it can.
                if gw.activity != Activity::Installing {
                    self.abort_download(now, g);
                    self.set_activity(g, Activity::None);
                }
                self.end_op(now, g, obs);
                obs.push(Observation::Failed {
                    gw: g,
                    attempt,
                    cause: Cause::Cancelled,
                });
            }
        }
    }

    /// Frees the op's slot and hands it to the next queued op.
    fn end_op(&mut self, now: Time, g: u32, obs: &mut Vec<Observation>) {
        self.touch(g);
        let gw = &mut self.gws[g as usize];
        if gw.op != Op::Active {
            return;
        }
        gw.op = Op::None;
        self.service.release();
        let gws = &self.gws;
        let next = self
            .service
            .next_queued(|q, a| gws[q as usize].op == Op::Queued && gws[q as usize].attempt == a);
        if let Some((q, a)) = next {
            obs.push(Observation::Progress {
                gw: q,
                attempt: a,
                phase: Phase::Downloading,
            });
            self.activate(now, q, a);
        }
    }

    fn abort_download(&mut self, now: Time, g: u32) {
        if self.net.is_active(g) {
            // Whole chunks stay on disk (`bits_done`); the partial chunk is lost.
            self.net.stop(now, g);
            self.reshare(now);
        }
        let region = self.gws[g as usize].profile.region as usize;
        self.cache_waiters[region].retain(|&w| w != g);
    }

    fn reshare(&mut self, now: Time) {
        // A reused buffer: no allocation per event.
        let mut changed = std::mem::take(&mut self.changed);
        changed.clear();
        self.net.reshare(now, |id| changed.push(id));
        let n = self.gws.len() as u32;
        for &id in &changed {
            let t = self.net.finish_time(id);
            if t == Time::NEVER {
                continue;
            }
            if id < n {
                self.queue.push(
                    t,
                    Event::ChunkDone {
                        gw: id,
                        generation: self.net.generation(id),
                    },
                );
            } else {
                self.queue.push(
                    t,
                    Event::CacheFilled {
                        region: (id - n) as u16,
                        generation: self.net.generation(id),
                    },
                );
            }
        }
        self.changed = changed;
    }

    /// Handles one event at `now`.
    pub fn handle(&mut self, now: Time, event: Event, obs: &mut Vec<Observation>) {
        self.advance_hazard(now);
        match event {
            Event::EngineWake | Event::Tick => {}
            Event::Dispatch { gw, attempt } => self.on_dispatch(now, gw, attempt, obs),
            Event::ChunkDone { gw, generation } => {
                if self.net.is_active(gw) && self.net.generation(gw) == generation {
                    self.on_chunk(now, gw, obs);
                }
            }
            Event::ChunkResume { gw, attempt } => {
                let g = &self.gws[gw as usize];
                if g.attempt == attempt
                    && g.activity == Activity::ChunkPause
                    && g.op == Op::Active
                    && g.online
                {
                    self.start_flow(now, gw);
                }
            }
            Event::CacheFilled { region, generation } => {
                // A reshare reschedules the fill: only its latest finish time counts.
                let id = self.gws.len() as u32 + u32::from(region);
                if self.net.is_active(id) && self.net.generation(id) == generation {
                    self.on_cache_filled(now, region);
                }
            }
            Event::InstallDone { gw, attempt } => self.on_installed(now, gw, attempt, obs),
            Event::Report {
                gw,
                attempt,
                result,
            } => {
                let g = &self.gws[gw as usize];
                if g.attempt == attempt && g.op == Op::Active {
                    self.end_op(now, gw, obs);
                    match result {
                        Ok(()) => obs.push(Observation::Succeeded { gw }),
                        Err(cause) => obs.push(Observation::Failed { gw, attempt, cause }),
                    }
                } else if result.is_ok() {
                    // The op was already closed (timeout, cancel) but the gateway did update.
                    obs.push(Observation::Succeeded { gw });
                }
            }
            Event::WindowOpen { gw, attempt } => {
                let g = &self.gws[gw as usize];
                if g.attempt == attempt && g.activity == Activity::AwaitingWindow {
                    self.begin_install(now, gw, attempt, obs);
                }
            }
            Event::OpTimeout { gw, attempt } => {
                let g = &self.gws[gw as usize];
                if g.attempt == attempt
                    && g.op == Op::Active
                    && g.activity == Activity::AwaitingWindow
                {
                    // Waiting for the window is not a stall: the clock restarts when it opens.
                    let at = self.install_window_at(gw, now)
                        + Time::from_secs(self.scenario.service.op_timeout_s);
                    self.queue.push(at, Event::OpTimeout { gw, attempt });
                } else if g.attempt == attempt && g.op == Op::Active {
                    self.counters.timeouts += 1;
                    if g.activity != Activity::Installing {
                        self.abort_download(now, gw);
                        if self.gws[gw as usize].activity != Activity::None {
                            self.set_activity(gw, Activity::None);
                        }
                    }
                    self.end_op(now, gw, obs);
                    obs.push(Observation::Failed {
                        gw,
                        attempt,
                        cause: Cause::Timeout,
                    });
                }
            }
            Event::Disconnect { generation } => {
                if generation == self.disconnect_generation {
                    self.disconnect_at = Time::NEVER;
                    while let Some((threshold, g)) = self.hazard.lowest() {
                        if threshold > self.hazard.total * (1.0 + 1e-12) + 1e-12 {
                            break;
                        }
                        self.disconnect(now, g, obs);
                    }
                    self.schedule_disconnect(now, true);
                }
            }
            Event::Reconnect { gw } => self.on_reconnect(now, gw, obs),
            Event::RollbackDone { gw } => {
                if self.gws[gw as usize].activity == Activity::RollingBack {
                    self.touch(gw);
                    self.gws[gw as usize].truth = Truth::RolledBack;
                    self.set_activity(gw, Activity::None);
                    self.counters.last_activity = now;
                }
            }
        }
        self.schedule_disconnect(now, false);
    }

    fn on_dispatch(&mut self, now: Time, g: u32, attempt: u32, obs: &mut Vec<Observation>) {
        let gw = &self.gws[g as usize];
        if gw.attempt != attempt || gw.op != Op::Active || gw.activity != Activity::Dispatching {
            return;
        }
        if !gw.online || matches!(gw.truth, Truth::Bricked | Truth::Stuck) {
            return; // Delivered on reconnect, or never: the op then times out.
        }
        if gw.truth == Truth::Updated {
            self.set_activity(g, Activity::None);
            let at = now + self.service.latency();
            self.queue.push(
                at,
                Event::Report {
                    gw: g,
                    attempt,
                    result: Ok(()),
                },
            );
            return;
        }
        if f64::from(gw.profile.free_disk_mb) < self.scenario.firmware.size_mb {
            self.set_activity(g, Activity::None);
            let at = now + self.service.latency();
            self.queue.push(
                at,
                Event::Report {
                    gw: g,
                    attempt,
                    result: Err(Cause::Download),
                },
            );
            return;
        }
        obs.push(Observation::Progress {
            gw: g,
            attempt,
            phase: Phase::Downloading,
        });
        self.gws[g as usize].bits_done = 0.0;
        self.gws[g as usize].chunk_fails = 0;
        self.begin_download(now, g);
    }

    /// Starts (or resumes) the download, through the regional cache when there is one.
    fn begin_download(&mut self, now: Time, g: u32) {
        let region = self.gws[g as usize].profile.region;
        if self.scenario.network.regional_caches && self.caches[region as usize] != Cache::Warm {
            self.set_activity(g, Activity::WaitingCache);
            self.cache_waiters[region as usize].push(g);
            if self.caches[region as usize] == Cache::Cold {
                self.caches[region as usize] = Cache::Filling;
                self.counters.cache_fills += 1;
                let id = self.gws.len() as u32 + u32::from(region);
                self.net
                    .start(now, id, [uplink(region), 0], f64::INFINITY, self.image_bits);
                self.reshare(now);
            }
            return;
        }
        self.start_flow(now, g);
    }

    fn start_flow(&mut self, now: Time, g: u32) {
        self.open_flow(now, g);
        self.reshare(now);
    }

    /// Puts a gateway's next chunk on the network without resharing (callers that start many
    /// flows at once reshare once). Its cap: last mile, TCP window over the path's RTT, rate limit.
    fn open_flow(&mut self, now: Time, g: u32) {
        let net = &self.scenario.network;
        let gw = &self.gws[g as usize];
        let regions = self.caches.len() as u16;
        let region = gw.profile.region;
        let (links, rtt) = if net.regional_caches {
            ([1 + regions + region, NO_LINK], gw.profile.cache_rtt_ms)
        } else {
            ([uplink(region), 0], gw.profile.origin_rtt_ms)
        };
        let mut cap = gw
            .profile
            .last_mile_bps
            .min(Profile::window_cap_bps(net.tcp_window_kb, rtt));
        if net.rate_limit_mbps > 0.0 {
            cap = cap.min(net.rate_limit_mbps * 1e6);
        }
        let bits = (self.image_bits - gw.bits_done).min(self.chunk_bits);
        self.set_activity(g, Activity::Downloading);
        self.net.start(now, g, links, cap, bits);
    }

    fn on_cache_filled(&mut self, now: Time, region: u16) {
        let id = self.gws.len() as u32 + u32::from(region);
        if !self.net.is_active(id) {
            return;
        }
        self.net.stop(now, id);
        self.caches[region as usize] = Cache::Warm;
        let waiters = std::mem::take(&mut self.cache_waiters[region as usize]);
        for g in waiters {
            if self.gws[g as usize].activity == Activity::WaitingCache {
                self.open_flow(now, g);
            }
        }
        self.reshare(now);
    }

    fn on_chunk(&mut self, now: Time, g: u32, obs: &mut Vec<Observation>) {
        let f = &self.scenario.failures;
        let gw = &mut self.gws[g as usize];
        let p_fail = (f.chunk_failure_rate * f64::from(gw.profile.flakiness)).min(1.0);
        let failed = p_fail > 0.0 && gw.luck.random_bool(p_fail);
        self.service
            .count_msgs(self.scenario.service.progress_msgs_per_chunk);
        if failed {
            self.counters.chunk_failures += 1;
            gw.chunk_fails += 1;
            let attempt = gw.attempt;
            let give_up = gw.chunk_fails > self.scenario.network.max_chunk_retries;
            self.net.stop(now, g);
            self.reshare(now);
            if give_up {
                self.set_activity(g, Activity::None);
                let at = now + self.service.latency();
                self.queue.push(
                    at,
                    Event::Report {
                        gw: g,
                        attempt,
                        result: Err(Cause::Download),
                    },
                );
            } else {
                self.set_activity(g, Activity::ChunkPause);
                let at = now + Time::from_secs(self.scenario.network.chunk_retry_s);
                self.queue.push(at, Event::ChunkResume { gw: g, attempt });
            }
            return;
        }
        gw.chunk_fails = 0;
        let chunk = self.chunk_bits.min(self.image_bits - gw.bits_done);
        gw.bits_done += chunk;
        let left = self.image_bits - gw.bits_done;
        if left > 1e-6 {
            self.net.refill(now, g, left.min(self.chunk_bits));
            let t = self.net.finish_time(g);
            self.queue.push(
                t,
                Event::ChunkDone {
                    gw: g,
                    generation: self.net.generation(g),
                },
            );
            return;
        }
        self.net.stop(now, g);
        self.reshare(now);
        let attempt = self.gws[g as usize].attempt;
        obs.push(Observation::Progress {
            gw: g,
            attempt,
            phase: Phase::Downloaded,
        });
        let open = self.install_window_at(g, now);
        if open > now {
            // The agent keeps the image and installs when its window opens.
            self.set_activity(g, Activity::AwaitingWindow);
            self.queue.push(open, Event::WindowOpen { gw: g, attempt });
            return;
        }
        self.begin_install(now, g, attempt, obs);
    }

    /// When gateway `g` may start installing at or after `t`: its region's next window.
    fn install_window_at(&self, g: u32, t: Time) -> Time {
        self.install_windows
            .as_ref()
            .map_or(t, |m| m.open_at(self.gws[g as usize].profile.region, t))
    }

    fn begin_install(&mut self, now: Time, g: u32, attempt: u32, obs: &mut Vec<Observation>) {
        obs.push(Observation::Progress {
            gw: g,
            attempt,
            phase: Phase::Installing,
        });
        self.set_activity(g, Activity::Installing);
        let d = self
            .scenario
            .install
            .seconds
            .sample(&mut self.gws[g as usize].luck);
        self.queue.push(
            now + Time::from_secs(d),
            Event::InstallDone { gw: g, attempt },
        );
    }

    fn on_installed(&mut self, now: Time, g: u32, attempt: u32, _obs: &mut Vec<Observation>) {
        self.touch(g);
        if self.gws[g as usize].activity != Activity::Installing
            || self.gws[g as usize].attempt != attempt
        {
            return;
        }
        self.set_activity(g, Activity::None);
        self.counters.last_activity = now;
        let s = &self.scenario;
        let f = &s.failures;
        let gw = &mut self.gws[g as usize];
        let cpu = gw.profile.cpu_at(now, s.fleet.busy_cpu_pct) + s.install.cpu_spike_pct;
        let battery = gw.profile.battery_at(now, s.fleet.battery_charge_pct_per_h);
        let luck = &mut gw.luck;
        // One draw per hazard, in a fixed order, so the luck stream stays aligned across policies.
        let (u_verify, u_install, u_brick, u_heat, u_batt, u_defect): (
            f64,
            f64,
            f64,
            f64,
            f64,
            f64,
        ) = (
            luck.random(),
            luck.random(),
            luck.random(),
            luck.random(),
            luck.random(),
            luck.random(),
        );
        let result = if u_verify < f.verify_failure_rate {
            Err(Cause::Verify)
        } else if battery.is_some_and(|b| b < f.low_battery_pct)
            && u_batt < f.low_battery_brick_rate
        {
            gw.truth = Truth::Bricked;
            Err(Cause::Install)
        } else if u_install < f.install_failure_rate
            || (cpu > 100.0 && u_heat < f.overheat_failure_rate)
        {
            if u_brick < f.install_brick_fraction {
                gw.truth = Truth::Bricked;
            }
            Err(Cause::Install)
        } else {
            self.counters.installs += 1;
            if s.firmware.defect_rate > 0.0 {
                self.counters.defective_installs += 1;
            }
            if u_defect < s.firmware.defect_rate {
                // A/B boot: the health check fails and the gateway falls back to the old image.
                self.counters.health_failures += 1;
                Err(Cause::HealthCheck)
            } else {
                gw.truth = Truth::Updated;
                Ok(())
            }
        };
        let bricked = gw.truth == Truth::Bricked;
        self.refresh_exposure(g);
        if bricked {
            self.fail_after_reboot_grace(now, g, attempt);
            return;
        }
        if !self.gws[g as usize].online {
            self.gws[g as usize].held_report = Some(result);
            return;
        }
        let at = now + self.service.latency();
        self.queue.push(
            at,
            Event::Report {
                gw: g,
                attempt,
                result,
            },
        );
    }

    /// A bricked gateway never re-registers after its reboot; the service gives up on it
    /// after the reboot grace period rather than at the full op timeout.
    fn fail_after_reboot_grace(&mut self, now: Time, g: u32, attempt: u32) {
        let at = now + Time::from_secs(self.scenario.service.reboot_grace_s);
        self.queue.push(
            at,
            Event::Report {
                gw: g,
                attempt,
                result: Err(Cause::Unreachable),
            },
        );
    }

    fn disconnect(&mut self, now: Time, g: u32, obs: &mut Vec<Observation>) {
        self.touch(g);
        let f = self.scenario.failures.clone();
        self.hazard.disconnect(g);
        let activity = self.gws[g as usize].activity;
        let gw = &mut self.gws[g as usize];
        gw.online = false;
        gw.disconnected = true;
        self.online -= 1;
        let u: f64 = gw.luck.random();
        let wedged = match activity {
            Activity::Installing => {
                if u < f.brick_after_install_disconnect {
                    gw.truth = Truth::Bricked;
                }
                false
            }
            Activity::Downloading | Activity::ChunkPause | Activity::WaitingCache => {
                u < f.stuck_after_download_disconnect
            }
            _ => u < f.stuck_after_idle_disconnect,
        };
        if wedged && gw.truth != Truth::Bricked {
            gw.truth = Truth::Stuck;
        }
        match activity {
            Activity::Downloading
            | Activity::ChunkPause
            | Activity::WaitingCache
            | Activity::Dispatching
            | Activity::AwaitingWindow => {
                self.abort_download(now, g);
                self.set_activity(g, Activity::None);
            }
            Activity::Installing if self.gws[g as usize].truth == Truth::Bricked => {
                self.set_activity(g, Activity::None);
                self.counters.last_activity = now;
                let attempt = self.gws[g as usize].attempt;
                self.fail_after_reboot_grace(now, g, attempt);
            }
            _ => self.refresh_exposure(g),
        }
        // The service sees the session drop and fails the op at once, freeing its slot.
        // An install still running keeps its op: the gateway reports when it returns.
        let gw = &self.gws[g as usize];
        if gw.op == Op::Active && gw.activity != Activity::Installing {
            let attempt = gw.attempt;
            self.end_op(now, g, obs);
            obs.push(Observation::Failed {
                gw: g,
                attempt,
                cause: Cause::Unreachable,
            });
        }
        let gw = &mut self.gws[g as usize];
        if !matches!(gw.truth, Truth::Bricked | Truth::Stuck) {
            let d = f.reconnect_s.sample(&mut gw.luck);
            self.queue
                .push(now + Time::from_secs(d), Event::Reconnect { gw: g });
        }
    }

    fn on_reconnect(&mut self, now: Time, g: u32, obs: &mut Vec<Observation>) {
        self.touch(g);
        let gw = &mut self.gws[g as usize];
        if gw.online || matches!(gw.truth, Truth::Bricked | Truth::Stuck) {
            return;
        }
        gw.online = true;
        gw.last_reconnect = now;
        self.online += 1;
        let budget: f64 = Exp1.sample(&mut gw.luck);
        self.service.count_reconnect();
        self.hazard.renew(g, budget);
        self.refresh_exposure(g);
        let gw = &mut self.gws[g as usize];
        let attempt = gw.attempt;
        if let Some(result) = gw.held_report.take() {
            let at = now + self.service.latency();
            self.queue.push(
                at,
                Event::Report {
                    gw: g,
                    attempt,
                    result,
                },
            );
        } else if gw.op == Op::Active && gw.activity == Activity::Dispatching {
            // Resume: whole chunks already on disk are kept.
            if gw.bits_done > 0.0 {
                obs.push(Observation::Progress {
                    gw: g,
                    attempt,
                    phase: Phase::Downloading,
                });
                self.begin_download(now, g);
            } else {
                self.on_dispatch(now, g, attempt, obs);
            }
        }
    }

    /// Closes a service tick: CPU, latency, and the hazard rate until the next tick.
    pub fn on_tick(&mut self, now: Time) {
        self.advance_hazard(now);
        self.service.tick(self.tick.secs(), self.online);
        let f = &self.scenario.failures;
        self.hazard_rate = if f.enabled {
            f.link_disconnects_per_h / 3600.0 + self.service.heartbeat_hazard()
        } else {
            0.0
        };
        self.schedule_disconnect(now, true);
        self.queue.push(now + self.tick, Event::Tick);
    }
}
