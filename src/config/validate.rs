//! Raw TOML -> [`Config`], collecting every problem instead of stopping at the first.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::known_keys::unknown_keys;
use super::problems::{bracketed, one_based, syntax_problem, Collector};
use super::raw::{RawAccount, RawConfig, RawId, RawRule, RawTarget};
use super::secrets::SecretRef;
use super::{base_dir, Account, AuthMethod, Builtins, Config, Problem, ProviderSettings};
use crate::command::{ids, suggest, Catalog, OperationDef, Target};
use crate::domain::{ChannelId, Provider, RoleId};
use crate::policy::{Policy, Rule, Scope};

const DEFAULT_EXPIRY: Duration = Duration::from_secs(30 * 60);
const MAX_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_APPROVALS: i64 = 10;
const DEFAULT_KEEP_FINISHED: Duration = Duration::from_secs(180 * 24 * 3600);

/// Resolves role names at a key path to IDs, reporting unknown ones.
type RoleIds<'a> = &'a dyn Fn(&[String], &str, &mut Collector) -> Vec<RoleId>;

pub fn parse(text: &str, source: &Path, builtins: &Builtins) -> Result<Config, Vec<Problem>> {
    let mut problems = Collector::default();
    let mut unknown = Vec::new();
    let raw: RawConfig = {
        let de = toml::Deserializer::new(text);
        let mut on_unknown = |path: serde_ignored::Path| unknown.push(bracketed(&path.to_string()));
        let de = serde_ignored::Deserializer::new(de, &mut on_unknown);
        match serde_path_to_error::deserialize(de) {
            Ok(raw) => raw,
            Err(e) => return Err(vec![syntax_problem(text, &e)]),
        }
    };
    let meant = unknown_keys(unknown, &mut problems);
    let config = validate(raw, source, builtins, &mut problems);
    let mut list = problems.into_vec();
    list.retain(|p| !(p.message.starts_with("missing") && meant.contains(&p.path)));
    if list.is_empty() {
        Ok(config)
    } else {
        super::places::Places::of(text).locate(&mut list);
        for p in &mut list {
            p.path = one_based(&p.path);
        }
        Err(list)
    }
}

