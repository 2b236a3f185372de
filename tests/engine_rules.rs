//! The engine's rules, driven through its event interface with a scripted cloud operation.

mod support;

use opsgate::domain::JobId;
use opsgate::ports::chat::{ChatEvent, Origin};
use opsgate::ports::cloud::CloudError;
use opsgate::ports::cloud::SubmitOutcome;
use opsgate::store::SledStore;
use support::*;

const HARD: &str = "!restart ddm orders-db hard";
const SOFT: &str = "!restart ddm orders-db";

#[test]
fn a_rule_needing_no_approval_runs_at_once_and_completes() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), ScriptedOp::new(2));
    let card = h.say("alice", &[ONCALL], SOFT);
    assert!(card.contains("job 1"), "{card}");
    let status = h.wait_for(1, "succeeded");
    assert!(status.contains("cloud job cloud-job-1"), "{status}");
    for event in [
        "requested",
        "approved",
        "submitting",
        "accepted",
        "succeeded",
    ] {
        assert!(
            status.contains(&format!(" {event}")),
            "audit lacks {event}: {status}"
        );
    }
    assert_eq!(h.op.submits(), 1);
    h.stop();
}

#[test]
fn a_hard_restart_waits_for_an_approver_and_runs_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), ScriptedOp::new(1));
    let card = h.say("alice", &[ONCALL], HARD);
    assert!(
        card.contains("awaiting approval") && card.contains("approvals 0/1"),
        "{card}"
    );
    assert_eq!(h.op.submits(), 0);
    h.react("bob", &[DBA], 1, "✅", true);
    h.wait_for(1, "succeeded");
    // A second ✅ and a !approve after the fact change nothing.
    h.react("carol", &[DBA], 1, "✅", true);
    let again = h.say("carol", &[DBA], "!approve 1");
    assert!(again.contains("already succeeded"), "{again}");
    assert_eq!(h.op.submits(), 1);
    h.stop();
}

#[test]
fn the_requester_never_approves_their_own_request() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), ScriptedOp::new(1));
    h.say("alice", &[DBA], HARD);
    h.react("alice", &[DBA], 1, "✅", true);
    assert!(
        h.chat.last().contains("you requested it"),
        "{}",
        h.chat.last()
    );
    let reply = h.say("alice", &[DBA], "!approve 1");
    assert!(reply.contains("you requested it"), "{reply}");
    assert!(h.status(1).contains("approvals 0/1"));
    assert_eq!(h.op.submits(), 0);
    h.stop();
}

#[test]
fn a_user_without_an_approver_role_gets_a_clear_reply_and_the_count_stays() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), ScriptedOp::new(1));
    h.say("alice", &[ONCALL], HARD);
    let reply = h.say("mallory", &[ONCALL], "!approve 1");
    assert!(
        reply.contains("needs the role dba") && reply.contains("count did not change"),
        "{reply}"
    );
    h.react("mallory", &[GUEST], 1, "✅", true);
    assert!(h.chat.last().contains("needs the role dba"));
    assert!(h.status(1).contains("approvals 0/1"));
    assert_eq!(h.op.submits(), 0);
    h.stop();
}

#[test]
fn a_deny_by_an_approver_ends_the_request() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), ScriptedOp::new(1));
    h.say("alice", &[ONCALL], HARD);
    h.say("bob", &[DBA], "!deny 1 not during the sale");
    let status = h.wait_for(1, "denied");
    assert!(
        status.contains("denied by bob: not during the sale"),
        "{status}"
    );
    let late = h.say("carol", &[DBA], "!approve 1");
    assert!(late.contains("already denied"), "{late}");
    // The lock is released: a new request on the target is accepted.
    assert!(h.say("alice", &[ONCALL], HARD).contains("job 2"));
    assert_eq!(h.op.submits(), 0);
    h.stop();
}

#[test]
fn a_deny_reaction_ends_the_request_too() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), ScriptedOp::new(1));
    h.say("alice", &[ONCALL], HARD);
    h.react("bob", &[DBA], 1, "❌", true);
    h.wait_for(1, "denied");
    assert_eq!(h.op.submits(), 0);
    h.stop();
}

