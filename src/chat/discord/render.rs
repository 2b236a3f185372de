//! How things look in Discord: a job's card as an embed with Approve/Deny buttons, long text
//! split into messages within Discord's limits, incident notifications with a link to the
//! job's message. Pure functions, so they are unit-tested without any Discord.

use serenity::all::{ActionRow, ActionRowComponent, ButtonStyle, Colour, InputTextStyle};
use serenity::builder::{
    CreateActionRow, CreateAllowedMentions, CreateButton, CreateEmbed, CreateEmbedFooter,
    CreateInputText, CreateModal,
};

use super::rest::Failure;
use crate::domain::time::format_duration_ms;
use crate::domain::JobId;
use crate::domain::Severity;
use crate::job::JobState;
use crate::ports::chat::JobCard;

/// Discord's limit on a message's content, in characters.
pub const MESSAGE_LIMIT: usize = 2000;
/// More messages than this for one text is noise: the rest is cut.
pub const MAX_PARTS: usize = 5;

const TITLE_LIMIT: usize = 256;
const DESCRIPTION_LIMIT: usize = 4096;
const FIELD_NAME_LIMIT: usize = 256;
const FIELD_VALUE_LIMIT: usize = 1024;
const FOOTER_LIMIT: usize = 2048;
/// Discord caps a whole embed at 6000 characters; stay well under it.
const EMBED_BUDGET: usize = 5500;

pub const APPROVE_EMOJI: &str = "✅";
pub const DENY_EMOJI: &str = "❌";

/// What a button on a card asks for. Deny opens a form for the reason first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Press {
    Approve,
    Deny,
    Cancel,
}

impl Press {
    fn word(self) -> &'static str {
        match self {
            Press::Approve => "approve",
            Press::Deny => "deny",
            Press::Cancel => "cancel",
        }
    }
}

/// `approve:<job>:<nonce>` / `deny:<job>:<nonce>` / `cancel:<job>:<nonce>`, the nonce in hex
/// (see `Job::nonce`). The Deny form (modal) carries the Deny button's ID.
pub fn button_id(press: Press, card: &JobCard) -> String {
    format!("{}:{}:{:x}", press.word(), card.job, card.nonce)
}

