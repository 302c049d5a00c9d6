//! Byte-range requests (RFC 9110 §14): parsing the `Range` header against a representation
//! length, and framing `multipart/byteranges` responses.

/// Above this many ranges the header is ignored and the full body served, so a client cannot
/// make the server assemble thousands of tiny parts.
pub const MAX_RANGES: usize = 100;

/// A satisfiable byte range; both ends inclusive and within the representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// Offset of the first byte.
    pub start: u64,
    /// Offset of the last byte (inclusive).
    pub end: u64,
}

impl ByteRange {
    /// Number of bytes in the range (0 only for a malformed range with `end < start`).
    pub fn len(&self) -> u64 {
        self.end
            .checked_sub(self.start)
            .map_or(0, |d| d.saturating_add(1))
    }

    /// True for a malformed range with `end < start`.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `Content-Range` value for this range, e.g. `bytes 0-9/100`.
    pub fn content_range(&self, total: u64) -> String {
        format!("bytes {}-{}/{}", self.start, self.end, total)
    }
}

/// The `Content-Range` value of a 416 response, e.g. `bytes */100`.
pub fn unsatisfied_content_range(total: u64) -> String {
    format!("bytes */{total}")
}

/// How to answer a request carrying a `Range` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeOutcome {
    /// Ignore the header (unknown unit, invalid syntax, too many ranges): serve 200.
    Full,
    /// Serve 206 with these ranges: non-empty, sorted, overlapping or adjacent ones merged.
    Partial(Vec<ByteRange>),
    /// No range is satisfiable: serve 416.
    Unsatisfiable,
}

/// One `range-spec` as written, before it is resolved against the length.
enum RangeSpec {
    /// `first-pos "-" [ last-pos ]`.
    Int { first: u64, last: Option<u64> },
    /// `"-" suffix-length`.
    Suffix(u64),
}

/// Interprets a `Range` header value for a representation of `total_len` bytes.
pub fn parse_range(value: &str, total_len: u64) -> RangeOutcome {
    let Some(specs) = parse_specs(value) else {
        return RangeOutcome::Full;
    };
    if specs.len() > MAX_RANGES {
        return RangeOutcome::Full;
    }
    let mut ranges: Vec<ByteRange> = specs
        .iter()
        .filter_map(|spec| resolve(spec, total_len))
        .collect();
    if ranges.is_empty() {
        return RangeOutcome::Unsatisfiable;
    }
    ranges.sort_unstable_by_key(|r| r.start);
    RangeOutcome::Partial(coalesce(ranges))
}

/// Parses `bytes=range-set`; `None` when the header must be ignored.
fn parse_specs(value: &str) -> Option<Vec<RangeSpec>> {
    let (unit, set) = value.split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return None;
    }
    let mut specs = Vec::new();
    // List syntax (RFC 9110 §5.6.1) lets recipients skip empty elements like "0-1,,2-3".
    for element in set.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        if specs.len() == MAX_RANGES {
            // Stop early: the caller rejects this anyway, no need to parse the rest.
            specs.push(RangeSpec::Suffix(0));
            break;
        }
        specs.push(parse_spec(element)?);
    }
    if specs.is_empty() {
        None
    } else {
        Some(specs)
    }
}

fn parse_spec(element: &str) -> Option<RangeSpec> {
    let (first, last) = element.split_once('-')?;
    if first.is_empty() {
        return Some(RangeSpec::Suffix(parse_digits(last)?));
    }
    let first = parse_digits(first)?;
    let last = if last.is_empty() {
        None
    } else {
        Some(parse_digits(last)?)
    };
    // RFC 9110 §14.1.1: a last-pos before first-pos makes the whole range-set invalid.
    if last.is_some_and(|last| last < first) {
        return None;
    }
    Some(RangeSpec::Int { first, last })
}

/// `1*DIGIT`, saturating: beyond `u64::MAX` every position is past the end of any
/// representation anyway.
fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

