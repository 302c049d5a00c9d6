//! Dead properties are stored as `Element::to_fragment` output and parsed again when they are
//! read, patched or copied. For any document that parses, its fragment must parse, and writing
//! that again must give the same fragment (idempotence: a stored value never drifts).
#![no_main]

use davit_proto::xml::{parse_document, Limits};
use libfuzzer_sys::fuzz_target;

#[path = "known_bugs.rs"]
mod known_bugs;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let Ok(root) = parse_document(data, &limits) else {
        return;
    };
    if known_bugs::affected(&root) {
        return;
    }
    let first = root.to_fragment();
    // What is stored is sent to every client: it must hold only XML characters.
    assert!(first.chars().all(known_bugs::xml_char), "non-XML character in {first:?}");
    let again = match parse_document(first.as_bytes(), &limits) {
        Ok(e) => e,
        Err(e) => panic!("fragment does not parse: {e}\ninput: {data:?}\nfragment: {first}"),
    };
    assert_eq!(again.name, root.name, "root name changed: {first}");
    let second = again.to_fragment();
    assert_eq!(first, second, "fragment not idempotent");
});
