//! `[task.sandbox]`: the operating-system sandbox of a trial's process (on by
//! default for code tasks, opt-in for command tasks by writing the table), its
//! defaults, and the checks of its values. The runner turns it into a
//! `firebreak_sandbox::Sandbox`; this crate only describes it.

use serde::{Deserialize, Serialize};

use crate::schema::TaskKind;
use crate::{CampaignSpec, Duration, SpecError};

/// `[task.sandbox]`. Every key has a default, so `[task.sandbox]` alone turns the
/// sandbox on with them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxSpec {
    /// The trial may open network sockets (default false: only UNIX sockets, no
    /// TCP `bind` or `connect`).
    #[serde(default)]
    pub network: bool,
    /// Address space of the trial's process, as `"512M"`, `"2G"` (binary units
    /// K, M, G, T; default `"4G"`). An allocation past it fails.
    #[serde(default = "default_memory")]
    pub memory: String,
    /// Processes and threads of the trial at once (default 64).
    #[serde(default = "default_processes")]
    pub processes: u64,
    /// CPU time of the trial's process (default: `[search] trial_timeout`, no
    /// limit without one): one core's worth of the wall budget. Raise it for
    /// multi-threaded trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Duration>,
    /// Open files at once (default 1024).
    #[serde(default = "default_open_files")]
    pub open_files: u64,
    /// Largest file the trial may write, in the units of `memory` (default `"4G"`).
    #[serde(default = "default_file_size")]
    pub file_size: String,
    /// Extra paths the trial may read (and execute), relative to the spec file's
    /// folder: an interpreter outside the system folders, a data set. The
    /// workdir, the system folders and the interpreter are readable anyway.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read: Vec<String>,
    /// A kernel feature the sandbox needs and the host lacks is an error at
    /// campaign start (default true); false runs without it, and the run's
    /// ledger entry says what was missing.
    #[serde(default = "default_require")]
    pub require: bool,
}

impl Default for SandboxSpec {
    fn default() -> Self {
        SandboxSpec {
            network: false,
            memory: default_memory(),
            processes: default_processes(),
            cpu: None,
            open_files: default_open_files(),
            file_size: default_file_size(),
            read: Vec::new(),
            require: default_require(),
        }
    }
}

impl SandboxSpec {
    /// `memory` in bytes (validated with the spec).
    pub fn memory_bytes(&self) -> u64 {
        parse_size(&self.memory).unwrap_or(u64::MAX)
    }

    /// `file_size` in bytes (validated with the spec).
    pub fn file_size_bytes(&self) -> u64 {
        parse_size(&self.file_size).unwrap_or(u64::MAX)
    }
}

fn default_memory() -> String {
    "4G".into()
}

fn default_processes() -> u64 {
    64
}

fn default_open_files() -> u64 {
    1024
}

fn default_file_size() -> String {
    "4G".into()
}

fn default_require() -> bool {
    true
}

/// Bytes of `"512"`, `"64K"`, `"512M"`, `"2G"`, `"1T"` (binary units; a trailing
/// `B` or `iB` is allowed: `"2GiB"`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let without_b = trimmed
        .strip_suffix("iB")
        .or_else(|| trimmed.strip_suffix('B'))
        .unwrap_or(trimmed);
    let split = without_b
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(without_b.len());
    let (digits, unit) = without_b.split_at(split);
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size"))?;
    let shift = match unit {
        "" => 0,
        "K" | "k" => 10,
        "M" | "m" => 20,
        "G" | "g" => 30,
        "T" | "t" => 40,
        _ => return Err(format!("`{text}` has an unknown unit `{unit}`")),
    };
    value
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// The smallest `memory` that can start an interpreter at all.
const MIN_MEMORY: u64 = 16 << 20;

