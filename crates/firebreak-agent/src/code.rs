//! Code mode: the request that shows the agent a parent program (its editable
//! files, its score and log, or the failure it must fix) and reading the answer
//! as whole files or a unified diff of the editable files. Anything that touches
//! another file is refused before it runs; a diff that does not apply is
//! reported as such, so the runner can ask for whole files instead.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::ChatRequest;
use crate::schema::MAX_RATIONALE;

/// What the agent is shown for one code proposal.
#[derive(Debug, Clone, PartialEq)]
pub struct CodeContext {
    /// The parent's editable files, by path.
    pub files: BTreeMap<String, String>,
    /// The parent's result in words (its score, or "the original program").
    pub parent: String,
    /// When fixing a failed candidate: its failure and log tail.
    pub failure: Option<String>,
    /// Earlier candidates in a line each (number, score or failure).
    pub history: Vec<String>,
    /// The dataset in words (what the program reads, what it must write).
    pub task: String,
    /// Ask for whole files only (after a diff that did not apply).
    pub whole_files_only: bool,
}

/// A code answer read: the candidate's editable files (all of them, the
/// unchanged ones copied from the parent) and the rationale.
#[derive(Debug, Clone, PartialEq)]
pub struct CodeAnswer {
    /// Every editable file of the candidate.
    pub files: BTreeMap<String, String>,
    /// Why, in the agent's words.
    pub rationale: String,
    /// Changes of governed settings the agent asks for (a new editable file, a
    /// longer timeout).
    pub asks: Vec<crate::Ask>,
}

/// Why a code answer is refused.
#[derive(Debug, Clone, PartialEq)]
pub struct CodeRefusal {
    /// The reason the ledger records.
    pub reason: String,
    /// The answer was a diff that did not apply to the parent (ask again for
    /// whole files).
    pub diff_failed: bool,
}

const SYSTEM: &str = "You improve a machine-learning training program. You see the \
program's editable files, how it scored, and what failed. Answer with one JSON object: \
{\"rationale\": <one or two sentences>, \"files\": {<path>: <the whole new file>}} \
replacing only editable files, or {\"rationale\": ..., \"diff\": <a unified diff of \
editable files>}. The program must keep reading its data from $FIREBREAK_DATA_DIR and \
writing its predictions to $FIREBREAK_TRIAL_DIR/predictions.jsonl; it runs without \
network, with limited memory and time. Plain Python 3 standard library only. You change \
no limit yourself: to ask for one (another editable file, a longer trial_timeout), add \
\"asks\": [{\"path\": \"/task/editable\", \"value\": [...], \"why\": ...}] and people will decide.";

/// Longest excerpt of a failure shown in the prompt, in characters.
const FAILURE_CHARS: usize = 3000;

/// The request for a candidate program: the parent's files and results, and
/// the schema of an answer (`files` limited to the editable paths).
pub fn code_request(editable: &[String], context: &CodeContext, seed: u64) -> ChatRequest {
    let mut user = format!(
        "Task: {}\n\nParent program: {}\n",
        context.task, context.parent
    );
    for (path, text) in &context.files {
        user.push_str(&format!("\n--- {path} ---\n{text}\n"));
    }
    if !context.history.is_empty() {
        user.push_str("\nEarlier candidates:\n");
        for line in &context.history {
            user.push_str(&format!("- {line}\n"));
        }
    }
    match &context.failure {
        Some(failure) => {
            let excerpt: String = failure.chars().take(FAILURE_CHARS).collect();
            user.push_str(&format!(
                "\nThis program failed:\n{excerpt}\n\nFix it so that it runs and writes its predictions."
            ));
        }
        None => user.push_str("\nPropose a change that raises the validation accuracy."),
    }
    if context.whole_files_only {
        user.push_str(" Answer with whole files (\"files\"), not a diff.");
    }
    let mut files = Map::new();
    for path in editable {
        files.insert(path.clone(), json!({"type": "string"}));
    }
    let mut properties = Map::new();
    properties.insert(
        "rationale".into(),
        json!({"type": "string", "maxLength": MAX_RATIONALE}),
    );
    properties.insert(
        "files".into(),
        json!({"type": "object", "properties": files, "additionalProperties": false}),
    );
    properties.insert("asks".into(), crate::asks::asks_schema());
    let schema = json!({
        "type": "object",
        "properties": properties,
        // Whole files are required: under constrained decoding a small model
        // otherwise stops after the rationale (bench/results/agent.md). A diff
        // is still read from servers that do not constrain their answers.
        "required": ["rationale", "files"],
        "additionalProperties": false,
    });
    ChatRequest::structured(SYSTEM, user, "candidate", schema, seed)
}

