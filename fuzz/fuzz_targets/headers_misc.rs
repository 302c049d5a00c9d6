//! Depth, Overwrite, Timeout, Lock-Token, Prefer and Basic credentials: never panic on any
//! string, and what parses writes back to a value that parses the same.
#![no_main]

use base64::Engine;
use davit_proto::headers::{
    parse_basic_credentials, parse_lock_token, parse_overwrite, parse_timeout, Depth, Prefer,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = Depth::parse(value) {
        assert_eq!(Depth::parse(d.as_str()), Ok(d));
    }
    let _ = parse_overwrite(value);
    // Never an error; what it found is found again when written back.
    let p = Prefer::parse([value], Some(value));
    let mut written = Vec::new();
    if p.minimal {
        written.push("return=minimal");
    }
    if p.depth_noroot {
        written.push("depth-noroot");
    }
    assert_eq!(Prefer::parse([written.join(", ").as_str()], None), p);
    if let Ok(list) = parse_timeout(value) {
        assert!(!list.is_empty());
        let written: Vec<String> = list.iter().map(|t| t.to_header_value()).collect();
        assert_eq!(parse_timeout(&written.join(", ")), Ok(list));
    }
    if let Ok(token) = parse_lock_token(value) {
        assert!(!token.is_empty());
        assert_eq!(parse_lock_token(&format!("<{token}>")), Ok(token));
    }
    if let Some((user, password)) = parse_basic_credentials(value) {
        assert!(!user.contains(':'));
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        assert_eq!(
            parse_basic_credentials(&format!("Basic {encoded}")),
            Some((user, password))
        );
    }
});