#[test]
fn nothing_can_be_approved_after_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start_with(dir.path(), ScriptedOp::new(1), "300ms", 1);
    h.say("alice", &[ONCALL], HARD);
    h.wait_for(1, "expired");
    let late = h.say("bob", &[DBA], "!approve 1");
    assert!(late.contains("already expired"), "{late}");
    assert_eq!(h.op.submits(), 0);
    h.stop();
}

#[test]
fn withdrawing_a_check_mark_before_quorum_removes_that_approval() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start_with(dir.path(), ScriptedOp::new(1), "30m", 2);
    h.say("alice", &[ONCALL], HARD);
    h.react("bob", &[DBA], 1, "✅", true);
    assert!(h.status(1).contains("approvals 1/2 (bob)"));
    h.react("bob", &[DBA], 1, "✅", false);
    assert!(h.status(1).contains("approvals 0/2"));
    h.react("carol", &[DBA], 1, "✅", true);
    h.react("carol", &[DBA], 1, "✅", true);
    assert!(
        h.status(1).contains("approvals 1/2 (carol)"),
        "each approver counts once"
    );
    assert_eq!(h.op.submits(), 0);
    h.react("dave", &[DBA], 1, "✅", true);
    let done = h.wait_for(1, "succeeded");
    assert!(done.contains("approvals 2/2 (carol, dave)"), "{done}");
    assert_eq!(h.op.submits(), 1);
    h.stop();
}

#[test]
fn a_second_request_on_a_locked_target_names_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), ScriptedOp::new(1));
    h.say("alice", &[ONCALL], HARD);
    let busy = h.say("bob", &[ONCALL], SOFT);
    assert!(busy.contains("busy: job 1"), "{busy}");
    // The raw instance ID is the same target.
    let busy = h.say(
        "bob",
        &[ONCALL],
        "!restart ddm 28e8841d0b9c4f6a9a30742ee60e1068in09",
    );
    assert!(busy.contains("busy: job 1"), "{busy}");
    assert!(h.say("x", &[], "!jobs all").contains("1 recent job"));
    h.stop();
}

#[test]
fn bad_input_gets_one_reply_with_the_usage_and_persists_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), ScriptedOp::new(1));
    for bad in [
        "!restart ddm ../x",
        "!restart ddm %2F",
        "!restart ddm orders-db sideways",
        "!restart ddm",
        "!restart nosuch thing",
        "!frobnicate",
        "!approve abc",
    ] {
        let before = h.chat.texts().len();
        let reply = h.say("alice", &[ONCALL], bad);
        assert_eq!(
            h.chat.texts().len(),
            before + 1,
            "exactly one reply to {bad}"
        );
        assert!(reply.contains("Usage:"), "{bad} -> {reply}");
    }
    assert!(h.say("x", &[], "!jobs all").contains("No recent jobs"));
    assert_eq!(h.op.submits(), 0);
    h.stop();
}

#[test]
fn roles_and_channels_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), ScriptedOp::new(1));
    let r = h.say("guest", &[GUEST], SOFT);
    assert!(r.contains("needs the role oncall or dba"), "{r}");
    let r = h.say_in("alice", &[ONCALL], "random", SOFT);
    assert!(r.contains("use #ops"), "{r}");
    assert_eq!(h.op.submits(), 0);
    h.stop();
}

#[test]
fn only_the_requester_or_an_admin_can_cancel_before_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), ScriptedOp::new(1));
    h.say("alice", &[ONCALL], HARD);
    let r = h.say("bob", &[DBA], "!cancel 1");
    assert!(r.contains("only alice"), "{r}");
    h.say("alice", &[ONCALL], "!cancel 1");
    h.wait_for(1, "cancelled");
    h.say("alice", &[ONCALL], HARD);
    h.say("root", &[ADMIN], "!cancel 2");
    h.wait_for(2, "cancelled");
    assert_eq!(h.op.submits(), 0);
    h.stop();
}

