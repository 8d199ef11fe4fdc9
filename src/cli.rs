//! Command-line flags (clap). Raw flags become validated arguments in `commands`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "stagger",
    version = concat!(env!("CARGO_PKG_VERSION"), " (revision ", env!("STAGGER_REVISION"), ")"),
    about = "Simulate, tune and run staged firmware rollouts for fleets of edge gateways",
    long_about = "Simulate, tune and run staged firmware rollouts for fleets of edge gateways.\n\n\
A deterministic discrete-event simulator models the fleet (links, regional caches, chunked \
downloads, installs, faults, and a management service with concurrency limits and CPU load). \
The same rollout engine runs against the simulator and, with `rollout --execute`, the live fleet.\n\n\
Exit codes: 0 done, 1 run-time failure, 2 bad input, 3 live rollout halted by a safety rule."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one policy on a scenario and print its outcome
    #[command(
        after_help = "Examples:\n  stagger simulate scenarios/seed-200.toml --policy seed-staged --seed 7\n  stagger simulate --plan results/seed-200/plan.toml --json\n  stagger simulate scenarios/seed-200.toml --policy seed-staged --explain\n  stagger simulate scenarios/seed-200.toml --set fleet.gateways=1000 --timeline run.csv"
    )]
    Simulate(SimulateArgs),
    /// Run every configuration of the scenario's [sweep] grids over replications
    #[command(
        after_help = "Examples:\n  stagger sweep scenarios/seed-200.toml --out results/seed-200\n  stagger sweep scenarios/seed-200.toml --replications 40 --shard 1/4 --out shards/1"
    )]
    Sweep(SweepArgs),
    /// Merge sharded sweep directories into one complete sweep
    #[command(
        after_help = "Examples:\n  stagger merge shards/1 shards/2 shards/3 shards/4 --out results/seed-200"
    )]
    Merge(MergeArgs),
    /// Pick the fastest plan that meets the safety constraints, and write it
    #[command(
        after_help = "Examples:\n  stagger tune results/seed-200 --plan results/seed-200/plan.toml\n  stagger tune results/seed-200 --min-success 0.98 --max-cpu 40 --plan strict.toml\n  stagger tune results/seed-200 --confidence 0.99 --plan careful.toml"
    )]
    Tune(TuneArgs),
    /// Rank scenario values by their effect on each metric (Morris elementary effects)
    #[command(
        after_help = "Examples:\n  stagger sensitivity scenarios/seed-200.toml --policy bulk\n  stagger sensitivity scenarios/seed-200.toml --policy seed-staged --trajectories 20 --seeds 8 --top 8"
    )]
    Sensitivity(SensitivityArgs),
    /// Fit the fleet's parameters from rollout journals or simulated traces, with intervals
    #[command(
        after_help = "Examples:\n  stagger simulate scenarios/seed-200.toml --trace run.jsonl   # also writes run.inventory.csv\n  stagger fit run.jsonl --scenario scenarios/seed-200.toml --out fitted.toml\n  stagger fit rollout-4.2.0.journal.jsonl --inventory fleet.csv --scenario scenarios/seed-200.toml --out fitted.toml --json"
    )]
    Fit(FitArgs),
    /// Check the simulator against the seed's reference figures (bulk, seed-staged, caches)
    #[command(after_help = "Examples:\n  stagger calibrate scenarios/seed-200.toml")]
    Calibrate(CalibrateArgs),
    /// Compare a plan and named policies on the same seeds (means with 95% CIs)
    #[command(
        after_help = "Examples:\n  stagger compare scenarios/seed-200.toml --plan results/seed-200/plan.toml --policy bulk --policy seed-staged --seeds 1..40"
    )]
    Compare(CompareArgs),
    /// Draw charts (PNG and SVG) and an HTML report from a sweep directory or a timeline CSV
    #[command(
        after_help = "Examples:\n  stagger plot results/seed-200\n  stagger plot results/seed-200 --plan strict.toml --out charts/strict\n  stagger plot run.csv"
    )]
    Plot(PlotArgs),
    /// Run a plan on a live fleet: a dry run unless --execute
    #[command(
        after_help = "Examples:\n  stagger rollout --plan plan.toml --inventory fleet.csv --backend aws-iot-jobs \\\n    --endpoint https://iot.eu-west-1.amazonaws.com --firmware-version 4.2.0 \\\n    --firmware-uri https://fw.example/4.2.0.bin             # dry run: waves, prediction, rules\n  ... --json                                                  # the same review as JSON\n  ... --execute --metrics-addr 127.0.0.1:9464                 # for real, resumable"
    )]
    Rollout(RolloutArgs),
    /// Show a rollout's progress from its journal (also while it runs; takes no lock)
    Status(StatusArgs),
    /// Approve a paused rollout to go on past its approval gate (journaled by the executor)
    Approve(ApproveArgs),
    /// Print the JSON Schema of scenario files, for editors (taplo, Even Better TOML)
    #[command(
        after_help = "Examples:\n  stagger schema > stagger-scenario.schema.json\n  # then, first line of a scenario: #:schema ./stagger-scenario.schema.json"
    )]
    Schema,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    #[command(
        after_help = "Examples:\n  stagger completions bash > /etc/bash_completion.d/stagger\n  stagger completions zsh > ~/.zfunc/_stagger"
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write one per subcommand into a directory
    #[command(
        after_help = "Examples:\n  stagger man | man -l -\n  stagger man --out /usr/local/share/man/man1"
    )]
    Man {
        /// Write stagger.1 and stagger-SUBCOMMAND.1 here instead of printing stagger.1
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Device and platform emulators for rehearsals and tests (loopback only)
    #[command(
        after_help = "Examples:\n  stagger emulate watson --inventory fleet.csv --scenario scenarios/seed-200.toml --speed 600\n  stagger emulate aws-fleet --endpoint http://127.0.0.1:4566 --inventory fleet.csv \\\n    --create-things --scenario scenarios/seed-200.toml --speed 600 --publish-facts"
    )]
    Emulate(EmulateArgs),
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  stagger status --journal rollout-4.2.0.journal.jsonl\n  stagger status --journal rollout-4.2.0.journal.jsonl --json | jq .states"
)]
pub struct StatusArgs {
    /// The rollout's journal
    #[arg(long, value_name = "FILE")]
    pub journal: PathBuf,
    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  stagger approve --journal rollout-4.2.0.journal.jsonl\n  stagger approve --journal rollout-4.2.0.journal.jsonl --stage pilot"
)]
pub struct ApproveArgs {
    /// The rollout's journal
    #[arg(long, value_name = "FILE")]
    pub journal: PathBuf,
    /// The stage to approve (default: the one the rollout is paused at)
    #[arg(long, value_name = "STAGE")]
    pub stage: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// AWS IoT Jobs (REST, SigV4; credentials from AWS_* variables)
    AwsIotJobs,
    /// IBM Watson IoT Platform device management, API v0002 (WIOTP_API_KEY / WIOTP_API_TOKEN)
    WatsonIot,
}

