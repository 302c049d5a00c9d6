//! LOCK bodies: never panic; the owner is kept as a fragment that is later embedded in
//! `lockdiscovery`, so it must itself be a well-formed document.
#![no_main]

use davit_proto::xml::{parse_document, parse_lockinfo, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(info) = parse_lockinfo(data, &limits) {
        let _ = info.scope.as_str();
        if let Some(owner) = &info.owner {
            if let Err(e) = parse_document(owner.as_bytes(), &limits) {
                panic!("owner fragment does not parse: {e}\n{owner}");
            }
        }
    }
});
