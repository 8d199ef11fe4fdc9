//! The Slurm example under a real scheduler: a single-node Slurm (Debian's `slurm-wlm`, with
//! `munge` for authentication, installed by scripts/test.sh) started on loopback in a temporary
//! directory runs `deploy/slurm/sweep.sbatch` as a job array, then the documented merge job;
//! the merged sweep must be byte-identical to one unsharded sweep.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NODE: &str = "stagger-node";

fn need(bin: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin"] {
        let p = Path::new(dir).join(bin);
        if p.exists() {
            return p;
        }
    }
    panic!("{bin} is needed: run scripts/test.sh (it installs Debian's slurm-wlm and munge)");
}

fn daemon(bin: &str, args: &[String], log: &Path) -> Proc {
    let log = std::fs::File::create(log).unwrap();
    Proc(
        Command::new(need(bin))
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{bin}: {e}")),
    )
}

struct Cluster {
    conf: PathBuf,
    _daemons: Vec<Proc>,
}

impl Cluster {
    /// munged, slurmctld and slurmd in the foreground, on loopback ports free a moment ago.
    fn start(dir: &Path) -> Cluster {
        let munge = dir.join("munge");
        for sub in ["state", "spool", "munge"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let key: Vec<u8> = (0..1024u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        std::fs::write(munge.join("key"), key).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&munge, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(munge.join("key"), std::fs::Permissions::from_mode(0o400))
            .unwrap();
        let p = |name: &str| munge.join(name).display().to_string();
        let munged = daemon(
            "munged",
            &[
                "--foreground".into(),
                "--force".into(),
                format!("--socket={}", p("sock")),
                format!("--key-file={}", p("key")),
                format!("--pid-file={}", p("pid")),
                format!("--seed-file={}", p("seed")),
                format!("--log-file={}", p("log")),
            ],
            &dir.join("munged.stderr"),
        );
        let t0 = Instant::now();
        while !munge.join("sock").exists() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "munged never opened its socket"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_string();
        // slurmctld runs only on the host the configuration names as controller.
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        let host = host.trim().split('.').next().unwrap().to_string();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let d = dir.display();
        let conf = dir.join("slurm.conf");
        std::fs::write(
            &conf,
            format!(
                "ClusterName=stagger-test
SlurmctldHost={host}(127.0.0.1)
MailProg=/bin/true
SlurmUser={user}
SlurmdUser={user}
SlurmctldPort={ctld}
SlurmdPort={slurmd}
AuthType=auth/munge
AuthInfo=socket={sock}
CredType=cred/munge
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
NodeName={NODE} NodeAddr=127.0.0.1 NodeHostname={NODE} CPUs={cpus} RealMemory=4096 State=UNKNOWN
PartitionName=local Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
",
                ctld = free_port(),
                slurmd = free_port(),
                sock = p("sock"),
            ),
        )
        .unwrap();
        let f = conf.display().to_string();
        let ctld = daemon(
            "slurmctld",
            &["-D".into(), "-f".into(), f.clone()],
            &dir.join("ctld.stderr"),
        );
        let slurmd = daemon(
            "slurmd",
            &["-D".into(), "-N".into(), NODE.into(), "-f".into(), f],
            &dir.join("slurmd.stderr"),
        );
        let cluster = Cluster {
            conf,
            _daemons: vec![slurmd, ctld, munged],
        };
        let t0 = Instant::now();
        loop {
            let o = cluster
                .cmd("sinfo")
                .args(["-h", "-o", "%t"])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&o.stdout).trim() == "idle" {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "the Slurm node never became idle: {}{}",
                String::from_utf8_lossy(&o.stdout),
                std::fs::read_to_string(dir.join("slurmctld.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        cluster
    }

    /// A Slurm client command against this cluster, with `stagger` on the PATH (sbatch
    /// exports the submitter's environment to the job).
    fn cmd(&self, bin: &str) -> Command {
        let mut c = Command::new(need(bin));
        let stagger_dir = Path::new(env!("CARGO_BIN_EXE_stagger")).parent().unwrap();
        let path = format!(
            "{}:{}",
            stagger_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        c.env("SLURM_CONF", &self.conf).env("PATH", path);
        c
    }
}

fn submit(c: &mut Command) -> String {
    let o = c.output().unwrap();
    assert!(o.status.success(), "sbatch failed: {}", stderr(&o));
    stdout(&o).trim().split(';').next().unwrap().to_string()
}

#[test]
fn the_sbatch_job_array_and_merge_match_an_unsharded_sweep_under_real_slurm() {
    let d = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(d.path());
    let work = d.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let scenario = seed_scenario();
    let script = root().join("deploy/slurm/sweep.sbatch");
    // The script asks for 4 CPUs; this node has fewer, so the command line asks for one.
    let array = submit(
        cluster
            .cmd("sbatch")
            .current_dir(&work)
            .args([
                "--parsable",
                "--array=1-3",
                "--cpus-per-task=1",
                "--mem=256M",
            ])
            .arg(&script)
            .args([scenario.as_str(), "--replications", "2"]),
    );
    let merge = cluster
        .cmd("sbatch")
        .current_dir(&work)
        .args([
            "--parsable",
            "--wait",
            &format!("--dependency=afterok:{array}"),
            "--wrap",
            "stagger merge results/shards/* --out results/merged",
        ])
        .output()
        .unwrap();
    let logs = || {
        std::fs::read_dir(&work)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("slurm-"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        merge.status.success(),
        "the merge job failed: {}\n{}",
        stderr(&merge),
        logs()
    );
    for task in 1..=3 {
        assert!(
            work.join(format!("results/shards/{task}/manifest.json"))
                .exists(),
            "array task {task} left no shard: {}",
            logs()
        );
    }
    let whole = d.path().join("whole");
    let o = run(&[
        "sweep",
        &scenario,
        "--replications",
        "2",
        "--out",
        whole.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let merged = work.join("results/merged");
    assert!(
        merged.join("manifest.json").exists(),
        "no merged sweep: {}",
        logs()
    );
    same_files(&whole, &merged);
}
