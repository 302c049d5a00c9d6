//! The XML tree reader takes every request body (PROPFIND, PROPPATCH, LOCK, batch): on any bytes
//! it must return an element or an error, never panic, and stay within its limits.
#![no_main]

use davit_proto::xml::{parse_document, Element, Limits};
use libfuzzer_sys::fuzz_target;

fn depth(e: &Element) -> usize {
    1 + e.elements().map(depth).max().unwrap_or(0)
}

fn count(e: &Element) -> usize {
    1 + e.elements().map(count).sum::<usize>()
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(root) = parse_document(data, &limits) {
        assert!(depth(&root) <= limits.max_depth, "depth limit not enforced");
        assert!(count(&root) <= limits.max_elements, "element limit not enforced");
        let _ = root.text();
        let _ = root.to_fragment();
    }
    // Tight limits must hold too (a server may configure them very low).
    let tight = Limits { max_depth: 3, max_elements: 5 };
    if let Ok(root) = parse_document(data, &tight) {
        assert!(depth(&root) <= 3 && count(&root) <= 5, "tight limits not enforced");
    }
});
