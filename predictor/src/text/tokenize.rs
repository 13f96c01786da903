//! Tweet tokenizer: lowercased, Unicode-aware words with tweet-specific tokens.
//!
//! Rules, each deliberate:
//! - the text is lowercased once (Unicode `to_lowercase`); tokens borrow from that buffer;
//! - a URL (`http://…`, `https://…`, `www.…`, up to the next space) becomes the single token [`URL_TOKEN`]:
//!   tweets carry shortened `t.co` links whose text says nothing about the author;
//! - `@name` and `#tag` keep their sigil, so a mention of `@nyc` and the word `nyc` stay different features;
//! - a word is a run of letters, digits, marks and `_`, with inner apostrophes (`can't`, `y'all`) kept;
//!   numbers are words too (`2016`, `5k`), because area codes and years carry signal;
//! - every emoji or other pictograph is a token of its own (skin tones, variation selectors and
//!   zero-width joiners are dropped), so `🇺🇸` and `🔥🔥` count like words;
//! - everything else (punctuation, symbols, white space) separates tokens.

/// The token every URL is replaced with.
pub const URL_TOKEN: &str = "<url>";

/// Lowercases `text` into `buf` (reused between calls) and returns its tokens, borrowing from `buf`.
pub fn tokenize<'a>(text: &str, buf: &'a mut String) -> Vec<&'a str> {
    lowercase_into(text, buf);
    let mut tokens = Vec::new();
    for_each_token(buf, |token| tokens.push(token));
    tokens
}

/// Lowercases `text` into `buf`, reusing its allocation.
pub fn lowercase_into(text: &str, buf: &mut String) {
    buf.clear();
    if text.is_ascii() {
        buf.push_str(text);
        buf.make_ascii_lowercase();
    } else {
        buf.extend(text.chars().flat_map(char::to_lowercase));
    }
}

/// Calls `emit` for each token of an already lowercased `text`, in order, without allocating.
pub fn for_each_token<'a>(text: &'a str, mut emit: impl FnMut(&'a str)) {
    let bytes = text.as_bytes();
    let mut pos = 0;
    while pos < text.len() {
        let rest = &text[pos..];
        let Some(c) = rest.chars().next() else { break };
        if is_url_start(rest) {
            pos += rest.find(char::is_whitespace).unwrap_or(rest.len());
            emit(URL_TOKEN);
        } else if (c == '@' || c == '#') && rest[1..].starts_with(is_word_char) {
            let end = 1 + word_len(&rest[1..]);
            emit(&rest[..end]);
            pos += end;
        } else if is_word_char(c) {
            let end = word_len(rest);
            emit(&rest[..end]);
            pos += end;
        } else if is_pictograph(c) {
            emit(&rest[..c.len_utf8()]);
            pos += c.len_utf8();
        } else {
            pos += c.len_utf8();
        }
        debug_assert!(text.is_char_boundary(pos) || pos >= bytes.len());
    }
}

fn is_url_start(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://") || s.starts_with("www.")
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || is_combining_mark(c)
}

/// Length in bytes of the word at the start of `s`: word chars, plus apostrophes between word chars.
fn word_len(s: &str) -> usize {
    let mut end = 0;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if is_word_char(c) {
            end = i + c.len_utf8();
        } else if is_apostrophe(c)
            && end == i
            && chars.peek().is_some_and(|&(_, n)| is_word_char(n))
        {
            continue;
        } else {
            break;
        }
    }
    end
}

fn is_apostrophe(c: char) -> bool {
    c == '\'' || c == '\u{2019}'
}

fn is_combining_mark(c: char) -> bool {
    matches!(c as u32, 0x0300..=0x036F | 0x0900..=0x097F | 0x1AB0..=0x1AFF | 0x20D0..=0x20FF)
        && !c.is_alphanumeric()
}

/// Emoji and pictographs: the blocks Unicode assigns them, including regional indicators (flags).
/// Regional indicators (flag halves, U+1F1E6–U+1F1FF) fall in the first block. Modifiers (skin tones), variation selectors and zero-width joiners are not tokens.
fn is_pictograph(c: char) -> bool {
    matches!(c as u32,
        0x1F000..=0x1F3FA | 0x1F400..=0x1FAFF | 0x2600..=0x27BF | 0x2B00..=0x2BFF | 0x2300..=0x23FF)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<String> {
        let mut buf = String::new();
        tokenize(text, &mut buf)
            .into_iter()
            .map(String::from)
            .collect()
    }

    #[test]
    fn words_are_lowercased_and_split_on_punctuation() {
        assert_eq!(
            tokens("Sitting at the V3 vets conf. Learning!"),
            ["sitting", "at", "the", "v3", "vets", "conf", "learning"]
        );
    }

    #[test]
    fn urls_become_one_token() {
        assert_eq!(
            tokens("Thank you… https://t.co/E23Dt6u5i8 and www.example.org/x?y=1 ok"),
            ["thank", "you", URL_TOKEN, "and", URL_TOKEN, "ok"]
        );
    }

    #[test]
    fn mentions_and_hashtags_keep_their_sigil() {
        assert_eq!(
            tokens("@NYC_Mayor loves #Covid19 in #NewYork! a@b # alone"),
            [
                "@nyc_mayor",
                "loves",
                "#covid19",
                "in",
                "#newyork",
                "a",
                "@b",
                "alone"
            ]
        );
    }

    #[test]
    fn inner_apostrophes_stay_outer_ones_go() {
        assert_eq!(
            tokens("I can't, y’all 'quoted' rock'n'roll"),
            ["i", "can't", "y’all", "quoted", "rock'n'roll"]
        );
    }

    #[test]
    fn numbers_are_words() {
        assert_eq!(
            tokens("Up 5k in 2016, 90210 rules 3.5"),
            ["up", "5k", "in", "2016", "90210", "rules", "3", "5"]
        );
    }

    #[test]
    fn emoji_are_single_tokens_and_modifiers_vanish() {
        assert_eq!(
            tokens("go🔥🔥 team👍🏽 ❤️ 🇺🇸"),
            ["go", "🔥", "🔥", "team", "👍", "❤", "🇺", "🇸"]
        );
    }

    #[test]
    fn unicode_letters_are_words() {
        assert_eq!(
            tokens("I'm at Star AVM in Yalova, Türkiye. ÉCOLE Straße"),
            [
                "i'm", "at", "star", "avm", "in", "yalova", "türkiye", "école", "straße"
            ]
        );
    }

    #[test]
    fn empty_and_symbol_only_text_has_no_tokens() {
        assert!(tokens("").is_empty());
        assert!(tokens("  ... !!! --- ").is_empty());
    }
}
