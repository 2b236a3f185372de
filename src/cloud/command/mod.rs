//! A declared local command as an operation: `submit` starts it (never through a shell)
//! and answers at once; `poll` reports how it ended: exit status 0 succeeded, anything else
//! failed with the tail of its output (secrets redacted). A run belongs to this process
//! only: after a restart, a job whose command may have run is `unknown`, never run again.

mod run;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;

use crate::config::declared::{CommandRun, Fill};
use crate::config::Declaration;
use crate::domain::JobSpec;
use crate::ports::cloud::{
    CloudError, CloudOperation, Described, PollOutcome, PollPolicy, ReconcileOutcome, SubmitOutcome,
};

/// How long one poll waits for the run to end before saying it still runs.
const POLL_WAIT: Duration = Duration::from_secs(5);
/// Characters of output shown on the card.
const SHOWN: usize = 300;

pub struct CommandOperation {
    decl: Arc<Declaration>,
    /// A number of this process's own: a handle from another process (before a restart)
    /// names no run here.
    instance: u64,
    runs: Mutex<HashMap<u64, watch::Receiver<Option<run::Finished>>>>,
    next: Mutex<u64>,
    policy: PollPolicy,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Handle {
    instance: u64,
    run: u64,
    pid: u32,
}

impl CommandOperation {
    pub fn new(decl: Arc<Declaration>, run: &CommandRun) -> Result<CommandOperation, String> {
        for (name, secret) in &run.secret_env {
            secret.require(&format!("the secret for {name} of `{}`", decl.id))?;
        }
        Ok(CommandOperation {
            policy: PollPolicy {
                initial_delay: Duration::ZERO,
                interval: Duration::from_millis(10),
                max_interval: Duration::from_secs(1),
                // The command's own timeout, its kill grace, and room for the last reads.
                timeout: run.timeout + Duration::from_secs(60),
            },
            decl,
            instance: fastrand::u64(1..),
            runs: Mutex::new(HashMap::new()),
            next: Mutex::new(0),
        })
    }

    fn run(&self) -> &CommandRun {
        match &self.decl.action {
            crate::config::declared::Action::Command(run) => run,
            // `new` is only called with a command's declaration.
            crate::config::declared::Action::Http(_) => unreachable!("a command declaration"),
        }
    }

    /// The argv after the program: literals, and each parameter's value as one element.
    fn args(&self, spec: &JobSpec) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        for fill in &self.run().argv {
            match fill {
                Fill::Literal(l) => out.push(l.clone()),
                Fill::Value(name) => {
                    let v = spec
                        .param(name)
                        .ok_or_else(|| format!("the job has no `{name}`"))?;
                    let v = self.decl.wire_value(name, v);
                    // Checked when typed; checked again, as this is what reaches the program.
                    if v.starts_with('-')
                        || v.is_empty()
                        || !v.bytes().all(|b| b.is_ascii_graphic())
                    {
                        return Err(format!("`{name}` is not a plain argument"));
                    }
                    out.push(v.to_string());
                }
            }
        }
        Ok(out)
    }

    fn env(&self) -> Result<Vec<(String, String)>, String> {
        let run = self.run();
        let mut env = run.env.clone();
        for (name, secret) in &run.secret_env {
            let value = secret.require(&format!("the secret for {name}"))?;
            env.push((name.clone(), value.expose().to_string()));
        }
        Ok(env)
    }

    /// The end of the output, one line, with every secret the command got replaced.
    fn tail(&self, output: &[u8]) -> String {
        let mut text = String::from_utf8_lossy(output).into_owned();
        for (_, secret) in &self.run().secret_env {
            if let Some(v) = &secret.value {
                if !v.expose().is_empty() {
                    text = text.replace(v.expose(), "<redacted>");
                }
            }
        }
        let flat: String = text
            .chars()
            .map(|c| {
                if c.is_control() || crate::command::text::is_invisible(c) {
                    ' '
                } else {
                    c
                }
            })
            .collect();
        let flat = flat.split_whitespace().collect::<Vec<_>>().join(" ");
        let count = flat.chars().count();
        if count > SHOWN {
            let tail: String = flat.chars().skip(count - SHOWN).collect();
            format!("…{tail}")
        } else {
            flat
        }
    }

