//! PROPFIND bodies: never panic; and whatever parses is what `PropFind::to_xml` (the client's
//! request writer) asks for, so writing it and parsing again gives the same request.
#![no_main]

use davit_proto::xml::{parse_propfind, Limits, PropFind};
use libfuzzer_sys::fuzz_target;

#[path = "known_bugs.rs"]
mod known_bugs;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(pf) = parse_propfind(data, &limits) {
        let names = match &pf {
            PropFind::AllProp { include } => include.as_slice(),
            PropFind::PropName => &[],
            PropFind::Prop(names) => names.as_slice(),
        };
        if names.iter().any(known_bugs::name_affected) {
            return;
        }
        let xml = pf.to_xml();
        match parse_propfind(xml.as_bytes(), &limits) {
            Ok(back) => assert_eq!(back, pf, "propfind round trip changed the request: {xml}"),
            Err(e) => panic!("PropFind::to_xml output does not parse: {e}\n{xml}"),
        }
    }
});
