//! RFC 8785 (JCS) canonical JSON of our own events, written directly.
//!
//! Why: the generic canonicalizer (`canonical_json`) buffers every member of every
//! object, parses each key back to sort it, and allocates all the way; it was
//! about 9 µs of a trial entry's 10 µs of sealing. The events that make up almost
//! every ledger (trials and runs) have fixed member names, so their canonical text
//! can be written in one pass with the members already in sorted order. What this
//! writer does not cover (arbitrary JSON values, governance records, non-finite
//! numbers, map keys whose UTF-16 order may differ from their UTF-8 order) it
//! declines, and the caller uses the generic path; a test holds the two outputs
//! equal on many varied events.
//!
//! The rules written here, as RFC 8785 states them and as the generic path
//! implements them: members sorted by the UTF-16 code units of their names; no
//! whitespace; strings escape only `"`, `\` and controls below U+0020 (`\b`,
//! `\t`, `\n`, `\f`, `\r`, else `\u00xx` in lower-case hex), everything else
//! literal UTF-8; every number is an IEEE double written as ECMAScript's
//! `Number.prototype.toString` does (`ryu-js`), integers included.

use firebreak_core::{Metrics, ParamValue, Params};

use crate::entry::{Authorization, Event, Exploit};

/// Integers up to this magnitude are exactly representable as doubles and are
/// written as plain decimal integers, which is what the ECMAScript form of the
/// double is; larger ones are converted to the double first, as the generic path
/// does.
const EXACT_INTEGER: u64 = 1 << 53;

