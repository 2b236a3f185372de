//! The terminal chat: stdin lines in, one stdout line per bot message out.
//!
//! It is the local demo, and the interface the end-to-end tests and benchmarks drive with
//! piped input. Lines starting with `/` are shell directives (`/as`, `/in`, `/react`, `/wait`,
//! ...); anything else is a chat message from the current user in the current channel.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::command::suggest;
use crate::command::text::visible;
use crate::config::Config;
use crate::domain::JobId;
use crate::domain::{Actor, ChannelId, MessageId, RoleId, UserId};
use crate::job::JobState;
use crate::ports::chat::{ChatEvent, ChatOut, FlowOut, Origin, Outgoing};
use crate::ports::inbox::{EngineEvent, EngineHandle, JobObserver};

/// The terminal names a job's message after the job, so `/react 7 ✅` finds it even after
/// a restart (a real chat assigns its own IDs and reports them back).
pub fn message_id_of(job: JobId) -> MessageId {
    MessageId(format!("job-{job}"))
}

/// Prints bot messages as `[#channel] text`; an edit is printed again, marked `(edit)`.
pub struct ShellChat {
    config: Arc<Config>,
    out: Mutex<std::io::Stdout>,
}

impl ShellChat {
    pub fn new(config: Arc<Config>) -> ShellChat {
        ShellChat {
            config,
            out: Mutex::new(std::io::stdout()),
        }
    }

    fn print(&self, channel: &ChannelId, marker: &str, text: &str) {
        self.print_at(self.config.policy.channel_name(channel), marker, text);
    }

    /// Prints under `[#name]`, e.g. `ops` or `ops/job-7` (a job's thread).
    fn print_at(&self, name: &str, marker: &str, text: &str) {
        let mut buf = String::with_capacity(text.len() + 32);
        // Whatever part of a message echoes user input, the terminal shows it without bidi
        // controls or invisible characters.
        let text = visible(text);
        for (i, line) in text.lines().enumerate() {
            buf.push_str("[#");
            buf.push_str(name);
            buf.push_str("] ");
            if i == 0 {
                buf.push_str(marker);
            }
            buf.push_str(line);
            buf.push('\n');
        }
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // A closed stdout (the reader went away) is not worth crashing the bot for.
        let _ = out.write_all(buf.as_bytes());
        let _ = out.flush();
    }
}

impl ChatOut for ShellChat {
    fn send(&self, out: Outgoing) -> Option<MessageId> {
        match out {
            Outgoing::Reply { to, text, private } => {
                self.print(&to.channel, if private { "(only you) " } else { "" }, &text);
                None
            }
            Outgoing::Card { channel, card, .. } => {
                self.print(&channel, "", &card.line());
                Some(message_id_of(card.job))
            }
            Outgoing::UpdateCard { channel, card, .. } => {
                let marker = format!("(edit job-{}) ", card.job);
                self.print(&channel, &marker, &card.line());
                None
            }
            Outgoing::Incident { channel, text, .. } => {
                self.print(&channel, "", &text);
                None
            }
            Outgoing::Notice { channel, text, .. } => {
                self.print(&channel, "", &text);
                None
            }
        }
    }

    /// A job's thread is shown as `[#ops/job-7] ...`; a confirmation prompt as a private reply.
    fn send_flow(&self, out: FlowOut) -> Option<MessageId> {
        match out {
            FlowOut::ThreadLine {
                channel, job, text, ..
            } => {
                let name = format!(
                    "{}/{}",
                    self.config.policy.channel_name(&channel),
                    message_id_of(job)
                );
                self.print_at(&name, "", &text);
                None
            }
            other => self.send(other.fallback()),
        }
    }
}

/// The states of jobs that are still moving, as the engine reports them, for `/wait` and for
/// draining at end of input. A job that reaches a final state leaves the map: the store
/// already holds that state (the engine reports a change once it is durable), and keeping
/// every finished job here would grow the shell's memory with each job it ever ran.
#[derive(Default)]
pub struct JobWatch {
    moving: Mutex<HashMap<JobId, JobState>>,
    changed: Condvar,
}

impl JobObserver for JobWatch {
    fn job_changed(&self, job: JobId, state: JobState) {
        let mut moving = self.moving.lock().unwrap_or_else(|e| e.into_inner());
        if state.is_final() {
            moving.remove(&job);
            if moving.is_empty() {
                // Give back what a burst made the table grow to.
                moving.shrink_to_fit();
            }
        } else {
            moving.insert(job, state);
        }
        self.changed.notify_all();
    }
}

