//! The HTTP/1.1 stream scan that neutralises a `#` in a request-target (`FragmentScanner`,
//! run on every byte a client sends): never panics, changes nothing but a `#` into a space, and
//! gives the same bytes however the stream is cut into reads.
#![no_main]

use davit_proto::fragment::FragmentScanner;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let mut whole = stream.to_vec();
    FragmentScanner::new().scan(&mut whole);
    for (sent, seen) in stream.iter().zip(&whole) {
        assert!(
            sent == seen || (*sent == b'#' && *seen == b' '),
            "changed {sent:#x} into {seen:#x}"
        );
    }
    // The same stream in reads of 1 to 16 bytes, the lengths cycling from `cut`.
    let mut pieces = stream.to_vec();
    let mut scanner = FragmentScanner::new();
    let (mut at, mut len) = (0, usize::from(cut % 16) + 1);
    while at < pieces.len() {
        let end = (at + len).min(pieces.len());
        scanner.scan(&mut pieces[at..end]);
        at = end;
        len = len % 16 + 1;
    }
    assert_eq!(pieces, whole, "the result depends on how the stream is cut");
});
