//! Encryption as a [`WireLayer`] of the I/O-free connection.

use super::exchange::Session;
use super::framing::{FrameEncryptor, FrameReceiver, Mode};
use crate::proto::{ReadFrame, Wire, WireError, WireLayer};
use bytes::BytesMut;
use std::fmt;

/// An encrypted connection's [`WireLayer`]: every frame read goes through the session's
/// [`FrameReceiver`], every frame written through its [`FrameEncryptor`].
///
/// Made by [`Session::wire`]; a connection switches to it with
/// [`crate::proto::Connection::set_wire`] right after the plaintext `*key` frame (the
/// server before it queues its answer, the client right after it queued `*key`).
/// [`crate::proto::Connection::accept_key`] and
/// [`crate::proto::Connection::start_key_exchange`] do that switch.
pub struct EncryptedWire {
    encryptor: FrameEncryptor,
    receiver: FrameReceiver,
}

impl EncryptedWire {
    /// The layer of one connection with these keys and framing.
    pub fn new(session: &Session) -> EncryptedWire {
        let (encryptor, receiver) = session.split(usize::MAX);
        EncryptedWire {
            encryptor,
            receiver,
        }
    }

    /// The framing mode.
    pub fn mode(&self) -> Mode {
        self.encryptor.mode()
    }
}

impl fmt::Debug for EncryptedWire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedWire")
            .field("mode", &self.mode())
            .finish_non_exhaustive()
    }
}

impl WireLayer for EncryptedWire {
    fn name(&self) -> &'static str {
        match self.mode() {
            Mode::Package => "aes-cfb package",
            Mode::Stream => "aes-cfb stream",
        }
    }

    fn read_frame(
        &mut self,
        input: &mut BytesMut,
        max_frame: usize,
        _control: &mut BytesMut,
    ) -> Result<ReadFrame, WireError> {
        self.receiver.set_max_frame(max_frame);
        match self.receiver.decrypt_next(input) {
            Ok(Some(frame)) => Ok(ReadFrame::Frame(frame)),
            Ok(None) => Ok(ReadFrame::NeedMore {
                frame_len: self.receiver.needed(input),
            }),
            Err(e) => Err(WireError::new(e.to_string())),
        }
    }

    fn write_frame(&mut self, frame: &[u8], out: &mut BytesMut) -> Result<(), WireError> {
        self.encryptor
            .encrypt_frame(frame, out)
            .map_err(|e| WireError::new(e.to_string()))
    }
}

impl Session {
    /// This session as a connection's wire layer (see [`EncryptedWire`]).
    pub fn wire(&self) -> Wire {
        Wire::from(EncryptedWire::new(self))
    }
}