impl JobWatch {
    /// Waits until `done` holds for the jobs still moving, or `timeout` passes. Returns
    /// `done`'s value.
    fn wait_until(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&HashMap<JobId, JobState>) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        let mut moving = self.moving.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if done(&moving) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            moving = self
                .changed
                .wait_timeout(moving, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// A job's state: the engine's report while it moves, else what the store holds.
fn state_of(
    moving: &HashMap<JobId, JobState>,
    stored_state: &dyn Fn(JobId) -> Option<JobState>,
    job: JobId,
) -> Option<JobState> {
    moving.get(&job).copied().or_else(|| stored_state(job))
}

pub struct ShellOptions {
    pub user: String,
    pub roles: Vec<String>,
    pub channel: String,
    /// How long `/wait` waits for one job.
    pub wait_timeout: Duration,
    /// How long the end of input waits for in-flight jobs.
    pub drain_timeout: Duration,
}

/// Reads `input` until its end, feeding the engine; then waits (bounded) for in-flight jobs.
pub fn run(
    input: impl BufRead,
    config: &Config,
    engine: &EngineHandle,
    watch: &JobWatch,
    stored_state: &dyn Fn(JobId) -> Option<JobState>,
    opts: ShellOptions,
) {
    let mut session = Session::new(config, opts.user.clone(), &opts.roles, &opts.channel);
    for bytes in input.split(b'\n') {
        // Only a read error ends the input; a line that is not text gets an answer.
        let Ok(bytes) = bytes else { break };
        let Ok(line) = String::from_utf8(bytes) else {
            say("that line was not UTF-8 text; nothing was done with it");
            continue;
        };
        let line = line.trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() {
            continue;
        }
        match line.strip_prefix('/') {
            Some(directive) if !directive.starts_with('/') => {
                if !session.directive(directive, engine, watch, stored_state, &opts) {
                    break;
                }
            }
            // `//text` sends a message that starts with `/`.
            _ => {
                let text = line.strip_prefix('/').unwrap_or(line);
                engine.chat(ChatEvent::Message {
                    actor: session.actor(),
                    origin: Origin::channel(session.channel.clone()),
                    text: text.to_string(),
                });
            }
        }
    }
    sync(engine);
    let drained = watch.wait_until(opts.drain_timeout, |states| {
        !states.values().any(|s| s.is_in_flight())
    });
    if !drained {
        say("end of input: jobs still running after the drain timeout; they resume on the next start");
    }
}

const DIRECTIVES: [&str; 9] = [
    "as", "in", "react", "unreact", "wait", "sleep", "sync", "quit", "exit",
];

/// `unknown directive `/x`; did you mean `/y`? ` for a directive that is none.
fn unknown_directive(name: &str) -> String {
    if DIRECTIVES.contains(&name) {
        return String::new();
    }
    let hint = suggest::nearest(name, DIRECTIVES)
        .map(|d| format!("; did you mean `/{d}`?"))
        .unwrap_or_default();
    format!("unknown directive `/{name}`{hint} ")
}

/// Why a channel name is refused, with the configured ones.
pub fn unknown_channel(config: &Config, name: &str) -> String {
    let known: Vec<&str> = config.policy.channels.keys().map(String::as_str).collect();
    format!(
        "unknown channel `{name}` (configured: {}){}",
        known.join(", "),
        suggest::did_you_mean(name, known.iter().copied())
    )
}

/// Blocks until the engine has handled, persisted and acted on everything sent so far.
fn sync(engine: &EngineHandle) {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    if engine.send(EngineEvent::Sync(tx)) {
        let _ = rx.recv_timeout(Duration::from_secs(30));
    }
}

fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "[shell] {}", visible(text));
    let _ = out.flush();
}

struct Session<'a> {
    config: &'a Config,
    user: String,
    roles: Vec<RoleId>,
    channel: ChannelId,
}

impl<'a> Session<'a> {
    fn new(config: &'a Config, user: String, roles: &[String], channel: &str) -> Session<'a> {
        let mut s = Session {
            config,
            user,
            roles: Vec::new(),
            channel: ChannelId::default(),
        };
        s.set_roles(roles);
        if let Some(id) = config.policy.channels.get(channel.trim_start_matches('#')) {
            s.channel = id.clone();
        }
        s
    }

    fn actor(&self) -> Actor {
        Actor {
            id: UserId::from(self.user.as_str()),
            name: self.user.clone(),
            roles: self.roles.clone(),
        }
    }

    fn set_roles(&mut self, names: &[String]) {
        self.roles.clear();
        for name in names.iter().filter(|n| !n.is_empty()) {
            match self.config.policy.roles.get(name) {
                Some(id) => self.roles.push(*id),
                None => say(&format!(
                    "unknown role `{name}` (known: {}){}",
                    self.config
                        .policy
                        .roles
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", "),
                    suggest::did_you_mean(
                        name,
                        self.config.policy.roles.keys().map(String::as_str)
                    )
                )),
            }
        }
    }

    /// Moves to a configured channel; an unknown name is refused (and the channel stays).
    fn set_channel(&mut self, name: &str) -> bool {
        let name = name.trim_start_matches('#');
        match self.config.policy.channels.get(name) {
            Some(id) => {
                self.channel = id.clone();
                true
            }
            None => {
                say(&unknown_channel(self.config, name));
                false
            }
        }
    }

