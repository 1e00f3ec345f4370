//! [`Method`]: the server API's methods by their names on the wire.

use std::fmt;

/// A method of the server API, by its name on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `gettoken`: a login token for a user.
    GetToken,
    /// `removetoken`: revokes the user's tokens.
    RemoveToken,
    /// `adddevice`: registers a push device token.
    AddDevice,
    /// `removedevice`: removes a push device token.
    RemoveDevice,
    /// `kickout`: forces the user's logins offline.
    Kickout,
    /// `getdevices`: the user's device tokens (an `rtmd` extension; the hosted service
    /// answers 20004).
    GetDevices,
}

impl Method {
    /// Every method, in this order (metrics count them in it).
    pub const ALL: [Method; 6] = [
        Method::GetToken,
        Method::RemoveToken,
        Method::AddDevice,
        Method::RemoveDevice,
        Method::Kickout,
        Method::GetDevices,
    ];

    /// The name on the wire.
    pub const fn name(self) -> &'static str {
        match self {
            Method::GetToken => "gettoken",
            Method::RemoveToken => "removetoken",
            Method::AddDevice => "adddevice",
            Method::RemoveDevice => "removedevice",
            Method::Kickout => "kickout",
            Method::GetDevices => "getdevices",
        }
    }

    /// The method named `name` (exactly: the wire's names are lower case).
    pub fn from_name(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Its position in [`Method::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