/// The satisfiable part of `spec`, if any.
fn resolve(spec: &RangeSpec, total_len: u64) -> Option<ByteRange> {
    let last_byte = total_len.checked_sub(1)?;
    match *spec {
        RangeSpec::Int { first, last } => (first <= last_byte).then(|| ByteRange {
            start: first,
            end: last.map_or(last_byte, |last| last.min(last_byte)),
        }),
        RangeSpec::Suffix(0) => None,
        RangeSpec::Suffix(n) => Some(ByteRange {
            start: total_len.saturating_sub(n),
            end: last_byte,
        }),
    }
}

/// Merges overlapping and adjacent ranges of a list sorted by start.
fn coalesce(sorted: Vec<ByteRange>) -> Vec<ByteRange> {
    let mut merged: Vec<ByteRange> = Vec::with_capacity(sorted.len());
    for r in sorted {
        match merged.last_mut() {
            Some(prev) if r.start <= prev.end.saturating_add(1) => {
                prev.end = prev.end.max(r.end);
            }
            _ => merged.push(r),
        }
    }
    merged
}

/// Framing of a `multipart/byteranges` body (RFC 9110 §14.6).
///
/// The body is, for each range, [`Multipart::part_header`] followed by the range's bytes,
/// then [`Multipart::trailer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Multipart {
    boundary: String,
}

impl Multipart {
    /// Uses `boundary`, which the caller must choose so it cannot occur in the body
    /// (1–70 characters from the RFC 2046 `bchars` set, e.g. random alphanumerics).
    pub fn new(boundary: String) -> Self {
        Self { boundary }
    }

    /// The boundary string.
    pub fn boundary(&self) -> &str {
        &self.boundary
    }

    /// The response's `Content-Type` value.
    pub fn content_type(&self) -> String {
        format!("multipart/byteranges; boundary={}", self.boundary)
    }

    /// The delimiter and headers that precede the bytes of range `r`.
    ///
    /// Each starts with CRLF, which RFC 2046 attaches to the delimiter; before the first
    /// part it counts as an empty preamble.
    pub fn part_header(&self, content_type: &str, r: &ByteRange, total: u64) -> String {
        format!(
            "\r\n--{}\r\nContent-Type: {}\r\nContent-Range: {}\r\n\r\n",
            self.boundary,
            content_type,
            r.content_range(total)
        )
    }

    /// The close delimiter that ends the body.
    pub fn trailer(&self) -> String {
        format!("\r\n--{}--\r\n", self.boundary)
    }

    /// Exact length of the whole body, for `Content-Length`.
    pub fn body_len(&self, content_type: &str, ranges: &[ByteRange], total: u64) -> u64 {
        ranges
            .iter()
            .map(|r| len_u64(&self.part_header(content_type, r, total)).saturating_add(r.len()))
            .fold(len_u64(&self.trailer()), u64::saturating_add)
    }
}