    /// Who and where the session is, as `/as` and `/in` confirm it.
    fn describe(&self) -> String {
        let roles: Vec<&str> = self
            .roles
            .iter()
            .filter_map(|id| self.config.policy.role_name(*id))
            .collect();
        let roles = if roles.is_empty() {
            "no roles".to_string()
        } else {
            format!("roles {}", roles.join(","))
        };
        format!(
            "you are {} ({roles}) in #{}",
            self.user,
            self.config.policy.channel_name(&self.channel)
        )
    }

    /// Returns false to stop reading input.
    fn directive(
        &mut self,
        text: &str,
        engine: &EngineHandle,
        watch: &JobWatch,
        stored_state: &dyn Fn(JobId) -> Option<JobState>,
        opts: &ShellOptions,
    ) -> bool {
        let mut words = text.split_whitespace();
        let name = words.next().unwrap_or_default();
        let args: Vec<&str> = words.collect();
        match (name, args.as_slice()) {
            ("as", [user, rest @ ..]) if rest.len() <= 1 => {
                self.user = visible(user);
                let roles: Vec<String> = rest.first().map(|r| r.split(',').map(str::to_string).collect()).unwrap_or_default();
                self.set_roles(&roles);
                // After the replies to what came before, so the transcript reads in order.
                sync(engine);
                say(&self.describe());
            }
            ("as", _) => say("usage: /as NAME [ROLE,...]"),
            ("in", [channel]) => {
                if self.set_channel(channel) {
                    sync(engine);
                    say(&self.describe());
                }
            }
            ("in", _) => say("usage: /in CHANNEL"),
            ("react" | "unreact", [job, emoji]) => match job.trim_start_matches('#').parse::<JobId>() {
                Ok(id) => {
                    engine.chat(ChatEvent::Reaction {
                        actor: self.actor(),
                        origin: Origin::channel(self.channel.clone()),
                        message_id: message_id_of(id),
                        emoji: emoji.to_string(),
                        added: name == "react",
                    });
                }
                Err(_) => say(&format!("usage: /{name} JOB EMOJI (JOB is a number)")),
            },
            ("react" | "unreact", _) => say(&format!("usage: /{name} JOB EMOJI")),
            ("wait", [job]) => match job.trim_start_matches('#').parse::<JobId>() {
                Ok(id) => {
                    sync(engine);
                    let mut last_seen = None;
                    let finished = watch.wait_until(opts.wait_timeout, |moving| {
                        last_seen = state_of(moving, stored_state, id);
                        last_seen.is_none_or(JobState::is_final)
                    });
                    match last_seen {
                        None => say(&format!("no job {id}")),
                        Some(state) if !finished => {
                            say(&format!("timed out waiting for job {id} (it is {})", state.label()))
                        }
                        Some(_) => {}
                    }
                }
                Err(_) => say("usage: /wait JOB (JOB is a number)"),
            },
            ("wait", _) => say("usage: /wait JOB"),
            ("sleep", [d]) => match humantime::parse_duration(d) {
                // Sleep from the moment the engine has caught up, so that "/sleep" measures
                // time since the previous line took effect, not since it was read.
                Ok(d) => {
                    sync(engine);
                    std::thread::sleep(d.min(Duration::from_secs(3600)));
                }
                Err(_) => say("usage: /sleep 2s"),
            },
            ("sync", []) => sync(engine),
            ("quit" | "exit", []) => return false,
            _ => say(&format!("{}directives: /as NAME [ROLE,...] · /in CHANNEL · /react JOB EMOJI · /unreact JOB EMOJI · /wait JOB · /sleep 2s · /quit", unknown_directive(name))),
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_job_leaves_the_watch_and_its_state_comes_from_the_store() {
        let watch = JobWatch::default();
        watch.job_changed(JobId(1), JobState::Running);
        watch.job_changed(JobId(2), JobState::AwaitingApproval);
        watch.job_changed(JobId(1), JobState::Succeeded);

        let moving = watch.moving.lock().unwrap();
        assert_eq!(moving.len(), 1, "only job 2 is still moving");
        let stored = |id: JobId| match id.0 {
            1 => Some(JobState::Succeeded),
            2 => Some(JobState::AwaitingApproval),
            _ => None,
        };
        assert_eq!(
            state_of(&moving, &stored, JobId(1)),
            Some(JobState::Succeeded)
        );
        assert_eq!(
            state_of(&moving, &stored, JobId(2)),
            Some(JobState::AwaitingApproval)
        );
        assert_eq!(state_of(&moving, &stored, JobId(3)), None);
    }

    #[test]
    fn the_watch_is_empty_again_once_every_job_has_finished() {
        let watch = JobWatch::default();
        for id in 1..=1000 {
            watch.job_changed(JobId(id), JobState::Submitting);
        }
        for id in 1..=1000 {
            watch.job_changed(JobId(id), JobState::Succeeded);
        }
        let moving = watch.moving.lock().unwrap();
        assert!(moving.is_empty());
        assert_eq!(moving.capacity(), 0, "the burst's table was given back");
    }
}
