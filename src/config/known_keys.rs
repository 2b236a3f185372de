//! The keys each table of the config accepts, read from the raw types' own serde
//! definitions (so they never drift from what the parser takes), for "did you mean"; and
//! unknown keys reported with the known key meant.

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};

use super::problems::Collector;
use crate::command::suggest;

use super::declared::raw::{self as declared, RawOperation};
use super::raw::{RawAccount, RawBot, RawConfig, RawRule};
use super::sections::{RawDiscord, RawHttp, RawIncidents, RawLog, RawRoute};

/// The keys the table at `parent` (a key path in the validator's style) accepts, if known.
pub fn keys_of(parent: &str) -> Option<&'static [&'static str]> {
    let mut segments = parent.split('.');
    let first = segments.next().unwrap_or_default();
    let rest: Vec<&str> = segments.collect();
    Some(match (first, rest.as_slice()) {
        ("", []) => fields::<RawConfig>(),
        ("bot", []) => fields::<RawBot>(),
        ("discord", []) => fields::<RawDiscord>(),
        ("incidents", []) => fields::<RawIncidents>(),
        ("http", []) => fields::<RawHttp>(),
        ("log", []) => fields::<RawLog>(),
        ("store", []) => fields::<super::store::RawStore>(),
        ("accounts", [_]) => fields::<RawAccount>(),
        (s, []) if s.starts_with("rules[") => fields::<RawRule>(),
        (s, []) if s.starts_with("freezes[") => fields::<super::freezes::RawFreeze>(),
        ("incidents", [r]) if r.starts_with("routes[") => fields::<RawRoute>(),
        (s, []) if s.starts_with("operations[") => fields::<RawOperation>(),
        (s, [r]) if s.starts_with("operations[") && r.starts_with("params[") => {
            fields::<declared::RawParam>()
        }
        (s, ["modes"]) if s.starts_with("operations[") => fields::<declared::RawModes>(),
        (s, ["accepted"]) if s.starts_with("operations[") => fields::<declared::RawAccepted>(),
        (s, ["errors"]) if s.starts_with("operations[") => fields::<declared::RawErrors>(),
        (s, ["errors", r]) if s.starts_with("operations[") && r.starts_with("refused[") => {
            fields::<declared::RawRefusal>()
        }
        (s, ["poll"]) if s.starts_with("operations[") => fields::<declared::RawPoll>(),
        (s, ["reconcile"]) if s.starts_with("operations[") => fields::<declared::RawReconcile>(),
        _ => return None,
    })
}

/// The field names `T`'s derived `Deserialize` passes to `deserialize_struct`.
fn fields<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut out: &'static [&'static str] = &[];
    let _ = T::deserialize(Capture(&mut out));
    out
}

struct Capture<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for Capture<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("only structs"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("captured"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// Each unknown key as a problem, with the known key it was probably meant to be; returns
/// those meant keys: a "missing" problem about one of them is the same mistake, so it is
/// not reported twice.
pub(super) fn unknown_keys(unknown: Vec<String>, problems: &mut Collector) -> Vec<String> {
    let mut meant = Vec::new();
    for path in unknown {
        let (parent, key) = match path.rfind('.') {
            Some(i) => (&path[..i], &path[i + 1..]),
            None => ("", path.as_str()),
        };
        let hint = keys_of(parent).and_then(|keys| suggest::nearest(key, keys.iter().copied()));
        if let Some(k) = hint {
            meant.push(if parent.is_empty() {
                k.to_string()
            } else {
                format!("{parent}.{k}")
            });
        }
        let message = match hint {
            Some(k) => format!("unknown key; did you mean `{k}`?"),
            None => "unknown key".to_string(),
        };
        problems.add(path, message);
    }
    meant
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keys_come_from_the_raw_types() {
        assert!(keys_of("rules[3]").unwrap().contains(&"approver_roles"));
        assert!(keys_of("accounts.prod").unwrap().contains(&"password_env"));
        assert!(keys_of("").unwrap().contains(&"rules"));
        assert!(keys_of("incidents.routes[0]")
            .unwrap()
            .contains(&"severities"));
        assert!(keys_of("targets.db").is_none());
    }
}