/// Checks `[task.sandbox]`, when present.
pub(crate) fn check(spec: &CampaignSpec) -> Result<(), SpecError> {
    let task = &spec.spec.task;
    let Some(sandbox) = &task.sandbox else {
        return Ok(());
    };
    fn at(key: &str) -> [&str; 3] {
        ["task", "sandbox", key]
    }
    if matches!(task.kind, TaskKind::Table | TaskKind::Builtin) {
        return Err(spec.error_at(
            &["task", "sandbox"],
            "`[task.sandbox]` applies to tasks that run a program (command and code tasks)",
            "remove `[task.sandbox]`, or change `kind`",
        ));
    }
    for (key, text, min) in [
        ("memory", &sandbox.memory, MIN_MEMORY),
        ("file_size", &sandbox.file_size, 1),
    ] {
        match parse_size(text) {
            Ok(bytes) if bytes >= min => {}
            Ok(_) => {
                return Err(spec.error_at(
                    &at(key),
                    format!("{key} = \"{text}\" is too small"),
                    format!("set {key} to at least {} bytes, e.g. \"2G\"", min),
                ));
            }
            Err(message) => {
                return Err(spec.error_at(
                    &at(key),
                    message,
                    format!("write {key} as a number with K, M, G or T, e.g. \"2G\""),
                ));
            }
        }
    }
    for (key, value) in [
        ("processes", sandbox.processes),
        ("open_files", sandbox.open_files),
    ] {
        if value == 0 {
            return Err(spec.error_at(
                &at(key),
                format!("{key} = 0 would stop the trial's program from starting"),
                format!("set {key} to at least 1, or remove it for the default"),
            ));
        }
    }
    if sandbox.cpu == Some(Duration(0)) {
        return Err(spec.error_at(
            &at("cpu"),
            "cpu = 0 would stop the trial's program at once",
            "set cpu to a duration such as \"30m\", or remove it for the trial timeout",
        ));
    }
    if let Some(path) = sandbox.read.iter().find(|p| p.is_empty()) {
        return Err(spec.error_at(
            &at("read"),
            format!("read names an empty path `{path}`"),
            "name folders or files, relative to the spec file's folder",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_units() {
        for (text, bytes) in [
            ("512", 512),
            ("64K", 64 << 10),
            ("2G", 2 << 30),
            ("2GiB", 2 << 30),
            ("512MB", 512 << 20),
            ("1T", 1 << 40),
        ] {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
        for bad in ["", "G", "2X", "-1G", "1.5G", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    fn spec(sandbox: &str, kind: &str) -> Result<CampaignSpec, SpecError> {
        let task = match kind {
            "command" => "kind = \"command\"\ncommand = [\"python3\", \"t.py\"]",
            _ => "kind = \"table\"\npath = \"t.csv\"",
        };
        let text = format!(
            "[campaign]\nname = \"c\"\n[objective]\nmetric = \"m\"\ndirection = \"minimize\"\n\
             [space]\nx = {{ type = \"float\", low = 0.0, high = 1.0 }}\n[search]\n\
             sampler = \"random\"\nn_trials = 1\n[task]\n{task}\n[task.sandbox]\n{sandbox}\n"
        );
        CampaignSpec::parse(&text, "c.toml")
    }

    #[test]
    fn the_table_alone_turns_the_sandbox_on_with_defaults() {
        let parsed = spec("", "command").expect("valid");
        let sandbox = parsed.spec.task.sandbox.expect("present");
        assert_eq!(sandbox, SandboxSpec::default());
        assert_eq!(sandbox.memory_bytes(), 4 << 30);
        assert!(sandbox.require && !sandbox.network);
    }

    #[test]
    fn bad_values_are_located_errors_with_hints() {
        for (body, key, words) in [
            ("memory = \"2Q\"", "task.sandbox.memory", "unknown unit"),
            ("memory = \"1M\"", "task.sandbox.memory", "too small"),
            ("file_size = \"x\"", "task.sandbox.file_size", "not a size"),
            ("processes = 0", "task.sandbox.processes", "processes = 0"),
            ("cpu = \"0s\"", "task.sandbox.cpu", "cpu = 0"),
            ("network = \"yes\"", "task.sandbox.network", ""),
            ("colour = 1", "task.sandbox", "colour"),
        ] {
            let error = spec(body, "command").expect_err(body);
            assert!(error.key.starts_with(key), "{body}: {error}");
            assert!(error.message.contains(words), "{body}: {error}");
            assert!(!error.hint.is_empty(), "{body}");
        }
        let error = spec("", "table").expect_err("table");
        assert!(error.message.contains("command and code tasks"), "{error}");
    }
}