fn validate(raw: RawConfig, source: &Path, builtins: &Builtins, p: &mut Collector) -> Config {
    let base = base_dir(source);
    // How each account authenticates, read ahead (its own problems are reported with it),
    // so a declared call whose authentication fits none of them is refused where it is.
    let auths: Vec<super::declared::AccountAuth> = (raw.accounts.iter())
        .filter_map(|(name, a)| {
            let provider = Provider::parse(a.provider.as_deref()?)?;
            Some(super::declared::AccountAuth {
                name: name.clone(),
                provider,
                method: auth_method(a.auth.as_deref(), provider)?,
            })
        })
        .collect();
    let declared = super::declared::load(
        &raw.operations,
        raw.bot.operations_dir.as_deref(),
        source,
        &base,
        builtins,
        &auths,
        p,
    );
    let catalog = builtins.catalog.with(declared.defs.iter().cloned());
    // Endpoint keys the declared operations name: their accounts may override them.
    let declared_keys: Vec<(Provider, String)> = (declared.list.iter())
        .filter_map(|d| match &d.action {
            super::declared::Action::Http(h) => Some((d.provider, h.endpoint.clone())),
            super::declared::Action::Command(_) => None,
        })
        .collect();

    let prefix = raw.bot.prefix.unwrap_or_else(|| "!".to_string());
    if prefix.is_empty() || prefix.len() > 3 || prefix.chars().any(char::is_whitespace) {
        p.add("bot.prefix", "must be 1 to 3 characters without spaces");
    }

    let mut roles = BTreeMap::new();
    for (name, id) in &raw.roles {
        let path = format!("roles.{name}");
        if !ids::NAME.matches(name) {
            p.add(&path, format!("role name must be {}", ids::NAME.describe));
        }
        match snowflake(id) {
            Some(v) => {
                roles.insert(name.clone(), RoleId(v));
            }
            None => p.add(&path, "must be a Discord role ID (a positive number)"),
        }
    }
    let role_ids = |names: &[String], path: &str, p: &mut Collector| -> Vec<RoleId> {
        let mut out = Vec::new();
        for (i, n) in names.iter().enumerate() {
            match roles.get(n) {
                Some(id) => out.push(*id),
                None => p.add(
                    format!("{path}[{i}]"),
                    format!(
                        "unknown role `{n}`{}",
                        suggest::did_you_mean(n, roles.keys().map(String::as_str))
                    ),
                ),
            }
        }
        out
    };
    let admin_roles = role_ids(&raw.bot.admin_roles, "bot.admin_roles", p);

    let mut channels = BTreeMap::new();
    for (name, id) in &raw.channels {
        let path = format!("channels.{name}");
        if !ids::NAME.matches(name) {
            p.add(
                &path,
                format!("channel name must be {}", ids::NAME.describe),
            );
        }
        let id = match id {
            RawId::Number(n) if *n > 0 => n.to_string(),
            RawId::Text(s)
                if !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
            {
                s.clone()
            }
            _ => {
                p.add(
                    &path,
                    "must be a channel ID (digits, or a name for the shell)",
                );
                continue;
            }
        };
        channels.insert(name.clone(), ChannelId(id));
    }

    let mut accounts = BTreeMap::new();
    let raw_account_tags: Vec<(String, BTreeMap<String, String>)> = raw
        .accounts
        .iter()
        .map(|(name, a)| (name.clone(), a.tags.clone()))
        .collect();
    for (name, raw) in raw.accounts {
        let path = format!("accounts.{name}");
        if !ids::NAME.matches(&name) {
            p.add(
                &path,
                format!("account name must be {}", ids::NAME.describe),
            );
        }
        let keys = EndpointKeys {
            builtin: builtins.endpoint_keys,
            declared: &declared_keys,
        };
        if let Some(account) = account(&name, raw, &path, &base, &keys, p) {
            if let Some((key, message)) = (builtins.check_account)(&account) {
                p.add(format!("{path}.{key}"), message);
            }
            accounts.insert(name, Arc::new(account));
        }
    }
    // Commands run on this host: without an account of provider "local" in the file, they
    // get one named `local` (rules may scope by it; tags come from a declared one).
    let needs_local = declared.list.iter().any(|d| d.provider == Provider::Local);
    if needs_local && !accounts.values().any(|a| a.provider == Provider::Local) {
        accounts.insert(LOCAL_ACCOUNT.to_string(), Arc::new(local_account()));
    }
    // This host is one place: a sole local account is the default, so a command's usage
    // line needs no account=NAME.
    let locals: Vec<String> = (accounts.values())
        .filter(|a| a.provider == Provider::Local)
        .map(|a| a.name.clone())
        .collect();
    if let [only] = locals.as_slice() {
        if let Some(a) = accounts.get_mut(only) {
            if !a.default {
                let mut one = (**a).clone();
                one.default = true;
                *a = Arc::new(one);
            }
        }
    }
    for provider in Provider::ALL {
        let defaults: Vec<_> = accounts
            .values()
            .filter(|a| a.provider == provider && a.default)
            .map(|a| a.name.clone())
            .collect();
        if defaults.len() > 1 {
            p.add(
                "accounts",
                format!(
                    "more than one default {} account: {}",
                    provider.name(),
                    defaults.join(", ")
                ),
            );
        }
    }

    let mut targets = BTreeMap::new();
    for (name, raw) in raw.targets {
        let path = format!("targets.{name}");
        if !ids::NAME.matches(&name) {
            p.add(&path, format!("target name must be {}", ids::NAME.describe));
        }
        let known = Known {
            catalog: &catalog,
            declared: &declared.list,
        };
        if let Some(t) = target(&name, raw, &path, &accounts, builtins, &known, p) {
            targets.insert(name, t);
        }
    }

    let mut account_tags = BTreeMap::new();
    for (name, raw) in &raw_account_tags {
        let tags = tags(raw, &format!("accounts.{name}.tags"), p);
        if !tags.is_empty() {
            account_tags.insert(name.clone(), tags);
        }
    }

    let mut rules: Vec<Rule> = Vec::new();
    // Paths of the rules kept, for the overlap check below.
    let mut rule_paths = Vec::new();
    for (i, raw) in raw.rules.into_iter().enumerate() {
        let path = format!("rules[{i}]");
        let names = Names {
            channels: &channels,
            targets: &targets,
            accounts: &accounts,
            catalog: &catalog,
        };
        if let Some(rule) = rule(raw, &path, &names, &role_ids, p) {
            rules.push(rule);
            rule_paths.push(path);
        }
    }

    let rule_names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
    let freezes = super::freezes::freezes(raw.freezes, &rule_names, tags, p);
    let mut thread_channels = Vec::new();
    for (i, c) in raw.bot.thread_channels.iter().enumerate() {
        match channels.get(c.trim_start_matches('#')) {
            Some(id) => thread_channels.push(id.clone()),
            None => p.add(
                format!("bot.thread_channels[{i}]"),
                format!(
                    "unknown channel `{c}` (add it under [channels]){}",
                    suggest::did_you_mean(c, channels.keys().map(String::as_str))
                ),
            ),
        }
    }
    let keep_finished = keep_finished(raw.bot.keep_finished.as_deref(), p);
    let discord = super::sections::discord(raw.discord, &base, p);
    let incidents = super::sections::incidents(raw.incidents, &channels, &catalog, p);
    let http = super::sections::http(raw.http, &base, p);
    let log_format = super::sections::log(raw.log, p);
    let store = super::store::store(raw.store, &base, p);

    let policy = Policy {
        rules,
        admin_roles,
        roles,
        channels,
        accounts: accounts
            .keys()
            .map(|a| (a.clone(), account_tags.get(a).cloned().unwrap_or_default()))
            .collect(),
        targets: targets
            .values()
            .map(|t| (t.name.clone(), (t.account.clone(), t.tags.clone())))
            .collect(),
    };
    for (a, b, on) in crate::policy::ambiguities(&policy, &catalog) {
        let first = &policy.rules[a];
        p.add(
            &rule_paths[b],
            format!(
                "overlaps rule `{}` ({}): both apply to {on} for the same role; scope one to \
                 targets, accounts or tags, or give them different request_roles or modes",
                first.name,
                one_based(&rule_paths[a])
            ),
        );
    }
    Config {
        discord,
        incidents,
        http_listen: http.listen,
        api_token: http.api_token,
        log_format,
        store,
        source: source.to_path_buf(),
        prefix,
        data_dir: raw.bot.data_dir.map(|d| base.join(d)),
        accounts,
        targets,
        policy,
        freezes,
        thread_channels,
        keep_finished,
        catalog: Arc::new(catalog),
        declared: declared.list,
    }
}

