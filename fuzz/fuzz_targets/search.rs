//! SEARCH bodies (RFC 5323 basicsearch): never panic, whatever the document; and a condition
//! that parses can be evaluated against any name (the `like` matcher included) without
//! panicking or looping.
#![no_main]

use davit_proto::xml::{parse_search, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(search) = parse_search(data, &Limits::default()) {
        if let Some(c) = &search.condition {
            // Names taken from the input itself, so patterns meet texts built like them.
            let text = String::from_utf8_lossy(data);
            for name in [
                "",
                "report.txt",
                "%_\\",
                text.get(..64.min(text.len())).unwrap_or(""),
            ] {
                let _ = c.matches(name, false);
                let _ = c.matches(name, true);
            }
        }
    }
});
