//! A spec file's size in tokens, counted before it is parsed: the parsers and the trees they build
//! take time and memory per token (a 6 MB list of 3,000,000 numbers took 8 s and 1.5 GB), so a
//! file of more than [`MAX_TOKENS`] is refused at once. The largest zoo file has about 1,000.

use crate::diagnostic::Diagnostic;
use crate::source::{FileId, Span};

/// The most tokens one spec file may hold; `CNNC_MAX_TOKENS` raises it.
pub const MAX_TOKENS: usize = 250_000;

/// [`MAX_TOKENS`], or the positive number in `CNNC_MAX_TOKENS`.
fn token_limit() -> usize {
    static LIMIT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    crate::limit::from_env(&LIMIT, "CNNC_MAX_TOKENS", MAX_TOKENS)
}

/// Whether `b` belongs to a name or a number (`conv2`, `0.5`, `1e-3`).
fn in_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b >= 0x80
}

/// Where `text` passes `limit` tokens (words, numbers and each other non-space character, comments
/// included), as a byte offset; `None` when it does not.
fn passes(text: &str, limit: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut count = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let starts_word = in_word(b) && (i == 0 || !in_word(bytes[i - 1]));
        if starts_word || (!in_word(b) && !b.is_ascii_whitespace()) {
            count += 1;
            if count > limit {
                return Some(i);
            }
        }
    }
    None
}

/// Refuses a file of more than [`token_limit`] tokens, located where it passes the limit.
///
/// # Errors
/// `cnnc::limit::tokens`, saying how to raise the limit.
pub fn check(text: &str, file: FileId) -> Result<(), Diagnostic> {
    let limit = token_limit();
    let Some(at) = passes(text, limit) else { return Ok(()) };
    let end = text[at..].chars().next().map_or(at, |c| at + c.len_utf8());
    Err(Diagnostic::error("cnnc::limit::tokens", format!("this file holds more than {limit} tokens"))
        .at(Span::new(file, at, end), "the limit is passed here")
        .help(format!(
            "names, numbers and symbols count one each; split the spec into files that import each other, or \
             raise the limit with CNNC_MAX_TOKENS={}",
            limit.saturating_mul(10)
        )))
}

#[cfg(test)]
mod tests {
    use super::passes;

    #[test]
    fn tokens_are_names_numbers_and_symbols() {
        // conv2 ( 64 , 3 , stride = 2 ) : 10 tokens.
        let text = "conv2(64, 3, stride=2)";
        assert_eq!(passes(text, 10), None);
        assert_eq!(passes(text, 9), Some(text.len() - 1));
        // [ 1e - 3 , 0.5 ]: an exponent's sign counts apart, which only overcounts.
        assert_eq!(passes("[1e-3, 0.5]", 7), None);
        assert_eq!(passes("[1e-3, 0.5]", 6), Some(10));
        assert_eq!(passes("café: 1", 3), None, "non-ASCII letters belong to names");
    }
}