/// An account's authentication as `validate_account` reads it, or `None` where that
/// reports a problem.
fn auth_method(auth: Option<&str>, provider: Provider) -> Option<AuthMethod> {
    Some(match (auth, provider) {
        (None, Provider::Alibaba) => AuthMethod::AkSk,
        (None | Some("none"), Provider::Local) => AuthMethod::None,
        (Some(_), Provider::Local) => return None,
        (Some("bearer"), Provider::Http) => AuthMethod::Bearer,
        (Some("header"), Provider::Http) => AuthMethod::Header,
        (Some("none"), Provider::Http) => AuthMethod::None,
        (_, Provider::Http) => return None,
        (None | Some("password"), _) => AuthMethod::Password,
        (Some("aksk"), _) => AuthMethod::AkSk,
        (Some(_), _) => return None,
    })
}

/// The account commands run on when the config declares none of provider "local".
const LOCAL_ACCOUNT: &str = "local";

fn local_account() -> Account {
    Account {
        name: LOCAL_ACCOUNT.to_string(),
        provider: Provider::Local,
        region: String::new(),
        project_id: None,
        default: true,
        auth: AuthMethod::None,
        iam_user: None,
        iam_domain: None,
        password: SecretRef::default(),
        access_key: SecretRef::default(),
        secret_key: SecretRef::default(),
        token: SecretRef::default(),
        endpoints: BTreeMap::new(),
        poll_interval: None,
        request_timeout: DEFAULT_REQUEST_TIMEOUT,
        settings: ProviderSettings::default(),
    }
}

/// The endpoint keys an account may set: the provider's own, and those its declared
/// operations name (an HTTP account's are its own to choose).
struct EndpointKeys<'a> {
    builtin: fn(Provider) -> &'static [&'static str],
    declared: &'a [(Provider, String)],
}

impl EndpointKeys<'_> {
    fn of(&self, provider: Provider) -> Vec<&str> {
        let mut keys: Vec<&str> = (self.builtin)(provider).to_vec();
        for (p, k) in self.declared {
            if *p == provider && !keys.contains(&k.as_str()) {
                keys.push(k);
            }
        }
        keys
    }

    fn allows(&self, provider: Provider, key: &str) -> bool {
        match provider {
            Provider::Http => ids::NAME.matches(key),
            _ => self.of(provider).contains(&key),
        }
    }
}

/// The operations a target may name, and the declarations behind the declared ones.
struct Known<'a> {
    catalog: &'a Catalog,
    declared: &'a [Arc<super::declared::Declaration>],
}

/// `[bot] keep_finished`: a duration of at least a second, or `"forever"`; 180 days unless set.
fn keep_finished(raw: Option<&str>, p: &mut Collector) -> Option<Duration> {
    let path = "bot.keep_finished";
    match raw.map(str::trim) {
        None => Some(DEFAULT_KEEP_FINISHED),
        Some("forever") => None,
        Some(text) => match humantime::parse_duration(text) {
            Ok(d) if d >= Duration::from_secs(1) => Some(d),
            _ => {
                p.add(
                    path,
                    format!("`{text}` is not a duration such as 180d, nor \"forever\""),
                );
                Some(DEFAULT_KEEP_FINISHED)
            }
        },
    }
}

/// `tags = { env = "prod" }`: names and values as for other names in the config.
fn tags(raw: &BTreeMap<String, String>, path: &str, p: &mut Collector) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in raw {
        if !ids::NAME.matches(k) || !ids::NAME.matches(v) {
            p.add(
                format!("{path}.{k}"),
                format!("tag names and values must be {}", ids::NAME.describe),
            );
            continue;
        }
        out.insert(k.clone(), v.clone());
    }
    out
}

