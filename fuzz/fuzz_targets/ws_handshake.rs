//! The WebSocket client's check of the server's handshake answer, on arbitrary bytes.
//!
//! Input: as the other streaming targets (`pieces.rs`), then the answer. The key is fixed
//! (the RFC's, whose accept value is `s3pPLMBiTxaQ9kYGzzhZRbK+xOo=`), so the seeds can hold a
//! valid answer.
//!
//! Checked: no panic; in pieces or whole, the same verdict; on success exactly the head is
//! consumed and the bytes after it (frames) are left as they were.
#![no_main]

use bytes::BytesMut;
use fpnn::web::ws::ClientHandshake;
use libfuzzer_sys::fuzz_target;

#[path = "pieces.rs"]
mod pieces;

fuzz_target!(|data: &[u8]| {
    let Some((_, sizes, stream)) = pieces::split(data) else {
        return;
    };
    let handshake = ClientHandshake::with_key("dGhlIHNhbXBsZSBub25jZQ==");

    let mut whole = BytesMut::from(stream);
    let whole_verdict = handshake.read_response(&mut whole);
    if let Ok(Some(())) = whole_verdict {
        assert!(stream.ends_with(&whole), "only the head is consumed");
        assert!(whole.len() < stream.len());
    } else {
        assert_eq!(whole.len(), stream.len(), "nothing consumed without an upgrade");
    }

    let mut buf = BytesMut::new();
    let mut verdict = Ok(None);
    for piece in pieces::pieces(stream, sizes) {
        buf.extend_from_slice(piece);
        verdict = handshake.read_response(&mut buf);
        if verdict != Ok(None) {
            break;
        }
    }
    match (&verdict, &whole_verdict) {
        // Accepted in pieces: the whole read accepts too, leaving the rest of the stream.
        (Ok(Some(())), _) => assert_eq!(whole_verdict, Ok(Some(()))),
        // Refused in pieces: a refusal whole too (the same head, or a longer one refused).
        (Err(_), _) => assert!(whole_verdict.is_err()),
        (Ok(None), w) => assert_eq!(*w, Ok(None)),
    }
});
