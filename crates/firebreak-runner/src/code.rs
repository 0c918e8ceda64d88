//! Code tasks (`[task] kind = "code"`): a program a language-model agent
//! edits, run in its sandbox and scored by the engine.
//!
//! Each candidate runs in a copy of the workspace (`<trial>/program/`,
//! readable, not writable) with its editable files replaced by the texts its
//! proposal names by hash (checked against the hash when materialised). It reads
//! `$FIREBREAK_DATA_DIR/train.jsonl` (features and labels) and
//! `val_inputs.jsonl` (features only) and writes one label per validation input
//! to `$FIREBREAK_TRIAL_DIR/predictions.jsonl`. The validation labels never
//! leave this process: the engine scores the predictions, and only its score
//! (`val_accuracy`) counts; a metric the candidate prints is kept as
//! `claimed_<name>`. NaN, infinity, a wrong count or type is a failed trial.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use firebreak_core::{Metrics, Trial};
use firebreak_store::Store;

use crate::RunnerError;

/// The engine's side of a code task.
#[derive(Debug)]
pub struct CodeTask {
    /// The parent program's folder.
    pub workspace: PathBuf,
    /// The files the agent may replace.
    pub editable: Vec<String>,
    /// Where the training data and the validation inputs are written.
    pub data_dir: PathBuf,
    /// The dataset's name and shape, for the prompt.
    pub description: String,
    val_labels: Vec<u32>,
    data: firebreak_data::Dataset,
}

impl CodeTask {
    /// The code task of `spec`: loads its dataset; the candidates' inputs go
    /// under `<trials_root>/<campaign>/data/` ([`CodeTask::write_inputs`]).
    pub fn from_spec(
        spec: &firebreak_spec::CampaignSpec,
        spec_dir: &Path,
        trials_root: &Path,
    ) -> Result<Self, RunnerError> {
        let task = &spec.spec.task;
        let name = task.dataset.as_deref().unwrap_or_default();
        let data = firebreak_data::load_split(name, task.split_seed).map_err(|e| {
            RunnerError::Spec(spec.error_at(
                &["task", "dataset"],
                e.to_string(),
                "use a bundled dataset such as \"digits\"",
            ))
        })?;
        let root = std::path::absolute(trials_root).unwrap_or_else(|_| trials_root.to_path_buf());
        let data_dir = crate::command::trial_folder(&root, spec.name(), 0)?
            .parent()
            .map(|p| p.join("data"))
            .unwrap_or_default();
        let width = data.shape.size();
        Ok(CodeTask {
            workspace: spec_dir.join(task.workspace.as_deref().unwrap_or(".")),
            editable: task.editable.clone(),
            description: format!(
                "classify {} examples of {name} ({width} features each, {} classes): train on \
                 train.jsonl (lines {{\"x\": [...], \"y\": label}}), predict val_inputs.jsonl \
                 (lines {{\"index\": i, \"x\": [...]}}), write predictions.jsonl lines \
                 {{\"split\": \"val\", \"index\": i, \"label\": k}}",
                data.val.n, data.classes
            ),
            data_dir,
            val_labels: (0..data.val.n)
                .map(|i| data.val.y[i * data.targets])
                .collect(),
            data,
        })
    }

    /// Writes the candidates' inputs (`train.jsonl`, `val_inputs.jsonl`) into
    /// the data folder, unless they are there already; the run calls it, never
    /// `validate`.
    pub fn write_inputs(&self) -> Result<(), RunnerError> {
        let io = |context: String| move |source| RunnerError::Io { context, source };
        let data_dir = &self.data_dir;
        std::fs::create_dir_all(data_dir)
            .map_err(io(format!("creating {}", data_dir.display())))?;
        let data = &self.data;
        let width = data.shape.size();
        let rows = |split: &firebreak_data::Split, labels: bool| -> String {
            let mut text = String::new();
            for i in 0..split.n {
                let x = &split.x[i * width..(i + 1) * width];
                let line = if labels {
                    serde_json::json!({"x": x, "y": split.y[i * data.targets]})
                } else {
                    serde_json::json!({"index": i, "x": x})
                };
                text.push_str(&line.to_string());
                text.push('\n');
            }
            text
        };
        for (file, text) in [
            ("train.jsonl", rows(&data.train, true)),
            ("val_inputs.jsonl", rows(&data.val, false)),
        ] {
            let path = data_dir.join(file);
            if !path.exists() {
                let partial = data_dir.join(format!(".{file}.partial"));
                std::fs::File::create(&partial)
                    .and_then(|mut f| f.write_all(text.as_bytes()))
                    .and_then(|()| std::fs::rename(&partial, &path))
                    .map_err(io(format!("writing {}", path.display())))?;
            }
        }
        Ok(())
    }