/// What a button's custom ID stands for: the job, its nonce (`None` in the ID format of
/// cards from before nonces, `approve:<job>`), and the press.
pub fn parse_button_id(custom_id: &str) -> Option<(JobId, Option<u64>, Press)> {
    let mut parts = custom_id.split(':');
    let press = match parts.next()? {
        "approve" => Press::Approve,
        "deny" => Press::Deny,
        "cancel" => Press::Cancel,
        _ => return None,
    };
    let job = parts.next()?;
    if job.is_empty() || job.len() > 19 || !job.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nonce = match parts.next() {
        None => None,
        Some(hex) if !hex.is_empty() && hex.len() <= 16 => Some(u64::from_str_radix(hex, 16).ok()?),
        Some(_) => return None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some((job.parse().ok()?, nonce, press))
}

/// The text field of the Deny form.
pub const REASON_FIELD: &str = "reason";

/// The form a Deny button opens: the reason, optional, as long as a `!deny` reason may be.
pub fn deny_modal(custom_id: &str, job: JobId) -> CreateModal {
    let reason = CreateInputText::new(InputTextStyle::Paragraph, "Reason (optional)", REASON_FIELD)
        .required(false)
        .max_length(300)
        .placeholder("shown on the card and kept in the audit log");
    CreateModal::new(custom_id, truncate(&format!("Deny job {job}"), 45))
        .components(vec![CreateActionRow::InputText(reason)])
}

/// The value typed into `field` of a submitted form (`None` when left empty).
pub fn modal_value(rows: &[ActionRow], field: &str) -> Option<String> {
    rows.iter()
        .flat_map(|r| r.components.iter())
        .find_map(|c| match c {
            ActionRowComponent::InputText(t) if t.custom_id == field => t.value.clone(),
            _ => None,
        })
        .filter(|v| !v.trim().is_empty())
}

/// `confirm:<number>`: the button on a typed-confirmation prompt, and the form it opens.
pub fn confirm_id(number: u64) -> String {
    format!("confirm:{number}")
}

pub fn parse_confirm_id(custom_id: &str) -> Option<u64> {
    let n = custom_id.strip_prefix("confirm:")?;
    if n.is_empty() || n.len() > 19 || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

/// The text field of the confirmation form.
pub const CONFIRM_FIELD: &str = "typed";

/// The "Confirm…" button under a typed-confirmation prompt.
pub fn confirm_button(number: u64) -> CreateActionRow {
    CreateActionRow::Buttons(vec![CreateButton::new(confirm_id(number))
        .label("Confirm…")
        .style(ButtonStyle::Danger)])
}

/// The form the "Confirm…" button opens: the target's name, typed (the engine compares it).
pub fn confirm_modal(number: u64) -> CreateModal {
    let typed = CreateInputText::new(
        InputTextStyle::Short,
        "Type the target's name",
        CONFIRM_FIELD,
    )
    .required(true)
    .max_length(200);
    CreateModal::new(
        confirm_id(number),
        truncate(&format!("Confirm request {number}"), 45),
    )
    .components(vec![CreateActionRow::InputText(typed)])
}

/// At most `max` characters of `text`, cut on a character boundary, ending in `…` when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let keep = max.saturating_sub(1);
    let mut out: String = text.chars().take(keep).collect();
    out.push('…');
    out
}

/// Splits `text` into messages of at most `limit` characters, preferring line breaks, then
/// spaces, and keeping ``` code blocks balanced in every part. At most [`MAX_PARTS`] parts;
/// the last says that the rest was cut.
pub fn split_message(text: &str, limit: usize) -> Vec<String> {
    // Room for closing and reopening a code fence, and for the "cut" note.
    const FENCE: &str = "```";
    const CUT: &str = "\n… (cut: too long for Discord)";
    let limit = limit.max(64);
    let body_limit = limit - (FENCE.len() + 2) * 2;
    let mut parts = Vec::new();
    let mut rest: &str = text.trim_end();
    let mut reopen = false;
    while !rest.is_empty() {
        if parts.len() + 1 == MAX_PARTS {
            let budget = body_limit - CUT.chars().count();
            if rest.chars().count() > budget {
                let (head, _) = cut_at(rest, budget);
                let mut part = String::new();
                if reopen {
                    part.push_str("```\n");
                }
                part.push_str(head.trim_end());
                if (reopen as usize + head.matches(FENCE).count()) % 2 == 1 {
                    part.push_str("\n```");
                }
                part.push_str(CUT);
                parts.push(part);
                return parts;
            }
        }
        let (head, tail) = if rest.chars().count() <= body_limit {
            (rest, "")
        } else {
            cut_at(rest, body_limit)
        };
        let mut part = String::with_capacity(head.len() + 8);
        if reopen {
            part.push_str("```\n");
        }
        part.push_str(head.trim_end_matches([' ', '\n']));
        let open = (reopen as usize + head.matches(FENCE).count()) % 2 == 1;
        if open && !tail.is_empty() {
            part.push_str("\n```");
        }
        reopen = open;
        if !part.trim().is_empty() {
            parts.push(part);
        }
        rest = tail.trim_start_matches('\n');
    }
    if parts.is_empty() {
        parts.push(String::new());
    }
    parts
}

/// Cuts `text` after at most `max` characters: at the last line break in the second half if
/// there is one, else at the last space, else on the character boundary.
fn cut_at(text: &str, max: usize) -> (&str, &str) {
    let end = text.char_indices().nth(max).map_or(text.len(), |(i, _)| i);
    let window = &text[..end];
    let half = window.len() / 2;
    if let Some(i) = window.rfind('\n').filter(|&i| i >= half) {
        return (&text[..i], &text[i + 1..]);
    }
    if let Some(i) = window.rfind(' ').filter(|&i| i >= half) {
        return (&text[..i], &text[i + 1..]);
    }
    (window, &text[end..])
}

fn colour(state: JobState) -> Colour {
    match state {
        JobState::AwaitingApproval => Colour::GOLD,
        JobState::Approved | JobState::Submitting | JobState::Running => Colour::BLUE,
        JobState::Succeeded => Colour::DARK_GREEN,
        JobState::Failed | JobState::Unknown => Colour::RED,
        JobState::Denied | JobState::Expired | JobState::Cancelled => Colour::LIGHT_GREY,
    }
}

/// `<t:1700000000:R>`: Discord shows it in each reader's time zone, relative to now.
pub fn discord_time(ms: u64) -> String {
    format!("<t:{}:R>", ms / 1000)
}

/// The fields of a job's card, as (name, value, inline), within the embed limits.
pub fn card_fields(card: &JobCard) -> Vec<(String, String, bool)> {
    let mut fields: Vec<(String, String, bool)> = Vec::new();
    fields.push(("Requested by".into(), card.requester.clone(), true));
    fields.push((
        "Rule".into(),
        format!("`{}`", card.rule.replace('`', "'")),
        true,
    ));
    if card.approvals_needed > 0 {
        fields.push((
            "Approvals".into(),
            format!("{} of {}", card.approvals, card.approvals_needed),
            true,
        ));
        let by = if card.approvers.is_empty() {
            "nobody yet".to_string()
        } else {
            card.approvers.join(", ")
        };
        fields.push(("Approved by".into(), by, true));
    }
    if card.is_open() {
        fields.push(("Who may".into(), card.who_may(), false));
        fields.push(("Expires".into(), discord_time(card.expires_ms), true));
    }
    if let Some(p) = card.progress.as_ref().filter(|_| !card.state.is_final()) {
        fields.push(("Progress".into(), p.clone(), false));
    }
    if let Some(r) = &card.cloud_ref {
        fields.push((
            "Cloud job".into(),
            format!("`{}`", r.replace('`', "'")),
            true,
        ));
    }
    if let Some(d) = card.duration_ms {
        fields.push(("Took".into(), format_duration_ms(d), true));
    }
    if let Some(o) = &card.outcome {
        fields.push(("Outcome".into(), o.clone(), false));
    }
    let mut total = 0;
    fields
        .into_iter()
        .map(|(n, v, inline)| {
            let n = truncate(&n, FIELD_NAME_LIMIT);
            let v = if v.trim().is_empty() { "-".into() } else { v };
            let v = truncate(
                &v,
                FIELD_VALUE_LIMIT.min(EMBED_BUDGET.saturating_sub(total + 600)),
            );
            total += n.chars().count() + v.chars().count();
            (n, v, inline)
        })
        .collect()
}

pub fn card_title(card: &JobCard) -> String {
    truncate(
        &format!(
            "{} Job {} · {}",
            card.state.icon(),
            card.job,
            card.state.label()
        ),
        TITLE_LIMIT,
    )
}

pub fn card_description(card: &JobCard) -> String {
    truncate(&format!("**{}**", card.action), DESCRIPTION_LIMIT.min(1000))
}

pub fn card_footer(card: &JobCard, prefix: &str) -> Option<String> {
    card.is_open().then(|| {
        truncate(
            &format!(
                "React {APPROVE_EMOJI}/{DENY_EMOJI}, use the buttons, or type {prefix}approve {} / {prefix}deny {} / {prefix}cancel {}",
                card.job, card.job, card.job
            ),
            FOOTER_LIMIT,
        )
    })
}

/// A job's card as an embed.
pub fn card_embed(card: &JobCard, prefix: &str) -> CreateEmbed {
    let mut embed = CreateEmbed::new()
        .title(card_title(card))
        .description(card_description(card))
        .colour(colour(card.state))
        .fields(card_fields(card));
    if let Some(footer) = card_footer(card, prefix) {
        embed = embed.footer(CreateEmbedFooter::new(footer));
    }
    embed
}

/// Approve, Deny and Cancel buttons, disabled once the request is decided; none for a job
/// that never needed approval.
pub fn card_buttons(card: &JobCard) -> Vec<CreateActionRow> {
    if card.approvals_needed == 0 && !card.is_open() {
        return Vec::new();
    }
    let closed = !card.is_open();
    vec![CreateActionRow::Buttons(vec![
        CreateButton::new(button_id(Press::Approve, card))
            .label("Approve")
            .style(ButtonStyle::Success)
            .disabled(closed),
        CreateButton::new(button_id(Press::Deny, card))
            .label("Deny…")
            .style(ButtonStyle::Danger)
            .disabled(closed),
        CreateButton::new(button_id(Press::Cancel, card))
            .label("Cancel request")
            .style(ButtonStyle::Secondary)
            .disabled(closed),
    ])]
}

/// The content above a new card: role pings only when asked for.
pub fn card_content(card: &JobCard, mention_roles: &[u64]) -> Option<String> {
    if mention_roles.is_empty() || !card.is_open() {
        return None;
    }
    let pings: Vec<String> = mention_roles.iter().map(|r| format!("<@&{r}>")).collect();
    Some(truncate(
        &format!("{} approval needed for job {}", pings.join(" "), card.job),
        MESSAGE_LIMIT,
    ))
}

/// Mentions that may ping: none, or exactly the approver roles of a new card.
pub fn card_mentions(card: &JobCard, mention_roles: &[u64]) -> CreateAllowedMentions {
    if mention_roles.is_empty() || !card.is_open() {
        CreateAllowedMentions::new()
    } else {
        CreateAllowedMentions::new().roles(mention_roles.iter().copied())
    }
}

/// `https://discord.com/channels/{guild}/{channel}/{message}`
pub fn message_link(guild: u64, channel: &str, message_id: &str) -> String {
    format!("https://discord.com/channels/{guild}/{channel}/{message_id}")
}

/// An incident notification: its text, and a link to the job's message when known.
pub fn incident_text(
    severity: Severity,
    text: &str,
    job: JobId,
    link: Option<&str>,
    job_channel: &str,
) -> String {
    let tag = match severity {
        Severity::Info => String::new(),
        Severity::Warning => "**[warning]** ".to_string(),
        Severity::Critical => "🚨 **[critical]** ".to_string(),
    };
    let link = match link {
        Some(l) => format!("\n↪ job {job}: {l}"),
        None => format!("\n↪ job {job} in <#{job_channel}>"),
    };
    let budget = MESSAGE_LIMIT - link.chars().count() - tag.chars().count();
    format!("{tag}{}{link}", truncate(text, budget))
}

/// The words for a card that could not be posted in `channel`.
pub(crate) fn post_failure_text(
    job: JobId,
    channel: &str,
    failure: Failure,
    prefix: &str,
) -> String {
    let why = match failure {
        Failure::Permission => "opsgate may not post there (it needs View Channel, Send Messages, Send Messages in Threads and Embed Links)",
        Failure::NotFound => "that channel is gone or opsgate cannot see it",
        _ => "Discord did not take it",
    };
    format!(
        "⚠️ Job {job}'s card could not be posted in <#{channel}>: {why}. The request is recorded and waits for approval; approvers can use {prefix}approve {job} or /approve."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(state: JobState) -> JobCard {
        JobCard {
            job: JobId(7),
            nonce: 0xabc,
            state,
            action: "restart ddm orders-db hard".into(),
            requester: "alice".into(),
            rule: "hard restart".into(),
            approvals: 1,
            approvals_needed: 2,
            approvers: vec!["bob".into()],
            approver_roles: "dba or sre-lead".into(),
            expires_ms: 1_700_000_000_123,
            cloud_ref: None,
            progress: None,
            outcome: None,
            duration_ms: None,
        }
    }

    fn json(embed: CreateEmbed) -> serde_json::Value {
        serde_json::to_value(embed).unwrap_or_default()
    }

    #[test]
    fn an_open_card_shows_who_what_rule_count_approvers_and_expiry() {
        let v = json(card_embed(&card(JobState::AwaitingApproval), "!"));
        let text = v.to_string();
        for want in [
            "Job 7",
            "awaiting approval",
            "restart ddm orders-db hard",
            "alice",
            "hard restart",
            "1 of 2",
            "bob",
            "dba or sre-lead",
            "<t:1700000000:R>",
            "!approve 7",
            "cancel: alice or an admin",
        ] {
            assert!(text.contains(want), "missing {want}: {text}");
        }
    }

    #[test]
    fn a_finished_card_shows_duration_and_cloud_job_and_disables_buttons() {
        let mut c = card(JobState::Succeeded);
        c.cloud_ref = Some("job-123".into());
        c.duration_ms = Some(3_400);
        c.outcome = Some("instance RUNNING".into());
        let text = json(card_embed(&c, "!")).to_string();
        assert!(text.contains("job-123") && text.contains("3.4s"), "{text}");
        assert!(!text.contains("<t:"), "no expiry once decided: {text}");
        let rows = serde_json::to_value(card_buttons(&c)).unwrap_or_default();
        let buttons = &rows[0]["components"];
        assert_eq!(buttons[0]["custom_id"], "approve:7:abc");
        assert_eq!(buttons[1]["custom_id"], "deny:7:abc");
        assert_eq!(buttons[2]["custom_id"], "cancel:7:abc");
        assert_eq!(buttons[2]["disabled"], true);
        assert_eq!(buttons[0]["disabled"], true);
        let open = serde_json::to_value(card_buttons(&card(JobState::AwaitingApproval)))
            .unwrap_or_default();
        assert_eq!(open[0]["components"][0]["disabled"], false);
    }

    #[test]
    fn embed_values_stay_within_discord_limits() {
        let mut c = card(JobState::Failed);
        c.outcome = Some("x".repeat(5000));
        c.requester = "é".repeat(600);
        for (name, value, _) in card_fields(&c) {
            assert!(name.chars().count() <= FIELD_NAME_LIMIT);
            assert!(
                value.chars().count() <= FIELD_VALUE_LIMIT,
                "{}",
                value.len()
            );
        }
        let total: usize = card_fields(&c)
            .iter()
            .map(|(n, v, _)| n.chars().count() + v.chars().count())
            .sum();
        assert!(total < EMBED_BUDGET);
    }

    #[test]
    fn button_ids_round_trip_and_garbage_is_refused() {
        let c = card(JobState::AwaitingApproval);
        assert_eq!(
            parse_button_id(&button_id(Press::Approve, &c)),
            Some((JobId(7), Some(0xabc), Press::Approve))
        );
        assert_eq!(
            parse_button_id(&button_id(Press::Cancel, &c)),
            Some((JobId(7), Some(0xabc), Press::Cancel))
        );
        // Cards posted before nonces.
        assert_eq!(
            parse_button_id("deny:3"),
            Some((JobId(3), None, Press::Deny))
        );
        for bad in [
            "approve:",
            "approve:1:",
            "approve:1:xyz",
            "approve:1:ab:cd",
            "approve:-1",
            "maybe:1",
            "approve:1x",
            "approve:99999999999999999999",
        ] {
            assert_eq!(parse_button_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn forms_fit_discords_limits_and_their_values_are_read() {
        let deny = serde_json::to_value(deny_modal("deny:7:abc", JobId(7))).unwrap_or_default();
        assert_eq!(deny["custom_id"], "deny:7:abc");
        assert!(deny["title"]
            .as_str()
            .is_some_and(|t| t.chars().count() <= 45));
        let input = &deny["components"][0]["components"][0];
        assert_eq!(input["custom_id"], REASON_FIELD);
        assert_eq!(input["required"], false);
        let confirm = serde_json::to_value(confirm_modal(u64::MAX)).unwrap_or_default();
        assert!(confirm["title"]
            .as_str()
            .is_some_and(|t| t.chars().count() <= 45));
        assert_eq!(parse_confirm_id(&confirm_id(482)), Some(482));
        for bad in [
            "confirm:",
            "confirm:x",
            "confirm:-1",
            "confirm:99999999999999999999",
        ] {
            assert_eq!(parse_confirm_id(bad), None, "{bad}");
        }
        let rows: Vec<ActionRow> = serde_json::from_value(serde_json::json!([
            {"type": 1, "components": [{"type": 4, "custom_id": "reason", "value": "  "}]},
            {"type": 1, "components": [{"type": 4, "custom_id": "typed", "value": "orders-db"}]}
        ]))
        .unwrap_or_default();
        assert_eq!(modal_value(&rows, REASON_FIELD), None, "blank is no reason");
        assert_eq!(modal_value(&rows, CONFIRM_FIELD), Some("orders-db".into()));
    }

    #[test]
    fn short_text_is_one_part() {
        assert_eq!(split_message("hello", MESSAGE_LIMIT), vec!["hello"]);
    }

    #[test]
    fn long_text_splits_on_line_breaks_within_the_limit() {
        let line = "0123456789".repeat(9); // 90 chars
        let text: Vec<String> = (0..50).map(|i| format!("{i:02} {line}")).collect();
        let text = text.join("\n");
        let parts = split_message(&text, MESSAGE_LIMIT);
        assert!(parts.len() >= 3, "{}", parts.len());
        for p in &parts {
            assert!(p.chars().count() <= MESSAGE_LIMIT);
            // Every part starts at the beginning of a line.
            assert!(p.as_bytes()[0].is_ascii_digit(), "{p}");
        }
        assert_eq!(parts.join("\n"), text);
    }

    #[test]
    fn multibyte_text_without_breaks_is_cut_on_char_boundaries() {
        let text = "ü".repeat(5000) + &"🚀".repeat(100);
        let parts = split_message(&text, MESSAGE_LIMIT);
        for p in &parts {
            assert!(p.chars().count() <= MESSAGE_LIMIT);
        }
        assert_eq!(parts.concat(), text);
    }

    #[test]
    fn code_blocks_stay_balanced_across_parts() {
        let body: Vec<String> = (0..400).map(|i| format!("line {i}")).collect();
        let text = format!("audit:\n```\n{}\n```", body.join("\n"));
        let parts = split_message(&text, MESSAGE_LIMIT);
        assert!(parts.len() > 1);
        for p in &parts {
            assert_eq!(p.matches("```").count() % 2, 0, "{p}");
            assert!(p.chars().count() <= MESSAGE_LIMIT);
        }
    }

    #[test]
    fn huge_text_is_cut_after_max_parts_and_says_so() {
        let text = "word ".repeat(20_000);
        let parts = split_message(&text, MESSAGE_LIMIT);
        assert_eq!(parts.len(), MAX_PARTS);
        assert!(parts[MAX_PARTS - 1].ends_with("(cut: too long for Discord)"));
        assert!(parts.iter().all(|p| p.chars().count() <= MESSAGE_LIMIT));
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 10), "héllo");
        assert_eq!(truncate("héllo", 3), "hé…");
    }

    #[test]
    fn mentions_are_empty_unless_roles_are_asked_for() {
        let c = card(JobState::AwaitingApproval);
        let none = serde_json::to_value(card_mentions(&c, &[])).unwrap_or_default();
        assert_eq!(none["parse"], serde_json::json!([]));
        assert!(card_content(&c, &[]).is_none());
        let some = serde_json::to_value(card_mentions(&c, &[11, 12])).unwrap_or_default();
        assert_eq!(some["parse"], serde_json::json!([]));
        assert_eq!(some["roles"], serde_json::json!(["11", "12"]));
        let content = card_content(&c, &[11, 12]).unwrap_or_default();
        assert!(content.contains("<@&11> <@&12>"), "{content}");
    }

    #[test]
    fn incidents_link_to_the_job_message() {
        let link = message_link(1, "2", "3");
        assert_eq!(link, "https://discord.com/channels/1/2/3");
        let t = incident_text(
            Severity::Critical,
            "❌ job 4 failed",
            JobId(4),
            Some(&link),
            "2",
        );
        assert!(t.contains("critical") && t.contains(&link), "{t}");
        let t = incident_text(Severity::Info, &"x".repeat(3000), JobId(4), None, "2");
        assert!(
            t.chars().count() <= MESSAGE_LIMIT && t.ends_with("in <#2>"),
            "{t}"
        );
    }
}
