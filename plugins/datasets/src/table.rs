//! A CSV file read whole, with errors that name the file, the line and the column.

// Parses user files: no `unwrap`, `expect` or unchecked indexing on what a file holds (every bad
// byte must become a named error, never a panic).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use cleft_core::ErrorKind;
use std::path::{Path, PathBuf};

use cleft_core::CleftError;

use crate::bad::{BadSamples, OnBadSample};

/// The rows of one CSV file (header first, as the data sets ship them).
#[derive(Debug)]
pub(crate) struct Table {
    path: PathBuf,
    headers: Vec<String>,
    rows: Vec<(u64, csv::StringRecord)>,
}

impl Table {
    /// Reads `path`. A row with another number of fields than the header is an error naming
    /// its line (`on_bad = Fail`) or is recorded in `bad` and left out (`Skip`).
    pub(crate) fn read(
        path: &Path,
        on_bad: OnBadSample,
        bad: &BadSamples,
    ) -> Result<Self, CleftError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_path(path)
            .map_err(|e| {
                CleftError::caused(
                    ErrorKind::Data,
                    format!("{}: cannot open the CSV", path.display()),
                    e,
                )
            })?;
        let headers = reader
            .headers()
            .map_err(|e| {
                CleftError::caused(
                    ErrorKind::Data,
                    format!("{}: cannot read the header row", path.display()),
                    e,
                )
            })?
            .iter()
            .map(|h| h.trim().to_string())
            .collect::<Vec<_>>();
        if headers.iter().all(String::is_empty) {
            return Err(CleftError::Data(format!(
                "{}: empty file (no header row)",
                path.display()
            )));
        }
        let mut rows = Vec::new();
        for record in reader.records() {
            match record {
                Ok(record) => {
                    let line = record.position().map_or(0, |p| p.line());
                    rows.push((line, record));
                }
                Err(error) => {
                    let line = error.position().map_or(0, |p| p.line());
                    let message = match error.kind() {
                        csv::ErrorKind::UnequalLengths {
                            expected_len, len, ..
                        } => format!("has {len} fields, the header has {expected_len}"),
                        _ => error.to_string(),
                    };
                    let source = format!("{}:{line}", path.display());
                    bad.handle(on_bad, &source, &message)?;
                }
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            headers,
            rows,
        })
    }

    /// Index of column `name`; an error naming the file and the columns it has.
    pub(crate) fn column(&self, name: &str) -> Result<usize, CleftError> {
        self.optional_column(name).ok_or_else(|| {
            CleftError::Data(format!(
                "{}: no column `{name}` (columns: {})",
                self.path.display(),
                self.headers.join(", ")
            ))
        })
    }

    /// Index of column `name`, if present.
    pub(crate) fn optional_column(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|h| h == name)
    }

    /// `(source, row)` pairs, `source` being `file:line` for error messages.
    pub(crate) fn rows(&self) -> impl Iterator<Item = (String, &csv::StringRecord)> {
        self.rows
            .iter()
            .map(|(line, row)| (format!("{}:{line}", self.path.display()), row))
    }
}

/// Cell `column` of `row` (the table checked every row's length).
pub(crate) fn cell(row: &csv::StringRecord, column: usize) -> &str {
    row.get(column).unwrap_or("").trim()
}