    fn outcome(&self, f: &run::Finished) -> PollOutcome {
        let timeout = self.run().timeout;
        let output = self.tail(&f.output);
        let said = if output.is_empty() {
            "no output".to_string()
        } else {
            format!("output: {output}")
        };
        if f.timed_out {
            return PollOutcome::Failed(CloudError::local(format!(
                "killed after its {} timeout; {said}",
                humantime::format_duration(timeout)
            )));
        }
        match f.status {
            Some(s) if s.success() => PollOutcome::Succeeded(format!("exit status 0; {said}")),
            Some(s) => PollOutcome::Failed(CloudError::local(match s.code() {
                Some(code) => format!("exit status {code}; {said}"),
                None => format!("ended by a signal ({s}); {said}"),
            })),
            None => PollOutcome::Unknown(format!("could not wait for the command; {said}")),
        }
    }
}

#[async_trait]
impl CloudOperation for CommandOperation {
    fn poll_policy(&self) -> PollPolicy {
        self.policy
    }

    async fn submit(&self, spec: &JobSpec) -> SubmitOutcome {
        let (args, env) = match (self.args(spec), self.env()) {
            (Ok(a), Ok(e)) => (a, e),
            (Err(e), _) | (_, Err(e)) => return SubmitOutcome::NotSent(e),
        };
        let run = self.run();
        let spec_run = run::Spec {
            program: run.program.clone(),
            args: args.clone(),
            env,
            workdir: run.workdir.clone(),
            timeout: run.timeout,
            output_cap: run.output_cap,
        };
        let started = match run::start(spec_run) {
            Ok(s) => s,
            // The program did not start (not found, not executable, no such directory).
            Err(e) => {
                return SubmitOutcome::NotSent(format!(
                    "could not start {}: {e}",
                    run.program.display()
                ))
            }
        };
        let id = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            *next += 1;
            *next
        };
        let (tx, rx) = watch::channel(None);
        self.runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, rx);
        let pid = started.pid;
        tokio::spawn(async move {
            let finished = started.done.await.unwrap_or(run::Finished {
                status: None,
                timed_out: false,
                output: Vec::new(),
            });
            let _ = tx.send(Some(finished));
        });
        tracing::info!(pid, program = %run.program.display(), "command started");
        SubmitOutcome::Accepted {
            handle: serde_json::to_value(Handle {
                instance: self.instance,
                run: id,
                pid,
            })
            .unwrap_or(Value::Null),
            cloud_ref: None,
            answer: format!("started {} (pid {pid})", argv_json(&run.program, &args)),
        }
    }

    async fn poll(&self, _spec: &JobSpec, handle: &Value) -> PollOutcome {
        let h: Handle = serde_json::from_value(handle.clone()).unwrap_or_default();
        let rx = (h.instance == self.instance)
            .then(|| {
                self.runs
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&h.run)
                    .cloned()
            })
            .flatten();
        let Some(mut rx) = rx else {
            return PollOutcome::Unknown(format!(
                "opsgate restarted while the command (pid {}) ran: whether it finished, and how, \
                 is not known, and it is never run again. Check its effect before requesting it \
                 again",
                h.pid
            ));
        };
        let waited = tokio::time::timeout(POLL_WAIT, rx.wait_for(Option::is_some)).await;
        let finished = match waited {
            Ok(Ok(f)) => f.clone(),
            Ok(Err(_)) => None,
            Err(_) => {
                return PollOutcome::InProgress {
                    progress: Some(format!("running (pid {})", h.pid)),
                    handle: None,
                }
            }
        };
        self.runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&h.run);
        match finished {
            Some(f) => self.outcome(&f),
            None => PollOutcome::Unknown("the command's watcher stopped".into()),
        }
    }

    async fn reconcile(&self, _spec: &JobSpec) -> ReconcileOutcome {
        ReconcileOutcome::Unknown(
            "opsgate stopped while starting the command: it may have run, and it is never run \
             again. Check its effect before requesting it again"
                .into(),
        )
    }

    fn describe(&self, spec: &JobSpec) -> Result<Described, String> {
        let run = self.run();
        let args = self.args(spec)?;
        let mut env: Vec<String> = run.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        env.extend(
            run.secret_env
                .iter()
                .map(|(k, _)| format!("{k}=<secret, not shown>")),
        );
        Ok(Described {
            method: "exec".into(),
            url: argv_json(&run.program, &args),
            body: None,
            auth: format!(
                "no shell; environment cleared, then {}; in {}; killed after {}",
                if env.is_empty() {
                    "nothing".to_string()
                } else {
                    env.join(" ")
                },
                run.workdir.display(),
                humantime::format_duration(run.timeout)
            ),
            headers: Vec::new(),
        })
    }
}

/// The program and its arguments exactly as they are passed, one JSON string each.
fn argv_json(program: &std::path::Path, args: &[String]) -> String {
    let all: Vec<String> = std::iter::once(program.display().to_string())
        .chain(args.iter().cloned())
        .collect();
    serde_json::to_string(&all).unwrap_or_default()
}
