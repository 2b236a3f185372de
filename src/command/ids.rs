//! Strict patterns for everything a user types that may end up in a URL or a signature.
//!
//! Patterns are anchored and ASCII-only, so `../x`, `%2F`, spaces, control characters and
//! overlong input can never match.

use std::borrow::Cow;
use std::sync::OnceLock;

use regex::Regex;

/// A named, anchored pattern with a description used in error replies. The built-in ones
/// are statics; declared operations build theirs from the config, with [`Guards`] that hold
/// whatever the team's regex says.
#[derive(Clone, Debug)]
pub struct IdPattern {
    /// What is compiled: a declared pattern wrapped in anchors of its own.
    source: Cow<'static, str>,
    /// Compiled on first use (`None`: it does not compile, and matches nothing), so that a
    /// config of many declarations does not pay every compilation at start-up.
    regex: OnceLock<Option<Regex>>,
    /// What a valid value looks like, in words, for the reply to bad input.
    pub describe: Cow<'static, str>,
    /// Longest value accepted, checked before the regex runs.
    max_len: usize,
    guards: Guards,
}

/// Checks a declared parameter's value must pass besides its regex: a team's pattern may be
/// looser than it should be, and these keep a value from ever being more than one URL
/// segment or argv element, or a flag.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Guards {
    /// Printable ASCII only (no space, control, bidi or invisible character).
    pub printable_ascii: bool,
    /// RFC 3986 unreserved characters only, and not `.` or `..`: the value fills one URL
    /// path segment and can never add one.
    pub path_segment: bool,
    /// Never starts with `-`: the value is an argv element and must not read as an option.
    pub no_leading_dash: bool,
    /// An argv element of a declared command: RFC 3986 unreserved characters and `: @ , + =`
    /// only, never `.` or `..`. No shell ever sees it, but the program might read it as a
    /// path, a glob or an expression: `/`, `*`, quotes and shell syntax stay out.
    pub argv_element: bool,
    /// A decimal integer within this range (inclusive).
    pub integer: Option<(i64, i64)>,
}

impl Guards {
    fn allow(&self, value: &str) -> bool {
        if self.printable_ascii && !value.bytes().all(|b| b.is_ascii_graphic()) {
            return false;
        }
        if self.path_segment
            && (matches!(value, "." | "..")
                || !value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')))
        {
            return false;
        }
        if self.no_leading_dash && value.starts_with('-') {
            return false;
        }
        if self.argv_element
            && (matches!(value, "." | "..")
                || !value.bytes().all(|b| {
                    b.is_ascii_alphanumeric()
                        || matches!(
                            b,
                            b'-' | b'_' | b'.' | b'~' | b':' | b'@' | b',' | b'+' | b'='
                        )
                }))
        {
            return false;
        }
        match self.integer {
            Some((min, max)) => value.parse::<i64>().is_ok_and(|n| (min..=max).contains(&n)),
            None => true,
        }
    }
}

impl IdPattern {
    pub const fn new(source: &'static str, describe: &'static str) -> Self {
        IdPattern::with_max_len(source, describe, 128)
    }

    /// For lists (e.g. up to 20 comma-separated IDs) that may exceed the usual 128 bytes.
    pub const fn with_max_len(
        source: &'static str,
        describe: &'static str,
        max_len: usize,
    ) -> Self {
        IdPattern {
            source: Cow::Borrowed(source),
            regex: OnceLock::new(),
            describe: Cow::Borrowed(describe),
            max_len,
            guards: Guards {
                printable_ascii: false,
                path_segment: false,
                no_leading_dash: false,
                argv_element: false,
                integer: None,
            },
        }
    }

    /// A pattern from the config. It must be written anchored (`^...$`), and it is compiled
    /// wrapped in anchors of its own, so an alternation or an inline flag inside it can never
    /// let a value match only in part. Its values are printable ASCII whatever it says.
    pub fn declared(source: &str, describe: String, max_len: usize) -> Result<Self, String> {
        if !source.starts_with('^') || !source.ends_with('$') {
            return Err(format!(
                "the pattern `{source}` must be anchored: start it with ^ and end it with $"
            ));
        }
        let wrapped = format!("^(?:{source})$");
        // Parsed now, so a pattern that is not a regex is refused where it is written;
        // compiled on first use (`compiles` checks that for check-config).
        regex_syntax::ParserBuilder::new()
            .nest_limit(64)
            .build()
            .parse(&wrapped)
            .map_err(|e| format!("the pattern `{source}` does not compile: {e}"))?;
        Ok(IdPattern {
            source: Cow::Owned(wrapped),
            regex: OnceLock::new(),
            describe: Cow::Owned(describe),
            max_len,
            guards: Guards {
                printable_ascii: true,
                ..Guards::default()
            },
        })
    }

