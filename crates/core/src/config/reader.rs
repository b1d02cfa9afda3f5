//! Reads a TOML file (plus optional environment overrides) key by key, so that one load reports
//! every wrong type, missing key and unknown key in the file, not just the first.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::value::{Dict, Value};
use figment::Figment;
use serde::de::DeserializeOwned;

use super::error::{ConfigError, Origin};

pub const ENV_PREFIX: &str = "SECTIGO_CONNECTOR_";

/// Largest configuration file read (a profile is a few hundred bytes).
pub const MAX_CONFIG_FILE: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error("cannot read the file: {0}")]
    Io(std::io::Error),
    #[error("is not a regular file")]
    NotRegular,
    #[error("is larger than 1 MiB; a configuration file is a few kilobytes")]
    TooLarge,
    #[error("is not UTF-8 text")]
    NotText,
}

impl ReadError {
    /// The error's text; when the system refused to open `path`, also who the process runs as
    /// and the command that lets it read the file.
    pub(crate) fn explained(&self, path: &Path) -> String {
        match self {
            ReadError::Io(e) => format!("{self}{}", super::access::denied_hint(path, e)),
            _ => self.to_string(),
        }
    }
}

/// A configuration file: a regular file of at most [`MAX_CONFIG_FILE`] bytes of UTF-8 (a
/// device such as /dev/urandom, or a huge file, is refused before it is read).
pub(crate) fn read_config_file(path: &Path) -> Result<String, ReadError> {
    use std::io::Read as _;
    let f = std::fs::File::open(path).map_err(ReadError::Io)?;
    let meta = f.metadata().map_err(ReadError::Io)?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular);
    }
    if meta.len() > MAX_CONFIG_FILE {
        return Err(ReadError::TooLarge);
    }
    let mut bytes = Vec::new();
    f.take(MAX_CONFIG_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > MAX_CONFIG_FILE {
        return Err(ReadError::TooLarge);
    }
    String::from_utf8(bytes).map_err(|_| ReadError::NotText)
}

pub struct KeyReader<'e> {
    fig: Figment,
    file: PathBuf,
    consumed: BTreeSet<String>,
    pub errors: &'e mut Vec<ConfigError>,
}

