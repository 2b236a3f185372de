//! A declared operation once checked: typed data the cloud layer builds its request, its
//! reading of the answers and its command from. Nothing here is a string template: a path
//! is a list of segments, each a literal or one value; a body is a tree whose leaves are
//! literals or one typed value.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::SecretRef;
use crate::domain::Provider;

#[derive(Debug)]
pub struct Declaration {
    /// The operation's id in the catalog and in jobs.
    pub id: String,
    pub provider: Provider,
    /// The file it was declared in, as given (the config, or a file of `operations_dir`).
    pub file: PathBuf,
    /// Lowercase hex SHA-256 of what the declaration says (keys sorted, comments aside).
    pub hash: String,
    /// How each parameter's value is typed when it goes into a JSON body.
    pub kinds: BTreeMap<String, Kind>,
    /// The mode's parameter and what is sent for each mode word (when not the word).
    pub mode_send: Option<(String, BTreeMap<String, String>)>,
    pub action: Action,
}

impl Declaration {
    /// The value sent for parameter `name` given the job's `value` (a mode word may be
    /// sent as another value).
    pub fn wire_value<'a>(&'a self, name: &str, value: &'a str) -> &'a str {
        match &self.mode_send {
            Some((param, send)) if param == name => send.get(value).map_or(value, String::as_str),
            _ => value,
        }
    }
}

/// A parameter's JSON type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Text,
    Integer,
    Boolean,
}

#[derive(Debug)]
pub enum Action {
    Http(Box<HttpCall>),
    Command(CommandRun),
}

/// How a declared HTTP call is authenticated, by name. Each fits one kind of account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthKind {
    /// Whatever the Huawei account uses: an IAM token or an AK/SK signature.
    Huawei,
    HuaweiAkSk,
    HuaweiToken,
    AlibabaAcs3,
    ScnetToken,
    Bearer,
    Header,
    None,
}

impl AuthKind {
    pub const ALL: [AuthKind; 8] = [
        AuthKind::Huawei,
        AuthKind::HuaweiAkSk,
        AuthKind::HuaweiToken,
        AuthKind::AlibabaAcs3,
        AuthKind::ScnetToken,
        AuthKind::Bearer,
        AuthKind::Header,
        AuthKind::None,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AuthKind::Huawei => "huawei",
            AuthKind::HuaweiAkSk => "huawei-aksk",
            AuthKind::HuaweiToken => "huawei-token",
            AuthKind::AlibabaAcs3 => "alibaba-acs3",
            AuthKind::ScnetToken => "scnet-token",
            AuthKind::Bearer => "bearer",
            AuthKind::Header => "header",
            AuthKind::None => "none",
        }
    }

    pub fn parse(name: &str) -> Option<AuthKind> {
        AuthKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The kind of account this authentication needs.
    pub fn provider(self) -> Provider {
        match self {
            AuthKind::Huawei | AuthKind::HuaweiAkSk | AuthKind::HuaweiToken => Provider::Huawei,
            AuthKind::AlibabaAcs3 => Provider::Alibaba,
            AuthKind::ScnetToken => Provider::Scnet,
            AuthKind::Bearer | AuthKind::Header | AuthKind::None => Provider::Http,
        }
    }

    /// A provider's own authentication, used when a declaration names none.
    pub fn default_for(provider: Provider) -> Option<AuthKind> {
        match provider {
            Provider::Huawei => Some(AuthKind::Huawei),
            Provider::Alibaba => Some(AuthKind::AlibabaAcs3),
            Provider::Scnet => Some(AuthKind::ScnetToken),
            Provider::Http | Provider::Local => None,
        }
    }

    /// Why an account authenticating with `method` cannot make this call, if it cannot.
    pub fn misfit(self, method: crate::config::AuthMethod) -> Option<String> {
        use crate::config::AuthMethod as M;
        let fits = match self {
            AuthKind::Huawei => matches!(method, M::Password | M::AkSk),
            AuthKind::HuaweiAkSk | AuthKind::AlibabaAcs3 => method == M::AkSk,
            AuthKind::HuaweiToken => method == M::Password,
            AuthKind::ScnetToken => matches!(method, M::Password | M::AkSk),
            AuthKind::Bearer => method == M::Bearer,
            AuthKind::Header => method == M::Header,
            AuthKind::None => method == M::None,
        };
        (!fits).then(|| {
            format!(
                "the operation authenticates with `{}`, but the account uses auth = \"{}\"",
                self.name(),
                method.name()
            )
        })
    }
}

/// One declared HTTP call and how its answers are read.
#[derive(Debug)]
pub struct HttpCall {
    pub auth: AuthKind,
    /// The account's endpoint (e.g. `rds`): its configured URL or the provider's regional one.
    pub endpoint: String,
    /// Alibaba's action and version, signed with every request.
    pub alibaba: Option<(String, String)>,
    pub submit: RequestTemplate,
    pub accepted: Accepted,
    pub errors: Errors,
    pub poll: Option<Poll>,
    pub reconcile: Option<Reconcile>,
}

/// A request as declared. `path` is whole segments; values are filled by the cloud layer
/// from the job (validated parameters), the account (`project_id`, `region`) or the cloud's
/// own answer (`job_id`).
#[derive(Debug)]
pub struct RequestTemplate {
    /// Uppercase: GET, POST, PUT, PATCH or DELETE.
    pub method: String,
    pub path: Vec<Fill>,
    pub query: Vec<(String, Fill)>,
    /// Fixed headers: names and values from the config only.
    pub headers: Vec<(String, String)>,
    pub body: Option<Body>,
}

/// A literal from the config, or the value of one named placeholder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fill {
    Literal(String),
    Value(String),
}

/// A JSON body template: serialized by a JSON serializer, each value typed by its parameter.
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    Literal(serde_json::Value),
    Value(String),
    Object(Vec<(String, Body)>),
    Array(Vec<Body>),
}

#[derive(Debug)]
pub struct Accepted {
    pub statuses: Vec<u16>,
    /// JSON Pointer to the cloud's job or order ID, which the answer must carry.
    pub id: Option<String>,
}

#[derive(Debug, Default)]
pub struct Errors {
    pub code: Option<String>,
    pub message: Option<String>,
    pub refused: Vec<Refusal>,
}

/// An answer that proves nothing started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    /// The vendor's code; any when `None`.
    pub code: Option<String>,
    /// Retried with backoff within the operation (throttling, "busy").
    pub retry: bool,
}

#[derive(Debug)]
pub struct Poll {
    pub request: RequestTemplate,
    pub state: String,
    pub running: Vec<String>,
    pub succeeded: Vec<String>,
    pub failed: Vec<String>,
    pub message: Option<String>,
    pub progress: Option<String>,
    pub interval: Duration,
    pub deadline: Duration,
}

#[derive(Debug)]
pub struct Reconcile {
    pub request: RequestTemplate,
    pub state: String,
    pub running: Vec<String>,
    pub settled: Vec<String>,
}

/// One declared local command. Never run through a shell.
#[derive(Debug)]
pub struct CommandRun {
    /// Absolute.
    pub program: PathBuf,
    /// Each element a literal or exactly one parameter's value.
    pub argv: Vec<Fill>,
    /// The whole environment besides `secret_env`: nothing of opsgate's is passed on.
    pub env: Vec<(String, String)>,
    pub secret_env: Vec<(String, SecretRef)>,
    pub workdir: PathBuf,
    pub timeout: Duration,
    /// Bytes of output kept (the last ones).
    pub output_cap: usize,
}
