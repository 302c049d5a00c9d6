//! PROPPATCH bodies: never panic; and for any instructions that parse, the body
//! `propertyupdate_xml` writes for them (what the client sends) parses back to the same
//! instructions. `Set` values are compared as the fragments they are stored as, because an
//! inherited `xml:lang` is written out as an explicit attribute (same meaning, different tree).
#![no_main]

use davit_proto::xml::{parse_propertyupdate, propertyupdate_xml, Limits, PatchOp};
use libfuzzer_sys::fuzz_target;

#[path = "known_bugs.rs"]
mod known_bugs;

#[derive(Debug, PartialEq)]
enum Norm {
    Set(String),
    Remove(davit_proto::xml::QName),
}

fn norm(ops: &[PatchOp]) -> Vec<Norm> {
    ops.iter()
        .map(|op| match op {
            PatchOp::Set(e) => Norm::Set(e.to_fragment()),
            PatchOp::Remove(n) => Norm::Remove(n.clone()),
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let Ok(ops) = parse_propertyupdate(data, &limits) else {
        return;
    };
    // Finding 4: a `set`/`remove` whose `prop` holds no element parses to no instructions,
    // which `propertyupdate_xml` cannot write back (it writes no `set` at all).
    if known_bugs::ENABLED && ops.is_empty() {
        return;
    }
    if ops.iter().any(|op| match op {
        PatchOp::Set(e) => known_bugs::affected(e),
        PatchOp::Remove(n) => known_bugs::name_affected(n),
    }) {
        return;
    }
    let xml = propertyupdate_xml(&ops);
    let back = match parse_propertyupdate(xml.as_bytes(), &limits) {
        Ok(back) => back,
        Err(e) => panic!("propertyupdate_xml output does not parse: {e}\ninput: {data:?}\n{xml}"),
    };
    assert_eq!(norm(&back), norm(&ops), "round trip changed the instructions: {xml}");
});
