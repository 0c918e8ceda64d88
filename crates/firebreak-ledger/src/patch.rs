//! RFC 6902 JSON Patch, the subset requests use (`add`, `remove`, `replace`), over
//! RFC 6901 pointers. Requests carry patches against a campaign's canonical spec;
//! the engine applies them when approved, and the audit re-applies them.

use serde_json::Value;

/// Applies `patch` (an array of operations) to a copy of `document`.
pub fn apply_patch(document: &Value, patch: &Value) -> Result<Value, String> {
    let operations = patch
        .as_array()
        .ok_or("a JSON Patch is an array of operations")?;
    let mut out = document.clone();
    for op in operations {
        let name = op.get("op").and_then(Value::as_str).unwrap_or_default();
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or("a patch operation needs a path")?;
        let (parent, last) = split(path)?;
        let container = parent
            .iter()
            .try_fold(&mut out, |node, token| child(node, token))
            .ok_or_else(|| format!("{path}: the parent does not exist"))?;
        match name {
            "add" | "replace" => {
                let value = op
                    .get("value")
                    .cloned()
                    .ok_or_else(|| format!("{path}: `{name}` needs a value"))?;
                match container {
                    Value::Object(map) => {
                        if name == "replace" && !map.contains_key(&last) {
                            return Err(format!("{path}: nothing to replace"));
                        }
                        map.insert(last, value);
                    }
                    Value::Array(items) => {
                        let index = if last == "-" && name == "add" {
                            items.len()
                        } else {
                            last.parse::<usize>()
                                .map_err(|_| format!("{path}: not an array index"))?
                        };
                        match name {
                            "add" if index <= items.len() => items.insert(index, value),
                            "replace" if index < items.len() => items[index] = value,
                            _ => return Err(format!("{path}: index out of range")),
                        }
                    }
                    _ => return Err(format!("{path}: the parent is not a container")),
                }
            }
            "remove" => {
                let removed = match container {
                    Value::Object(map) => map.remove(&last).is_some(),
                    Value::Array(items) => match last.parse::<usize>() {
                        Ok(i) if i < items.len() => {
                            items.remove(i);
                            true
                        }
                        _ => false,
                    },
                    _ => false,
                };
                if !removed {
                    return Err(format!("{path}: nothing to remove"));
                }
            }
            other => return Err(format!("unsupported patch operation {other:?}")),
        }
    }
    Ok(out)
}

fn split(path: &str) -> Result<(Vec<String>, String), String> {
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| format!("{path:?} is not a JSON pointer"))?;
    let mut tokens: Vec<String> = rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let last = tokens.pop().unwrap_or_default();
    Ok((tokens, last))
}

fn child<'a>(node: &'a mut Value, token: &str) -> Option<&'a mut Value> {
    match node {
        Value::Object(map) => map.get_mut(token),
        Value::Array(items) => items.get_mut(token.parse::<usize>().ok()?),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn applies_add_remove_and_replace() {
        let doc = json!({"search": {"n_trials": 10}, "space": {"x": {"low": 0, "high": 1}}});
        let patch = json!([
            {"op": "replace", "path": "/search/n_trials", "value": 20},
            {"op": "add", "path": "/space/y", "value": {"low": 1}},
            {"op": "remove", "path": "/space/x/low"}
        ]);
        assert_eq!(
            apply_patch(&doc, &patch),
            Ok(json!({"search": {"n_trials": 20}, "space": {"x": {"high": 1}, "y": {"low": 1}}}))
        );
        let bad = json!([{"op": "replace", "path": "/search/seed", "value": 1}]);
        assert!(apply_patch(&doc, &bad).is_err());
    }
}
