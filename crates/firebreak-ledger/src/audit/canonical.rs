//! A one-pass proof that a payload is already in canonical (RFC 8785) form, and
//! the raw text of its top-level members, without building a `serde_json::Value`.
//!
//! Why: the plain check — parse to a `Value`, serialize canonically, compare —
//! costs two full passes and many allocations per entry, most of `audit verify`'s
//! time on a large ledger. This scanner only ever answers "canonical" when that
//! plain check would pass; whenever it cannot prove so (any deviation, a number
//! outside the simple integer form that it also checks exactly, deep nesting), it
//! answers `None` and the caller runs the plain check, which then decides and
//! names the problem. So the verdict is the plain check's, always.
//!
//! What canonical text looks like here, each rule mirroring the serializer
//! (`serde_json_canonicalizer`): no white space; object members in strictly
//! increasing order of their keys' UTF-16 code units (so no duplicates); strings
//! with raw characters except `"`, `\` and U+0000–U+001F, which are written `\"`,
//! `\\`, `\b`, `\t`, `\n`, `\f`, `\r` or `\u00xx` (lower-case hex) for the other
//! control characters; every number written as the serializer writes its `f64`
//! (ECMAScript form): integers of up to 15 digits without a leading zero, and
//! not `-0`, are their own canonical form (exactly representable, printed without
//! exponent); any other number is checked by the plain check on that token alone.

use crate::entry::canonical_json;

/// Nesting beyond this is left to the plain check (whose parser has its own limit).
const MAX_DEPTH: usize = 64;

/// The raw text (with quotes, for strings) of one top-level member's value.
pub(super) type Span<'a> = &'a str;

/// Calls `member(key, value)` for each top-level member of `text` and returns
/// `Some(())` if `text` is a JSON object in canonical form; `None` if that is not
/// proved (the caller must then run the plain check). `key` is the raw key text
/// between the quotes.
pub(super) fn canonical_object<'a>(
    text: &'a str,
    mut member: impl FnMut(&'a str, Span<'a>),
) -> Option<()> {
    let mut scanner = Scanner {
        text,
        bytes: text.as_bytes(),
        pos: 0,
    };
    if scanner.peek()? != b'{' {
        return None;
    }
    scanner.object(0, Some(&mut member))?;
    (scanner.pos == scanner.bytes.len()).then_some(())
}

/// The value of a string span without its quotes when it has no escapes.
pub(super) fn plain_string(span: Span<'_>) -> Option<&str> {
    let inner = span.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains('\\')).then_some(inner)
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

