//! Following an HTTP/1.1 byte stream to neutralise a raw `#` in a request-target.
//!
//! RFC 9112 §3.2 defines the request-target without a fragment: a raw `#` (0x23) is not
//! allowed there, and a server should answer such a request line with 400. The `http` crate,
//! however, parses the target as a URI and silently drops everything from the `#` on, and
//! hyper offers no access to the raw request-target. `DELETE /litmus/frag/#ment HTTP/1.1`
//! would therefore reach the handlers as `DELETE /litmus/frag/` and delete the collection.
//!
//! [`FragmentScanner`] follows the bytes a client sends and, whenever a `#` lies inside the
//! request-target of a request line, replaces it with a space (0x20): hyper then rejects the
//! malformed request line with 400 and closes the connection. To never corrupt legitimate
//! traffic, it tracks HTTP/1.1 message framing (`Content-Length` bodies are skipped
//! byte-exactly) and stops inspecting the connection for good as soon as anything is outside
//! what it understands with certainty: chunked or other transfer codings, `Expect`, `Upgrade`,
//! `CONNECT`, several or invalid `Content-Length` fields, malformed lines, or a head over
//! 64 KiB. The server's `FragmentGuard` runs it on every read.

/// Largest request head (request line plus header fields) the scanner tracks; past this it
/// gives up on the connection and passes everything through untouched.
pub const MAX_HEAD: usize = 64 * 1024;

/// Where the scanner is in the client's byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Inside a request head (request line and header fields).
    Head(Phase),
    /// Inside a `Content-Length` body with this many bytes left.
    Body(u64),
    /// Gave up on this connection: nothing is inspected or modified any more.
    Passthrough,
}

/// Position within a request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before the request line, skipping empty lines (RFC 9112 §2.2).
    Start,
    /// In the method.
    Method,
    /// After the method's SP, before the first byte of the target.
    TargetStart,
    /// In the request-target: a `#` here is overwritten.
    Target,
    /// After the target's SP, up to the end of the request line.
    Version,
    /// In the header field lines, up to the empty line ending the head.
    Fields,
}

/// What the header fields seen so far say about the message body.
#[derive(Debug, Default)]
struct Framing {
    /// `Transfer-Encoding`, `Expect` or `Upgrade` seen: framing not tracked.
    untracked: bool,
    /// Number of `Content-Length` fields seen.
    lengths: u32,
    /// Value of the (last) `Content-Length` field, if it was a valid decimal.
    length: Option<u64>,
}

/// The state machine; see the module documentation. Feed it every byte the client sends, in
/// order, in chunks of any size.
#[derive(Debug)]
pub struct FragmentScanner {
    state: State,
    /// Bytes of the current head seen so far, leading empty lines included.
    head_len: usize,
    /// The current line (without its line ending); reused across lines and requests.
    line: Vec<u8>,
    framing: Framing,
}

impl Default for FragmentScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl FragmentScanner {
    /// A scanner at the start of a connection: the first byte begins a request.
    pub fn new() -> Self {
        Self {
            state: State::Head(Phase::Start),
            head_len: 0,
            line: Vec::new(),
            framing: Framing::default(),
        }
    }

    /// Follows `bytes`, the next bytes from the client, overwriting any `#` in a
    /// request-target with a space.
    pub fn scan(&mut self, bytes: &mut [u8]) {
        let mut i = 0;
        while i < bytes.len() {
            match self.state {
                State::Passthrough => return,
                State::Body(left) => {
                    let available = bytes.len() - i;
                    let skip = usize::try_from(left).map_or(available, |l| l.min(available));
                    i += skip;
                    // `skip <= left`, so this cannot underflow.
                    let left = left - skip as u64;
                    if left == 0 {
                        self.next_head();
                    } else {
                        self.state = State::Body(left);
                    }
                }
                State::Head(
                    phase @ (Phase::Method | Phase::Target | Phase::Version | Phase::Fields),
                ) => {
                    // The bytes that only extend the current part of the head are taken at
                    // once instead of a byte at a time (this runs over every request head):
                    // method characters, target bytes up to a SP, `#` or line end, and the
                    // rest of a line, which is only read, never changed. The byte ending the
                    // run goes through `head_byte`.
                    let rest = &bytes[i..];
                    let n = match phase {
                        Phase::Method => rest.iter().position(|&b| !is_tchar(b)),
                        Phase::Target => rest
                            .iter()
                            .position(|&b| matches!(b, b' ' | b'#' | b'\r' | b'\n')),
                        _ => memchr::memchr(b'\n', rest),
                    }
                    .unwrap_or(rest.len());
                    if self.head_len + n > MAX_HEAD {
                        return self.give_up();
                    }
                    self.head_len += n;
                    self.line.extend_from_slice(&rest[..n]);
                    i += n;
                    if i < bytes.len() {
                        self.head_byte(phase, &mut bytes[i]);
                        i += 1;
                    }
                }
                State::Head(phase) => {
                    self.head_byte(phase, &mut bytes[i]);
                    i += 1;
                }
            }
        }
    }

