//! The command grammar: table tests and a property test over random input.

mod support;

use opsgate::command::{parse, Command};
use opsgate::domain::JobId;
use opsgate::job::JobFilter;
use proptest::prelude::*;

const DDM_ID: &str = "28e8841d0b9c4f6a9a30742ee60e1068in09";

fn p(text: &str) -> Result<Option<Command>, opsgate::command::ParseError> {
    let config = support::config("30m", 1);
    parse(text, "!", &config.targets, &config.catalog)
}

/// (target, account, mode, params) of a parsed operation.
type Parsed = (
    String,
    Option<String>,
    Option<String>,
    Vec<(String, String)>,
);

fn op(text: &str) -> Parsed {
    match p(text) {
        Ok(Some(Command::Operation(r))) => {
            (r.target, r.account, r.mode, r.params.into_iter().collect())
        }
        other => panic!("{text:?} -> {other:?}"),
    }
}

#[test]
fn operations_parse_named_targets_and_raw_ids() {
    let (target, account, mode, params) = op("!restart ddm orders-db hard");
    assert_eq!(target, "orders-db");
    assert_eq!(account.as_deref(), Some("acct"));
    assert_eq!(mode.as_deref(), Some("hard"));
    assert!(params.contains(&("instance_id".into(), DDM_ID.into())));

    // Default mode is soft; verbs, services and modes are case-insensitive; spaces are free.
    let (_, _, mode, _) = op("  !RESTART   DDM   orders-db  ");
    assert_eq!(mode.as_deref(), Some("soft"));
    let (_, _, mode, _) = op("!Restart Ddm orders-db HARD");
    assert_eq!(mode.as_deref(), Some("hard"));

    let (target, account, _, _) = op(&format!("!restart ddm {DDM_ID} account=acct"));
    assert_eq!(target, DDM_ID);
    assert_eq!(account.as_deref(), Some("acct"));
    let (_, account, _, _) = op(&format!("!restart ddm {DDM_ID}"));
    assert_eq!(account, None, "the engine picks the default account");
}

#[test]
fn builtins_parse() {
    let cases: &[(&str, Command)] = &[
        ("!approve 42", Command::Approve(JobId(42))),
        ("!approve #42", Command::Approve(JobId(42))),
        ("!deny 7", Command::Deny(JobId(7), None)),
        (
            "!deny 7 not now please",
            Command::Deny(JobId(7), Some("not now please".into())),
        ),
        ("!cancel 3", Command::Cancel(JobId(3))),
        ("!status 3", Command::Status(JobId(3))),
        ("!jobs", Command::Jobs(JobFilter::Active)),
        ("!jobs MINE", Command::Jobs(JobFilter::Mine)),
        ("!jobs all", Command::Jobs(JobFilter::All)),
        ("!help", Command::Help(None)),
        (
            "!help restart ddm",
            Command::Help(Some("restart ddm".into())),
        ),
        ("!whoami", Command::WhoAmI),
    ];
    for (text, want) in cases {
        assert_eq!(p(text).unwrap().as_ref(), Some(want), "{text}");
    }
}

#[test]
fn ordinary_chat_is_not_a_command() {
    for text in ["hello", "", "!", "! restart", "restart ddm orders-db"] {
        assert_eq!(p(text).unwrap(), None, "{text:?}");
    }
}

