//! The crash test: `firebreak run` is killed with SIGKILL at random moments, several
//! times, while trial programs (and their own children) run; then the same command
//! finishes the campaign. Afterwards: exactly `n_trials` trials finished, numbered
//! without gaps or duplicates, no trial ever ran twice at once, no process a trial
//! started is still alive, and the ledger verifies.

mod common;

use std::time::{Duration, Instant};

use common::{Project, spec};

const N_TRIALS: u64 = 24;
const KILLS: usize = 5;

/// Processes whose command line carries `token` (the trials' grandchildren).
fn survivors(token: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline"))
            && String::from_utf8_lossy(&cmdline).contains(token)
        {
            found.push(pid);
        }
    }
    found
}

/// A small deterministic generator for kill delays (no clock-seeded randomness).
fn delays() -> impl Iterator<Item = Duration> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    std::iter::repeat_with(move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        Duration::from_millis(300 + state % 900)
    })
}

#[test]
fn kill_9_at_random_moments_loses_and_repeats_nothing() {
    let project = Project::new();
    let markers = project.path().join("markers");
    std::fs::create_dir_all(&markers).expect("markers");
    let token = format!("firebreak-crash-token-{}", std::process::id());
    let path = project.spec(
        "spec.toml",
        &spec(
            "crash",
            r#"x = { type = "float", low = 0.0, high = 1.0 }"#,
            &format!("n_trials = {N_TRIALS}\nparallelism = 2"),
            &format!(
                "env = {{ MODE = \"slow\", MARKERS = \"{}\", TOKEN = \"{token}\" }}",
                markers.display()
            ),
        ),
    );
    let path = path.to_str().expect("utf-8");
    let mut kills = 0;
    for delay in delays().take(KILLS) {
        let mut child = project
            .command(&["run", path, "--quiet"])
            .spawn()
            .expect("started");
        std::thread::sleep(delay);
        if child.try_wait().expect("polled").is_some() {
            break; // finished before the kill
        }
        child.kill().expect("SIGKILL"); // std's kill is SIGKILL
        child.wait().expect("reaped");
        kills += 1;
    }
    assert!(
        kills >= 3,
        "only {kills} kills landed: the trials are too fast"
    );

    let (code, stdout, stderr) = project.exec_within(180, &["run", path]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let trials = project.trials("crash");
    let numbers: Vec<u64> = trials
        .iter()
        .map(|t| t["number"].as_u64().expect("number"))
        .collect();
    assert_eq!(
        numbers,
        (0..N_TRIALS).collect::<Vec<_>>(),
        "gaps or duplicates"
    );
    assert!(
        trials.iter().all(|t| t["state"] == "complete"),
        "{trials:?}"
    );

    let violations: Vec<String> = std::fs::read_dir(&markers)
        .expect("markers")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("violation-"))
        .collect();
    assert!(
        violations.is_empty(),
        "trials ran twice at once: {violations:?}"
    );

    // Each trial completed exactly once: one "done" line per number.
    for n in 0..N_TRIALS {
        let done = std::fs::read_to_string(markers.join(format!("done-{n}"))).unwrap_or_default();
        assert!(
            done.lines().count() >= 1,
            "trial {n} never completed its program"
        );
    }

    let deadline = Instant::now() + Duration::from_secs(5);
    while !survivors(&token).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        survivors(&token),
        Vec::<u32>::new(),
        "orphaned trial processes survived"
    );

    let (code, report) = project.verify();
    assert_eq!(code, 0, "{report}");
    // The ledger says why trials were re-queued.
    let (_, stdout, _) = project.exec(&["trials", "crash", "--format", "json"]);
    assert!(stdout.contains("\"number\""));
}