type Member<'m, 'a> = Option<&'m mut dyn FnMut(&'a str, Span<'a>)>;

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'{' => self.object(depth + 1, None),
            b'[' => self.array(depth + 1),
            b'"' => self.string().map(|_| ()),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.pos + word.len();
        (self.bytes.get(self.pos..end)? == word).then(|| self.pos = end)
    }

    fn object(&mut self, depth: usize, mut member: Member<'_, 'a>) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.expect(b'{')?;
        if self.peek()? == b'}' {
            self.pos += 1;
            return Some(());
        }
        let mut previous: Option<(&'a str, bool)> = None;
        loop {
            let key = self.string()?;
            if let Some(previous) = previous
                && !key_less(previous, key)?
            {
                return None;
            }
            previous = Some(key);
            self.expect(b':')?;
            let start = self.pos;
            self.value(depth)?;
            if let Some(member) = member.as_mut() {
                member(key.0, &self.text[start..self.pos]);
            }
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.expect(b'[')?;
        if self.peek()? == b']' {
            self.pos += 1;
            return Some(());
        }
        loop {
            self.value(depth)?;
            match self.peek()? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A canonical string: returns its raw inner text and whether it has escapes.
    fn string(&mut self) -> Option<(&'a str, bool)> {
        self.expect(b'"')?;
        let start = self.pos;
        let mut escaped = false;
        loop {
            match self.peek()? {
                b'"' => {
                    let inner = &self.text[start..self.pos];
                    self.pos += 1;
                    return Some((inner, escaped));
                }
                b'\\' => {
                    escaped = true;
                    let escape = self.bytes.get(self.pos + 1)?;
                    match escape {
                        b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => self.pos += 2,
                        b'u' => {
                            let digits = self.bytes.get(self.pos + 2..self.pos + 6)?;
                            let code = match digits {
                                [b'0', b'0', high @ (b'0' | b'1'), low] => {
                                    let low = match low {
                                        b'0'..=b'9' => low - b'0',
                                        b'a'..=b'f' => low - b'a' + 10,
                                        _ => return None,
                                    };
                                    (high - b'0') * 16 + low
                                }
                                _ => return None,
                            };
                            // These have short escapes, which canonical text uses.
                            if matches!(code, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d) {
                                return None;
                            }
                            self.pos += 6;
                        }
                        _ => return None,
                    }
                }
                0x00..=0x1f => return None,
                _ => self.pos += 1,
            }
        }
    }

    fn number(&mut self) -> Option<()> {
        let start = self.pos;
        while matches!(
            self.peek(),
            Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
        ) {
            self.pos += 1;
        }
        let token = &self.text[start..self.pos];
        let digits = token.strip_prefix('-').unwrap_or(token);
        let simple_integer = !digits.is_empty()
            && digits.len() <= 15
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (!digits.starts_with('0') || digits == "0")
            && token != "-0";
        if simple_integer {
            return Some(());
        }
        // Anything else: exactly what the plain check does, on this token alone.
        let value: serde_json::Value = serde_json::from_str(token).ok()?;
        (canonical_json(&value).ok()? == token).then_some(())
    }
}

/// Whether key `a` sorts strictly before key `b` by UTF-16 code units; `None`
/// when an escaped key cannot be decoded here.
fn key_less(a: (&str, bool), b: (&str, bool)) -> Option<bool> {
    if !a.1 && !b.1 && a.0.is_ascii() && b.0.is_ascii() {
        return Some(a.0 < b.0);
    }
    let decode = |(raw, escaped): (&str, bool)| -> Option<String> {
        if escaped {
            serde_json::from_str(&format!("\"{raw}\"")).ok()
        } else {
            Some(raw.to_string())
        }
    };
    let (a, b) = (decode(a)?, decode(b)?);
    Some(a.encode_utf16().lt(b.encode_utf16()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain check: parse, serialize canonically, compare.
    fn plain(text: &str) -> bool {
        serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| canonical_json(&v).ok())
            .as_deref()
            == Some(text)
    }

    /// The scanner never claims canonical form the plain check denies, and claims
    /// it for every canonical object.
    fn check(text: &str, canonical: bool) {
        let fast = canonical_object(text, |_, _| {}).is_some();
        assert_eq!(plain(text), canonical, "plain check of {text}");
        if fast {
            assert!(canonical, "scanner accepted {text}");
        }
        if canonical && text.starts_with('{') {
            assert!(fast, "scanner refused canonical {text}");
        }
    }

    #[test]
    fn agrees_with_the_plain_check() {
        check(r#"{}"#, true);
        check(r#"{"a":1,"b":[true,false,null],"c":{"d":"e"}}"#, true);
        check(r#"{"b":1,"a":2}"#, false);
        check(r#"{"a":1,"a":1}"#, false);
        check(r#"{"a": 1}"#, false);
        check(r#"{"a":1} "#, false);
        check(r#"{"a":1.0}"#, false);
        check(r#"{"a":1.5}"#, true);
        check(r#"{"a":0.00001}"#, true);
        check(r#"{"a":1e-5}"#, false);
        check(r#"{"a":1e+21}"#, true);
        check(r#"{"a":-0}"#, false);
        check(r#"{"a":0}"#, true);
        check(r#"{"a":-12}"#, true);
        check(r#"{"a":012}"#, false);
        check(r#"{"a":999999999999999}"#, true);
        check(r#"{"a":9007199254740993}"#, false);
        check(r#"{"a":9007199254740992}"#, true);
        check(r#"{"a":"\u0001\n\"\\"}"#, true);
        check(r#"{"a":"\u000a"}"#, false);
        check(r#"{"a":"\u0041"}"#, false);
        check(r#"{"a":"\/"}"#, false);
        check(r#"{"a":"\u001F"}"#, false);
        check("{\"a\":\"\u{7f}é\u{2028}\"}", true);
        // UTF-16 order: U+FF61 sorts after U+1F600 by code points, before by units.
        check("{\"\u{1F600}\":1,\"\u{FF61}\":2}", true);
        check("{\"\u{FF61}\":2,\"\u{1F600}\":1}", false);
        check(r#"{"\n":1,"a":2}"#, true);
        check(r#"{"a":1,"\n":2}"#, false);
        check(r#"{"a":[1,]}"#, false);
        check(r#"{"a":tru}"#, false);
        check(r#"[1]"#, true);
    }

    #[test]
    fn members_are_the_top_level_ones() {
        let mut seen = Vec::new();
        let text = r#"{"a":{"b":1},"c":"d\n","e":[1,2]}"#;
        canonical_object(text, |k, v| seen.push((k, v))).expect("canonical");
        assert_eq!(
            seen,
            [("a", r#"{"b":1}"#), ("c", r#""d\n""#), ("e", "[1,2]")]
        );
        assert_eq!(plain_string(r#""d""#), Some("d"));
        assert_eq!(plain_string(r#""d\n""#), None);
    }
}
