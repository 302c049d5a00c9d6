//! Request paths and Destination headers: whatever parses is a safe path (no `.`, `..`, empty
//! segment, `/`, `\` or NUL in a segment), and its href parses back to the same path.
#![no_main]

use davit_proto::href::{parse_destination, DavPath};
use libfuzzer_sys::fuzz_target;

fn check(p: &DavPath, from: &str) {
    for seg in p.segments() {
        assert!(
            !seg.is_empty() && seg != "." && seg != ".." && !seg.contains(['/', '\\', '\0']),
            "unsafe segment {seg:?} from {from:?}"
        );
    }
    for collection in [false, true] {
        let href = p.href(collection);
        assert_eq!(DavPath::parse(&href).as_ref(), Ok(p), "href {href:?} from {from:?}");
    }
    if let Some(parent) = p.parent() {
        assert!(p.starts_with(&parent));
        assert_eq!(parent.join(p.name().unwrap()).as_ref(), Ok(p));
    } else {
        assert!(p.is_root());
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // "value\nhost": the second line, when present, is the request's Host.
    let (value, host) = match text.split_once('\n') {
        Some((v, h)) => (v, Some(h)),
        None => (text, None),
    };
    if let Ok(p) = DavPath::parse(value) {
        check(&p, value);
    }
    if let Ok(p) = parse_destination(value, host) {
        check(&p, value);
    }
});