/// Appends the members of `event`'s canonical object (`"data":…,"kind":"…"`,
/// without the braces) to `out`, or returns `None` (with `out` in an unspecified
/// state) when this writer does not cover it.
pub(crate) fn write_event_members(out: &mut String, event: &Event) -> Option<()> {
    out.push_str("\"data\":");
    match event {
        Event::RunStarted {
            run,
            version,
            os_user,
            host,
            pid,
            sandbox: None,
        } => {
            let mut o = Object::new(out);
            o.key("host").string(host);
            o.key("os_user").string(os_user);
            o.key("pid").unsigned(u64::from(*pid));
            o.key("run").unsigned(*run);
            o.key("version").string(version);
            o.end();
        }
        Event::RunEnded { run, reason } => {
            let mut o = Object::new(out);
            o.key("reason").string(reason);
            o.key("run").unsigned(*run);
            o.end();
        }
        Event::TrialProposed {
            number,
            params,
            proposer,
            rationale,
            retry_of,
            policy,
            exploit,
            state,
        } => {
            let mut o = Object::new(out);
            if let Some(exploit) = exploit {
                write_exploit(o.key("exploit"), exploit);
            }
            o.key("number").unsigned(*number);
            write_params(o.key("params"), params)?;
            if let Some(policy) = policy {
                write_authorization(o.key("policy"), policy);
            }
            o.key("proposer").string(proposer);
            o.key("rationale").string(rationale);
            if let Some(retry_of) = retry_of {
                o.key("retry_of").unsigned(*retry_of);
            }
            if let Some(state) = state {
                // An arbitrary JSON value: its canonical form on its own is its
                // canonical form inside the event.
                o.key("state")
                    .0
                    .push_str(&crate::entry::canonical_json(state).ok()?);
            }
            o.end();
        }
        Event::TrialStarted {
            number,
            run,
            worker,
            policy,
        } => {
            let mut o = Object::new(out);
            o.key("number").unsigned(*number);
            if let Some(policy) = policy {
                write_authorization(o.key("policy"), policy);
            }
            o.key("run").unsigned(*run);
            o.key("worker").unsigned(u64::from(*worker));
            o.end();
        }
        Event::TrialReported {
            number,
            step,
            metrics,
        } => {
            let mut o = Object::new(out);
            write_metrics(o.key("metrics"), metrics)?;
            o.key("number").unsigned(*number);
            o.key("step").unsigned(*step);
            o.end();
        }
        Event::TrialFinished {
            number,
            state,
            metrics,
            error,
            cpu_seconds,
            wall_seconds,
        } => {
            let mut o = Object::new(out);
            if let Some(cpu_seconds) = cpu_seconds {
                o.key("cpu_seconds").float(*cpu_seconds)?;
            }
            if let Some(error) = error {
                o.key("error").string(error);
            }
            write_metrics(o.key("metrics"), metrics)?;
            o.key("number").unsigned(*number);
            o.key("state").string(state.as_str());
            if let Some(wall_seconds) = wall_seconds {
                o.key("wall_seconds").float(*wall_seconds)?;
            }
            o.end();
        }
        Event::TrialResumed {
            number,
            run,
            worker,
            reason,
        } => {
            let mut o = Object::new(out);
            o.key("number").unsigned(*number);
            o.key("reason").string(reason);
            o.key("run").unsigned(*run);
            o.key("worker").unsigned(u64::from(*worker));
            o.end();
        }
        Event::TrialRequeued { number, reason } => {
            let mut o = Object::new(out);
            o.key("number").unsigned(*number);
            o.key("reason").string(reason);
            o.end();
        }
        Event::TrialReevaluated {
            number,
            seed,
            metrics,
            error,
            cpu_seconds,
        } => {
            let mut o = Object::new(out);
            if let Some(cpu_seconds) = cpu_seconds {
                o.key("cpu_seconds").float(*cpu_seconds)?;
            }
            if let Some(error) = error {
                o.key("error").string(error);
            }
            write_metrics(o.key("metrics"), metrics)?;
            o.key("number").unsigned(*number);
            o.key("seed").unsigned(*seed);
            o.end();
        }
        Event::TrialTested {
            number,
            metrics,
            cpu_seconds,
        } => {
            let mut o = Object::new(out);
            if let Some(cpu_seconds) = cpu_seconds {
                o.key("cpu_seconds").float(*cpu_seconds)?;
            }
            write_metrics(o.key("metrics"), metrics)?;
            o.key("number").unsigned(*number);
            o.end();
        }
        Event::Denied {
            action,
            principal,
            reason,
            policy,
            subject: None,
        } => {
            let mut o = Object::new(out);
            o.key("action").string(action);
            if let Some(policy) = policy {
                write_authorization(o.key("policy"), policy);
            }
            o.key("principal").string(principal);
            o.key("reason").string(reason);
            o.end();
        }
        // Arbitrary JSON values and the governance records: the generic path.
        _ => return None,
    }
    out.push_str(",\"kind\":");
    Value(out).string(event.kind());
    Some(())
}

/// Appends `s` as a canonical JSON string.
pub(crate) fn write_string(out: &mut String, s: &str) {
    Value(out).string(s);
}

/// Appends the canonical form of the unsigned integer `n` (the double it rounds
/// to, beyond 2^53).
pub(crate) fn write_unsigned(out: &mut String, n: u64) {
    Value(out).unsigned(n);
}

fn write_authorization(v: Value<'_>, policy: &Authorization) {
    let mut o = Object::new(v.0);
    o.key("decision").string(&policy.decision);
    let out = o.key("policies").0;
    out.push('[');
    for (i, id) in policy.policies.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        Value(out).string(id);
    }
    out.push(']');
    o.end();
}

fn write_exploit(v: Value<'_>, exploit: &Exploit) {
    let mut o = Object::new(v.0);
    o.key("from").unsigned(exploit.from);
    o.key("replaces").unsigned(exploit.replaces);
    o.end();
}

fn write_params(v: Value<'_>, params: &Params) -> Option<()> {
    let mut o = Object::new(v.0);
    for (name, value) in params {
        let v = o.map_key(name)?;
        match value {
            ParamValue::Bool(b) => v.0.push_str(if *b { "true" } else { "false" }),
            ParamValue::Int(i) => v.integer(*i),
            ParamValue::Float(f) => v.float(*f)?,
            ParamValue::Str(s) => v.string(s),
        }
    }
    o.end();
    Some(())
}