fn len_u64(s: &str) -> u64 {
    u64::try_from(s.len()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn br(start: u64, end: u64) -> ByteRange {
        ByteRange { start, end }
    }

    fn partial(ranges: &[(u64, u64)]) -> RangeOutcome {
        RangeOutcome::Partial(ranges.iter().map(|&(s, e)| br(s, e)).collect())
    }

    #[test]
    fn byte_range_len_and_content_range() {
        assert_eq!(br(0, 9).len(), 10);
        assert_eq!(br(5, 5).len(), 1);
        assert_eq!(br(6, 5).len(), 0);
        assert!(br(6, 5).is_empty());
        assert_eq!(br(0, u64::MAX).len(), u64::MAX);
        assert_eq!(br(0, 9).content_range(100), "bytes 0-9/100");
        assert_eq!(unsatisfied_content_range(100), "bytes */100");
    }

    #[test]
    fn single_ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), partial(&[(0, 9)]));
        assert_eq!(parse_range("bytes=90-200", 100), partial(&[(90, 99)]));
        assert_eq!(parse_range("bytes=95-", 100), partial(&[(95, 99)]));
        assert_eq!(parse_range("bytes=-10", 100), partial(&[(90, 99)]));
        assert_eq!(parse_range("bytes=-1000", 100), partial(&[(0, 99)]));
        assert_eq!(parse_range("bytes=99-99", 100), partial(&[(99, 99)]));
        assert_eq!(parse_range("BYTES=0-0", 100), partial(&[(0, 0)]));
        assert_eq!(
            parse_range("bytes=0-99999999999999999999999", 100),
            partial(&[(0, 99)])
        );
    }

    #[test]
    fn multiple_ranges_sorted_and_coalesced() {
        assert_eq!(
            parse_range("bytes=50-59, 0-9", 100),
            partial(&[(0, 9), (50, 59)])
        );
        assert_eq!(
            parse_range("bytes=0-9,10-19,5-12", 100),
            partial(&[(0, 19)])
        );
        assert_eq!(
            parse_range("bytes=0-9,-5,,  20-29 ,", 100),
            partial(&[(0, 9), (20, 29), (95, 99)])
        );
        assert_eq!(parse_range("bytes=-5,90-", 100), partial(&[(90, 99)]));
        // Unsatisfiable members are dropped when another one is satisfiable.
        assert_eq!(parse_range("bytes=200-300,0-0,-0", 100), partial(&[(0, 0)]));
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(parse_range("bytes=100-", 100), RangeOutcome::Unsatisfiable);
        assert_eq!(
            parse_range("bytes=100-200", 100),
            RangeOutcome::Unsatisfiable
        );
        assert_eq!(parse_range("bytes=-0", 100), RangeOutcome::Unsatisfiable);
        assert_eq!(
            parse_range("bytes=18446744073709551616-", 100),
            RangeOutcome::Unsatisfiable
        );
        for r in ["bytes=0-", "bytes=0-0", "bytes=-5", "bytes=-0"] {
            assert_eq!(parse_range(r, 0), RangeOutcome::Unsatisfiable, "{r}");
        }
    }

    #[test]
    fn ignored_headers() {
        for r in [
            "",
            "bytes",
            "bytes=",
            "bytes=,",
            "bytes= , ",
            "items=0-1",
            "bytes=abc",
            "bytes=1",
            "bytes=-",
            "bytes=5-4",
            "bytes=0-9,5-4",
            "bytes=--1",
            "bytes=1-2-3",
            "bytes=+1-2",
            "bytes=0x1-2",
            "bytes=1 -2",
            "bytes=é-1",
        ] {
            assert_eq!(parse_range(r, 100), RangeOutcome::Full, "{r:?}");
        }
        assert_eq!(parse_range("items=0-1", 0), RangeOutcome::Full);
    }

    #[test]
    fn too_many_ranges() {
        let at_limit = format!("bytes={}", vec!["0-0"; MAX_RANGES].join(","));
        assert_eq!(parse_range(&at_limit, 100), partial(&[(0, 0)]));
        let over = format!("bytes={}", vec!["0-0"; MAX_RANGES + 1].join(","));
        assert_eq!(parse_range(&over, 100), RangeOutcome::Full);
        // Parsing stops at the limit, so later garbage does not matter.
        let over_garbage = format!("{over},x");
        assert_eq!(parse_range(&over_garbage, 100), RangeOutcome::Full);
    }

    #[test]
    fn multipart_framing() {
        let m = Multipart::new("XyZ".to_owned());
        assert_eq!(m.boundary(), "XyZ");
        assert_eq!(m.content_type(), "multipart/byteranges; boundary=XyZ");
        assert_eq!(
            m.part_header("text/plain", &br(0, 9), 100),
            "\r\n--XyZ\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-9/100\r\n\r\n"
        );
        assert_eq!(m.trailer(), "\r\n--XyZ--\r\n");
    }

    #[test]
    fn multipart_body_len_matches_assembled_body() {
        let m = Multipart::new("b0und4ry".to_owned());
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let total = 1000;
        let ranges = [br(0, 0), br(10, 99), br(900, 999)];
        let mut body = Vec::new();
        for r in &ranges {
            body.extend_from_slice(
                m.part_header("application/octet-stream", r, total)
                    .as_bytes(),
            );
            let slice = usize::try_from(r.start)
                .ok()
                .zip(usize::try_from(r.end).ok())
                .and_then(|(s, e)| data.get(s..=e));
            body.extend_from_slice(slice.unwrap_or_default());
        }
        body.extend_from_slice(m.trailer().as_bytes());
        assert_eq!(
            m.body_len("application/octet-stream", &ranges, total),
            body.len() as u64
        );
        assert_eq!(m.body_len("x/y", &[], 0), m.trailer().len() as u64);
    }
}