/// The names a rule may refer to.
struct Names<'a> {
    channels: &'a BTreeMap<String, ChannelId>,
    targets: &'a BTreeMap<String, Target>,
    accounts: &'a BTreeMap<String, Arc<Account>>,
    catalog: &'a Catalog,
}

fn snowflake(id: &RawId) -> Option<u64> {
    match id {
        RawId::Number(n) if *n > 0 => Some(*n as u64),
        RawId::Text(s) => s.parse::<u64>().ok().filter(|v| *v > 0),
        _ => None,
    }
}

fn duration(text: &str, path: &str, p: &mut Collector) -> Option<Duration> {
    match humantime::parse_duration(text) {
        Ok(d) if !d.is_zero() => Some(d),
        _ => {
            p.add(
                path,
                format!("`{text}` is not a duration such as 30s, 15m or 2h"),
            );
            None
        }
    }
}

fn account(
    name: &str,
    raw: RawAccount,
    path: &str,
    base: &Path,
    keys: &EndpointKeys<'_>,
    p: &mut Collector,
) -> Option<Account> {
    let provider = match raw.provider.as_deref() {
        Some(s) => match Provider::parse(s) {
            Some(v) => Some(v),
            None => {
                p.add(
                    format!("{path}.provider"),
                    format!(
                        "unknown provider `{s}` (huawei, alibaba, scnet, http or local){}",
                        suggest::did_you_mean(s, Provider::ALL.iter().map(|p| p.name()))
                    ),
                );
                None
            }
        },
        None => {
            p.add(
                format!("{path}.provider"),
                "missing (huawei, alibaba, scnet, http or local)",
            );
            None
        }
    };
    let region = raw.region.clone().unwrap_or_default();
    match provider {
        Some(Provider::Alibaba) => {
            if !ids::ALIBABA_REGION.matches(&region) {
                p.add(
                    format!("{path}.region"),
                    format!("must be {}", ids::ALIBABA_REGION.describe),
                );
            }
        }
        // SCNet picks its endpoints from the config and its cluster by id or name, an HTTP
        // account its base URLs; a region is optional and only shown in summaries.
        Some(Provider::Scnet | Provider::Http | Provider::Local) => {
            if !region.is_empty() && !ids::NAME.matches(&region) {
                p.add(
                    format!("{path}.region"),
                    format!("optional here; if set, must be {}", ids::NAME.describe),
                );
            }
        }
        Some(Provider::Huawei) | None => {
            if !ids::REGION.matches(&region) {
                p.add(
                    format!("{path}.region"),
                    format!("must be {}", ids::REGION.describe),
                );
            }
        }
    }
    let http_like = matches!(provider, Some(Provider::Http | Provider::Local));
    // Kept in step with `auth_method` below (which reads ahead, without problems).
    let auth = match (raw.auth.as_deref(), provider) {
        // Alibaba has only AK/SK signing; a local account authenticates nowhere.
        (None, Some(Provider::Alibaba)) => AuthMethod::AkSk,
        (None | Some("none"), Some(Provider::Local)) => AuthMethod::None,
        (Some(other), Some(Provider::Local)) => {
            p.add(
                format!("{path}.auth"),
                format!("`{other}`: a local account (commands) has no auth"),
            );
            AuthMethod::None
        }
        (Some("bearer"), Some(Provider::Http)) => AuthMethod::Bearer,
        (Some("header"), Some(Provider::Http)) => AuthMethod::Header,
        (Some("none"), Some(Provider::Http)) => AuthMethod::None,
        (other, Some(Provider::Http)) => {
            p.add(
                format!("{path}.auth"),
                format!(
                    "{} (an HTTP account: bearer, header or none)",
                    other.map_or("missing".to_string(), |o| format!("unknown auth `{o}`"))
                ),
            );
            AuthMethod::None
        }
        (None | Some("password"), _) => AuthMethod::Password,
        (Some("aksk"), _) => AuthMethod::AkSk,
        (Some(other), _) => {
            p.add(
                format!("{path}.auth"),
                format!("unknown auth `{other}` (password or aksk)"),
            );
            AuthMethod::Password
        }
    };
    let secret = |kind: &str,
                  env: &Option<String>,
                  file: &Option<String>,
                  needed: bool,
                  p: &mut Collector| {
        if env.is_some() && file.is_some() {
            p.add(
                format!("{path}.{kind}_env"),
                format!("set {kind}_env or {kind}_file, not both"),
            );
        }
        if needed && env.is_none() && file.is_none() {
            p.add(format!("{path}.{kind}_env"), format!("missing: name the environment variable ({kind}_env) or file ({kind}_file) that holds it"));
        }
        SecretRef::load(env.as_deref(), file.as_deref(), base)
    };
    let provider = provider?;
    if provider == Provider::Huawei {
        match &raw.project_id {
            Some(id) if ids::HUAWEI_PROJECT.matches(id) => {}
            Some(_) => p.add(
                format!("{path}.project_id"),
                format!("must be {}", ids::HUAWEI_PROJECT.describe),
            ),
            None => p.add(
                format!("{path}.project_id"),
                "missing (Huawei calls are project-scoped)",
            ),
        }
    }
    if provider == Provider::Alibaba && auth != AuthMethod::AkSk {
        p.add(
            format!("{path}.auth"),
            "Alibaba accounts use auth = \"aksk\" (access_key_* and secret_key_*)",
        );
    }
    let settings = provider_settings(provider, auth, &raw, path, p);
    let password_auth = provider != Provider::Alibaba && auth == AuthMethod::Password;
    let aksk_auth = auth == AuthMethod::AkSk;
    let token_auth = matches!(auth, AuthMethod::Bearer | AuthMethod::Header);
    if !http_like {
        for (key, set) in [
            ("token_env", raw.token_env.is_some()),
            ("token_file", raw.token_file.is_some()),
            ("auth_header", raw.auth_header.is_some()),
        ] {
            if set {
                p.add(format!("{path}.{key}"), "only for HTTP accounts");
            }
        }
    }
    if auth == AuthMethod::Header {
        let valid = |h: &str| {
            !h.is_empty()
                && h.len() <= 64
                && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        match raw.auth_header.as_deref() {
            Some(h) if valid(h) => {}
            Some(_) => p.add(
                format!("{path}.auth_header"),
                "a header name is letters, digits and -",
            ),
            None => p.add(
                format!("{path}.auth_header"),
                "missing: the header that carries the token (e.g. \"X-Api-Key\")",
            ),
        }
    }
    let token = secret("token", &raw.token_env, &raw.token_file, token_auth, p);
    if password_auth && provider == Provider::Huawei {
        if raw.iam_user.as_deref().unwrap_or("").is_empty() {
            p.add(format!("{path}.iam_user"), "missing (the IAM user name)");
        }
        if raw.iam_domain.as_deref().unwrap_or("").is_empty() {
            p.add(
                format!("{path}.iam_domain"),
                "missing (the account, i.e. domain, name)",
            );
        }
    }
    let password = secret(
        "password",
        &raw.password_env,
        &raw.password_file,
        password_auth,
        p,
    );
    let access_key = secret(
        "access_key",
        &raw.access_key_env,
        &raw.access_key_file,
        aksk_auth,
        p,
    );
    let secret_key = secret(
        "secret_key",
        &raw.secret_key_env,
        &raw.secret_key_file,
        aksk_auth,
        p,
    );
    for (key, url) in &raw.endpoints {
        let epath = format!("{path}.endpoints.{key}");
        if !keys.allows(provider, key) {
            let known = keys.of(provider);
            p.add(
                &epath,
                format!(
                    "unknown endpoint (known for {}: {}){}",
                    provider.name(),
                    known.join(", "),
                    suggest::did_you_mean(key, known.iter().copied())
                ),
            );
        }
        if !(url.starts_with("https://") || url.starts_with("http://"))
            || url.contains(char::is_whitespace)
        {
            p.add(
                &epath,
                "must be a base URL starting with https:// (or http:// for a local emulator)",
            );
        }
    }
    let poll_interval = raw
        .poll_interval
        .as_deref()
        .and_then(|t| duration(t, &format!("{path}.poll_interval"), p));
    let request_timeout = raw
        .request_timeout
        .as_deref()
        .and_then(|t| duration(t, &format!("{path}.request_timeout"), p))
        .unwrap_or(DEFAULT_REQUEST_TIMEOUT);
    Some(Account {
        name: name.to_string(),
        provider,
        region,
        project_id: raw.project_id,
        default: raw.default,
        auth,
        iam_user: raw.iam_user,
        iam_domain: raw.iam_domain,
        password,
        access_key,
        secret_key,
        token,
        endpoints: raw
            .endpoints
            .into_iter()
            .map(|(k, v)| (k, v.trim_end_matches('/').to_string()))
            .collect(),
        poll_interval,
        request_timeout,
        settings,
    })
}

/// Printable ASCII without spaces: what may go into an HTTP header unchanged.
fn header_safe(v: &str) -> bool {
    !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic())
}