fn write_metrics(v: Value<'_>, metrics: &Metrics) -> Option<()> {
    let mut o = Object::new(v.0);
    for (name, value) in metrics {
        o.map_key(name)?.float(*value)?;
    }
    o.end();
    Some(())
}

/// A place for one JSON value.
struct Value<'a>(&'a mut String);

impl Value<'_> {
    fn string(self, s: &str) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let out = self.0;
        out.reserve(s.len() + 2);
        out.push('"');
        let bytes = s.as_bytes();
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let escape: &str = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                0x08 => "\\b",
                0x09 => "\\t",
                0x0a => "\\n",
                0x0c => "\\f",
                0x0d => "\\r",
                0x00..=0x1f => "",
                _ => continue,
            };
            // `i` is at an ASCII byte, so both slices end on character boundaries.
            out.push_str(&s[start..i]);
            if escape.is_empty() {
                out.push_str("\\u00");
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 15)] as char);
            } else {
                out.push_str(escape);
            }
            start = i + 1;
        }
        out.push_str(&s[start..]);
        out.push('"');
    }

    /// An unsigned integer: beyond 2^53, the double it rounds to.
    fn unsigned(self, n: u64) {
        if n > EXACT_INTEGER {
            self.0
                .push_str(ryu_js::Buffer::new().format_finite(n as f64));
            return;
        }
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut n = n;
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for &d in &digits[at..] {
            self.0.push(d as char);
        }
    }

    fn integer(self, i: i64) {
        if i.unsigned_abs() > EXACT_INTEGER {
            self.0
                .push_str(ryu_js::Buffer::new().format_finite(i as f64));
            return;
        }
        if i < 0 {
            self.0.push('-');
        }
        Value(self.0).unsigned(i.unsigned_abs());
    }

    /// A finite double; `None` for NaN and the infinities, which JSON lacks (the
    /// generic path reports the error).
    fn float(self, f: f64) -> Option<()> {
        if !f.is_finite() {
            return None;
        }
        self.0.push_str(ryu_js::Buffer::new().format_finite(f));
        Some(())
    }
}

/// An object being written; members must come in canonical order.
struct Object<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> Object<'a> {
    fn new(out: &'a mut String) -> Self {
        out.push('{');
        Object { out, first: true }
    }

    /// A member whose name is a fixed ASCII identifier (no escaping needed), given
    /// by the caller in sorted order.
    fn key(&mut self, name: &str) -> Value<'_> {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        self.out.push('"');
        self.out.push_str(name);
        self.out.push_str("\":");
        Value(self.out)
    }

    /// A member of a `BTreeMap` (iterated in UTF-8 byte order, which is code point
    /// order). UTF-16 order, the canonical one, differs only between characters
    /// from U+E000 and characters beyond U+FFFF; a name with any character from
    /// U+E000 up (UTF-8 lead byte 0xEE or more) declines.
    fn map_key(&mut self, name: &str) -> Option<Value<'_>> {
        if name.bytes().any(|b| b >= 0xee) {
            return None;
        }
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        Value(self.out).string(name);
        self.out.push(':');
        Some(Value(self.out))
    }

    fn end(self) {
        self.out.push('}');
    }
}

#[cfg(test)]
mod tests {
    use firebreak_core::{Rng, TrialState, format_rfc3339};

    use super::*;
    use crate::LedgerError;
    use crate::entry::{Entry, Payload, canonical_json, hex, write_event};

    /// Characters that stress escaping and key order: quotes, backslash, solidus,
    /// every control, DEL, two- three- and four-byte UTF-8, and both sides of the
    /// U+E000 / beyond-U+FFFF boundary where UTF-8 and UTF-16 orders disagree.
    const CHARS: &[char] = &[
        'a',
        'b',
        'z',
        'A',
        '0',
        '9',
        '_',
        ' ',
        '"',
        '\\',
        '/',
        '\u{0}',
        '\u{1}',
        '\u{8}',
        '\t',
        '\n',
        '\u{b}',
        '\u{c}',
        '\r',
        '\u{1f}',
        '\u{7f}',
        'é',
        'ü',
        'ß',
        '€',
        '中',
        '\u{2028}',
        '\u{d7ff}',
        '\u{e000}',
        '\u{fffd}',
        '\u{ffff}',
        '\u{10000}',
        '😀',
        '\u{10ffff}',
    ];

