//! The client gate: what an end user's app and the gate say to each other over the gate port
//! (13321).
//!
//! The app sends [`Auth`] first (answered [`AuthAnswer`]), then `ping` and finally `bye`,
//! both with `{}` answered `{}`. The gate pushes the two-way `ping` to logged-in clients and
//! the one-way `kickout` when the business server kicks the session ([`Push`]).

use crate::int::Int;
use crate::params::{ParamError, Params};
use fpnn::Value;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A method an app calls on the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `auth {pid, uid, token, version?, attrs?, lang?}`: the login.
    Auth,
    /// `bye {}`: the end of the session; the gate closes the connection after the answer.
    Bye,
    /// `ping {}`: the app's keep-alive.
    Ping,
}

impl Method {
    /// Every method.
    pub const ALL: [Method; 3] = [Method::Auth, Method::Bye, Method::Ping];

    /// The name on the wire.
    pub const fn name(self) -> &'static str {
        match self {
            Method::Auth => "auth",
            Method::Bye => "bye",
            Method::Ping => "ping",
        }
    }

    /// The method named `name`.
    pub fn from_name(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == name)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A quest the gate pushes to a logged-in app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Push {
    /// The one-way `kickout {}`: the session is over; official clients close the connection.
    Kickout,
    /// The two-way `ping {}`: official clients answer it and treat a silent gate as lost.
    Ping,
}

impl Push {
    /// Every push.
    pub const ALL: [Push; 2] = [Push::Kickout, Push::Ping];

    /// The name on the wire.
    pub const fn name(self) -> &'static str {
        match self {
            Push::Kickout => "kickout",
            Push::Ping => "ping",
        }
    }

    /// The push named `name`.
    pub fn from_name(name: &str) -> Option<Push> {
        Push::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// `auth`: the login of a user of a project with a token from `gettoken`.
///
/// The gate reads `pid`, `uid` and `token`; `version`, `attrs` and `lang`, which the official
/// clients send, are accepted and not read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Auth<'a> {
    /// The project id, by value (an id out of range names no project).
    pub pid: Int,
    /// The user id, by value.
    pub uid: Int,
    /// The token.
    pub token: &'a str,
    /// The client's name and version (written when set, never read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<&'a str>,
}

impl<'a> Auth<'a> {
    /// Reads an `auth` quest: `pid`, `uid` and `token` required (10009, 10010).
    pub fn parse(payload: &'a Value) -> Result<Auth<'a>, ParamError> {
        let p = Params::new(payload);
        Ok(Auth {
            pid: p.want("pid")?,
            uid: p.want("uid")?,
            token: p.want("token")?,
            version: None,
        })
    }
}

/// The answer to [`Auth`]: `{ok: true}` logged in, `{ok: false}` the token was refused (a
/// bad, expired or revoked token is not an error answer; clients report it as 200027).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthAnswer {
    /// Whether the login succeeded.
    pub ok: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for m in Method::ALL {
            assert_eq!(Method::from_name(m.name()), Some(m));
        }
        for p in Push::ALL {
            assert_eq!(Push::from_name(p.name()), Some(p));
        }
        assert_eq!(Method::from_name("kickout"), None);
        assert_eq!(Push::from_name("auth"), None);
    }

    #[test]
    fn auth_written_and_read() {
        let auth = Auth {
            pid: Int::from(11_000_001),
            uid: Int::from(42),
            token: "t",
            version: Some("rtm-cli-0.1.0"),
        };
        let payload = fpnn::to_value(&auth).unwrap();
        assert_eq!(
            payload,
            Value::map()
                .with("pid", 11_000_001)
                .with("uid", 42)
                .with("token", "t")
                .with("version", "rtm-cli-0.1.0")
        );
        assert_eq!(
            Auth::parse(&payload).unwrap(),
            Auth {
                version: None,
                ..auth
            }
        );
        // Integers in any width, out of range included; version of any type ignored.
        let odd = Value::map()
            .with("pid", Value::UInt(u64::MAX))
            .with("uid", -1)
            .with("token", Value::Bin(b"t".to_vec()))
            .with("version", 3);
        let read = Auth::parse(&odd).unwrap();
        assert_eq!((read.pid.to_i32(), read.uid.to_i64()), (None, Some(-1)));
        let e = Auth::parse(&Value::map().with("pid", 1).with("uid", 19)).unwrap_err();
        assert_eq!((e.code(), e.key()), (10009, "token"));
        let e = Auth::parse(
            &Value::map()
                .with("pid", 1)
                .with("uid", "19")
                .with("token", "t"),
        )
        .unwrap_err();
        assert_eq!((e.code(), e.key()), (10010, "uid"));
    }

    #[test]
    fn the_answer() {
        assert_eq!(
            fpnn::to_value(&AuthAnswer { ok: true }).unwrap(),
            Value::map().with("ok", true)
        );
        let e = fpnn::from_value::<AuthAnswer>(&Value::map()).unwrap_err();
        assert_eq!(e.code(), 10009);
    }
}