/// The keys only Alibaba or only SCNet accounts use, checked for the provider at hand.
fn provider_settings(
    provider: Provider,
    auth: AuthMethod,
    raw: &RawAccount,
    path: &str,
    p: &mut Collector,
) -> ProviderSettings {
    let mut only = |key: &str, set: bool, wanted: Provider| {
        if set && provider != wanted {
            p.add(
                format!("{path}.{key}"),
                format!("only for {} accounts", wanted.name()),
            );
        }
    };
    only(
        "calls_per_minute",
        raw.calls_per_minute.is_some(),
        Provider::Alibaba,
    );
    only("scnet_user", raw.scnet_user.is_some(), Provider::Scnet);
    only("org_id", raw.org_id.is_some(), Provider::Scnet);
    only("cluster_id", raw.cluster_id.is_some(), Provider::Scnet);
    only("cluster_name", raw.cluster_name.is_some(), Provider::Scnet);
    only("status_field", raw.status_field.is_some(), Provider::Scnet);

    let calls_per_minute = match raw.calls_per_minute {
        Some(n) if (1..=600).contains(&n) => Some(n as u32),
        Some(_) => {
            p.add(
                format!("{path}.calls_per_minute"),
                "must be between 1 and 600 (SAE allows 60 per user)",
            );
            None
        }
        None => None,
    };
    if provider == Provider::Scnet {
        match raw.scnet_user.as_deref() {
            Some(u) if header_safe(u) => {}
            Some(_) => p.add(
                format!("{path}.scnet_user"),
                "must be printable ASCII without spaces (it is sent as a header)",
            ),
            None => p.add(
                format!("{path}.scnet_user"),
                "missing (the SCNet user name)",
            ),
        }
        match raw.org_id.as_deref() {
            Some(o) if header_safe(o) => {}
            Some(_) => p.add(
                format!("{path}.org_id"),
                "must be printable ASCII without spaces (it is sent as a header)",
            ),
            None if auth == AuthMethod::Password => p.add(
                format!("{path}.org_id"),
                "missing (the orgId issued to the integrator; needed for auth = \"password\")",
            ),
            None => {}
        }
        match (&raw.cluster_id, &raw.cluster_name) {
            (Some(_), Some(_)) => p.add(
                format!("{path}.cluster_id"),
                "set cluster_id or cluster_name, not both",
            ),
            (None, None) => p.add(
                format!("{path}.cluster_id"),
                "missing: name the cluster (computing region) by cluster_id or cluster_name",
            ),
            (Some(id), None) if !ids::SCNET_CLUSTER_ID.matches(id) => p.add(
                format!("{path}.cluster_id"),
                format!("must be {}", ids::SCNET_CLUSTER_ID.describe),
            ),
            (None, Some(name))
                if name.trim().is_empty()
                    || name.chars().count() > 64
                    || name.chars().any(char::is_control) =>
            {
                p.add(
                    format!("{path}.cluster_name"),
                    "must be 1 to 64 characters without control characters",
                )
            }
            _ => {}
        }
        if let Some(f) = &raw.status_field {
            if !ids::SCNET_STATUS_FIELD.matches(f) {
                p.add(
                    format!("{path}.status_field"),
                    format!("must be {}", ids::SCNET_STATUS_FIELD.describe),
                );
            }
        }
        let has = |k: &str| raw.endpoints.contains_key(k);
        if !has("token") && !has("ac") {
            p.add(
                format!("{path}.endpoints"),
                "SCNet needs endpoints.ac (platform base URL) or endpoints.token (token service)",
            );
        }
        if !has("ai") && !has("ac") {
            p.add(
                format!("{path}.endpoints"),
                "SCNet needs endpoints.ac (to find the AI URL) or endpoints.ai",
            );
        }
    }
    ProviderSettings {
        auth_header: raw.auth_header.clone(),
        calls_per_minute,
        scnet_user: raw.scnet_user.clone(),
        org_id: raw.org_id.clone(),
        cluster_id: raw.cluster_id.clone(),
        cluster_name: raw.cluster_name.clone(),
        status_field: raw.status_field.clone(),
    }
}

