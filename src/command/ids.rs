//! Strict patterns for everything a user types that may end up in a URL or a signature.
//!
//! Patterns are anchored and ASCII-only, so `../x`, `%2F`, spaces, control characters and
//! overlong input can never match.

use std::sync::OnceLock;

use regex::Regex;

/// A named, anchored pattern with a description used in error replies.
pub struct IdPattern {
    source: &'static str,
    regex: OnceLock<Regex>,
    /// What a valid value looks like, in words, for the reply to bad input.
    pub describe: &'static str,
}

impl IdPattern {
    pub const fn new(source: &'static str, describe: &'static str) -> Self {
        IdPattern {
            source,
            regex: OnceLock::new(),
            describe,
        }
    }

    pub fn matches(&self, value: &str) -> bool {
        // Cheap guard first: nothing valid here is longer than 128 bytes.
        value.len() <= 128
            && self
                .regex
                // The sources are literals exercised by the unit tests, so this cannot fail.
                .get_or_init(|| Regex::new(self.source).expect("static pattern"))
                .is_match(value)
    }
}

/// Huawei DDM instance ID: 32 hex-ish characters followed by `in09`.
pub static DDM_INSTANCE: IdPattern = IdPattern::new(
    r"^[0-9a-zA-Z]{32}in09$",
    "a DDM instance ID: 32 letters or digits followed by in09",
);

/// Named targets and account names from the config.
pub static NAME: IdPattern = IdPattern::new(
    r"^[a-z][a-z0-9_-]{0,39}$",
    "a name of lowercase letters, digits, - or _ (at most 40)",
);

/// Job IDs are short decimal numbers so they are easy to type in chat.
pub static JOB_ID: IdPattern = IdPattern::new(r"^#?[0-9]{1,9}$", "a job number such as 42");

/// Huawei project IDs: 32 alphanumeric characters.
pub static HUAWEI_PROJECT: IdPattern = IdPattern::new(
    r"^[0-9a-zA-Z]{32}$",
    "a Huawei project ID: 32 letters or digits",
);

/// Huawei region names such as `cn-north-4` or `ap-southeast-1`.
pub static REGION: IdPattern = IdPattern::new(
    r"^[a-z]{2,3}(-[a-z]+)+-[0-9]{1,3}$",
    "a region such as cn-north-4",
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddm_instance_accepts_the_documented_shape_only() {
        assert!(DDM_INSTANCE.matches("28e8841d0b9c4f6a9a30742ee60e1068in09"));
        for bad in [
            "",
            "../x",
            "28e8841d0b9c4f6a9a30742ee60e1068in0",
            "28e8841d0b9c4f6a9a30742ee60e10%2Fin09",
            "28e8841d0b9c4f6a9a30742ee60e106 in09",
            "28e8841d0b9c4f6a9a30742ee60e1068in09\n",
            "28e8841d0b9c4f6a9a30742ee60e1068in09x",
            "２8e8841d0b9c4f6a9a30742ee60e1068in09",
        ] {
            assert!(!DDM_INSTANCE.matches(bad), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn job_ids_are_short_numbers() {
        assert!(JOB_ID.matches("42"));
        assert!(JOB_ID.matches("#42"));
        assert!(!JOB_ID.matches("1234567890"));
        assert!(!JOB_ID.matches("4 2"));
        assert!(!JOB_ID.matches("-1"));
    }

    #[test]
    fn names_and_regions() {
        assert!(NAME.matches("orders-db"));
        assert!(!NAME.matches("Orders"));
        assert!(!NAME.matches("a/b"));
        assert!(REGION.matches("cn-north-4"));
        assert!(REGION.matches("ap-southeast-1"));
        assert!(!REGION.matches("cn-north-4/../x"));
        assert!(HUAWEI_PROJECT.matches("0123456789abcdef0123456789ABCDEF"));
    }
}
