//! "Did you mean ...?": the nearest known name to a mistyped one, for config problems and
//! chat replies.

/// The candidate closest to `word` by Damerau-Levenshtein distance (case-insensitive), if it
/// is close enough to be a typo: at most one edit for short words, a third of the length
/// for longer ones. Ties go to the earlier candidate.
pub fn nearest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let word = word.to_lowercase();
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| !c.is_empty() && c.to_lowercase() != word)
        .map(|c| (strsim::damerau_levenshtein(&word, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `; did you mean `X`?` when there is a near candidate, else nothing: for appending.
pub fn did_you_mean<'a, I>(word: &str, candidates: I) -> String
where
    I: IntoIterator<Item = &'a str>,
{
    match nearest(word, candidates) {
        Some(c) => format!("; did you mean `{c}`?"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_their_word_and_strangers_find_nothing() {
        let verbs = ["restart", "upgrade", "approve", "deny", "status"];
        assert_eq!(nearest("restrat", verbs), Some("restart"));
        assert_eq!(nearest("RESTRAT", verbs), Some("restart"));
        assert_eq!(nearest("aprove", verbs), Some("approve"));
        assert_eq!(nearest("frobnicate", verbs), None);
        assert_eq!(nearest("restart", verbs), None, "an exact match is no typo");
        let regions = ["cn-north-4", "cn-north-1", "cn-south-1"];
        assert_eq!(nearest("cn-noth-4", regions), Some("cn-north-4"));
        assert_eq!(
            did_you_mean("aprover_roles", ["approver_roles", "approvals"]),
            "; did you mean `approver_roles`?"
        );
    }
}