fn target(
    name: &str,
    raw: RawTarget,
    path: &str,
    accounts: &BTreeMap<String, Arc<Account>>,
    builtins: &Builtins,
    known: &Known<'_>,
    p: &mut Collector,
) -> Option<Target> {
    let services = known.catalog.services();
    let Some(service_name) = raw.service.as_deref() else {
        p.add(
            format!("{path}.service"),
            format!("missing (one of: {})", services.join(", ")),
        );
        return None;
    };
    let Some(op) = known
        .catalog
        .operations()
        .iter()
        .find(|op| op.names_service(service_name))
    else {
        p.add(
            format!("{path}.service"),
            format!(
                "unknown service `{service_name}` (one of: {}){}",
                services.join(", "),
                suggest::did_you_mean(service_name, services.iter().copied())
            ),
        );
        return None;
    };
    let account = match raw.account {
        Some(a) => match accounts.get(&a) {
            Some(acc) if acc.provider != op.provider => {
                p.add(
                    format!("{path}.account"),
                    format!(
                        "account `{a}` is {}, but {} needs a {} account",
                        acc.provider.name(),
                        op.service,
                        op.provider.name()
                    ),
                );
                a
            }
            Some(acc) => {
                // An account already reported for its endpoints says it once, not per target.
                if (builtins.check_account)(acc).is_none() {
                    if let Some(e) = (builtins.check_service)(acc, &op.service) {
                        p.add(format!("{path}.account"), e);
                    }
                }
                for e in declared_misfits(acc, &op.service, known, builtins) {
                    p.add(format!("{path}.account"), e);
                }
                a
            }
            None => {
                p.add(
                    format!("{path}.account"),
                    format!(
                        "unknown account `{a}`{}",
                        suggest::did_you_mean(&a, accounts.keys().map(String::as_str))
                    ),
                );
                a
            }
        },
        None => match accounts
            .values()
            .find(|acc| acc.provider == op.provider && acc.default)
        {
            Some(acc) => acc.name.clone(),
            None => {
                p.add(
                    format!("{path}.account"),
                    format!(
                        "missing, and there is no default {} account",
                        op.provider.name()
                    ),
                );
                String::new()
            }
        },
    };
    let mut params = BTreeMap::new();
    for (key, value) in raw.params {
        let kpath = format!("{path}.{key}");
        let Some(param) = op.target.iter().find(|prm| prm.name == key) else {
            let known: Vec<&str> = op.target.iter().map(|prm| prm.name.as_str()).collect();
            p.add(
                kpath,
                format!(
                    "unknown key (a {} target has: service, account, description, {}){}",
                    op.service,
                    known.join(", "),
                    suggest::did_you_mean(
                        &key,
                        ["service", "account", "description"]
                            .into_iter()
                            .chain(known.iter().copied())
                    )
                ),
            );
            continue;
        };
        match value.as_str() {
            Some(v) if param.pattern.matches(v) => {
                params.insert(key, v.to_string());
            }
            _ => p.add(kpath, format!("must be {}", param.pattern.describe)),
        }
    }
    for param in &op.target {
        if !params.contains_key(&param.name) && !p.has_path(&format!("{path}.{}", param.name)) {
            p.add(
                format!("{path}.{}", param.name),
                format!("missing ({})", param.pattern.describe),
            );
        }
    }
    let tags = tags(&raw.tags, &format!("{path}.tags"), p);
    Some(Target {
        name: name.to_string(),
        service: op.service.clone(),
        account,
        params,
        description: raw.description,
        tags,
    })
}