    fn string(rng: &mut Rng) -> String {
        let plain = rng.below(3) == 0;
        (0..rng.below(9))
            .map(|_| {
                if plain {
                    (b'a' + rng.below(26) as u8) as char
                } else {
                    CHARS[rng.below(CHARS.len() as u64) as usize]
                }
            })
            .collect()
    }

    fn float(rng: &mut Rng) -> f64 {
        const SPECIAL: &[f64] = &[
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.1,
            1.0 / 3.0,
            1e21,
            1e21 - 65536.0,
            1e20,
            1e-6,
            1e-7,
            1.5e-7,
            123456789012345680000.0,
            9007199254740992.0,
            9007199254740994.0,
            5e-324,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
            f64::EPSILON,
        ];
        match rng.below(6) {
            0 => SPECIAL[rng.below(SPECIAL.len() as u64) as usize],
            1 => f64::from_bits(rng.next_u64()), // rarely NaN or infinite; see `events`
            2 => (rng.below(2_000_000) as f64 - 1e6) / 1e3,
            _ => {
                let scale = 10f64.powi(rng.below(80) as i32 - 40);
                let sign = if rng.below(2) == 0 { 1.0 } else { -1.0 };
                sign * rng.next_f64() * scale
            }
        }
    }

    /// An event's canonical JSON through `write_event`, the path sealing takes.
    fn canonical_event(event: &Event) -> Result<String, LedgerError> {
        let mut out = String::from("{");
        write_event(&mut out, event)?;
        out.push('}');
        Ok(out)
    }

    fn unsigned(rng: &mut Rng) -> u64 {
        match rng.below(4) {
            0 => rng.next_u64(),
            1 => (1 << 53) - 2 + rng.below(5),
            _ => rng.below(100_000),
        }
    }

    fn integer(rng: &mut Rng) -> i64 {
        match rng.below(5) {
            0 => rng.next_u64() as i64,
            1 => [
                i64::MIN,
                i64::MAX,
                1 << 53,
                -(1 << 53),
                (1 << 53) + 1,
                -(1 << 53) - 1,
            ][rng.below(6) as usize],
            _ => rng.below(2_000) as i64 - 1_000,
        }
    }

    fn metrics(rng: &mut Rng) -> Metrics {
        (0..rng.below(5))
            .map(|_| (string(rng), float(rng)))
            .collect()
    }

    fn params(rng: &mut Rng) -> Params {
        (0..rng.below(6))
            .map(|_| {
                let value = match rng.below(4) {
                    0 => ParamValue::Bool(rng.below(2) == 0),
                    1 => ParamValue::Int(integer(rng)),
                    2 => ParamValue::Float(float(rng)),
                    _ => ParamValue::Str(string(rng)),
                };
                (string(rng), value)
            })
            .collect()
    }

    fn maybe<T>(rng: &mut Rng, make: impl FnOnce(&mut Rng) -> T) -> Option<T> {
        (rng.below(2) == 0).then(|| make(rng))
    }

    fn policy(rng: &mut Rng) -> Option<Authorization> {
        maybe(rng, |rng| Authorization {
            decision: string(rng),
            policies: (0..rng.below(3)).map(|_| string(rng)).collect(),
        })
    }