    /// This pattern with more guards (they only ever narrow what it accepts).
    pub fn guarded(mut self, more: Guards) -> Self {
        let g = &mut self.guards;
        g.printable_ascii |= more.printable_ascii;
        g.path_segment |= more.path_segment;
        g.no_leading_dash |= more.no_leading_dash;
        g.argv_element |= more.argv_element;
        if more.integer.is_some() {
            g.integer = more.integer;
        }
        self
    }

    pub fn guards(&self) -> Guards {
        self.guards
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The compiled pattern, or why it does not compile: bounded, so that no pattern in a
    /// config makes the process slow or large.
    fn compile(&self) -> Result<Regex, String> {
        regex::RegexBuilder::new(&self.source)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| format!("the pattern `{}` does not compile: {e}", self.source))
    }

    /// Whether it compiles (check-config compiles every declared pattern; a start only
    /// parses them).
    pub fn compiles(&self) -> Result<(), String> {
        match self.regex.get_or_init(|| self.compile().ok()) {
            Some(_) => Ok(()),
            None => self.compile().map(drop),
        }
    }

    pub fn matches(&self, value: &str) -> bool {
        // Cheap guards first: nothing valid here is longer than `max_len` (128 unless set).
        // A pattern that does not compile matches nothing (the static ones are exercised by
        // the unit tests; check-config compiles the declared ones).
        value.len() <= self.max_len
            && self.guards.allow(value)
            && (self.regex.get_or_init(|| self.compile().ok()))
                .as_ref()
                .is_some_and(|r| r.is_match(value))
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

/// TaurusDB (GaussDB for MySQL) instance ID: 32 letters or digits followed by `in07`.
pub static TAURUS_INSTANCE: IdPattern = IdPattern::new(
    r"^[0-9a-zA-Z]{32}in07$",
    "a TaurusDB instance ID: 32 letters or digits followed by in07",
);

/// TaurusDB proxy instance ID: 32 letters or digits followed by `po01`.
pub static TAURUS_PROXY: IdPattern = IdPattern::new(
    r"^[0-9a-zA-Z]{32}po01$",
    "a TaurusDB proxy ID: 32 letters or digits followed by po01",
);

/// A TaurusDB proxy kernel version such as `2.23.12.000`: 3 to 5 dot-separated numbers.
pub static PROXY_VERSION: IdPattern = IdPattern::new(
    r"^[0-9]{1,4}(\.[0-9]{1,4}){2,4}$",
    "a proxy kernel version such as 2.23.12.000",
);

/// A job or workflow ID returned by a Huawei API, before it goes back into a URL.
pub static HUAWEI_JOB_ID: IdPattern = IdPattern::new(
    r"^[0-9a-zA-Z][0-9a-zA-Z_-]{0,63}$",
    "a job ID of letters, digits, - or _",
);

/// Alibaba region IDs such as `cn-hangzhou`, `ap-southeast-1` or `cn-shanghai-finance-1`.
pub static ALIBABA_REGION: IdPattern = IdPattern::new(
    r"^[a-z]{2,3}(-[a-z]+)+(-[0-9]{1,3})?$",
    "an Alibaba region such as cn-hangzhou",
);

/// SAE application ID: a lowercase UUID (e.g. `1daa7236-3844-4f36-b39a-605b0cc0aaaa`).
pub static SAE_APP: IdPattern = IdPattern::new(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
    "an SAE application ID (a lowercase UUID)",
);

/// Most SAE instance IDs one restart may name.
pub const SAE_MAX_INSTANCES: usize = 20;

/// 1 to 20 SAE instance IDs separated by commas, no spaces. One ID is a pod name such as
/// `mysae-1daa7236-3844-4f36-b39a-605b0cc0caa6-x7k2p` (`<app name>-<...>-<suffix>`):
/// lowercase letters, digits and inner hyphens, 3 to 100 characters.
pub static SAE_INSTANCES: IdPattern = IdPattern::with_max_len(
    // Kept in step with SAE_MAX_INSTANCES (checked by a unit test).
    r"^[a-z0-9][a-z0-9-]{1,98}[a-z0-9](,[a-z0-9][a-z0-9-]{1,98}[a-z0-9]){0,19}$",
    "1 to 20 SAE instance IDs (lowercase letters, digits and -) separated by commas, no spaces",
    20 * 101,
);

/// SCNet container instance (service) ID: 32 lowercase hex characters.
pub static SCNET_INSTANCE: IdPattern = IdPattern::new(
    r"^[0-9a-f]{32}$",
    "an SCNet container instance ID: 32 lowercase hex characters",
);

/// SCNet cluster (computing region) ID from the token answer, e.g. `11250` (config only).
pub static SCNET_CLUSTER_ID: IdPattern = IdPattern::new(
    r"^[A-Za-z0-9_-]{1,40}$",
    "a cluster ID of letters, digits, - or _ such as 11250",
);

/// A JSON field name (config only: the SCNet detail status field).
pub static SCNET_STATUS_FIELD: IdPattern = IdPattern::new(
    r"^[A-Za-z_][A-Za-z0-9_]{0,39}$",
    "a field name of letters, digits or _ such as status",
);

#[cfg(test)]
mod declared_tests {
    use super::*;

    #[test]
    fn declared_patterns_are_anchored_and_printable_whatever_they_say() {
        assert!(IdPattern::declared("[a-z]+", "x".into(), 10).is_err());
        let loose = IdPattern::declared("^.*$", "anything".into(), 16).unwrap();
        assert!(loose.matches("abc"));
        for bad in [
            "a b",
            "a\u{202e}b",
            "a\u{200b}",
            "é",
            "a\0",
            "",
            "x".repeat(17).as_str(),
        ] {
            if bad.is_empty() {
                continue;
            }
            assert!(!loose.matches(bad), "{bad:?}");
        }
        // An alternation cannot match in part: unwrapped, `^a|b$` would accept "ax" and "xb".
        let alt = IdPattern::declared("^a|b$", "a or b".into(), 16).unwrap();
        assert!(alt.matches("a") && alt.matches("b"));
        assert!(!alt.matches("ax") && !alt.matches("xb"));
    }

    #[test]
    fn a_declared_pattern_too_large_to_compile_is_found_by_check_config_and_matches_nothing() {
        assert!(IdPattern::declared("^(a$", "x".into(), 10).is_err());
        let huge = IdPattern::declared("^(a{1000}){1000}$", "x".into(), 10).unwrap();
        assert!(huge.compiles().is_err());
        assert!(!huge.matches("a"));
        let fine = IdPattern::declared("^[a-z]{1,8}$", "x".into(), 10).unwrap();
        assert!(fine.compiles().is_ok() && fine.matches("abc"));
    }

    #[test]
    fn guards_narrow_a_loose_pattern() {
        let loose = || IdPattern::declared("^.+$", "anything".into(), 64).unwrap();
        let seg = loose().guarded(Guards {
            path_segment: true,
            ..Guards::default()
        });
        assert!(seg.matches("orders-db_1.v2~x"));
        for bad in ["..", ".", "a/b", "%2F", "a?b", "a#b", "a;b", "$(x)", "`x`"] {
            assert!(!seg.matches(bad), "{bad}");
        }
        let arg = loose().guarded(Guards {
            no_leading_dash: true,
            ..Guards::default()
        });
        assert!(arg.matches("checkout"));
        assert!(!arg.matches("-rf"));
        assert!(!arg.matches("--flag=x"));
        let argv = loose().guarded(Guards {
            no_leading_dash: true,
            argv_element: true,
            ..Guards::default()
        });
        assert!(argv.matches("checkout") && argv.matches("app=web,tier=1") && argv.matches("v1.2"));
        for bad in [
            "a;b", "$(id)", "`id`", "../x", "..", "a/b", "*", "a'b", "a b", "-x",
        ] {
            assert!(!argv.matches(bad), "{bad}");
        }
        let n = IdPattern::declared("^-?[0-9]{1,6}$", "1 to 100".into(), 8)
            .unwrap()
            .guarded(Guards {
                integer: Some((1, 100)),
                ..Guards::default()
            });
        assert!(n.matches("1") && n.matches("100"));
        assert!(!n.matches("0") && !n.matches("101") && !n.matches("-1"));
    }
}

#[cfg(test)]
mod alibaba_scnet_tests {
    use super::*;

    #[test]
    fn sae_ids() {
        assert!(SAE_APP.matches("1daa7236-3844-4f36-b39a-605b0cc0aaaa"));
        assert!(!SAE_APP.matches("1daa7236-3844-4f36-b39a-605b0cc0AAAA"));
        assert!(!SAE_APP.matches("1daa7236-3844-4f36-b39a-605b0cc0aaa"));
        let one = "mysae-1daa7236-3844-4f36-b39a-605b0cc0caa6-x7k2p";
        assert!(SAE_INSTANCES.matches(one));
        assert!(SAE_INSTANCES.matches("inst-a,inst-b"));
        let twenty = vec![one; SAE_MAX_INSTANCES].join(",");
        assert!(SAE_INSTANCES.matches(&twenty), "{} bytes", twenty.len());
        let too_many = vec![one; SAE_MAX_INSTANCES + 1].join(",");
        assert!(!SAE_INSTANCES.matches(&too_many));
        for bad in [
            "",
            ",",
            "a,",
            ",a",
            "inst-a,,inst-b",
            "inst-a, inst-b",
            "Inst-a",
            "-inst",
            "inst-",
            "inst_a",
            "inst-a;inst-b",
            "inst-a%2Cinst-b",
            "../x",
            "inst-a\n",
        ] {
            assert!(!SAE_INSTANCES.matches(bad), "{bad:?}");
        }
        assert!(SAE_INSTANCES.matches(&format!("a{}b", "-".repeat(98))));
        assert!(!SAE_INSTANCES.matches(&format!("a{}b", "-".repeat(99))));
        assert!(SAE_INSTANCES
            .source
            .ends_with(&format!("{{0,{}}}$", SAE_MAX_INSTANCES - 1)));
    }

    #[test]
    fn regions_and_scnet() {
        for good in [
            "cn-hangzhou",
            "ap-southeast-1",
            "cn-shanghai-finance-1",
            "us-west-1",
        ] {
            assert!(ALIBABA_REGION.matches(good), "{good}");
        }
        for bad in [
            "",
            "hangzhou",
            "cn-hangzhou/x",
            "cn_hangzhou",
            "CN-hangzhou",
        ] {
            assert!(!ALIBABA_REGION.matches(bad), "{bad}");
        }
        assert!(SCNET_INSTANCE.matches("4c1f43ddb030483e89b55413bee6c004"));
        assert!(!SCNET_INSTANCE.matches("4c1f43ddb030483e89b55413bee6c00"));
        assert!(!SCNET_INSTANCE.matches("4c1f43ddb030483e89b55413bee6c004/x"));
        assert!(!SCNET_INSTANCE.matches("4C1F43DDB030483E89B55413BEE6C004"));
    }
}

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

#[cfg(test)]
mod taurus_tests {
    use super::*;

    #[test]
    fn taurus_ids_accept_the_documented_shapes_only() {
        assert!(TAURUS_INSTANCE.matches("61a4ea66210545909d74a05c27a7179ein07"));
        assert!(TAURUS_PROXY.matches("151c14381ac14ecfb9703a745b992677po01"));
        for bad in [
            "",
            "../x",
            "61a4ea66210545909d74a05c27a7179ein09",
            "61a4ea66210545909d74a05c27a7179in07",
            "61a4ea66210545909d74a05c27a7179ein07\n",
            "61a4ea66210545909d74a05c27a717%2Fin07",
        ] {
            assert!(!TAURUS_INSTANCE.matches(bad), "{bad:?}");
        }
        assert!(!TAURUS_PROXY.matches("61a4ea66210545909d74a05c27a7179ein07"));
        assert!(!TAURUS_PROXY.matches("151c14381ac14ecfb9703a745b992677po01/restart"));
    }

    #[test]
    fn versions_are_strict() {
        for good in ["2.23.12.000", "2.24.03.000", "1.0.0", "1.2.3.4.5"] {
            assert!(PROXY_VERSION.matches(good), "{good}");
        }
        for bad in [
            "",
            "2",
            "2.23",
            "2.23.12.000.1.2",
            "v2.23.12",
            "2.23.12-1",
            "2..12",
            "12345.1.1",
            "2.23.12 ",
        ] {
            assert!(!PROXY_VERSION.matches(bad), "{bad:?}");
        }
        assert!(HUAWEI_JOB_ID.matches("dff1d289-4d03-4942-854f-463ea07c000d"));
        assert!(!HUAWEI_JOB_ID.matches("-x"));
        assert!(!HUAWEI_JOB_ID.matches("a&b=c"));
        assert!(!HUAWEI_JOB_ID.matches(&"a".repeat(65)));
    }
}