#[test]
fn a_vendor_rejection_fails_the_job_with_the_vendor_words() {
    let dir = tempfile::tempdir().unwrap();
    let op = ScriptedOp::with(|o| {
        o.reject = Some(CloudError::new(
            Some(400),
            Some("DBS.280001".into()),
            "Parameter error.",
        ))
    });
    let h = Harness::start(dir.path(), op);
    h.say("alice", &[ONCALL], SOFT);
    let s = h.wait_for(1, "failed");
    assert!(s.contains("HTTP 400 DBS.280001: Parameter error."), "{s}");
    h.stop();
}

#[test]
fn a_request_that_never_left_says_not_sent_and_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let op = ScriptedOp::with(|o| {
        o.outcome = Some(SubmitOutcome::NotSent(
            "the IAM password of account `huawei` is not set: set OPSGATE_X".into(),
        ))
    });
    let h = Harness::start(dir.path(), op);
    h.say("alice", &[ONCALL], SOFT);
    let s = h.wait_for(1, "failed");
    assert!(s.contains("not-sent"), "{s}");
    assert!(
        h.chat.texts().iter().any(|t| t
            .contains("❌ job 1 was not sent: the IAM password of account `huawei` is not set")),
        "{:?}",
        h.chat.texts()
    );
    assert!(!h.chat.texts().iter().any(|t| t.contains("refused")));
    h.stop();
}

#[test]
fn an_answer_that_proves_nothing_is_checked_never_resent() {
    let dir = tempfile::tempdir().unwrap();
    let op = ScriptedOp::with(|o| {
        o.outcome = Some(SubmitOutcome::Indeterminate(
            "DDM answered HTTP 504 APIG.0201: Backend timeout.".into(),
        ))
    });
    let h = Harness::start(dir.path(), op.clone());
    h.say("alice", &[ONCALL], SOFT);
    let s = h.wait_for(1, "unknown");
    assert!(s.contains("unconfirmed: DDM answered HTTP 504"), "{s}");
    let texts = h.chat.texts();
    assert!(
        texts.iter().any(|t| t.contains(
            "⏳ job 1: DDM answered HTTP 504 APIG.0201: Backend timeout.; checking whether the restart started (it will not be re-sent)"
        )),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains("⚠️ job 1 ended unknown, and it was not re-sent")),
        "{texts:?}"
    );
    assert_eq!(op.submits(), 1);
    assert_eq!(op.reconciles.load(std::sync::atomic::Ordering::SeqCst), 1);
    h.stop();
}

#[test]
fn a_pending_approval_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), ScriptedOp::new(1));
    h.say("alice", &[ONCALL], HARD);
    h.crash();
    let op = ScriptedOp::new(1);
    let h = Harness::start(dir.path(), op.clone());
    let busy = h.say("carol", &[ONCALL], SOFT);
    assert!(busy.contains("busy: job 1"), "the lock survives: {busy}");
    h.react("bob", &[DBA], 1, "✅", true);
    h.wait_for(1, "succeeded");
    assert_eq!(op.submits(), 1);
    assert!(
        h.say("alice", &[ONCALL], SOFT).contains("job 2"),
        "job IDs continue"
    );
    h.stop();
}

#[test]
fn a_job_that_crashed_while_submitting_is_reconciled_never_resent() {
    let dir = tempfile::tempdir().unwrap();
    let hanging = ScriptedOp::with(|o| o.hang_submit = true);
    let h = Harness::start(dir.path(), hanging.clone());
    h.say("alice", &[ONCALL], SOFT);
    // Wait until the submit is in flight, then crash.
    for _ in 0..500 {
        if hanging.submits() == 1 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(hanging.submits(), 1);
    h.crash();
    let op = ScriptedOp::new(1);
    let h = Harness::start(dir.path(), op.clone());
    let s = h.wait_for(1, "unknown");
    assert!(s.contains("cannot tell"), "{s}");
    assert_eq!(op.submits(), 0, "never re-sent");
    assert_eq!(op.reconciles.load(std::sync::atomic::Ordering::SeqCst), 1);
    h.stop();
}

#[test]
fn a_running_job_resumes_polling_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // Never finishes in the first life.
    let h = Harness::start(dir.path(), ScriptedOp::new(usize::MAX));
    h.say("alice", &[ONCALL], SOFT);
    h.wait_for(1, "running");
    h.crash();
    let op = ScriptedOp::new(1);
    let h = Harness::start(dir.path(), op.clone());
    h.wait_for(1, "succeeded");
    assert_eq!(op.submits(), 0);
    h.stop();
}

