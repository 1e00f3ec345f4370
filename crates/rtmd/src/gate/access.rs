//! What a gate connection may do, by its login: logged in, not yet, or ended by a kickout.

use super::error::GateError;
use crate::sessions::{Login, Session};
use fpnn::server::Connection;

/// The session of a connection that is logged in, or why it is not (200022): before `auth`,
/// or after a kickout ended its session.
pub fn logged_in(conn: &Connection) -> Result<&Session, GateError> {
    match conn.data::<Login>() {
        Some(login) if login.is_ended() => Err(GateError::Kicked),
        Some(login) => Ok(&login.session),
        None => Err(GateError::NotLoggedIn),
    }
}

/// `Ok` for a connection that may still log in: not logged in, and not kicked.
pub fn not_logged_in(conn: &Connection) -> Result<(), GateError> {
    match conn.data::<Login>() {
        Some(login) if login.is_ended() => Err(GateError::Kicked),
        Some(_) => Err(GateError::AlreadyLoggedIn),
        None => Ok(()),
    }
}
