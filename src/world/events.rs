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
        // Creating the operation is a request, answered or refused.
        self.service.request(now, Request::Lifecycle);
        let polled = self.polls(g);
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
                self.repoll(g, polled);
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
        let polled = self.polls(g);
        let gw = &mut self.gws[g as usize];
        gw.op = Op::Active;
        gw.attempt = attempt;
        if self.scenario.failures.enabled {
            let timeout = Time::from_secs(self.scenario.service.op_timeout_s);
            self.queue
                .push(now + timeout, Event::OpTimeout { gw: g, attempt });
        }
        self.repoll(g, polled);
        let at = now + self.service.request(now, Request::Lifecycle);
        self.queue.push(at, Event::Dispatch { gw: g, attempt });
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
                let polled = self.polls(g);
                self.gws[g as usize].op = Op::None;
                self.repoll(g, polled);
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
                self.fail_op(now, g, attempt, Cause::Cancelled, obs);
            }
        }
    }

    /// Ends `g`'s operation at the service and reports it failed with `cause`.
    fn fail_op(
        &mut self,
        now: Time,
        g: u32,
        attempt: u32,
        cause: Cause,
        obs: &mut Vec<Observation>,
    ) {
        self.end_op(now, g, obs);
        obs.push(Observation::Failed {
            gw: g,
            attempt,
            cause,
        });
    }

    /// Frees the op's slot and hands it to the next queued op.
    fn end_op(&mut self, now: Time, g: u32, obs: &mut Vec<Observation>) {
        self.touch(g);
        if self.gws[g as usize].op != Op::Active {
            return;
        }
        let polled = self.polls(g);
        self.gws[g as usize].op = Op::None;
        self.repoll(g, polled);
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
        self.now = now;
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
            Event::InstallDone { gw, .. } => self.on_installed(now, gw, obs),
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
                    self.fail_op(now, gw, attempt, Cause::Timeout, obs);
                }
            }
            Event::Disconnect {
                channel,
                generation,
            } => {
                self.advance_hazard(now);
                let mut dropping = std::mem::take(&mut self.dropping);
                if !self.channels[channel as usize].due(generation, &mut dropping) {
                    self.dropping = dropping;
                    return; // Superseded by a later schedule.
                }
                for g in dropping.drain(..) {
                    self.disconnect(now, g, obs);
                }
                self.dropping = dropping;
                if let Some((at, generation)) =
                    self.channels[channel as usize].reschedule(now, true)
                {
                    self.queue.push(
                        at,
                        Event::Disconnect {
                            channel,
                            generation,
                        },
                    );
                }
            }
            Event::ReconnectTry { gw } => self.on_reconnect_try(now, gw),
            Event::Reconnect { gw } => self.on_reconnect(now, gw),
            Event::RollbackDone { gw } => {
                if self.gws[gw as usize].activity == Activity::RollingBack {
                    self.touch(gw);
                    self.gws[gw as usize].truth = Truth::RolledBack;
                    self.set_activity(gw, Activity::None);
                    self.counters.last_activity = now;
                }
            }
        }
        if self.exposure_changed {
            self.schedule_disconnect(now, false);
        }
    }

    fn on_dispatch(&mut self, now: Time, g: u32, attempt: u32, obs: &mut Vec<Observation>) {
        let gw = &self.gws[g as usize];
        if gw.attempt != attempt || gw.op != Op::Active {
            return;
        }
        if !gw.online || matches!(gw.truth, Truth::Bricked | Truth::Stuck) {
            // No session to deliver the command on: the service fails it and frees the slot.
            if gw.activity == Activity::Dispatching {
                self.set_activity(g, Activity::None);
            }
            self.fail_op(now, g, attempt, Cause::Unreachable, obs);
            return;
        }
        if gw.activity == Activity::Installing {
            // A command re-issued while the gateway still flashes an earlier one: an agent
            // without a guard starts a second write (physical), otherwise it ignores it and
            // reports when its install ends.
            let u: f64 = self.gws[g as usize].luck.random();
            if u < self.scenario.agent.brick_on_reissue {
                self.brick(now, g, attempt);
            }
            return;
        }
        if gw.activity != Activity::Dispatching {
            return;
        }
        if gw.truth == Truth::Updated {
            self.set_activity(g, Activity::None);
            let at = now + self.service.request(now, Request::Lifecycle);
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
            let at = now + self.service.request(now, Request::Lifecycle);
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
        // Whole chunks of an earlier, interrupted attempt are still on disk: resume.
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
            .progress(self.scenario.service.progress_msgs_per_chunk);
        let gw = &mut self.gws[g as usize];
        if failed {
            self.counters.chunk_failures += 1;
            gw.chunk_fails = gw.chunk_fails.saturating_add(1);
            let attempt = gw.attempt;
            let give_up = u32::from(gw.chunk_fails) > self.scenario.network.max_chunk_retries;
            self.net.stop(now, g);
            self.reshare(now);
            if give_up {
                self.set_activity(g, Activity::None);
                let at = now + self.service.request(now, Request::Lifecycle);
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

    fn on_installed(&mut self, now: Time, g: u32, _obs: &mut Vec<Observation>) {
        self.touch(g);
        if self.gws[g as usize].activity != Activity::Installing {
            return;
        }
        // The install reports under the newest operation (a re-issued command may have
        // replaced the one that started it).
        let attempt = self.gws[g as usize].attempt;
        let polled = self.polls(g);
        self.gws[g as usize].bits_done = 0.0;
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
        self.repoll(g, polled);
        if bricked {
            self.fail_after_reboot_grace(now, g, attempt);
            return;
        }
        if !self.gws[g as usize].online {
            // The reboot restarts the agent, which reconnects afresh and then reports.
            self.gws[g as usize].held_report = Some(result);
            self.gws[g as usize].reconnect_tries = 0;
            self.queue.push(now, Event::ReconnectTry { gw: g });
            return;
        }
        let at = now + self.service.request(now, Request::Lifecycle);
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

    /// A second write during flashing: the gateway needs a technician.
    fn brick(&mut self, now: Time, g: u32, attempt: u32) {
        self.touch(g);
        let polled = self.polls(g);
        self.gws[g as usize].truth = Truth::Bricked;
        self.set_activity(g, Activity::None);
        self.refresh_exposure(g);
        self.repoll(g, polled);
        self.counters.last_activity = now;
        self.fail_after_reboot_grace(now, g, attempt);
    }

    /// The management session drops (missed heartbeats or a link fault). Nothing physical
    /// happens to the gateway: a download stops with its whole chunks kept on disk (the next
    /// attempt resumes from them, unless the agent wedged), an install goes on and reports
    /// after the reconnect. The service sees the session end and fails the operation at once,
    /// freeing its slot, unless the gateway is flashing.
    fn disconnect(&mut self, now: Time, g: u32, obs: &mut Vec<Observation>) {
        self.touch(g);
        let polled = self.polls(g);
        for c in &mut self.channels {
            c.hazard.disconnect(g);
        }
        let activity = self.gws[g as usize].activity;
        let gw = &mut self.gws[g as usize];
        gw.online = false;
        gw.disconnected = true;
        gw.reconnect_tries = 0;
        self.online -= 1;
        let downloading = matches!(
            activity,
            Activity::Downloading | Activity::ChunkPause | Activity::WaitingCache
        );
        // An agent in the middle of an update flow (its operation outstanding, not yet
        // flashing) may wedge on the lost session; an idle or flashing one cannot.
        let in_flow = activity != Activity::Installing && (downloading || polled);
        if in_flow {
            let u: f64 = self.gws[g as usize].luck.random();
            if u < self.scenario.agent.wedge_on_drop {
                self.gws[g as usize].truth = Truth::Stuck;
            }
        }
        if downloading {
            self.abort_download(now, g);
        }
        if downloading || activity == Activity::Dispatching {
            self.set_activity(g, Activity::None);
        }
        let gw = &self.gws[g as usize];
        if gw.op == Op::Active && gw.activity != Activity::Installing {
            let attempt = gw.attempt;
            self.fail_op(now, g, attempt, Cause::Unreachable, obs);
        }
        self.refresh_exposure(g);
        self.repoll(g, polled);
        if self.gws[g as usize].truth != Truth::Stuck {
            let u: f64 = self.gws[g as usize].luck.random();
            let wait = self.scenario.agent.reconnect.delay_s(0, u);
            self.queue
                .push(now + Time::from_secs(wait), Event::ReconnectTry { gw: g });
        }
    }

    /// Every session drops at once, as when the service's broker restarts: a load spike of
    /// reconnects (for what-if runs and the metastability test).
    pub fn drop_all_sessions(&mut self, now: Time, obs: &mut Vec<Observation>) {
        self.now = now;
        self.advance_hazard(now);
        for g in 0..self.gws.len() as u32 {
            if self.gws[g as usize].online {
                for c in &mut self.channels {
                    c.hazard.disconnect(g);
                }
                self.disconnect(now, g, obs);
            }
        }
        self.schedule_disconnect(now, true);
    }

    /// One reconnect try: a request the service must answer within the agent's timeout. A
    /// late answer is wasted work (the service still does it); the agent backs off and tries
    /// again, and gives up after its last try.
    fn on_reconnect_try(&mut self, now: Time, g: u32) {
        let gw = &self.gws[g as usize];
        if gw.online || matches!(gw.truth, Truth::Bricked | Truth::Stuck) {
            return;
        }
        let answer = self.service.request(now, Request::Reconnect);
        let agent = &self.scenario.agent;
        let timeout = Time::from_secs(agent.reconnect_timeout_s);
        if answer <= timeout {
            self.queue.push(now + answer, Event::Reconnect { gw: g });
            return;
        }
        let (max_attempts, reconnect) = (agent.reconnect.max_attempts, agent.reconnect.clone());
        let gw = &mut self.gws[g as usize];
        gw.reconnect_tries = gw.reconnect_tries.saturating_add(1);
        if u32::from(gw.reconnect_tries) >= max_attempts {
            if gw.activity == Activity::Installing {
                // The reboot at the end of the install restarts the agent.
                return;
            }
            gw.truth = Truth::Stuck;
            self.touch(g);
            if self.gws[g as usize].activity != Activity::None {
                self.set_activity(g, Activity::None);
            }
            self.counters.last_activity = now;
            return;
        }
        let tries = u32::from(gw.reconnect_tries);
        let u: f64 = gw.luck.random();
        let wait = reconnect.delay_s(tries, u);
        self.queue.push(
            now + timeout + Time::from_secs(wait),
            Event::ReconnectTry { gw: g },
        );
    }

    fn on_reconnect(&mut self, now: Time, g: u32) {
        self.touch(g);
        let gw = &mut self.gws[g as usize];
        if gw.online || matches!(gw.truth, Truth::Bricked | Truth::Stuck) {
            return;
        }
        let polled = self.polls(g);
        let gw = &mut self.gws[g as usize];
        gw.online = true;
        gw.last_reconnect = now;
        gw.reconnect_tries = 0;
        self.online += 1;
        let (link, session): (f64, f64) = (Exp1.sample(&mut gw.luck), Exp1.sample(&mut gw.luck));
        self.advance_hazard(now);
        self.channels[LINK].hazard.renew(g, link);
        self.channels[SESSION].hazard.renew(g, session);
        self.refresh_exposure(g);
        self.repoll(g, polled);
        // An install that ended offline reports now; anything else waits for its next command.
        let gw = &mut self.gws[g as usize];
        let attempt = gw.attempt;
        if let Some(result) = gw.held_report.take() {
            let at = now + self.service.request(now, Request::Lifecycle);
            self.queue.push(
                at,
                Event::Report {
                    gw: g,
                    attempt,
                    result,
                },
            );
        }
    }

    /// Closes a service tick: CPU, latency, and the hazard rate until the next tick.
    pub fn on_tick(&mut self, now: Time) {
        self.now = now;
        self.advance_hazard(now);
        self.service
            .tick(now, self.tick.secs(), self.online, self.polling);
        let f = &self.scenario.failures;
        let (link, session) = if f.enabled {
            (
                f.link_disconnects_per_h / 3600.0,
                self.service.heartbeat_hazard(),
            )
        } else {
            (0.0, 0.0)
        };
        self.channels[LINK].rate = link;
        self.channels[SESSION].rate = session;
        self.schedule_disconnect(now, true);
        self.queue.push(now + self.tick, Event::Tick);
    }
}
