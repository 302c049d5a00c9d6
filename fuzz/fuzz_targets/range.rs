//! Range headers (RFC 9110 §14): for a length taken from the first 8 bytes and any header
//! value, every returned range lies within the representation, the list is sorted, disjoint
//! and non-adjacent, and bounded in count.
#![no_main]

use davit_proto::range::{parse_range, Multipart, RangeOutcome, MAX_RANGES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (len_bytes, rest) = data.split_at(8);
    let mut total = u64::from_le_bytes(len_bytes.try_into().unwrap());
    // Half the inputs use a small length so that satisfiable ranges are common.
    if total & 1 == 0 {
        total = (total >> 1) % 4096;
    }
    let Ok(value) = std::str::from_utf8(rest) else {
        return;
    };
    match parse_range(value, total) {
        RangeOutcome::Full => {}
        RangeOutcome::Unsatisfiable => {}
        RangeOutcome::Partial(ranges) => {
            assert!(!ranges.is_empty(), "empty Partial");
            assert!(ranges.len() <= MAX_RANGES, "too many ranges");
            for r in &ranges {
                assert!(r.start <= r.end, "inverted range {r:?}");
                assert!(r.end < total, "range {r:?} past length {total}");
                assert!(!r.is_empty() && r.len() <= total);
                let _ = r.content_range(total);
            }
            for w in ranges.windows(2) {
                assert!(w[0].end.saturating_add(1) < w[1].start, "unmerged ranges {w:?}");
            }
            let mp = Multipart::new("b0undary".into());
            let _ = mp.body_len("application/octet-stream", &ranges, total);
        }
    }
});
