//! The spec's error type: always located, always with a hint.

use std::fmt;

/// A spec error with its location, the offending key, what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub struct SpecError {
    /// The file name as given by the caller.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Dotted key path, e.g. `space.lr.low`; empty when the whole file is at fault.
    pub key: String,
    /// What is wrong, with the offending value.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "`{}`: ", self.key)?;
        }
        write!(f, "{}\nhint: {}", self.message, self.hint)
    }
}
