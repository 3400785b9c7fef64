//! The WebSocket frame header parser (`proxy::websocket`), the masking and the piece-label
//! reader, on arbitrary bytes. A header is read the same however the bytes arrive: a
//! shorter prefix asks for more, never reads as another frame; what parses re-encodes to a
//! header that parses the same; masking at an offset is the same as masking whole. A
//! stream of frames cut into arbitrary reads is split into the same frames as whole.
#![no_main]

use airlock::proxy::websocket::{FrameHead, apply_mask, label_end};
use airlock_fuzz::{Input, chunks};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let key = [input.byte(), input.byte(), input.byte(), input.byte()];
    let seed = input.u32();
    let bytes = input.rest();

    if let Some((head, n)) = FrameHead::parse(bytes) {
        assert!(n <= bytes.len() && [2, 4, 6, 8, 10, 14].contains(&n), "{n}");
        assert!(head.rsv <= 7 && head.opcode <= 15);
        for k in 0..n {
            assert!(
                FrameHead::parse(&bytes[..k]).is_none(),
                "{k} of {n} bytes parsed"
            );
        }
        assert_eq!(FrameHead::parse(&bytes[..n]), Some((head.clone(), n)));
        let encoded = head.encode(head.len);
        assert!(encoded.len() <= n, "re-encoding grew the header");
        assert_eq!(
            FrameHead::parse(&encoded),
            Some((head.clone(), encoded.len()))
        );
    }

    // Masking is its own inverse, and the same in pieces as whole.
    let mut whole = bytes.to_vec();
    apply_mask(&mut whole, key, 0);
    let split = seed as usize % (bytes.len() + 1);
    let (mut a, mut b) = (bytes[..split].to_vec(), bytes[split..].to_vec());
    apply_mask(&mut a, key, 0);
    apply_mask(&mut b, key, split as u64);
    assert_eq!([a, b].concat(), whole);
    apply_mask(&mut whole, key, 0);
    assert_eq!(whole, bytes);

    if let Some(at) = label_end(bytes) {
        assert!(at > 0 && at < bytes.len(), "{at}");
        assert!(!bytes[at].is_ascii_whitespace());
    }

    assert_eq!(
        frames(&chunks(bytes, seed)),
        frames(&[bytes]),
        "frames depend on how the bytes arrive"
    );
});

/// The frames the relay's loop reads (a header, then its payload), the bytes arriving in
/// `reads`; a frame cut off by the end of the stream is left out.
fn frames(reads: &[&[u8]]) -> Vec<(FrameHead, Vec<u8>)> {
    let mut out = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut reads = reads.iter();
    loop {
        let (head, n) = loop {
            if let Some(parsed) = FrameHead::parse(&buf) {
                break parsed;
            }
            match reads.next() {
                Some(r) => buf.extend_from_slice(r),
                None => return out,
            }
        };
        buf.drain(..n);
        while (buf.len() as u64) < head.len {
            match reads.next() {
                Some(r) => buf.extend_from_slice(r),
                None => return out,
            }
        }
        let payload: Vec<u8> = buf.drain(..head.len as usize).collect();
        out.push((head, payload));
    }
}