impl<'e> KeyReader<'e> {
    /// Reads `path`; with `env`, `SECTIGO_CONNECTOR_<SECTION>__<KEY>` variables override it.
    /// A missing file is treated as empty when `optional`. Returns `None` (error recorded) when
    /// the file cannot be read or is not valid TOML.
    pub fn open(
        path: &Path,
        optional: bool,
        env: bool,
        errors: &'e mut Vec<ConfigError>,
    ) -> Option<Self> {
        let text = match read_config_file(path) {
            Ok(t) => t,
            Err(ReadError::Io(e)) if optional && e.kind() == std::io::ErrorKind::NotFound => {
                String::new()
            }
            Err(e) => {
                errors.push(ConfigError::file(path, e.explained(path)));
                return None;
            }
        };
        if let Err(e) = toml::from_str::<toml::Table>(&text) {
            let msg = e.message().trim().replace('\n', "; ");
            let at = e
                .span()
                .map(|s| {
                    let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                    format!(" (line {line})")
                })
                .unwrap_or_default();
            errors.push(ConfigError::file(path, format!("invalid TOML{at}: {msg}")));
            return None;
        }
        let mut fig = Figment::new().merge(Toml::string(&text));
        if env {
            // Only SECTION__KEY variables: SECTIGO_CONNECTOR_CONFIG_DIR and friends are not keys.
            fig = fig.merge(
                Env::prefixed(ENV_PREFIX)
                    .filter(|k| k.as_str().contains("__"))
                    .split("__"),
            );
        }
        Some(KeyReader {
            fig,
            file: path.to_path_buf(),
            consumed: BTreeSet::new(),
            errors,
        })
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Where `key`'s value came from: the environment, when an override set it, else the file.
    pub fn origin(&self, key: &str) -> Origin {
        match self.fig.find_metadata(key) {
            Some(m) if m.name.contains("environment") => Origin::Env(format!(
                "{ENV_PREFIX}{}",
                key.to_uppercase().replace('.', "__")
            )),
            _ => Origin::File(self.file.clone()),
        }
    }

    pub fn error(&mut self, key: &str, message: impl std::fmt::Display) {
        let origin = self.origin(key);
        self.errors
            .push(ConfigError::key(origin, key, message.to_string()));
    }

    fn contains(&self, key: &str) -> bool {
        self.fig.find_value(key).is_ok()
    }

    /// The value of `key`, or `None` when absent (or of the wrong type: then an error is recorded).
    pub fn opt<T: DeserializeOwned>(&mut self, key: &str) -> Option<T> {
        self.consumed.insert(key.to_string());
        if !self.contains(key) {
            return None;
        }
        match self.fig.extract_inner::<T>(key) {
            Ok(v) => Some(v),
            Err(e) => {
                let msg = e.kind.to_string();
                self.error(key, msg);
                None
            }
        }
    }

    /// A secret's value: like [`KeyReader::opt`], but an error never shows the value (figment's
    /// type errors quote what they found).
    pub fn opt_secret(&mut self, key: &str) -> Option<crate::secret::Secret> {
        self.consumed.insert(key.to_string());
        if !self.contains(key) {
            return None;
        }
        match self.fig.extract_inner::<String>(key) {
            Ok(v) => Some(crate::secret::Secret::new(v)),
            Err(_) => {
                self.error(
                    key,
                    "invalid type: expected a string (the value is not shown: it is a secret; quote it)",
                );
                None
            }
        }
    }

    /// The value of `key`, or `default` when absent or wrong (a wrong value is recorded).
    pub fn or<T: DeserializeOwned>(&mut self, key: &str, default: T) -> T {
        self.opt(key).unwrap_or(default)
    }

    /// A required key: missing is an error.
    pub fn req<T: DeserializeOwned>(&mut self, key: &str, what: &str) -> Option<T> {
        if !self.contains(key) {
            self.consumed.insert(key.to_string());
            self.error(key, format!("missing; this key is required ({what})"));
            return None;
        }
        self.opt(key)
    }

    /// Records an error for every key present in the file that no `opt`/`or`/`req` call read.
    pub fn finish(self) {
        let data: Dict = match self.fig.extract::<Dict>() {
            Ok(d) => d,
            Err(_) => return,
        };
        let mut unknown = Vec::new();
        walk(&data, "", &self.consumed, &mut unknown);
        for key in unknown {
            let suggestion = suggest(&key, &self.consumed);
            let msg = match suggestion {
                Some(s) => format!("unknown key (did you mean `{s}`?)"),
                None => "unknown key".to_string(),
            };
            let origin = match self.fig.find_metadata(&key) {
                Some(m) if m.name.contains("environment") => Origin::Env(format!(
                    "{ENV_PREFIX}{}",
                    key.to_uppercase().replace('.', "__")
                )),
                _ => Origin::File(self.file.clone()),
            };
            self.errors.push(ConfigError::key(origin, key, msg));
        }
    }
}

fn walk(d: &Dict, prefix: &str, consumed: &BTreeSet<String>, out: &mut Vec<String>) {
    for (k, v) in d {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        if consumed.contains(&key) {
            continue;
        }
        match v {
            // A table is known when some key below it was read.
            Value::Dict(_, inner) if consumed.iter().any(|c| c.starts_with(&format!("{key}."))) => {
                walk(inner, &key, consumed, out)
            }
            _ => out.push(key),
        }
    }
}

/// The known key closest to `key` in spelling, if close enough to be a typo.
fn suggest(key: &str, known: &BTreeSet<String>) -> Option<String> {
    if let Some(k) = known
        .iter()
        .find(|k| k.starts_with(key) || key.starts_with(k.as_str()))
    {
        return Some(k.clone());
    }
    known
        .iter()
        .map(|k| (edit_distance(key, k), k))
        .filter(|(d, k)| *d <= 3.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.clone())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_works() {
        assert_eq!(edit_distance("expiry_window_day", "expiry_window_days"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", "abc"), 0);
    }
}