fn rule(
    raw: RawRule,
    path: &str,
    names: &Names<'_>,
    role_ids: RoleIds<'_>,
    p: &mut Collector,
) -> Option<Rule> {
    let channels = names.channels;
    let Some(command) = raw.command.as_deref() else {
        p.add(format!("{path}.command"), "missing (e.g. \"restart ddm\")");
        return None;
    };
    let Some(op) = names.catalog.by_key(command) else {
        let known: Vec<_> = names
            .catalog
            .operations()
            .iter()
            .map(|op| op.key())
            .collect();
        p.add(
            format!("{path}.command"),
            format!(
                "unknown command `{command}` (one of: {}){}",
                known.join(", "),
                suggest::did_you_mean(command, known.iter().map(String::as_str))
            ),
        );
        return None;
    };
    let mut modes = Vec::new();
    for (i, m) in raw.modes.iter().enumerate() {
        let m = m.to_ascii_lowercase();
        if op.mode_values().contains(&m) {
            modes.push(m);
        } else if op.modes.is_none() {
            p.add(
                format!("{path}.modes[{i}]"),
                format!("`{}` has no modes", op.key()),
            );
        } else {
            p.add(
                format!("{path}.modes[{i}]"),
                format!(
                    "unknown mode `{m}` (one of: {}){}",
                    op.mode_values().join(", "),
                    suggest::did_you_mean(&m, op.mode_values().iter().map(String::as_str))
                ),
            );
        }
    }
    if raw.request_roles.is_empty() {
        p.add(
            format!("{path}.request_roles"),
            "missing: at least one role must be allowed to request this",
        );
    }
    let request_roles = role_ids(&raw.request_roles, &format!("{path}.request_roles"), p);
    let approver_roles = role_ids(&raw.approver_roles, &format!("{path}.approver_roles"), p);
    let mut channel_ids = Vec::new();
    for (i, c) in raw.channels.iter().enumerate() {
        match channels.get(c) {
            Some(id) => channel_ids.push(id.clone()),
            None => p.add(
                format!("{path}.channels[{i}]"),
                format!(
                    "unknown channel `{c}` (add it under [channels]){}",
                    suggest::did_you_mean(c, channels.keys().map(String::as_str))
                ),
            ),
        }
    }
    let approvals = raw.approvals.unwrap_or(0);
    if !(0..=MAX_APPROVALS).contains(&approvals) {
        p.add(
            format!("{path}.approvals"),
            format!("must be between 0 and {MAX_APPROVALS}"),
        );
    }
    if approvals > 0 && raw.approver_roles.is_empty() {
        p.add(
            format!("{path}.approver_roles"),
            "missing: a rule that needs approvals must say who may approve",
        );
    }
    let expires = match raw.expires.as_deref() {
        Some(t) => duration(t, &format!("{path}.expires"), p).unwrap_or(DEFAULT_EXPIRY),
        None => DEFAULT_EXPIRY,
    };
    if expires > MAX_EXPIRY {
        p.add(format!("{path}.expires"), "must be at most 7 days");
    }
    let scope = scope(&raw, op, path, names, p);
    let break_glass_roles = role_ids(
        &raw.break_glass_roles,
        &format!("{path}.break_glass_roles"),
        p,
    );
    if raw.break_glass && raw.break_glass_roles.is_empty() {
        p.add(
            format!("{path}.break_glass_roles"),
            "missing: a rule that allows break_glass must say which roles may use it",
        );
    }
    if !raw.break_glass && !raw.break_glass_roles.is_empty() {
        p.add(
            format!("{path}.break_glass"),
            "break_glass_roles is set but break_glass is not: add break_glass = true",
        );
    }
    let key = op.key();
    let name = raw.name.unwrap_or_else(|| {
        if modes.is_empty() {
            key.clone()
        } else {
            format!("{key} {}", modes.join("|"))
        }
    });
    Some(Rule {
        name,
        command: key,
        modes,
        request_roles,
        channels: channel_ids,
        approvals: approvals.clamp(0, MAX_APPROVALS) as u32,
        approver_roles,
        expires,
        scope,
        confirm: raw.confirm,
        break_glass_roles: if raw.break_glass {
            break_glass_roles
        } else {
            Vec::new()
        },
        thread: raw.thread,
    })
}

