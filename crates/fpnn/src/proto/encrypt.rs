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
