//! The tabular task: a configuration is evaluated by looking it up in a benchmark
//! table (CSV: one column per parameter, then `seed0`, `seed1`, … holding the
//! measured score per training seed; an empty cell means that seed was not run).
//! Each evaluation draws one present seed with the trial's seeded RNG, as real
//! training would give one noisy result.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use firebreak_core::{Distribution, ParamValue, Params, Rng, SearchSpace};

use crate::RunnerError;

/// A loaded table, indexed for lookups by the campaign's parameters.
#[derive(Debug, Clone)]
pub struct TableTask {
    path: PathBuf,
    /// Parameter columns in the space's order, with their distinct cell values.
    columns: Vec<Column>,
    /// Row key (one value index per column) to the row's scores.
    rows: HashMap<Vec<u32>, usize>,
    scores: Vec<Vec<Option<f64>>>,
}

#[derive(Debug, Clone)]
struct Column {
    name: String,
    /// A float or integer parameter: cells that read as the same number are one
    /// value (`0.1` and `0.10`), as lookups match them.
    numeric: bool,
    values: Vec<String>,
}

/// A seed cell's score: `None` when empty (that seed was not run), the cell's
/// text as the error when it is not a finite number.
fn score(cell: &str) -> Result<Option<f64>, &str> {
    if cell.is_empty() {
        return Ok(None);
    }
    match cell.parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(Some(value)),
        _ => Err(cell),
    }
}

/// A configuration's number and a table cell are the same value: within a
/// relative 1e-6, because benchmark tables are often written to six or so
/// significant digits. Deliberately looser than the ledger audit's "equal up to
/// a double's text round trip"; the two mean different things.
fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-6 * a.abs().max(b.abs())
}

impl Column {
    /// The index of the cell value `value` matches: strings exactly, numbers within
    /// a relative 1e-6, booleans by name.
    fn index_of(&self, value: &ParamValue) -> Option<u32> {
        let position = match value {
            ParamValue::Str(s) => self.values.iter().position(|v| v == s),
            ParamValue::Bool(b) => self
                .values
                .iter()
                .position(|v| v.eq_ignore_ascii_case(if *b { "true" } else { "false" })),
            number => {
                let x = number.as_f64()?;
                self.values
                    .iter()
                    .position(|v| v.trim().parse::<f64>().is_ok_and(|y| close(x, y)))
            }
        };
        position.map(|p| p as u32)
    }

    /// The index of the cell `cell` while loading, adding it when new: the same
    /// matching as lookups, so two cells a lookup cannot tell apart are one value.
    fn intern(&mut self, cell: &str) -> u32 {
        let same = match cell.parse::<f64>() {
            Ok(x) if self.numeric => self.index_of(&ParamValue::Float(x)),
            _ => self.values.iter().position(|v| v == cell).map(|p| p as u32),
        };
        same.unwrap_or_else(|| {
            self.values.push(cell.to_string());
            (self.values.len() - 1) as u32
        })
    }
}

