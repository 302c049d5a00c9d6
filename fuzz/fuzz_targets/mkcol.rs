//! Extended MKCOL bodies (RFC 5689 `DAV:mkcol`): never panic; what parses is a non-empty list
//! of properties, each of which can be stored as a fragment that parses again to the same
//! element name.
#![no_main]

use davit_proto::xml::{parse_document, parse_mkcol, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(Some(props)) = parse_mkcol(data, &limits) {
        assert!(!props.is_empty());
        for p in props {
            let fragment = p.to_fragment();
            match parse_document(fragment.as_bytes(), &limits) {
                Ok(back) => assert_eq!(back.name, p.name, "{fragment}"),
                Err(e) => panic!("a stored property does not parse again: {e}\n{fragment}"),
            }
        }
    }
});
