//! A declared operation as written in TOML (`[[operations]]` in the config, or in a file of
//! `[bot] operations_dir`). Checked into [`super::Declaration`] by `check.rs`. Serialized
//! (keys sorted) for the declaration's hash, so an edit of what it says changes the hash and
//! an edit of comments or layout does not.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RawOperation {
    /// Stored in jobs; `<service>.<verb>` unless set.
    pub id: Option<String>,
    pub verb: Option<String>,
    pub service: Option<String>,
    pub aliases: Vec<String>,
    pub summary: Option<String>,
    pub notes: Option<String>,
    /// huawei | alibaba | scnet | http (an HTTP call on an account of that kind) or local
    /// (a command on this host).
    pub provider: Option<String>,
    /// How the call is authenticated, by name (see `AuthKind`); the provider's own unless set.
    pub auth: Option<String>,
    /// The account's endpoint the call goes to (Huawei: `rds`, `ecs`, ...; Alibaba: the
    /// product, e.g. `ecs`; HTTP: a key of the account's `endpoints`). Never from chat.
    pub endpoint: Option<String>,
    /// Alibaba: the API's action (`x-acs-action`) and version (`x-acs-version`).
    pub action: Option<String>,
    pub version: Option<String>,
    pub params: Vec<RawParam>,
    pub modes: Option<RawModes>,
    /// Parameters whose values make the per-resource lock (all target parameters unless
    /// set), and the group of operations sharing those locks (this operation unless set).
    pub lock: Option<Vec<String>>,
    pub lock_group: Option<String>,

    // An HTTP call.
    pub method: Option<String>,
    pub path: Option<String>,
    pub query: BTreeMap<String, String>,
    pub headers: BTreeMap<String, String>,
    pub body: Option<toml::Value>,
    pub accepted: Option<RawAccepted>,
    pub errors: Option<RawErrors>,
    pub poll: Option<RawPoll>,
    pub reconcile: Option<RawReconcile>,

    // A local command.
    pub program: Option<String>,
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// Variable in the command's environment -> the variable of opsgate's environment that
    /// holds its secret value (redacted from the command's output).
    pub secret_env: BTreeMap<String, String>,
    pub workdir: Option<String>,
    pub timeout: Option<String>,
    pub output_cap: Option<i64>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RawParam {
    pub name: Option<String>,
    /// "target" (default): names what is acted on (a named target supplies it); "arg": a
    /// further positional argument.
    pub role: Option<String>,
    pub label: Option<String>,
    /// One of: an anchored regex, a list of values, an integer range, or a boolean.
    pub pattern: Option<String>,
    pub values: Option<Vec<String>>,
    pub integer: Option<RawRange>,
    pub boolean: bool,
    /// What a valid value looks like, for the reply to bad input.
    pub describe: Option<String>,
    pub max_length: Option<i64>,
    /// The value comes only from a named target's config table, never typed in chat.
    pub from_target: bool,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RawRange {
    pub min: Option<i64>,
    pub max: Option<i64>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RawModes {
    /// The parameter the mode fills (`mode` unless set).
    pub name: Option<String>,
    pub values: Vec<String>,
    pub default: Option<String>,
    /// What is sent for each mode, when it is not the word typed (e.g. `soft = "SOFT"`).
    pub send: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RawAccepted {
    /// The statuses of the documented success answer (200 unless set).
    pub status: Vec<i64>,
    /// JSON Pointer to the cloud's job or order ID in that answer; the answer must have it.
    pub id: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RawErrors {
    /// JSON Pointers to the vendor's error code and message in an error answer.
    pub code: Option<String>,
    pub message: Option<String>,
    /// The answers that prove nothing started: refused with the vendor's message.
    pub refused: Vec<RawRefusal>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RawRefusal {
    pub status: Option<i64>,
    /// The vendor's code at `errors.code`; any code when unset.
    pub code: Option<String>,
    /// Sent again with backoff (throttling, "busy"): the answer proves nothing started.
    pub retry: bool,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RawPoll {
    pub method: Option<String>,
    pub path: Option<String>,
    pub query: BTreeMap<String, String>,
    pub headers: BTreeMap<String, String>,
    /// JSON Pointer to the state in the answer, and the values it takes.
    pub state: Option<String>,
    pub running: Vec<String>,
    pub succeeded: Vec<String>,
    pub failed: Vec<String>,
    /// JSON Pointer to a failure's reason.
    pub message: Option<String>,
    /// JSON Pointer to a progress text shown while running (e.g. `60%`).
    pub progress: Option<String>,
    pub interval: Option<String>,
    pub deadline: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RawReconcile {
    pub method: Option<String>,
    pub path: Option<String>,
    pub query: BTreeMap<String, String>,
    pub headers: BTreeMap<String, String>,
    pub state: Option<String>,
    /// Values meaning the work is visibly under way, and values meaning it is over.
    pub running: Vec<String>,
    pub settled: Vec<String>,
}
