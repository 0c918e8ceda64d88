//! Which edits of a spec are governed, and the requests they raise.
//!
//! The mapping follows `contract.md`: `[constraints]` and `n_trials` → `budget`;
//! space bounds, choices, added or removed parameters → `space`; approvers,
//! quorum and the request time-to-live → `approvers`; the policy → `policy`;
//! tripwires, the objective and the task's evaluation → `evaluation`. Everything
//! else (the sampler, the scheduler, parallelism, retries, timeouts, the seed)
//! changes without a request; the description is ignored. The table itself is
//! `firebreak_ledger::classify_path`, so the audit replays every spec change by
//! the same rule.

use std::collections::BTreeMap;

use firebreak_ledger::{EditClass, RequestKind, classify_path};
use firebreak_spec::Change;
use serde_json::{Value, json};

/// An edit of a spec, split by what it needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Classified {
    /// Governed changes by the kind of request they raise.
    pub governed: BTreeMap<RequestKind, Vec<Change>>,
    /// Changes that take effect at once (recorded in the ledger).
    pub free: Vec<Change>,
}

/// Splits the differences between two canonical specs.
pub fn classify(changes: Vec<Change>) -> Classified {
    let mut out = Classified::default();
    for change in changes {
        match classify_path(&change.path) {
            EditClass::Ignored => {}
            EditClass::Governed(kind) => out.governed.entry(kind).or_default().push(change),
            EditClass::Free => out.free.push(change),
        }
    }
    out
}

/// The RFC 6902 patch (`add`, `remove`, `replace`) that makes these changes.
pub fn patch_of(changes: &[Change]) -> Value {
    Value::Array(
        changes
            .iter()
            .map(|c| match (&c.old, &c.new) {
                (None, Some(value)) => json!({"op": "add", "path": c.path, "value": value}),
                (Some(_), None) => json!({"op": "remove", "path": c.path}),
                (_, value) => json!({"op": "replace", "path": c.path, "value": value}),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_are_split_by_the_request_they_raise() {
        let old = json!({
            "campaign": {"name": "c", "description": "a", "seed": 0},
            "search": {"n_trials": 10, "sampler": "tpe"},
            "space": {"x": {"low": 0, "high": 1}},
            "constraints": {"max_trials": 10},
            "governance": {"quorum": 1}
        });
        let new = json!({
            "campaign": {"name": "c", "description": "b", "seed": 0},
            "search": {"n_trials": 20, "sampler": "random"},
            "space": {"x": {"low": 0, "high": 2}},
            "constraints": {"max_trials": 20},
            "governance": {"quorum": 2}
        });
        let split = classify(firebreak_spec::diff(&old, &new));
        let kinds: Vec<(RequestKind, usize)> =
            split.governed.iter().map(|(k, v)| (*k, v.len())).collect();
        assert_eq!(
            kinds,
            [
                (RequestKind::Space, 1),
                (RequestKind::Approvers, 1),
                (RequestKind::Budget, 2)
            ]
        );
        assert_eq!(split.free.len(), 1);
        let patch = patch_of(&split.governed[&RequestKind::Budget]);
        assert_eq!(
            firebreak_ledger::apply_patch(&old, &patch).expect("applies")["search"]["n_trials"],
            20
        );
    }
}
