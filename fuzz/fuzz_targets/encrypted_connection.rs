//! A server connection that accepts `*key` and then reads whatever follows through the
//! decrypting wire layer, fed in pieces: it must never panic, never answer a refused `*key`,
//! and echo every quest it can read.
//!
//! Input: a byte `k`, then the data. Bits of `k`:
//! * `0x01`: stream mode instead of package mode; `0x02`: AES-256 instead of AES-128;
//! * `0x04`: the data is the wire after `*key` as it is (garbage, a wrong key); otherwise it
//!   is plaintext, encrypted as the client would (stream: as one stream; package: as one
//!   package);
//! * `0x08`: `*key` asks for `bits` 192 (must be refused: closed, nothing sent);
//! * `k >> 4`: the piece size, `(k >> 4) * 7 + 1` bytes.
#![no_main]

use bytes::BytesMut;
use fpnn::encryption::{Bits, ClientEncryption, Curve, Mode, PrivateKey, KEY_METHOD};
use fpnn::proto::{Config, Connection, Event};
use fpnn::{Frame, Quest, Value};
use libfuzzer_sys::fuzz_target;
use std::time::Instant;

fuzz_target!(|data: &[u8]| {
    let Some((&k, data)) = data.split_first() else {
        return;
    };
    let now = Instant::now();
    let server_key = PrivateKey::from_bytes(Curve::Secp256r1, &[0x22; 32]).unwrap();
    let ephemeral = PrivateKey::from_bytes(Curve::Secp256r1, &[0x11; 32]).unwrap();
    let mode = if k & 0x01 != 0 { Mode::Stream } else { Mode::Package };
    let bits = if k & 0x02 != 0 { Bits::Aes256 } else { Bits::Aes128 };
    let handshake = ClientEncryption::new(server_key.public_key().clone())
        .mode(mode)
        .bits(bits)
        .start_with(&ephemeral)
        .unwrap();
    let refused = k & 0x08 != 0;
    let key_quest = if refused {
        let params = Value::map()
            .with("publicKey", Value::Bin(handshake.request().public_key.clone()))
            .with("streamMode", mode == Mode::Stream)
            .with("bits", 192);
        Quest::twoway(KEY_METHOD, 1, &params).unwrap()
    } else {
        handshake.quest(1).unwrap()
    };
    let mut wire = BytesMut::new();
    Frame::from(key_quest).encode_into(&mut wire).unwrap();
    if k & 0x04 != 0 {
        wire.extend_from_slice(data);
    } else {
        handshake
            .session()
            .encryptor()
            .encrypt_frame(data, &mut wire)
            .unwrap();
    }

    let mut server: Connection<()> = Connection::new(Config::default(), now);
    let piece = usize::from(k >> 4) * 7 + 1;
    let mut at = 0;
    let mut accepted = false;
    while at < wire.len() && !server.is_closing() {
        let Some(buf) = server.recv_buffer() else { break };
        let room = buf.remaining_mut_limit();
        let n = piece.min(wire.len() - at).min(room);
        if n == 0 {
            break;
        }
        buf.into_inner().extend_from_slice(&wire[at..at + n]);
        server.handle_input(n, now);
        at += n;
        while let Some(event) = server.poll_event() {
            if let Event::Quest(quest) = event {
                if quest.method == KEY_METHOD && server.frames_read() == 1 {
                    let result = server.accept_key(&server_key, &quest);
                    assert_eq!(result.is_ok(), !refused);
                    accepted = result.is_ok();
                } else if let Some(seq) = quest.seq {
                    let body = quest.params().unwrap_or_else(|_| Value::map());
                    server.answer(seq, quest.format, Ok(body));
                } else {
                    server.oneway_done();
                }
            }
        }
    }
    assert_eq!(server.is_encrypted(), accepted);
    if refused {
        assert!(server.poll_transmit().is_none(), "a refused *key is not answered");
    }
});

/// How many more bytes a `Limit` buffer takes.
trait Room {
    fn remaining_mut_limit(&self) -> usize;
}

impl Room for bytes::buf::Limit<&mut BytesMut> {
    fn remaining_mut_limit(&self) -> usize {
        self.limit()
    }
}
