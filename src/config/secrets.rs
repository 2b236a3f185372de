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
}

impl SecretRef {
    /// Reads from the environment variable if named, else from the file if named.
    /// A file is trimmed of a trailing newline, as `echo secret > file` leaves one.
    pub fn load(env: Option<&str>, file: Option<&str>, base: &Path) -> SecretRef {
        if let Some(var) = env {
            let value = std::env::var(var).ok().filter(|v| !v.is_empty());
            return SecretRef {
                source: Some(format!("env {var}")),
                value: value.map(Secret::new),
            };
        }
        if let Some(path) = file {
            let full = base.join(path);
            let value = std::fs::read_to_string(&full)
                .ok()
                .map(|v| v.trim_end_matches(['\n', '\r']).to_string())
                .filter(|v| !v.is_empty());
            return SecretRef {
                source: Some(format!("file {}", full.display())),
                value: value.map(Secret::new),
            };
        }
        SecretRef::default()
    }

    pub fn from_value(source: &str, value: &str) -> SecretRef {
        SecretRef {
            source: Some(source.to_string()),
            value: Some(Secret::new(value)),
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