/// Why the declared operations on `service` cannot run on `account`: an authentication that
/// does not fit the account's, or an endpoint it cannot reach.
fn declared_misfits(
    account: &Account,
    service: &str,
    known: &Known<'_>,
    builtins: &Builtins,
) -> Vec<String> {
    let mut out = Vec::new();
    for op in known
        .catalog
        .operations()
        .iter()
        .filter(|o| o.service == service)
    {
        let Some(d) = known.declared.iter().find(|d| d.id == op.id) else {
            continue;
        };
        if let super::declared::Action::Http(h) = &d.action {
            if let Some(why) = h.auth.misfit(account.auth) {
                out.push(format!("`{}`: {why}", op.key()));
            }
            if let Some(why) = (builtins.check_endpoint)(account, &h.endpoint) {
                out.push(format!("`{}`: {why}", op.key()));
            }
        }
    }
    out
}

/// A rule's `targets`, `accounts` or `tags`: at most one of them, naming what exists.
fn scope(
    raw: &RawRule,
    op: &OperationDef,
    path: &str,
    names: &Names<'_>,
    p: &mut Collector,
) -> Scope {
    let kinds = [
        !raw.targets.is_empty(),
        !raw.accounts.is_empty(),
        !raw.tags.is_empty(),
    ];
    if kinds.iter().filter(|k| **k).count() > 1 {
        p.add(
            format!("{path}.targets"),
            "scope a rule by one of targets, accounts or tags (split it into rules)",
        );
    }
    for (i, t) in raw.targets.iter().enumerate() {
        match names.targets.get(t) {
            Some(target) if target.service != op.service => p.add(
                format!("{path}.targets[{i}]"),
                format!(
                    "target `{t}` is a {} target, but the rule is for `{}`",
                    target.service,
                    op.key()
                ),
            ),
            Some(_) => {}
            None => p.add(
                format!("{path}.targets[{i}]"),
                format!(
                    "unknown target `{t}`{}",
                    suggest::did_you_mean(t, names.targets.keys().map(String::as_str))
                ),
            ),
        }
    }
    for (i, a) in raw.accounts.iter().enumerate() {
        match names.accounts.get(a) {
            Some(acc) if acc.provider != op.provider => p.add(
                format!("{path}.accounts[{i}]"),
                format!(
                    "account `{a}` is {}, but `{}` runs on {}",
                    acc.provider.name(),
                    op.key(),
                    op.provider.name()
                ),
            ),
            Some(_) => {}
            None => p.add(
                format!("{path}.accounts[{i}]"),
                format!(
                    "unknown account `{a}`{}",
                    suggest::did_you_mean(a, names.accounts.keys().map(String::as_str))
                ),
            ),
        }
    }
    Scope {
        targets: raw.targets.clone(),
        accounts: raw.accounts.clone(),
        tags: tags(&raw.tags, &format!("{path}.tags"), p),
    }
}
