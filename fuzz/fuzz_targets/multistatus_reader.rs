//! The Multi-Status reader reads bodies from any server on the network: on arbitrary bytes it
//! must return responses or an error, never panic, and always finish.
#![no_main]

use davit_proto::xml::MultistatusReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for response in MultistatusReader::new(data) {
        if let Ok(r) = response {
            let _ = (r.live(), r.effective_status());
            for p in r.found_props() {
                let _ = p.to_fragment();
            }
        }
    }
});