/// Reads a code answer against the parent's `files`: whole replacements of
/// editable files, or a unified diff of them. Refused: not JSON, both or neither
/// of `files` and `diff`, a path outside `editable`, an empty file, a diff that
/// does not parse or apply.
pub fn parse_code_answer(
    content: &str,
    editable: &[String],
    parent: &BTreeMap<String, String>,
) -> Result<CodeAnswer, CodeRefusal> {
    let refuse = |reason: String| CodeRefusal {
        reason,
        diff_failed: false,
    };
    let value: Value = serde_json::from_str(content.trim()).map_err(|e| {
        let start: String = content.trim().chars().take(80).collect();
        refuse(format!("the answer is not JSON ({e}): {start:?}"))
    })?;
    let Value::Object(answer) = value else {
        return Err(refuse("the answer is not a JSON object".into()));
    };
    if let Some(key) = answer
        .keys()
        .find(|k| !["rationale", "files", "diff", "asks"].contains(&k.as_str()))
    {
        return Err(refuse(format!("the answer has an unknown key `{key}`")));
    }
    let rationale: String = answer
        .get("rationale")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .chars()
        .take(MAX_RATIONALE)
        .collect();
    let asks = crate::asks::parse_asks(answer.get("asks")).map_err(refuse)?;
    let mut files = parent.clone();
    match (answer.get("files"), answer.get("diff")) {
        (Some(Value::Object(given)), None) if !given.is_empty() => {
            for (path, text) in given {
                if !editable.contains(path) {
                    return Err(refuse(format!(
                        "the answer touches `{path}`, which is not an editable file ({})",
                        editable.join(", ")
                    )));
                }
                let Some(text) = text.as_str().filter(|t| !t.trim().is_empty()) else {
                    return Err(refuse(format!("`{path}` is empty or not a string")));
                };
                files.insert(path.clone(), text.to_string());
            }
        }
        (None, Some(Value::String(diff))) => {
            for (path, patch) in split_diff(diff) {
                if !editable.contains(&path) {
                    return Err(refuse(format!(
                        "the diff touches `{path}`, which is not an editable file ({})",
                        editable.join(", ")
                    )));
                }
                let failed = |why: String| CodeRefusal {
                    reason: format!("the diff of `{path}` does not apply: {why}"),
                    diff_failed: true,
                };
                let parsed = diffy::Patch::from_str(&patch).map_err(|e| failed(e.to_string()))?;
                let base = files.get(&path).cloned().unwrap_or_default();
                let patched = diffy::apply(&base, &parsed).map_err(|e| failed(e.to_string()))?;
                files.insert(path, patched);
            }
            if files == *parent {
                return Err(CodeRefusal {
                    reason: "the diff changes nothing (no file header names an editable file, \
                             or its hunks are empty)"
                        .into(),
                    diff_failed: true,
                });
            }
        }
        _ => {
            return Err(refuse(
                "the answer must carry exactly one of `files` (a non-empty object) and `diff` (a string)"
                    .into(),
            ));
        }
    }
    Ok(CodeAnswer {
        files,
        rationale,
        asks,
    })
}

/// A unified diff split into one patch per file, keyed by the path its `+++`
/// header names (with the conventional `a/` and `b/` prefixes removed).
fn split_diff(diff: &str) -> Vec<(String, String)> {
    let mut patches: Vec<(String, String)> = Vec::new();
    let lines: Vec<&str> = diff.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let starts =
            lines[i].starts_with("--- ") && lines.get(i + 1).is_some_and(|l| l.starts_with("+++ "));
        if starts {
            let path = lines[i + 1][4..]
                .split('\t')
                .next()
                .unwrap_or_default()
                .trim();
            let path = path
                .strip_prefix("b/")
                .or_else(|| path.strip_prefix("a/"))
                .unwrap_or(path)
                .to_string();
            patches.push((path, format!("{}\n{}\n", lines[i], lines[i + 1])));
            i += 2;
            continue;
        }
        if let Some((_, patch)) = patches.last_mut() {
            patch.push_str(lines[i]);
            patch.push('\n');
        }
        i += 1;
    }
    patches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parent() -> BTreeMap<String, String> {
        [("train.py".to_string(), "a = 1\nb = 2\nc = 3\n".to_string())].into()
    }

    fn editable() -> Vec<String> {
        vec!["train.py".to_string()]
    }

    fn check(content: &str, expected: Result<&str, &str>) {
        match (parse_code_answer(content, &editable(), &parent()), expected) {
            (Ok(answer), Ok(want)) => assert_eq!(answer.files["train.py"], want),
            (Err(refusal), Err(want)) => {
                assert!(
                    refusal.reason.contains(want),
                    "{:?} lacks {want:?}",
                    refusal.reason
                )
            }
            (got, want) => panic!("{content}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn whole_files_and_diffs_of_editable_files_only() {
        check(
            r#"{"rationale":"r","files":{"train.py":"a = 5\n"}}"#,
            Ok("a = 5\n"),
        );
        let diff =
            "--- a/train.py\n+++ b/train.py\n@@ -1,3 +1,3 @@\n a = 1\n-b = 2\n+b = 20\n c = 3\n";
        check(
            &json!({"rationale": "r", "diff": diff}).to_string(),
            Ok("a = 1\nb = 20\nc = 3\n"),
        );
        check(
            r#"{"files":{"evaluate.py":"print(1)"}}"#,
            Err("`evaluate.py`, which is not an editable file"),
        );
        let other = "--- a/labels.json\n+++ b/labels.json\n@@ -1 +1 @@\n-x\n+y\n";
        check(
            &json!({"diff": other}).to_string(),
            Err("the diff touches `labels.json`"),
        );
        let stale =
            "--- a/train.py\n+++ b/train.py\n@@ -1,3 +1,3 @@\n a = 9\n-b = 7\n+b = 20\n c = 3\n";
        let refusal =
            parse_code_answer(&json!({"diff": stale}).to_string(), &editable(), &parent())
                .expect_err("a stale diff");
        assert!(refusal.diff_failed && refusal.reason.contains("does not apply"));
        check(r#"{"files":{"train.py":"  "}}"#, Err("empty"));
        check(r#"{"rationale":"r"}"#, Err("exactly one of"));
        check("print('hello')", Err("not JSON"));
    }
}
