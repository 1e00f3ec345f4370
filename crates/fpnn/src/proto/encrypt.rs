//! The `*key` exchange on the I/O-free connection: the server's accept and the client's
//! start, each switching the connection's [`Wire`] to [`EncryptedWire`] at the right frame.
//!
//! [`EncryptedWire`]: crate::encryption::EncryptedWire

use super::{CloseReason, Connection, ProtocolError, SendError, Wire};
use crate::encryption::{self, ClientHandshake, KeyRequest, PrivateKey, KEY_METHOD};
use crate::frame::Quest;
use crate::payload::Format;
use crate::value::Value;
use std::time::{Duration, Instant};

impl<W> Connection<W> {
    /// The server's side of `*key`: accepts the key exchange `quest` (handed out by
    /// [`Connection::poll_event`]) with the static `key`, switches the connection to
    /// encryption and queues the answer `{}` as its first encrypted output. The bytes the
    /// client pipelined after `*key` are then read through the decrypting layer.
    ///
    /// The quest is finished either way (do not answer it again). On a refusal the
    /// connection is closed **without an answer**, as the official framework does, and the
    /// reason is returned: `*key` that is not the first frame, or comes after this side sent
    /// anything, or on a connection whose wire is not plain (WebSocket); a one-way `*key`; a
    /// bad payload, public key or `bits`.
    ///
    /// ```
    /// use fpnn::encryption::{ClientEncryption, Curve, PrivateKey};
    /// use fpnn::proto::{Config, Connection, Event};
    /// use std::time::{Duration, Instant};
    ///
    /// let now = Instant::now();
    /// let server_key = PrivateKey::generate(Curve::Secp256r1)?;
    /// let mut client: Connection<()> = Connection::new(Config::default(), now);
    /// let mut server: Connection<()> = Connection::new(Config::default(), now);
    ///
    /// let handshake = ClientEncryption::new(server_key.public_key().clone()).start()?;
    /// client.start_key_exchange(&handshake, Duration::from_secs(5), (), now)?;
    /// let bytes = client.poll_transmit().unwrap();
    /// server.recv_buffer().unwrap().get_mut().extend_from_slice(&bytes);
    /// server.handle_input(bytes.len(), now);
    /// let Some(Event::Quest(quest)) = server.poll_event() else { panic!() };
    /// server.accept_key(&server_key, &quest)?;
    /// assert!(server.is_encrypted());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn accept_key(
        &mut self,
        key: &PrivateKey,
        quest: &Quest,
    ) -> Result<KeyRequest, CloseReason> {
        self.in_flight = self.in_flight.saturating_sub(1);
        let refused = |message: String| CloseReason::Protocol(ProtocolError::KeyExchange(message));
        let result = if quest.method != KEY_METHOD {
            Err(refused(format!("{} is not *key", quest.method)))
        } else if self.frames_read != 1 || self.sent_any {
            Err(refused(
                "*key is not the first frame of the connection".into(),
            ))
        } else if !matches!(self.wire, Wire::Plain) {
            Err(refused(format!(
                "*key on a {} connection",
                self.wire.name()
            )))
        } else {
            encryption::accept(key, quest).map_err(|e| refused(e.to_string()))
        };
        match result {
            Ok(accepted) => {
                self.set_wire(accepted.session.wire());
                self.encrypted = true;
                let seq = accepted.answer.seq;
                self.queue_answer(seq, quest.format, Ok(Value::map()));
                self.check_answered();
                Ok(accepted.request)
            }
            Err(reason) => {
                self.close(reason.clone(), self.clock);
                Err(reason)
            }
        }
    }

    /// The client's side of `*key`: queues the handshake's `*key` quest as the connection's
    /// first frame, in plaintext, and switches the connection to encryption right behind it:
    /// every later frame is encrypted, and the input is read through the decrypting layer
    /// (the server's answer is its first encrypted output). Quests may be queued at once
    /// after it (pipelined, as the Go and Node.js SDKs do); the C++ client waits for the
    /// answer, which comes to `waiter` like any answer (check it with
    /// [`ClientHandshake::check_answer`]).
    ///
    /// Fails with [`SendError::NotFirst`] when anything was read or queued before, or the
    /// wire is not plain.
    pub fn start_key_exchange(
        &mut self,
        handshake: &ClientHandshake,
        timeout: Duration,
        waiter: W,
        now: Instant,
    ) -> Result<u32, SendError> {
        self.clock = now;
        if self.frames_read != 0 || self.sent_any || !matches!(self.wire, Wire::Plain) {
            return Err(SendError::NotFirst);
        }
        let params = handshake.request().to_value();
        let seq = self.send_quest(KEY_METHOD, Format::MsgPack, &params, timeout, waiter, now)?;
        self.set_wire(handshake.session().wire());
        self.encrypted = true;
        Ok(seq)
    }

    /// Whether the connection's wire is encrypted (after a `*key` exchange).
    pub fn is_encrypted(&self) -> bool {
        self.encrypted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encryption::{Bits, ClientEncryption, Curve, Mode};
    use crate::proto::{Config, Event};
    use bytes::BytesMut;
    use proptest::prelude::*;

    /// Moves `bytes` into `to`'s input in chunks of the given sizes (cycled).
    fn feed<W>(to: &mut Connection<W>, bytes: &[u8], chunks: &[usize], now: Instant) {
        let mut at = 0;
        let mut i = 0;
        while at < bytes.len() {
            let n = chunks[i % chunks.len()].max(1).min(bytes.len() - at);
            i += 1;
            let buf = to.recv_buffer().expect("reading");
            buf.into_inner().extend_from_slice(&bytes[at..at + n]);
            to.handle_input(n, now);
            at += n;
        }
    }

    fn drain<W>(conn: &mut Connection<W>, now: Instant) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(bytes) = conn.poll_transmit() {
            conn.on_transmitted(bytes.len(), now);
            out.extend_from_slice(&bytes);
        }
        out
    }

    /// The server's side: `*key` is accepted, every other quest echoed. Returns the methods
    /// seen.
    fn serve(server: &mut Connection<u32>, key: &PrivateKey) -> Vec<String> {
        let mut seen = Vec::new();
        while let Some(event) = server.poll_event() {
            if let Event::Quest(quest) = event {
                seen.push(quest.method.clone());
                if quest.method == KEY_METHOD {
                    let _ = server.accept_key(key, &quest);
                } else if let Some(seq) = quest.seq {
                    server.answer(
                        seq,
                        quest.format,
                        quest.params().map_err(|_| unreachable!()),
                    );
                }
            }
        }
        seen
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// A client that pipelines quests right behind `*key`, whatever the chunking of the
        /// bytes either way, gets every answer, decrypted.
        #[test]
        fn pipelined_quests_after_key_survive_any_chunking(
            stream in any::<bool>(),
            aes256 in any::<bool>(),
            quests in 1usize..6,
            up in proptest::collection::vec(1usize..90, 1..8),
            down in proptest::collection::vec(1usize..90, 1..8),
        ) {
            let now = Instant::now();
            let key = PrivateKey::generate(Curve::Secp256r1).unwrap();
            let mode = if stream { Mode::Stream } else { Mode::Package };
            let bits = if aes256 { Bits::Aes256 } else { Bits::Aes128 };
            let handshake = ClientEncryption::new(key.public_key().clone()).mode(mode).bits(bits).start().unwrap();
            let mut client: Connection<u32> = Connection::new(Config::default(), now);
            let mut server: Connection<u32> = Connection::new(Config::default(), now);
            let timeout = Duration::from_secs(5);
            client.start_key_exchange(&handshake, timeout, 0, now).unwrap();
            for i in 1..=quests {
                let params = Value::map().with("i", i as i64).with("pad", "x".repeat(i * 7));
                client.send_quest("echo", Format::MsgPack, &params, timeout, i as u32, now).unwrap();
            }
            let wire = drain(&mut client, now);
            feed(&mut server, &wire, &up, now);
            let seen = serve(&mut server, &key);
            prop_assert!(server.is_encrypted());
            prop_assert_eq!(seen.len(), quests + 1);
            prop_assert_eq!(seen[0].as_str(), KEY_METHOD);
            let reply = drain(&mut server, now);
            feed(&mut client, &reply, &down, now);
            let mut answered = Vec::new();
            while let Some(event) = client.poll_event() {
                match event {
                    Event::Answer { waiter, answer } => {
                        if waiter == 0 {
                            prop_assert!(ClientHandshake::check_answer(&answer).is_ok());
                        } else {
                            prop_assert_eq!(answer.body().unwrap().get("i").and_then(Value::as_i64), Some(waiter as i64));
                        }
                        answered.push(waiter);
                    }
                    other => prop_assert!(false, "{other:?}"),
                }
            }
            prop_assert_eq!(answered, (0..=quests as u32).collect::<Vec<_>>());
        }
    }

    #[test]
    fn key_after_another_frame_or_with_bad_bits_closes_without_output() {
        let now = Instant::now();
        let key = PrivateKey::generate(Curve::Secp224r1).unwrap();
        let handshake = ClientEncryption::new(key.public_key().clone())
            .start()
            .unwrap();

        // `*key` as the second frame.
        let mut server: Connection<u32> = Connection::new(Config::default(), now);
        let mut wire = BytesMut::new();
        crate::Frame::from(crate::Quest::twoway("echo", 1, &Value::map()).unwrap())
            .encode_into(&mut wire)
            .unwrap();
        crate::Frame::from(handshake.quest(2).unwrap())
            .encode_into(&mut wire)
            .unwrap();
        feed(&mut server, &wire, &[wire.len()], now);
        let Some(Event::Quest(first)) = server.poll_event() else {
            panic!()
        };
        server.oneway_done();
        drop(first);
        let Some(Event::Quest(second)) = server.poll_event() else {
            panic!()
        };
        let reason = server.accept_key(&key, &second).unwrap_err();
        assert!(reason.to_string().contains("first frame"), "{reason}");
        assert!(server.is_closed() && !server.is_encrypted());
        assert!(drain(&mut server, now).is_empty());

        // bits 192.
        let mut server: Connection<u32> = Connection::new(Config::default(), now);
        let params = Value::map()
            .with(
                "publicKey",
                Value::Bin(handshake.request().public_key.clone()),
            )
            .with("streamMode", false)
            .with("bits", 192);
        let wire = crate::Frame::from(crate::Quest::twoway(KEY_METHOD, 1, &params).unwrap())
            .encode()
            .unwrap();
        feed(&mut server, &wire, &[5], now);
        let Some(Event::Quest(quest)) = server.poll_event() else {
            panic!()
        };
        assert!(server.accept_key(&key, &quest).is_err());
        assert!(server.is_closed());
        assert_eq!(server.in_flight(), 0);
        assert!(drain(&mut server, now).is_empty());

        // The client cannot start an exchange after it sent something.
        let mut client: Connection<u32> = Connection::new(Config::default(), now);
        client
            .send_oneway("hello", Format::MsgPack, &Value::map(), now)
            .unwrap();
        assert_eq!(
            client.start_key_exchange(&handshake, Duration::from_secs(1), 0, now),
            Err(SendError::NotFirst)
        );
    }
}