#[test]
fn bad_input_is_rejected_with_the_expected_usage() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "!restart ddm ../x",
            "not a known target or valid ID",
            "!restart ddm <target>",
        ),
        (
            "!restart ddm %2F",
            "not a known target or valid ID",
            "!restart ddm <target>",
        ),
        (
            "!restart ddm 28e8841d0b9c4f6a9a30742ee60e1068in09/../..",
            "not a known target",
            "!restart ddm",
        ),
        (
            "!restart ddm orders-db sideways",
            "Unknown mode",
            "[soft|hard]",
        ),
        (
            "!restart ddm orders-db hard extra",
            "Unexpected",
            "!restart ddm",
        ),
        (
            "!restart ddm orders-db account=acct",
            "account= goes with raw IDs only",
            "!restart ddm",
        ),
        ("!restart ddm", "Which target", "!restart ddm"),
        ("!restart", "Which service", "!restart ddm"),
        ("!restart mainframe x", "Unknown service", "!restart ddm"),
        (
            "!restart ddm orders-db color=red",
            "Unknown option",
            "!restart ddm",
        ),
        ("!approve", "Which job", "!approve <job>"),
        ("!approve 1234567890", "not a job number", "!approve <job>"),
        ("!approve ../1", "not a job number", "!approve <job>"),
        (
            "!jobs everything",
            "Unknown filter",
            "!jobs [pending|running|mine|all|review]",
        ),
        ("!whoami now", "Unexpected", "!whoami"),
        ("!launch missiles", "Unknown command", "!help"),
        ("!restart ddm orders\u{7}db", "Control characters", "!help"),
    ];
    for (text, message, usage) in cases {
        let err = p(text).expect_err(text);
        assert!(err.message.contains(message), "{text}: {}", err.message);
        assert!(err.usage.contains(usage), "{text}: {}", err.usage);
        assert!(err.to_string().contains("Usage: "));
    }
    let long = format!("!restart ddm {}", "a".repeat(2000));
    assert!(p(&long).unwrap_err().message.contains("too long"));
}

#[test]
fn replies_never_echo_raw_backticks_or_control_characters() {
    // The user's own backticks are dropped, so the echo stays inside our code span.
    let err = p("!restart ddm a`@everyone`b").unwrap_err();
    assert!(err.message.starts_with("`a@everyoneb` "), "{}", err.message);
    let err = p("!approve \u{1b}[31m").unwrap_err();
    assert!(!err.message.contains('\u{1b}'), "{}", err.message);
}

#[test]
fn replies_and_deny_reasons_never_carry_bidi_or_invisible_characters() {
    for text in [
        "!restart ddm ab\u{202E}cd",
        "!rest\u{2067}art ddm x",
        "!status 1\u{200B}2",
    ] {
        let err = p(text).unwrap_err();
        for c in ['\u{202E}', '\u{2067}', '\u{200B}'] {
            assert!(!err.message.contains(c), "{c:?} in {}", err.message);
        }
    }
    match p("!deny 7 not \u{202E}now\u{FEFF}") {
        Ok(Some(Command::Deny(JobId(7), Some(reason)))) => assert_eq!(reason, "not now"),
        other => panic!("{other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_input_never_panics_and_every_rejection_has_a_usage(text in "\\PC{0,80}") {
        if let Err(e) = p(&text) {
            prop_assert!(!e.usage.is_empty());
        }
    }

    #[test]
    fn random_commands_never_panic_and_every_rejection_has_a_usage(
        verb in prop::sample::select(vec!["restart", "RESTART", "approve", "deny", "jobs", "help", "status", "cancel", "whoami", "x"]),
        args in prop::collection::vec("[ -~]{0,12}|\\PC{0,6}|orders-db|hard|soft|account=acct", 0..6),
    ) {
        let text = format!("!{verb} {}", args.join(" "));
        match p(&text) {
            Err(e) => prop_assert!(!e.usage.is_empty()),
            Ok(Some(Command::Operation(r))) => {
                // Whatever got through is safe to put in a URL path.
                for v in r.params.values() {
                    prop_assert!(v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'), "{v:?}");
                }
            }
            Ok(_) => {}
        }
    }
}

#[test]
fn a_typo_in_a_command_service_or_target_gets_the_nearest_name() {
    let err = p("!restrat ddm orders-db").unwrap_err();
    assert!(
        err.message.contains("Did you mean `restart`?"),
        "{}",
        err.message
    );
    let err = p("!restart dmd orders-db").unwrap_err();
    assert!(
        err.message.contains("Did you mean `ddm`?"),
        "{}",
        err.message
    );
    let err = p("!restart ddm odrers-db").unwrap_err();
    assert!(
        err.message.contains("Did you mean `orders-db`?"),
        "{}",
        err.message
    );
    let err = p("!frobnicate").unwrap_err();
    assert!(!err.message.contains("Did you mean"), "{}", err.message);
}
