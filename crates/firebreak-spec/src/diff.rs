//! Differences between two canonical specs, as JSON-pointer paths with old and new
//! values (the raw material of RFC 6902 patches and of the "spec changed" message).

use serde_json::Value;

/// One changed value.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// RFC 6901 JSON pointer, e.g. `/search/n_trials`.
    pub path: String,
    /// The old value; `None` when the key was added.
    pub old: Option<Value>,
    /// The new value; `None` when the key was removed.
    pub new: Option<Value>,
}

/// Every difference between `old` and `new`, objects compared key by key, anything
/// else compared whole; in path order.
pub fn diff(old: &Value, new: &Value) -> Vec<Change> {
    let mut changes = Vec::new();
    walk(String::new(), Some(old), Some(new), &mut changes);
    changes
}

fn walk(path: String, old: Option<&Value>, new: Option<&Value>, out: &mut Vec<Change>) {
    match (old, new) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let escaped = key.replace('~', "~0").replace('/', "~1");
                walk(format!("{path}/{escaped}"), a.get(key), b.get(key), out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(Change {
            path,
            old: a.cloned(),
            new: b.cloned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reports_changed_added_and_removed_keys() {
        let old = json!({"search": {"n_trials": 10, "sampler": "random"}, "a": 1});
        let new = json!({"search": {"n_trials": 20, "sampler": "random"}, "b": 2});
        let paths: Vec<String> = diff(&old, &new).into_iter().map(|c| c.path).collect();
        assert_eq!(paths, ["/a", "/b", "/search/n_trials"]);
    }
}
