//! A vendor error, kept verbatim so the user sees exactly what the cloud said.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudError {
    /// HTTP status, when the cloud answered at all.
    pub http_status: Option<u16>,
    /// Vendor error code, e.g. `DBS.280001`.
    pub code: Option<String>,
    /// Vendor message, verbatim (or our own description when the cloud sent none).
    pub message: String,
}

impl CloudError {
    pub fn new(http_status: Option<u16>, code: Option<String>, message: impl Into<String>) -> Self {
        CloudError {
            http_status,
            code,
            message: message.into(),
        }
    }

    /// An error of our own making (no HTTP answer), e.g. a missing secret.
    pub fn local(message: impl Into<String>) -> Self {
        CloudError::new(None, None, message)
    }
}

impl fmt::Display for CloudError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(status) = self.http_status {
            write!(f, "HTTP {status}")?;
            if self.code.is_some() || !self.message.is_empty() {
                f.write_str(" ")?;
            }
        }
        if let Some(code) = &self.code {
            write!(f, "{code}: ")?;
        }
        f.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_status_code_and_message_verbatim() {
        let e = CloudError::new(Some(400), Some("DBS.280001".into()), "Parameter error.");
        assert_eq!(e.to_string(), "HTTP 400 DBS.280001: Parameter error.");
        assert_eq!(CloudError::local("no secret").to_string(), "no secret");
    }
}