    /// The same task for the champion's one test evaluation: its inputs are the
    /// training examples and the *test* inputs in the place of the validation
    /// inputs (`<campaign>/data-test/`), scored against the test labels, so the
    /// program runs exactly as it did for validation.
    pub fn for_test(&self) -> CodeTask {
        let mut data = self.data.clone();
        data.val = data.test.clone();
        CodeTask {
            workspace: self.workspace.clone(),
            editable: self.editable.clone(),
            data_dir: self.data_dir.with_file_name("data-test"),
            description: self.description.clone(),
            val_labels: (0..data.val.n)
                .map(|i| data.val.y[i * data.targets])
                .collect(),
            data,
        }
    }

    /// The workspace's editable files as they are (the original parent).
    pub fn original_files(&self) -> Result<BTreeMap<String, String>, RunnerError> {
        self.editable
            .iter()
            .map(|path| {
                let full = self.workspace.join(path);
                std::fs::read_to_string(&full)
                    .map(|text| (path.clone(), text))
                    .map_err(|source| RunnerError::Io {
                        context: format!("reading the workspace's {}", full.display()),
                        source,
                    })
            })
            .collect()
    }

    /// The editable files of `trial`: the texts its proposal names by hash, each
    /// checked against its hash; the workspace's for a trial that names none.
    pub async fn files_of<S: Store>(
        &self,
        store: &S,
        trial: &Trial,
    ) -> Result<Result<BTreeMap<String, String>, String>, RunnerError> {
        let named = trial
            .proposer_state
            .as_ref()
            .and_then(|s| s["agent"]["files"].as_object());
        let Some(named) = named else {
            return Ok(Ok(self.original_files()?));
        };
        let mut files = self.original_files()?;
        for (path, hash) in named {
            let hash = hash.as_str().unwrap_or_default();
            match store.agent_text(hash).await? {
                Some(text) if firebreak_agent::sha256_hex(&text) == hash => {
                    files.insert(path.clone(), text);
                }
                _ => {
                    return Ok(Err(format!(
                        "the candidate's {path} (sha256 {hash}) is missing from the store or \
                         was edited; `firebreak audit verify` says which"
                    )));
                }
            }
        }
        Ok(Ok(files))
    }

    /// Copies the workspace to `program` and writes `files` over it.
    pub fn materialise(
        &self,
        program: &Path,
        files: &BTreeMap<String, String>,
    ) -> Result<(), RunnerError> {
        let io = |context: String| move |source| RunnerError::Io { context, source };
        if program.exists() {
            std::fs::remove_dir_all(program)
                .map_err(io(format!("clearing {}", program.display())))?;
        }
        copy_tree(&self.workspace, program).map_err(io(format!(
            "copying the workspace {} to {}",
            self.workspace.display(),
            program.display()
        )))?;
        for (path, text) in files {
            let target = program.join(path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(io(format!("creating {}", parent.display())))?;
            }
            std::fs::write(&target, text).map_err(io(format!("writing {}", target.display())))?;
        }
        Ok(())
    }

    /// The engine's score of the predictions in `work`: `val_accuracy`, or why
    /// they cannot be scored.
    pub fn score(&self, work: &Path) -> Result<Metrics, String> {
        let path = work.join("predictions.jsonl");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "no predictions: {} ({e}); a code trial writes one label per validation input",
                path.display()
            )
        })?;
        let n = self.val_labels.len();
        let mut labels: Vec<Option<u32>> = vec![None; n];
        let mut put =
            |index: &serde_json::Value, label: &serde_json::Value| -> Result<(), String> {
                let i = index
                    .as_u64()
                    .filter(|i| (*i as usize) < n)
                    .ok_or_else(|| format!("prediction index {index} is not one of 0..{n}"))?;
                let k = label
                    .as_u64()
                    .and_then(|k| u32::try_from(k).ok())
                    .ok_or_else(|| {
                        format!("prediction {i}: label {label} is not a whole class number")
                    })?;
                if labels[i as usize].replace(k).is_some() {
                    return Err(format!("prediction {i} is given twice"));
                }
                Ok(())
            };
        for (line_number, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let value: serde_json::Value = serde_json::from_str(line).map_err(|e| {
                format!("predictions.jsonl line {}: not JSON ({e})", line_number + 1)
            })?;
            match &value {
                serde_json::Value::Array(all) => {
                    for (i, label) in all.iter().enumerate() {
                        put(&serde_json::json!(i), label)?;
                    }
                }
                serde_json::Value::Object(p)
                    if p.get("split").and_then(|s| s.as_str()) == Some("val") =>
                {
                    put(&p["index"], &p["label"])?;
                }
                serde_json::Value::Object(p) if p.get("split").is_some() => {}
                _ => {
                    return Err(format!(
                        "predictions.jsonl line {}: expected {{\"split\": \"val\", \"index\": i, \"label\": k}} or an array of labels",
                        line_number + 1
                    ));
                }
            }
        }
        let given = labels.iter().filter(|l| l.is_some()).count();
        if given != n {
            return Err(format!(
                "{given} of the {n} validation inputs have a prediction"
            ));
        }
        let correct = labels
            .iter()
            .zip(&self.val_labels)
            .filter(|(p, y)| **p == Some(**y))
            .count();
        Ok([("val_accuracy".to_string(), correct as f64 / n as f64)].into())
    }
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
