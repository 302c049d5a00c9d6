//! RFC 9110 conditionals: entity-tag lists and dates from the client, never panicking, with
//! written entity-tags reading back the same, and `evaluate` consistent with its inputs.
#![no_main]

use davit_proto::conditional::{
    evaluate, if_range_matches, parse_etag_list, EntityTag, EtagList, Outcome, Preconditions,
    Validators,
};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, UNIX_EPOCH};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    // Fields separated by newlines: if-match, if-none-match, IMS, IUS, if-range, current etag.
    let mut f = text.split('\n');
    let mut next = |bit: u8| f.next().filter(|_| flags & bit != 0);
    let if_match = next(1);
    let if_none_match = next(2);
    let if_modified_since = next(4);
    let if_unmodified_since = next(8);
    let if_range = next(16);
    let etag = next(32);

    for v in [if_match, if_none_match].into_iter().flatten() {
        if let Some(EtagList::Tags(tags)) = parse_etag_list(v) {
            assert!(!tags.is_empty());
            for t in &tags {
                assert_eq!(EntityTag::parse(&t.to_string()).as_ref(), Some(t));
            }
        }
    }
    let pre = Preconditions {
        if_match,
        if_none_match,
        if_modified_since,
        if_unmodified_since,
    };
    let v = Validators {
        exists: flags & 64 != 0,
        etag,
        last_modified: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
    };
    let get = flags & 128 != 0;
    let out = evaluate(&pre, &v, get);
    if !get {
        assert_ne!(out, Outcome::NotModified, "304 for a method other than GET/HEAD");
    }
    if pre.if_match.is_some() && !v.exists {
        assert_eq!(out, Outcome::PreconditionFailed, "If-Match passed on a missing resource");
    }
    if let Some(r) = if_range {
        let _ = if_range_matches(r, &v);
    }
});