#[test]
fn a_second_process_cannot_open_the_same_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let _first = opsgate::store::SledStore::open(dir.path()).unwrap();
    let second = opsgate::store::SledStore::open(dir.path());
    let err = second.err().expect("locked").to_string();
    assert!(err.contains("already in use"), "{err}");
}

#[test]
fn whoami_and_help_come_from_the_table_and_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), ScriptedOp::new(1));
    let me = h.say("bob", &[DBA], "!whoami");
    assert!(me.contains("roles: dba"), "{me}");
    assert!(me.contains("restart ddm soft: yes, runs at once"), "{me}");
    assert!(
        me.contains("restart ddm hard: yes, needs 1 approval from dba"),
        "{me}"
    );
    let help = h.say("bob", &[DBA], "!help");
    assert!(
        help.contains("!restart ddm <target> [soft|hard]") && help.contains("!approve <job>"),
        "{help}"
    );
    let one = h.say("bob", &[DBA], "!HELP restart ddm");
    assert!(
        one.contains("Usage: !restart ddm") && one.contains("orders-db"),
        "{one}"
    );
    h.stop();
}

#[test]
fn a_reaction_right_behind_the_request_is_counted() {
    // Piped input can put the request and the reaction in one engine turn; the reaction must
    // still find the approval message.
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), ScriptedOp::new(1));
    h.handle.chat(opsgate::ports::chat::ChatEvent::Message {
        actor: actor("alice", &[ONCALL]),
        origin: opsgate::ports::chat::Origin::channel("ops"),
        text: HARD.into(),
    });
    h.handle.chat(opsgate::ports::chat::ChatEvent::Reaction {
        actor: actor("bob", &[DBA]),
        origin: opsgate::ports::chat::Origin::channel("ops"),
        message_id: "msg-1".into(),
        emoji: "✅".into(),
        added: true,
    });
    h.wait_for(1, "succeeded");
    assert_eq!(h.op.submits(), 1);
    h.stop();
}

#[test]
fn a_pending_job_whose_message_id_was_lost_gets_its_card_again_on_start() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), ScriptedOp::new(1));
    h.say("alice", &[ONCALL], HARD);
    h.crash();
    // Simulate the crash window: the job is durable, its message ID is not.
    {
        let store = opsgate::store::SledStore::open(dir.path()).unwrap();
        let mut job = store.job(JobId(1)).unwrap().unwrap();
        job.message_id = None;
        let mut writes = opsgate::ports::store::Writes::default();
        writes.put_job(&mut job, None);
        store.commit(&writes).unwrap();
        store.flush().unwrap();
    }
    let h = Harness::start(dir.path(), ScriptedOp::new(1));
    assert!(
        h.chat
            .texts()
            .iter()
            .any(|t| t.contains("job 1 · awaiting approval")),
        "{:?}",
        h.chat.texts()
    );
    h.react("bob", &[DBA], 1, "✅", true);
    h.wait_for(1, "succeeded");
    h.stop();
}

#[test]
fn incident_channels_hear_about_approved_jobs_and_every_failure() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), ScriptedOp::new(1));
    // A soft restart needs no approval and succeeds: no notification.
    h.say("alice", &[ONCALL], SOFT);
    h.wait_for(1, "succeeded");
    assert!(h.chat.incidents().is_empty(), "{:?}", h.chat.incidents());

    h.say("alice", &[ONCALL], HARD);
    h.react("bob", &[DBA], 2, "✅", true);
    h.wait_for(2, "succeeded");
    let seen = h.chat.incidents();
    let texts: Vec<&str> = seen.iter().map(|(_, t)| t.as_str()).collect();
    assert!(seen.iter().all(|(c, _)| c == "incidents"), "{seen:?}");
    for needle in [
        "job 2 requested by alice",
        "job 2 approved",
        "job 2 started",
        "job 2 succeeded",
    ] {
        assert!(
            texts.iter().any(|t| t.contains(needle)),
            "missing {needle}: {texts:?}"
        );
    }
    h.stop();

    // A failure of a job that needed no approval goes to the critical route.
    let dir = tempfile::tempdir().unwrap();
    let op = ScriptedOp::with(|o| {
        o.reject = Some(CloudError::new(
            Some(500),
            Some("DBS.200412".into()),
            "Server failure.",
        ))
    });
    let h = Harness::start(dir.path(), op);
    h.say("alice", &[ONCALL], SOFT);
    h.wait_for(1, "failed");
    let seen = h.chat.incidents();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].0, "alerts");
    assert!(
        seen[0].1.contains("job 1 failed") && seen[0].1.contains("DBS.200412"),
        "{seen:?}"
    );
    h.stop();
}