    fn event(rng: &mut Rng) -> Event {
        let state = [
            TrialState::Queued,
            TrialState::Running,
            TrialState::Pruned,
            TrialState::Complete,
            TrialState::Failed,
        ][rng.below(5) as usize];
        match rng.below(14) {
            0 => Event::RunStarted {
                run: unsigned(rng),
                version: string(rng),
                os_user: string(rng),
                sandbox: None,
                host: string(rng),
                pid: rng.next_u64() as u32,
            },
            1 => Event::RunEnded {
                run: unsigned(rng),
                reason: string(rng),
            },
            2 | 3 => Event::TrialProposed {
                number: unsigned(rng),
                params: params(rng),
                proposer: string(rng),
                rationale: string(rng),
                retry_of: maybe(rng, unsigned),
                policy: policy(rng),
                exploit: maybe(rng, |rng| Exploit {
                    from: unsigned(rng),
                    replaces: unsigned(rng),
                }),
                state: maybe(rng, |rng| {
                    serde_json::json!({
                        "v": unsigned(rng),
                        string(rng): {string(rng): integer(rng), "x": [float(rng), string(rng)]},
                    })
                }),
            },
            4 => Event::TrialStarted {
                number: unsigned(rng),
                run: unsigned(rng),
                worker: rng.next_u64() as u32,
                policy: policy(rng),
            },
            5 => Event::TrialReported {
                number: unsigned(rng),
                step: unsigned(rng),
                metrics: metrics(rng),
            },
            6 | 7 => Event::TrialFinished {
                number: unsigned(rng),
                state,
                metrics: metrics(rng),
                error: maybe(rng, string),
                cpu_seconds: maybe(rng, float),
                wall_seconds: maybe(rng, float),
            },
            8 => Event::TrialResumed {
                number: unsigned(rng),
                run: unsigned(rng),
                worker: rng.next_u64() as u32,
                reason: string(rng),
            },
            9 => Event::TrialRequeued {
                number: unsigned(rng),
                reason: string(rng),
            },
            10 => Event::TrialReevaluated {
                number: unsigned(rng),
                seed: unsigned(rng),
                metrics: metrics(rng),
                error: maybe(rng, string),
                cpu_seconds: maybe(rng, float),
            },
            11 => Event::TrialTested {
                number: unsigned(rng),
                metrics: metrics(rng),
                cpu_seconds: maybe(rng, float),
            },
            12 => Event::Denied {
                action: string(rng),
                principal: string(rng),
                reason: string(rng),
                policy: policy(rng),
                subject: maybe(
                    rng,
                    |rng| serde_json::json!({string(rng): [float(rng), string(rng)]}),
                ),
            },
            _ => Event::SpecChanged {
                spec: serde_json::json!({"b": integer(rng), "a": {string(rng): string(rng)}}),
                spec_hash: string(rng),
                diff: serde_json::json!([]),
                request: maybe(rng, string),
                by: string(rng),
            },
        }
    }

    #[test]
    fn direct_canonical_json_equals_the_generic_canonicalizer() {
        let mut rng = Rng::new(8785);
        let (mut direct, mut refused) = (0, 0);
        for i in 0..30_000u64 {
            let event = event(&mut rng);
            let generic = canonical_json(&event).ok();
            assert_eq!(canonical_event(&event).ok(), generic, "{event:?}");
            let mut members = String::new();
            match write_event_members(&mut members, &event) {
                Some(()) => {
                    direct += 1;
                    assert_eq!(Some(format!("{{{members}}}")), generic, "{event:?}");
                }
                None => refused += 1,
            }
            // The whole payload, against the generic path, at sequence numbers and
            // times of every size.
            let seq = if i % 3 == 0 { unsigned(&mut rng) } else { i };
            let prev: [u8; 32] = std::array::from_fn(|_| rng.next_u64() as u8);
            let campaign = string(&mut rng);
            let at = integer(&mut rng) / 1_000;
            let sealed = Entry::seal(seq, &prev, &campaign, at, &event).ok();
            let plain = canonical_json(&Payload {
                v: crate::FORMAT_VERSION,
                seq,
                prev: hex(&prev),
                campaign: &campaign,
                at: format_rfc3339(at),
                event: &event,
            })
            .ok();
            assert_eq!(sealed.map(|e| e.payload), plain, "{event:?}");
        }
        // Both paths were exercised, the direct one on most events.
        assert!(
            direct > 15_000 && refused > 2_000,
            "{direct} direct, {refused} refused"
        );
    }
}
