use std::collections::BTreeMap;

/// A named target from the config (`[targets.orders-db]`): what a name in a command stands
/// for.
#[derive(Clone, Debug)]
pub struct Target {
    pub name: String,
    /// Service as in the catalog, e.g. `ddm`.
    pub service: String,
    pub account: String,
    pub params: BTreeMap<String, String>,
    pub description: Option<String>,
    /// Its own tags over its account's, for rules scoped by tag.
    pub tags: BTreeMap<String, String>,
}
