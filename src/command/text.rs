//! User text made safe to echo: bidi controls (U+202E turns the rest of a line around) and
//! other invisible format characters are removed, so that what a reply shows is what was
//! typed, in the order it was typed.

/// Unicode format characters (category Cf) that change how text around them is shown, or
/// hide inside it: bidi embeddings, overrides and isolates, zero-width characters, the soft
/// hyphen, the byte-order mark, interlinear annotation marks and tag characters.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}'
        | '\u{061C}'
        | '\u{180E}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}'
        | '\u{FEFF}'
        | '\u{FFF9}'..='\u{FFFB}'
        | '\u{E0001}'
        | '\u{E0020}'..='\u{E007F}')
}

/// `text` without invisible format characters or control characters other than newlines
/// and tabs.
pub fn visible(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    out.extend(
        text.chars()
            .filter(|c| !is_invisible(*c) && (!c.is_control() || *c == '\n' || *c == '\t')),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidi_and_zero_width_characters_are_removed_and_the_rest_kept() {
        assert_eq!(visible("evil\u{202E}txt.exe"), "eviltxt.exe");
        assert_eq!(visible("a\u{200B}b\u{2066}c\u{2069}\u{FEFF}"), "abc");
        assert_eq!(
            visible("ünïcode ✅ 数据库\nnext"),
            "ünïcode ✅ 数据库\nnext"
        );
        assert_eq!(visible("bell\u{7}"), "bell");
    }
}
