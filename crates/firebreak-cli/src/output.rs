//! Rendering listings as tables, JSON or CSV. The JSON itself (the Trial JSON
//! of `contract.md` and the rest) comes from `firebreak_app`.

pub(crate) use firebreak_app::{format_number as number, format_param as param};
use firebreak_core::{Objectives, Trial};
use serde_json::Value;

use crate::Format;

/// Prints rows (the first is the header) in `format`; `json` is printed as is for JSON.
pub fn print_rows(format: Format, rows: &[Vec<String>], json: &Value) {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(json).unwrap_or_default()),
        Format::Csv => {
            // Whole fields, quoted as RFC 4180 says (commas, quotes, newlines).
            let mut writer = csv::WriterBuilder::new()
                .flexible(true)
                .from_writer(std::io::stdout().lock());
            for row in rows {
                if writer.write_record(row).is_err() {
                    return;
                }
            }
            let _ = writer.flush();
        }
        Format::Table => {
            let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
            let widths: Vec<usize> = (0..columns)
                .map(|i| {
                    rows.iter()
                        .filter_map(|r| r.get(i))
                        .map(|c| c.chars().count())
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            for row in rows {
                let mut line = String::new();
                for (i, cell) in row.iter().enumerate() {
                    if i + 1 == row.len() {
                        line.push_str(cell);
                    } else {
                        line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
                    }
                }
                println!("{}", line.trim_end());
            }
        }
    }
}

/// The trials table: number, state, objective values, params, error (its first
/// line, shortened, in a table; whole in CSV).
pub fn trial_rows(trials: &[Trial], objectives: &Objectives, format: Format) -> Vec<Vec<String>> {
    let generations = trials.iter().any(|t| t.generation.is_some());
    let mut header = vec!["number".to_string(), "state".to_string()];
    if generations {
        header.push("generation".to_string());
    }
    header.extend(objectives.metrics.iter().cloned());
    header.extend([
        "params".to_string(),
        "proposer".to_string(),
        "error".to_string(),
    ]);
    let mut rows = vec![header];
    for t in trials {
        let mut row = vec![t.number.to_string(), t.state.to_string()];
        if generations {
            row.push(t.generation.map(|g| g.to_string()).unwrap_or_default());
        }
        for m in &objectives.metrics {
            row.push(t.metrics.get(m).map(|v| number(*v)).unwrap_or_default());
        }
        let params: Vec<String> = t
            .params
            .iter()
            .map(|(k, v)| format!("{k}={}", param(v)))
            .collect();
        row.push(params.join(" "));
        row.push(t.proposer.clone());
        let error = t.error.clone().unwrap_or_default();
        row.push(match format {
            // A table shows the first line, shortened; CSV carries the whole text.
            Format::Table => error
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(80)
                .collect(),
            Format::Csv | Format::Json => error,
        });
        rows.push(row);
    }
    rows
}
