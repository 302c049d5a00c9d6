//! BIND, UNBIND and REBIND bodies (RFC 5842): never panic; whatever parses has one valid
//! segment, and writing it with `BindRequest::to_xml` (the client's writer) parses back to the
//! same request. The first byte picks the method.
#![no_main]

use davit_proto::xml::{parse_bind, BindMethod, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let method = match pick % 3 {
        0 => BindMethod::Bind,
        1 => BindMethod::Unbind,
        _ => BindMethod::Rebind,
    };
    let limits = Limits::default();
    if let Ok(req) = parse_bind(method, body, &limits) {
        assert!(!req.segment.is_empty() && !req.segment.contains('/'));
        let xml = req.to_xml(method);
        match parse_bind(method, xml.as_bytes(), &limits) {
            Ok(back) => assert_eq!(back, req, "round trip changed the request: {xml}"),
            Err(e) => panic!("to_xml output does not parse: {e}\n{xml}"),
        }
    }
});
