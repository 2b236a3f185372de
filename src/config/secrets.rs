//! Secrets are named in the config (an environment variable or a file) and read at start-up.
//! The config file itself never holds a secret value.

use std::path::Path;

use crate::secret::Secret;

/// Where a secret comes from, and whether it was found.
#[derive(Clone, Debug, Default)]
pub struct SecretRef {
    /// `env OPSGATE_X` or `file /run/secrets/x`, for the summary and error messages.
    pub source: Option<String>,
    pub value: Option<Secret>,
    /// Why a named secret has no value (unset variable, missing or unreadable file), for the
    /// start-up check; never the value itself.
    pub missing: Option<String>,
}

impl SecretRef {
    /// Reads from the environment variable if named, else from the file if named.
    /// A file is trimmed of a trailing newline, as `echo secret > file` leaves one.
    pub fn load(env: Option<&str>, file: Option<&str>, base: &Path) -> SecretRef {
        if let Some(var) = env {
            let (value, missing) = match std::env::var(var) {
                Ok(v) if !v.is_empty() => (Some(Secret::new(v)), None),
                Ok(_) => (None, Some(format!("environment variable {var} is empty"))),
                Err(std::env::VarError::NotPresent) => {
                    (None, Some(format!("environment variable {var} is not set")))
                }
                Err(std::env::VarError::NotUnicode(_)) => (
                    None,
                    Some(format!("environment variable {var} is not valid UTF-8")),
                ),
            };
            return SecretRef {
                source: Some(format!("env {var}")),
                value,
                missing,
            };
        }
        if let Some(path) = file {
            let full = base.join(path);
            let (value, missing) = match std::fs::read_to_string(&full) {
                Ok(v) => match v.trim_end_matches(['\n', '\r']) {
                    "" => (None, Some(format!("file {} is empty", full.display()))),
                    v => (Some(Secret::new(v)), None),
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
                    None,
                    Some(format!("file {} does not exist", full.display())),
                ),
                Err(e) => (
                    None,
                    Some(format!("cannot read file {}: {e}", full.display())),
                ),
            };
            return SecretRef {
                source: Some(format!("file {}", full.display())),
                value,
                missing,
            };
        }
        SecretRef::default()
    }

    pub fn from_value(source: &str, value: &str) -> SecretRef {
        SecretRef {
            source: Some(source.to_string()),
            value: Some(Secret::new(value)),
            missing: None,
        }
    }

    pub fn is_set(&self) -> bool {
        self.value.is_some()
    }

    /// The value, or an error naming where it should have come from (never the value).
    pub fn require(&self, what: &str) -> Result<&Secret, String> {
        match (&self.value, &self.source) {
            (Some(v), _) => Ok(v),
            (None, Some(src)) => Err(format!("{what} is not set ({src})")),
            (None, None) => Err(format!("{what} is not configured")),
        }
    }

    /// `set (env X)` / `unset (env X)`, for summaries.
    pub fn status(&self) -> String {
        let state = if self.is_set() { "set" } else { "unset" };
        match &self.source {
            Some(src) => format!("{state} ({src})"),
            None => state.to_string(),
        }
    }
}
