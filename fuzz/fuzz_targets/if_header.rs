//! The If header (RFC 4918 §10.4): parse any string without panicking, respect the condition
//! bound, and evaluate with an arbitrary oracle.
#![no_main]

use davit_proto::headers::{ConditionKind, IfHeader, MAX_IF_CONDITIONS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&seed, rest)) = data.split_first() else {
        return;
    };
    let Ok(value) = std::str::from_utf8(rest) else {
        return;
    };
    let Ok(header) = IfHeader::parse(value) else {
        return;
    };
    assert!(!header.lists.is_empty());
    let total: usize = header.lists.iter().map(|l| l.conditions.len()).sum();
    assert!(total <= MAX_IF_CONDITIONS, "condition bound not enforced");
    for list in &header.lists {
        assert!(!list.conditions.is_empty(), "empty list accepted");
        if let Some(r) = &list.resource {
            assert!(!r.is_empty() && !r.contains(['<', '>']) && !r.contains(char::is_whitespace));
        }
    }
    for token in header.state_tokens() {
        assert!(!token.is_empty() && !token.contains(['<', '>']) && !token.contains(char::is_whitespace));
    }
    // An oracle driven by the seed byte; also count calls to make sure evaluation is bounded.
    let mut calls = 0usize;
    let mut i = 0u32;
    let result = header.evaluate(|resource, kind| {
        calls += 1;
        i = i.wrapping_add(1);
        let salt = match kind {
            ConditionKind::StateToken(t) => t.len(),
            ConditionKind::ETag(e) => e.len(),
        } + resource.map_or(0, str::len);
        (u32::from(seed) >> (i % 8)) & 1 == 1 || salt % 7 == 0
    });
    assert!(calls <= total);
    // All-true and all-false oracles: the header is true exactly when some list has only
    // un-negated (resp. only negated) conditions.
    let all_true = header.evaluate(|_, _| true);
    assert_eq!(all_true, header.lists.iter().any(|l| l.conditions.iter().all(|c| !c.negated)));
    let all_false = header.evaluate(|_, _| false);
    assert_eq!(all_false, header.lists.iter().any(|l| l.conditions.iter().all(|c| c.negated)));
    let _ = result;
});
