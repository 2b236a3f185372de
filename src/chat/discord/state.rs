//! What the adapter remembers between events: which messages are open job cards, which
//! channels are threads (and their parents), which foreign guilds were already logged, the
//! threads on job cards, and what is known about votes (`votes.rs`).

use std::collections::{HashMap, HashSet};

#[derive(Default)]
pub(crate) struct AdapterState {
    /// Channel -> its parent channel when it is a thread or forum post, `None` when it is not
    /// a thread.
    pub parents: HashMap<u64, Option<u64>>,
    /// Guilds not in `[discord] guilds` that were already logged.
    pub foreign_guilds: HashSet<u64>,
    pub votes: super::votes::Votes,
    /// Live cards, lost cards and the incident messages linking to them (`lost.rs`).
    pub cards: super::lost::Cards,
    /// A job card's message -> the thread on it (`Some`), or `None` when Discord refused to
    /// make one for good (permissions): that job's thread lines go to the channel.
    pub threads: HashMap<u64, Option<u64>>,
}
