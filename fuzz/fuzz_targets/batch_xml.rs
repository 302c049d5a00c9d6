//! XML batch documents (POST to a collection): never panic, never more than `max_ops`.
#![no_main]

use davit_proto::batch::parse_batch_xml;
use davit_proto::xml::Limits;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = parse_batch_xml(data, &Limits::default(), 16) {
        assert!(batch.ops.len() <= 16, "max_ops not enforced");
        for op in batch.ops.iter().flatten() {
            let _ = op.kind.method();
        }
    }
});
