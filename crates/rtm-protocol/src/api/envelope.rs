//! The envelope of every server API quest, `{pid, sign, salt, ts}`: written by [`Signer`],
//! read by [`Envelope::parse`].

use super::request::Request;
use crate::int::Int;
use crate::params::{ParamError, Params};
use crate::sign::Sign;
use fpnn::{SerError, Value};
use serde::Serialize;
use std::fmt;

/// The envelope of a server quest as the server reads it.
///
/// Integers are kept as they came ([`Int`]): the signature covers their decimal text, so a
/// `pid` or `salt` out of the usual range still has a sign to check (and fails it, or its
/// project is unknown), rather than a type error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// The project id.
    pub pid: Int,
    /// The sign, as sent (32 hex digits when well formed).
    pub sign: &'a str,
    /// The salt.
    pub salt: Int,
    /// Unix seconds; absent in the legacy form.
    pub ts: Option<Int>,
}

impl<'a> Envelope<'a> {
    /// The envelope's keys, which the sign stands for.
    pub const KEYS: [&'static str; 4] = ["pid", "sign", "salt", "ts"];

    /// Reads the envelope: `pid`, `sign`, `salt` required (10009, 10010), `ts` optional.
    pub fn parse(payload: &'a Value) -> Result<Envelope<'a>, ParamError> {
        let p = Params::new(payload);
        Ok(Envelope {
            pid: p.want("pid")?,
            sign: p.want("sign")?,
            salt: p.want("salt")?,
            ts: p.opt("ts")?,
        })
    }

    /// `true` for one of the envelope's keys.
    pub fn is_key(key: &[u8]) -> bool {
        Envelope::KEYS.iter().any(|k| k.as_bytes() == key)
    }
}

/// A project's credentials: builds the signed payload of server quests.
#[derive(Clone)]
pub struct Signer {
    pid: i32,
    secret: String,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("pid", &self.pid)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The payload as it goes on the wire: the envelope, then the request's keys.
#[derive(Serialize)]
struct Payload<'r, R> {
    pid: i32,
    sign: String,
    salt: i64,
    ts: i64,
    #[serde(flatten)]
    request: &'r R,
}

impl Signer {
    /// The credentials of project `pid`.
    pub fn new(pid: i32, secret: impl Into<String>) -> Signer {
        Signer {
            pid,
            secret: secret.into(),
        }
    }

    /// The project id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The project secret.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The sign of a quest of `method` with `salt` and `ts`.
    pub fn sign(&self, method: &str, salt: i64, ts: i64) -> Sign {
        Sign::new(self.pid, &self.secret, salt, method, ts)
    }

    /// The payload of `request`, signed with `salt` and `ts` (Unix seconds):
    /// `{pid, sign, salt, ts, …the request's keys}`, in the order of the official SDKs.
    pub fn payload<R: Request>(&self, request: &R, salt: i64, ts: i64) -> Result<Value, SerError> {
        fpnn::to_value(&Payload {
            pid: self.pid,
            sign: self.sign(R::METHOD.name(), salt, ts).to_hex(),
            salt,
            ts,
            request,
        })
    }
}