#[derive(Debug, Args)]
pub struct RolloutArgs {
    /// The plan written by `stagger tune`
    #[arg(long, value_name = "FILE")]
    pub plan: PathBuf,
    /// CSV with device_id (and type_id for watson-iot), optional region and hw columns
    #[arg(long, value_name = "FILE.csv")]
    pub inventory: PathBuf,
    #[arg(long, value_enum)]
    pub backend: BackendKind,
    /// Base URL of the device-management API (the control plane for AWS)
    #[arg(long, value_name = "URL")]
    pub endpoint: String,
    /// AWS IoT data plane (device shadows); defaults to --endpoint
    #[arg(long, value_name = "URL")]
    pub data_endpoint: Option<String>,
    /// Version of the firmware being rolled out (goes into the job document or request)
    #[arg(long, value_name = "V")]
    pub firmware_version: String,
    /// Where devices download the image from
    #[arg(long, value_name = "URI")]
    pub firmware_uri: String,
    /// Act for real. Without it, print the waves and the prediction and touch nothing.
    #[arg(long)]
    pub execute: bool,
    /// Durable journal; re-running the same command with it resumes the rollout by replay
    /// (default: rollout-VERSION.journal.jsonl in the working directory; JOURNAL.lock beside
    /// it keeps a second executor out)
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// Divide every wait of the plan (soaks, gaps, backoff, timeouts, polling) by X
    #[arg(long, default_value_t = 1.0, value_name = "X")]
    pub time_scale: f64,
    /// Polling interval for backend progress, in plan seconds
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    pub poll_s: f64,
    /// A device whose reported facts (its AWS shadow) are older than this, in plan seconds,
    /// counts as offline at its pre-update check: its agent stopped reporting
    #[arg(long, default_value_t = 1800.0, value_name = "SECONDS")]
    pub facts_max_age_s: f64,
    /// Run although the backend lacks this signal, leaving the plan's rules that need it blind
    /// (repeat for each: prechecks, health, throttling, cancel, download-progress)
    #[arg(long, value_enum, value_name = "SIGNAL")]
    pub accept_missing: Vec<crate::live::signals::Signal>,
    /// Go on after a safety halt recorded in the journal; names the halt's kind
    /// (rollback or defect), and is journaled so that later re-runs go on too
    #[arg(long, value_name = "KIND")]
    pub override_halt: Option<String>,
    /// Read-only checks before a rollout: the credentials work, the endpoint answers, every
    /// inventory device exists on the platform (under its type on Watson), and the firmware
    /// URI answers a HEAD request. Exit 0 when all pass
    #[arg(long, conflicts_with = "execute")]
    pub preflight: bool,
    /// Approval gate: after this stage (canary, or a staged plan's stage) completes, wait
    /// for `stagger approve` (repeatable; adds to the plan's pause_after)
    #[arg(long, value_name = "STAGE")]
    pub pause_after: Vec<String>,
    /// When this stage (canary, or a staged plan's stage) completes, fit the rollout's
    /// observations so far and re-tune the pace of the rest under the plan's constraints
    /// (journaled; a resume replays the choice)
    #[arg(long, value_name = "STAGE")]
    pub refit_after: Option<String>,
    /// Replications per pace and release behind a refit's choice
    #[arg(long, default_value_t = crate::refit::REPLICATIONS, value_name = "N")]
    pub refit_replications: u32,
    /// Update only devices with this attribute (region=…, hw=… or type=…; repeatable, all
    /// must match)
    #[arg(long, value_name = "KEY=VALUE")]
    pub only: Vec<String>,
    /// Leave out the device ids listed in this file (one per line, `#` comments)
    #[arg(long, value_name = "FILE")]
    pub exclude: Option<PathBuf>,
    /// Dry run only: print the review (waves with every gateway, canaries, prediction,
    /// which safety rules are live) as one JSON object
    #[arg(long)]
    pub json: bool,
    /// Serve Prometheus metrics of the rollout on this loopback address (e.g.
    /// 127.0.0.1:9464) at /metrics, while it runs with --execute
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<String>,
    /// How --execute logs state changes on stderr: timestamped text lines, or one JSON
    /// object per line (with a line per gateway state change, and no progress bar)
    #[arg(long, value_enum, default_value_t = LogFormatArg::Text)]
    pub log_format: LogFormatArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

impl From<LogFormatArg> for crate::live::log::LogFormat {
    fn from(f: LogFormatArg) -> Self {
        match f {
            LogFormatArg::Text => crate::live::log::LogFormat::Text,
            LogFormatArg::Json => crate::live::log::LogFormat::Json,
        }
    }
}

#[derive(Debug, Args)]
pub struct EmulateArgs {
    #[command(subcommand)]
    pub what: EmulateWhat,
}

#[derive(Debug, Subcommand)]
pub enum EmulateWhat {
    /// A Watson IoT v0002 device-management platform on 127.0.0.1, playing the inventory's devices
    Watson(EmulateWatsonArgs),
    /// A gateway fleet for AWS IoT Jobs, playing the inventory's things through the device API
    AwsFleet(EmulateAwsArgs),
    /// A fault-injecting proxy on 127.0.0.1 in front of a loopback platform (e.g. MiniStack)
    FaultProxy(EmulateProxyArgs),
}

#[derive(Debug, Args)]
pub struct EmulateProxyArgs {
    /// The platform to forward to (loopback only), e.g. http://127.0.0.1:4566
    #[arg(long, value_name = "URL")]
    pub upstream: String,
    /// Faults per request: post500, postslow and postreset strike writes after the
    /// upstream acted; get503 strikes reads. E.g. post500=0.3,postslow=0.1
    #[arg(long, default_value = "")]
    pub faults: String,
    /// Port on 127.0.0.1 (0 picks a free one; the address is printed on stdout)
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct EmulateAwsArgs {
    /// Endpoint serving IoT and iot-jobs-data (e.g. MiniStack on 127.0.0.1)
    #[arg(long, value_name = "URL")]
    pub endpoint: String,
    /// Things to play (CSV with device_id = thing name)
    #[arg(long, value_name = "FILE.csv")]
    pub inventory: PathBuf,
    /// Register the things first (CreateThing; existing ones are kept)
    #[arg(long)]
    pub create_things: bool,
    /// Scenario whose world model gives download and install times and fault rates
    #[arg(long, default_value = "scenarios/seed-200.toml")]
    pub scenario: PathBuf,
    /// Speed-up: durations are divided by this
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Things whose updates always fail (comma-separated)
    #[arg(long, value_delimiter = ',')]
    pub fail: Vec<String>,
    /// Things that never pick up a job, as if offline for good (comma-separated)
    #[arg(long, value_delimiter = ',')]
    pub offline: Vec<String>,
    /// Publish each thing's pre-check facts (battery, CPU, disk, busy, link stability)
    /// from the world model to its classic shadow
    #[arg(long)]
    pub publish_facts: bool,
    /// Override a scenario key by its dotted path (as for simulate)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// The world of `simulate --seed N`: its draws, and its share of the scenario's
    /// [uncertainty]
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct EmulateWatsonArgs {
    /// Devices to play (CSV with device_id and type_id)
    #[arg(long, value_name = "FILE.csv")]
    pub inventory: PathBuf,
    /// Scenario whose world model gives download and install times and fault rates
    #[arg(long, default_value = "scenarios/seed-200.toml")]
    pub scenario: PathBuf,
    /// Port on 127.0.0.1 (0 picks a free one; the address is printed on stdout)
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Speed-up: device durations are divided by this
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Devices whose updates always fail (comma-separated device ids)
    #[arg(long, value_delimiter = ',')]
    pub fail: Vec<String>,
    /// Fault injection per request, e.g. 429=0.1,500=0.05,503=0.05,reset=0.05,garbage=0.05,slow=0.05.
    /// post500 and postslow strike POSTs only, after the platform acted: a 500, or an
    /// answer later than the client's timeout
    #[arg(long, default_value = "")]
    pub faults: String,
    /// Results per page of every list (lists follow `_bookmark`)
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub page_size: usize,
    /// Override a scenario key by its dotted path (as for simulate)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Seed for durations, outcomes and injected faults; the scenario's [uncertainty] is
    /// drawn as `simulate --seed N` draws it
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct PlotArgs {
    /// A sweep directory (after `tune`, the plan is included) or a `simulate --timeline` CSV
    pub input: PathBuf,
    /// Where to write the charts and report.html (default: the sweep directory itself)
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The tuned plan to draw with the sweep (default: SWEEP/plan.toml when present); it
    /// must come from the same scenario as the sweep
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Scenario file (TOML)
    pub scenario: PathBuf,
    /// A plan written by `stagger tune` (shown as `plan`)
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// Policies of the scenario to compare (repeatable)
    #[arg(long = "policy", value_name = "NAME")]
    pub policies: Vec<String>,
    /// Seeds, as FIRST..LAST (inclusive)
    #[arg(long, default_value = "1..30", value_name = "A..B")]
    pub seeds: String,
    /// Defect rate of the bad release used for the blast-radius column
    #[arg(long, default_value_t = 0.5)]
    pub bad_release: f64,
    /// Override a scenario key by dotted path; VALUE is TOML (repeatable)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Scenario file with a [sweep] section (e.g. scenarios/seed-200.toml)
    pub scenario: PathBuf,
    /// Replications per configuration (default: sweep.replications)
    #[arg(long)]
    pub replications: Option<u32>,
    /// Worker threads (default: all cores); outputs are identical for any value
    #[arg(long)]
    pub threads: Option<usize>,
    /// Output directory (default: results/<scenario name>)
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Run only shard I of N (1-based: 1/N … N/N), or `auto` from SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT
    /// or JOB_COMPLETION_INDEX/STAGGER_SHARD_COUNT; combine shards with `stagger merge`
    #[arg(long, value_name = "I/N|auto")]
    pub shard: Option<String>,
    /// Base seed for replication seeds (default: sweep.seed)
    #[arg(long)]
    pub seed: Option<u64>,
    /// Override a scenario key by dotted path; VALUE is TOML (repeatable)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Shard directories written by `stagger sweep --shard`
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Where to write the merged sweep
    #[arg(long)]
    pub out: PathBuf,
    /// Worker threads for the representative timelines
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Debug, Args)]
pub struct TuneArgs {
    /// A complete sweep directory
    pub sweep_dir: PathBuf,
    /// Least acceptable success rate of a rollout
    #[arg(long, default_value_t = 0.96)]
    pub min_success: f64,
    /// Highest acceptable peak management CPU of a rollout, percent (10 s averages)
    #[arg(long, default_value_t = 50.0)]
    pub max_cpu: f64,
    /// Highest acceptable disconnect rate of a rollout
    #[arg(long, default_value_t = 0.02)]
    pub max_disconnect: f64,
    /// Highest acceptable blast radius of a rollout of a bad release
    #[arg(long, default_value_t = 10.0)]
    pub max_blast: f64,
    /// Where to write the plan (TOML)
    #[arg(long, value_name = "FILE")]
    pub plan: PathBuf,
    /// Fraction of rollouts that must meet every limit, judged by a one-sided 95%
    /// Clopper–Pearson bound on the rollouts simulated
    #[arg(long, default_value_t = 0.95)]
    pub confidence: f64,
    /// Replications first added to a raced candidate; later batches double until the
    /// verdict is clear
    #[arg(long, default_value_t = 20)]
    pub extra_replications: u32,
    /// Most replications a candidate gets before its verdict stands
    #[arg(long, default_value_t = 320)]
    pub max_replications: u32,
    /// Fresh replications behind the plan's predictions (seeds the selection never used)
    #[arg(long, default_value_t = 200)]
    pub prediction_replications: u32,
    /// Tune for this backend: only configurations whose safety rules it can feed
    #[arg(long, value_enum)]
    pub backend: Option<BackendKind>,
    /// With --backend: a signal it lacks that rules may still need (they will run blind, as
    /// `rollout --accept-missing` allows); repeatable
    #[arg(
        long = "accept-missing",
        value_enum,
        value_name = "SIGNAL",
        requires = "backend"
    )]
    pub accept_missing: Vec<crate::live::signals::Signal>,
    /// The race takes candidates fastest first until this many are shown acceptable
    #[arg(long, default_value_t = 3)]
    pub candidates: usize,
    /// Rounds of local search around the winner
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Worker threads (default: all cores)
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Debug, Args)]
pub struct SensitivityArgs {
    /// Scenario file (TOML); its [uncertainty] table gives the factors and their ranges
    pub scenario: PathBuf,
    /// Policy to study (default: the scenario's default policy)
    #[arg(long)]
    pub policy: Option<String>,
    /// Morris trajectories (each costs factors + 1 evaluations)
    #[arg(long, default_value_t = 10)]
    pub trajectories: usize,
    /// Seeds averaged per evaluation (the same seeds everywhere)
    #[arg(long, default_value_t = 4)]
    pub seeds: u64,
    /// Without [uncertainty] (or with --all), each number of the fleet's sections varies by ±
    /// this fraction
    #[arg(long, default_value_t = 0.2)]
    pub spread: f64,
    /// Vary every number of the fleet's sections, not only the [uncertainty] ones: uncertain
    /// values over their ranges, fitted values and the seed's own figures by ±--spread
    #[arg(long)]
    pub all: bool,
    /// Factors shown per metric
    #[arg(long, default_value_t = 6)]
    pub top: usize,
    /// Seed of the Morris design
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Override a scenario key by dotted path; VALUE is TOML (repeatable)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// Scenario with `bulk`, `seed-staged` and `fixed` policies (e.g. scenarios/seed-200.toml)
    pub scenario: PathBuf,
    /// Seeds 1..=N per policy
    #[arg(long, default_value_t = 30)]
    pub seeds: u64,
    /// Override a scenario key by dotted path; VALUE is TOML (repeatable)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Exit 1 if any figure falls outside its target range
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Scenario file (TOML), e.g. scenarios/seed-200.toml; with --plan, defaults to the
    /// scenario embedded in the plan
    #[arg(required_unless_present = "plan")]
    pub scenario: Option<PathBuf>,
    /// Policy name from the scenario's [policies] (default: meta.default_policy)
    #[arg(long, conflicts_with = "plan")]
    pub policy: Option<String>,
    /// Replay a plan written by `stagger tune`
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// Replication seed: same scenario, policy and seed give identical output
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Override a scenario key by dotted path; VALUE is TOML (repeatable)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Print exactly one JSON summary object on stdout
    #[arg(long)]
    pub json: bool,
    /// Also print where the makespan went (critical-path breakdown), largest part first
    #[arg(long)]
    pub explain: bool,
    /// Write a timeline CSV (one row per sampled instant)
    #[arg(long, value_name = "FILE.csv")]
    pub timeline: Option<PathBuf>,
    /// Timeline sampling interval in virtual seconds (at most 60)
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
    pub sample_every: f64,
    /// Write the run's observations in the live journal's format (for `stagger fit`), and
    /// its fleet's regions and hardware classes beside it as FILE.inventory.csv
    #[arg(long, value_name = "FILE.jsonl")]
    pub trace: Option<PathBuf>,
    /// With --plan: when this stage (canary, or a staged plan's stage) completes, fit the
    /// run's observations so far and re-tune the pace of the rest under the plan's
    /// constraints, as `rollout --refit-after` does live
    #[arg(long, value_name = "STAGE", requires = "plan")]
    pub refit_after: Option<String>,
    /// Replications per pace and release behind a refit's choice
    #[arg(long, default_value_t = crate::refit::REPLICATIONS, value_name = "N")]
    pub refit_replications: u32,
    /// With --refit-after: fit nothing and run the rest at this pace (0.1–10), to see what a
    /// refit choosing it would give, for example on a truth set with --set
    #[arg(long, value_name = "P", requires = "refit_after")]
    pub pace: Option<f64>,
}

#[derive(Debug, Args)]
pub struct FitArgs {
    /// Live journals or simulated traces (`simulate --trace`), one rollout each
    #[arg(required = true, value_name = "TRACE_OR_JOURNAL")]
    pub journals: Vec<PathBuf>,
    /// The scenario to start from: values the data cannot identify stay as it has them
    #[arg(long, value_name = "BASE.toml")]
    pub scenario: PathBuf,
    /// Where to write the fitted scenario
    #[arg(long, value_name = "FITTED.toml")]
    pub out: Option<PathBuf>,
    /// The fleet inventory (region and hw columns) for every journal; default: the
    /// JOURNAL.inventory.csv beside each one, if any
    #[arg(long, value_name = "FILE.csv")]
    pub inventory: Option<PathBuf>,
    /// Print the fit report as one JSON object
    #[arg(long)]
    pub json: bool,
}
