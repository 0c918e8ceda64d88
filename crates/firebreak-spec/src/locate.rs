//! Finding places in the spec's text: the key path at a byte offset (for parser
//! errors, which come with a span) and the position of a key path (for semantic
//! errors found after parsing). A light scanner of TOML's line structure is enough
//! here because the text has already parsed.

/// 1-based (line, column) of a byte offset.
pub(crate) fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// The table header in force at `line_index` (0-based), as key parts.
fn header_before(lines: &[&str], line_index: usize) -> Vec<String> {
    for line in lines[..=line_index.min(lines.len().saturating_sub(1))]
        .iter()
        .rev()
    {
        if let Some(header) = parse_header(line) {
            return header;
        }
    }
    Vec::new()
}

fn parse_header(line: &str) -> Option<Vec<String>> {
    let trimmed = line.trim();
    if !trimmed.starts_with('[') {
        return None;
    }
    let inner = trimmed.trim_start_matches('[');
    let end = inner.find(']')?;
    Some(
        inner[..end]
            .split('.')
            .map(|p| p.trim().trim_matches('"').to_string())
            .collect(),
    )
}

/// The key written at the start of a `key = value` line, if any.
fn leading_key(line: &str) -> Option<&str> {
    let trimmed = line.trim_start();
    let end = trimmed.find('=')?;
    let key = trimmed[..end].trim().trim_matches('"');
    (!key.is_empty() && !key.starts_with('[') && !key.starts_with('#')).then_some(key)
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// The dotted key path of the value or key at `offset`.
pub(crate) fn key_path_at(source: &str, offset: usize) -> String {
    let offset = offset.min(source.len());
    let lines: Vec<&str> = source.split('\n').collect();
    let (line_no, _) = line_column(source, offset);
    let line_index = line_no - 1;
    let mut parts = header_before(&lines, line_index);
    let line = lines.get(line_index).copied().unwrap_or("");
    if parse_header(line).is_some() {
        return parts.join(".");
    }
    let line_start = source[..offset].rfind('\n').map_or(0, |i| i + 1);
    let column = offset - line_start;
    if let Some(first) = leading_key(line) {
        parts.push(first.to_string());
    }
    // Inside an inline table: the nearest `key =` before the offset, or the key the
    // offset points at (unknown keys are reported at the key itself).
    if let Some(open) = line.find('{').filter(|&open| open < column) {
        let upto = &line[..column];
        let at_key: String = line[column..]
            .chars()
            .take_while(|c| is_key_char(*c))
            .collect();
        let rest = line[column + at_key.len()..].trim_start();
        let inner = if !at_key.is_empty() && rest.starts_with('=') {
            Some(at_key)
        } else {
            upto[open..].rfind('=').map(|eq| {
                let before = upto[open..open + eq].trim_end();
                let start = before.rfind(|c: char| !is_key_char(c)).map_or(0, |i| i + 1);
                before[start..].to_string()
            })
        };
        if let Some(inner) = inner.filter(|k| !k.is_empty()) {
            parts.push(inner);
        }
    }
    parts.join(".")
}

/// The (line, column) where the key path is written; falls back to the nearest
/// enclosing table, then to the top of the file.
pub(crate) fn position_of(source: &str, path: &[&str]) -> (usize, usize) {
    let lines: Vec<&str> = source.split('\n').collect();
    let mut best = (1, 1);
    for depth in (1..=path.len()).rev() {
        // Table header `[a.b]` for the first `depth` parts.
        let (table, rest) = path.split_at(depth);
        for (i, line) in lines.iter().enumerate() {
            let Some(header) = parse_header(line) else {
                continue;
            };
            if header.iter().map(String::as_str).ne(table.iter().copied()) {
                continue;
            }
            let col = line.find('[').map_or(1, |c| c + 1);
            best = (i + 1, col);
            let Some(key) = rest.first() else {
                return best;
            };
            for (j, body) in lines.iter().enumerate().skip(i + 1) {
                if parse_header(body).is_some() {
                    break;
                }
                if leading_key(body) != Some(key) {
                    continue;
                }
                let key_col = body.find(key).unwrap_or(0);
                if let Some(inner) = rest.get(1) {
                    // `key = { inner = … }`
                    let mut search_from = key_col + key.len();
                    while let Some(found) = body[search_from..].find(inner) {
                        let at = search_from + found;
                        let before_ok = !body[..at].ends_with(is_key_char);
                        let after = body[at + inner.len()..].trim_start();
                        if before_ok && after.starts_with('=') {
                            return (j + 1, at + 1);
                        }
                        search_from = at + inner.len();
                    }
                }
                return (j + 1, key_col + 1);
            }
            return best;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str =
        "[campaign]\nname = \"x\"\n\n[space]\nlr = { type = \"float\", low = \"a\", high = 1 }\n";

    #[test]
    fn key_paths_from_offsets() {
        let at_value = SOURCE.find("\"a\"").expect("present");
        assert_eq!(key_path_at(SOURCE, at_value), "space.lr.low");
        let at_name = SOURCE.find("\"x\"").expect("present");
        assert_eq!(key_path_at(SOURCE, at_name), "campaign.name");
        let at_key = SOURCE.find("high").expect("present");
        assert_eq!(key_path_at(SOURCE, at_key), "space.lr.high");
    }

    #[test]
    fn positions_from_key_paths() {
        assert_eq!(position_of(SOURCE, &["space", "lr", "low"]), (5, 24));
        assert_eq!(position_of(SOURCE, &["space", "lr"]), (5, 1));
        assert_eq!(position_of(SOURCE, &["campaign", "seed"]), (1, 1));
        assert_eq!(position_of(SOURCE, &["search", "n_trials"]), (1, 1));
    }
}