#[test]
fn pending_approvals_can_be_listed_for_a_chat_that_reconnects() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), ScriptedOp::new(1));
    h.say("alice", &[ONCALL], HARD);
    let (tx, rx) = tokio::sync::oneshot::channel();
    h.handle
        .send(opsgate::ports::inbox::EngineEvent::PendingApprovals(tx));
    let pending = h.rt.block_on(rx).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].job, JobId(1));
    assert_eq!(pending[0].message_id, "msg-1");
    h.stop();
}

#[test]
fn a_burst_bigger_than_one_commit_group_is_answered_in_order_and_each_job_runs_once() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), ScriptedOp::new(1));
    // Several commit groups' worth, sent without waiting, as a busy channel would.
    const N: u64 = 50;
    let instance = |i: u64| format!("{i:032x}in09");
    for i in 1..=N {
        h.handle.chat(ChatEvent::Message {
            actor: actor("alice", &[ONCALL]),
            origin: Origin::channel("ops"),
            text: format!("!restart ddm {}", instance(i)),
        });
    }
    h.sync();
    let cards = h.chat.new_cards();
    assert_eq!(cards.len(), N as usize, "{cards:?}");
    for (i, (job, action)) in (1..=N).zip(&cards) {
        assert_eq!(*job, i, "jobs are numbered in arrival order");
        assert!(action.contains(&instance(i)), "job {job}: {action}");
    }
    for job in 1..=N {
        h.wait_for(job, "succeeded");
    }
    assert_eq!(
        h.op.submits(),
        N as usize,
        "each job submitted exactly once"
    );
    h.stop();

    let store = SledStore::open(dir.path()).unwrap();
    assert!(store.active_jobs().unwrap().is_empty());
    for job in 1..=N {
        let stored = store.job(JobId(job)).unwrap().expect("every job is stored");
        assert_eq!(stored.spec.target, instance(job));
        assert!(stored.state.is_final(), "job {job}: {:?}", stored.state);
    }
}

#[test]
fn replies_read_as_sentences_and_pending_jobs_say_whom_they_wait_on() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), ScriptedOp::new(1));
    h.say("alice", &[ONCALL], HARD);
    let jobs = h.say("alice", &[ONCALL], "!jobs pending");
    assert!(jobs.contains("1 pending job:"), "{jobs}");
    assert!(
        jobs.contains("· waits on dba (0/1) · expires in "),
        "{jobs}"
    );
    let mine = h.say("alice", &[ONCALL], "!jobs mine");
    assert!(mine.starts_with("You have 1 job:"), "{mine}");
    assert_eq!(h.say("bob", &[DBA], "!jobs mine"), "You have no jobs.");

    h.say("bob", &[DBA], "!deny 1 not now");
    let status = h.status(1);
    assert!(status.contains(" denied by bob: not now"), "{status}");
    assert!(!status.contains("denied by bob: denied"), "{status}");
    assert!(
        !status.contains("(alice)") && !status.contains("(bob)"),
        "{status}"
    );
    let again = h.say("carol", &[DBA], "!approve 1");
    assert!(again.contains("Job 1 was already denied"), "{again}");

    let help = h.say("alice", &[ONCALL], "!help restart ddm");
    assert!(
        help.contains("mode: soft or hard; without one it is soft (the default)"),
        "{help}"
    );
    h.stop();
}