    /// Prepares for the next request head.
    fn next_head(&mut self) {
        self.state = State::Head(Phase::Start);
        self.head_len = 0;
        self.line.clear();
        self.framing = Framing::default();
    }

    fn give_up(&mut self) {
        self.state = State::Passthrough;
        self.line = Vec::new();
    }

    fn head_byte(&mut self, phase: Phase, byte: &mut u8) {
        self.head_len += 1;
        if self.head_len > MAX_HEAD {
            return self.give_up();
        }
        let b = *byte;
        let next = match (phase, b) {
            (Phase::Start, b'\r' | b'\n') => Phase::Start,
            (Phase::Start, _) | (Phase::Method, _) if is_tchar(b) => Phase::Method,
            (Phase::Method, b' ') => Phase::TargetStart,
            // Tolerate extra spaces before the target (hyper rejects them anyway).
            (Phase::TargetStart, b' ') => Phase::TargetStart,
            (Phase::TargetStart | Phase::Target, b'\r' | b'\n') => return self.give_up(),
            (Phase::Target, b' ') => Phase::Version,
            (Phase::TargetStart | Phase::Target, b'#') => {
                *byte = b' ';
                Phase::Target
            }
            (Phase::TargetStart | Phase::Target, _) => Phase::Target,
            (Phase::Version, b'\n') => return self.end_request_line(),
            (Phase::Version, _) => Phase::Version,
            (Phase::Fields, b'\n') => return self.end_field_line(),
            (Phase::Fields, _) => Phase::Fields,
            // A non-token byte in the method: not a request line we understand.
            (Phase::Start | Phase::Method, _) => return self.give_up(),
        };
        if next != Phase::Start {
            self.line.push(b);
        }
        self.state = State::Head(next);
    }

    /// The request line (in `self.line`, original bytes) just ended.
    fn end_request_line(&mut self) {
        let line = strip_cr(&self.line);
        // The method and target contain no SP, so the version follows the last one.
        let method = line.split(|&b| b == b' ').next().unwrap_or_default();
        let version = line.rsplit(|&b| b == b' ').next().unwrap_or_default();
        let http1 = version == b"HTTP/1.1" || version == b"HTTP/1.0";
        // CONNECT tunnels and the HTTP/2 preface (`PRI * HTTP/2.0`) are not HTTP/1.1
        // messages we can follow.
        if !http1 || method == b"CONNECT" || method == b"PRI" {
            return self.give_up();
        }
        self.line.clear();
        self.state = State::Head(Phase::Fields);
    }

    /// A header field line (in `self.line`) or the empty line ending the head just ended.
    fn end_field_line(&mut self) {
        let line = strip_cr(&self.line);
        if line.is_empty() {
            return self.end_head();
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            // Also catches obs-fold continuation lines, which hyper rejects.
            return self.give_up();
        };
        let (name, value) = (&line[..colon], trim_ows(&line[colon + 1..]));
        if name.is_empty() || !name.iter().copied().all(is_tchar) {
            return self.give_up();
        }
        let is = |wanted: &str| name.eq_ignore_ascii_case(wanted.as_bytes());
        if is("transfer-encoding") || is("expect") || is("upgrade") {
            self.framing.untracked = true;
        } else if is("content-length") {
            self.framing.lengths = self.framing.lengths.saturating_add(1);
            self.framing.length = parse_decimal(value);
        }
        self.line.clear();
        self.state = State::Head(Phase::Fields);
    }

    /// The empty line ending the head just ended: decide how the body is framed.
    fn end_head(&mut self) {
        let framing = std::mem::take(&mut self.framing);
        match (framing.untracked, framing.lengths, framing.length) {
            (true, _, _) => self.give_up(),
            (false, 0, _) | (false, 1, Some(0)) => self.next_head(),
            (false, 1, Some(n)) => {
                self.next_head();
                self.state = State::Body(n);
            }
            // Several or invalid Content-Length fields.
            (false, _, _) => self.give_up(),
        }
    }
}

/// `tchar` from RFC 9110 §5.6.2: the bytes allowed in a method or field name.
fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

/// [`is_tchar`] as a table: it runs over every method and field name byte.
const TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        b += 1;
    }
    table
};

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Trims optional whitespace (SP / HTAB) from both ends of a field value.
fn trim_ows(value: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &value[start..end]
}

/// Parses a non-empty string of ASCII digits, or `None`.
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        let digit = (b as char).to_digit(10)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"007"), Some(7));
        assert_eq!(parse_decimal(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_decimal(b"18446744073709551616"), None);
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"-1"), None);
        assert_eq!(trim_ows(b" \t a b \t"), b"a b");
        assert_eq!(trim_ows(b"  "), b"");
        assert_eq!(strip_cr(b"a\r"), b"a");
    }

    #[test]
    fn tchar_table_is_rfc_9110() {
        for b in 0..=255u8 {
            let rfc = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            assert_eq!(is_tchar(b), rfc, "byte {b}");
        }
    }
}