impl TableTask {
    /// Loads `path` and checks that its parameter columns are exactly the space's
    /// parameters.
    pub fn load(path: &Path, space: &SearchSpace) -> Result<Self, RunnerError> {
        let text = std::fs::read_to_string(path).map_err(|source| RunnerError::Io {
            context: format!("reading table {}", path.display()),
            source,
        })?;
        let bad = |message: String, hint: &str| RunnerError::Table {
            path: path.display().to_string(),
            message,
            hint: hint.to_string(),
        };
        const SHAPE: &str = "a table has one column per [space] parameter, then seed0, seed1, …";
        // Line numbers as an editor shows them: counted before blank lines are skipped.
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, line)| (i + 1, line))
            .filter(|(_, l)| !l.trim().is_empty());
        let header: Vec<&str> = lines
            .next()
            .ok_or_else(|| bad("the file is empty".into(), SHAPE))?
            .1
            .split(',')
            .map(str::trim)
            .collect();
        let is_seed = |name: &str| {
            name.strip_prefix("seed")
                .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
        };
        let seed_columns: Vec<usize> = (0..header.len()).filter(|&i| is_seed(header[i])).collect();
        if seed_columns.is_empty() {
            return Err(bad("no seed columns (seed0, seed1, …)".into(), SHAPE));
        }
        let param_columns: Vec<usize> =
            (0..header.len()).filter(|&i| !is_seed(header[i])).collect();
        for &i in &param_columns {
            if space.get(header[i]).is_none() {
                return Err(bad(
                    format!(
                        "column `{}` is not a parameter of [space]; every parameter column must be one",
                        header[i]
                    ),
                    SHAPE,
                ));
            }
        }
        // Space order, so keys do not depend on the column order of the file.
        let mut order: Vec<usize> = Vec::new();
        let mut columns: Vec<Column> = Vec::new();
        for p in space.parameters() {
            match param_columns.iter().find(|&&i| header[i] == p.name) {
                Some(&i) => {
                    order.push(i);
                    columns.push(Column {
                        name: p.name.clone(),
                        numeric: matches!(
                            p.distribution,
                            Distribution::Float { .. } | Distribution::Int { .. }
                        ),
                        values: Vec::new(),
                    });
                }
                None => {
                    return Err(bad(format!("parameter `{}` has no column", p.name), SHAPE));
                }
            }
        }
        let mut rows: HashMap<Vec<u32>, usize> = HashMap::new();
        let mut row_lines: Vec<usize> = Vec::new();
        let mut scores = Vec::new();
        for (line_no, line) in lines {
            let cells: Vec<&str> = line.split(',').map(str::trim).collect();
            if cells.len() != header.len() {
                return Err(bad(
                    format!(
                        "line {line_no} has {} cells, the header {}",
                        cells.len(),
                        header.len()
                    ),
                    SHAPE,
                ));
            }
            let key: Vec<u32> = order
                .iter()
                .zip(columns.iter_mut())
                .map(|(&i, column)| column.intern(cells[i]))
                .collect();
            let row = seed_columns
                .iter()
                .map(|&i| score(cells[i]).map_err(|value| (header[i], value)))
                .collect::<Result<Vec<Option<f64>>, _>>()
                .map_err(|(column, value)| {
                    bad(
                        format!("line {line_no}, column `{column}`: `{value}` is not a finite number"),
                        "a score is a finite number (e.g. 91.7); leave the cell empty for a seed that was not run",
                    )
                })?;
            if let Some(&first) = rows.get(&key) {
                let configuration: Vec<String> = order
                    .iter()
                    .map(|&i| format!("{}={}", header[i], cells[i]))
                    .collect();
                return Err(bad(
                    format!(
                        "line {line_no} repeats the configuration of line {} ({})",
                        row_lines[first],
                        configuration.join(", ")
                    ),
                    "keep one row per configuration, with each seed's score in its own seed column",
                ));
            }
            rows.insert(key, scores.len());
            row_lines.push(line_no);
            scores.push(row);
        }
        Ok(TableTask {
            path: path.to_path_buf(),
            columns,
            rows,
            scores,
        })
    }

    fn row(&self, params: &Params) -> Result<&[Option<f64>], String> {
        let mut key = Vec::with_capacity(self.columns.len());
        for column in &self.columns {
            let Some(value) = params.get(&column.name) else {
                return Err(format!(
                    "the table needs parameter `{}`, which is inactive",
                    column.name
                ));
            };
            match column.index_of(value) {
                Some(i) => key.push(i),
                None => {
                    return Err(format!(
                        "table {} has no value {value} in column `{}` (it has {})",
                        self.path.display(),
                        column.name,
                        column.values.join(", ")
                    ));
                }
            }
        }
        self.rows
            .get(&key)
            .map(|&r| self.scores[r].as_slice())
            .ok_or_else(|| {
                format!(
                    "table {} has no row for this configuration",
                    self.path.display()
                )
            })
    }

    /// One evaluation: the score of one present seed, drawn with `rng`.
    pub fn evaluate(&self, params: &Params, rng: &mut Rng) -> Result<f64, String> {
        let present: Vec<f64> = self.row(params)?.iter().flatten().copied().collect();
        if present.is_empty() {
            return Err("the table has no score for this configuration".into());
        }
        Ok(present[rng.below(present.len() as u64) as usize])
    }

    /// The mean score over the seeds present: how benchmarks judge a configuration.
    pub fn mean(&self, params: &Params) -> Result<f64, String> {
        let present: Vec<f64> = self.row(params)?.iter().flatten().copied().collect();
        if present.is_empty() {
            return Err("the table has no score for this configuration".into());
        }
        Ok(present.iter().sum::<f64>() / present.len() as f64)
    }

    /// How many configurations the table holds.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// True when the table holds no configuration.
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }
}