#[test]
fn a_deleted_card_of_an_active_job_is_posted_again_and_its_new_id_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start_with(dir.path(), ScriptedOp::new(1), "30m", 2);
    h.say("alice", &[ONCALL], HARD);
    let lost = |message: &str| {
        h.handle.chat(ChatEvent::CardLost {
            job: JobId(1),
            message_id: message.into(),
        });
        h.sync();
    };
    // Another message than the job's card (an older, already replaced card): nothing.
    lost("msg-other");
    assert_eq!(h.chat.new_cards().len(), 1);
    // Its card: posted again, with the job's current state; the adapter reports the new ID.
    lost("msg-1");
    let cards = h.chat.new_cards();
    assert_eq!(cards.len(), 2, "{cards:?}");
    assert_eq!(cards[1].0, 1);
    h.handle.chat(ChatEvent::MessagePosted {
        job: JobId(1),
        message_id: "msg-1b".into(),
    });
    // A ✅ on the new card counts.
    h.handle.chat(ChatEvent::Reaction {
        actor: actor("bob", &[DBA]),
        origin: Origin::channel("ops"),
        message_id: "msg-1b".into(),
        emoji: "✅".into(),
        added: true,
    });
    h.sync();
    let status = h.status(1);
    assert!(status.contains("approvals 1/2 (bob)"), "{status}");
    assert!(status.contains("card_reposted"), "{status}");
    h.crash();
    // The new ID survived the crash.
    {
        let store = SledStore::open(dir.path()).unwrap();
        let job = store.job(JobId(1)).unwrap().unwrap();
        assert_eq!(job.message_id.as_deref(), Some("msg-1b"));
        assert_eq!(store.job_for_message("msg-1b").unwrap(), Some(JobId(1)));
    }
    let h = Harness::start_with(dir.path(), ScriptedOp::new(1), "30m", 2);
    h.react("carol", &[DBA], 1, "✅", true);
    h.say("carol", &[DBA], "!approve 1");
    h.wait_for(1, "succeeded");
    // A finished job's card is history: losing it posts nothing.
    let before = h.chat.new_cards().len();
    h.handle.chat(ChatEvent::CardLost {
        job: JobId(1),
        message_id: "msg-1b".into(),
    });
    h.sync();
    assert_eq!(h.chat.new_cards().len(), before);
    h.stop();
}

#[test]
fn a_check_mark_gone_from_the_card_withdraws_only_an_approval_given_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start_with(dir.path(), ScriptedOp::new(1), "30m", 3);
    h.say("alice", &[ONCALL], HARD);
    h.react("bob", &[DBA], 1, "✅", true);
    h.say("carol", &[DBA], "!approve 1");
    // carol's ✅ after her command is not a second approval; hers stays a command's.
    h.react("carol", &[DBA], 1, "✅", true);
    assert!(h.status(1).contains("approvals 2/3 (bob, carol)"));
    let (tx, rx) = tokio::sync::oneshot::channel();
    h.handle
        .send(opsgate::ports::inbox::EngineEvent::PendingApprovals(tx));
    let pending = rx.blocking_recv().unwrap();
    let by_reaction: Vec<&str> = pending[0]
        .reaction_approvers
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(by_reaction, vec!["bob"]);
    let gone = |user: &str| {
        h.handle.chat(ChatEvent::CheckMarkGone {
            actor: actor(user, &[]),
            channel: "ops".into(),
            message_id: "msg-1".into(),
        });
        h.sync();
    };
    gone("carol");
    assert!(h.status(1).contains("approvals 2/3 (bob, carol)"));
    gone("bob");
    let status = h.status(1);
    assert!(status.contains("approvals 1/3 (carol)"), "{status}");
    assert!(
        status.contains("bob's ✅ is no longer on the card"),
        "{status}"
    );
    // Approvals stored before the source was recorded read as not given with ✅.
    let legacy: opsgate::job::Approval =
        serde_json::from_str(r#"{"by":{"id":"b","name":"b"},"at_ms":1}"#).unwrap();
    assert!(!legacy.by_reaction);
    h.stop();
}
