//! Configuration errors, each naming its file, line and column: a byte
//! span from the TOML parser becomes a line and column here.

use std::fmt;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// One problem in the configuration, with where it is.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", file.display())]
    At {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: {message}", file.display())]
    File { file: PathBuf, message: String },
}

/// Everything wrong with a configuration, one error a line.
#[derive(Debug, Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Collects errors for one file, turning byte spans into line and column.
pub(super) struct Sink<'a> {
    pub(super) file: &'a Path,
    pub(super) text: &'a str,
    pub(super) errors: &'a mut Vec<ConfigError>,
}

impl Sink<'_> {
    pub(super) fn at(&mut self, span: Option<std::ops::Range<usize>>, message: impl Into<String>) {
        let message = message.into();
        match span {
            Some(span) => {
                let (line, column) = line_col(self.text, span.start);
                self.errors.push(ConfigError::At {
                    file: self.file.to_path_buf(),
                    line,
                    column,
                    message,
                });
            }
            None => self.errors.push(ConfigError::File {
                file: self.file.to_path_buf(),
                message,
            }),
        }
    }

    pub(super) fn toml(&mut self, e: toml::de::Error) {
        self.at(e.span(), de_message(&e));
    }
}

/// A deserialization error's message, with `{field}` (see
/// [`crate::redact::EMPTY_SECRET`]) replaced by the path of the key it is
/// about, which the TOML error knows but shows only in its long form.
pub(super) fn de_message(e: &toml::de::Error) -> String {
    let message = e.message().trim_end();
    if !message.contains("{field}") {
        return message.to_string();
    }
    let mut bare = e.clone();
    bare.set_input(None);
    let long = bare.to_string();
    let path = long
        .lines()
        .find_map(|l| l.strip_prefix("in `")?.strip_suffix('`'))
        .unwrap_or("this secret");
    message.replace("{field}", path)
}

pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}
