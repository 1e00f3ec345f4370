//! Error codes: the RTM codes (`2000xx`) of the official SDKs, and the FPNN codes (re-exported
//! from [`fpnn::code`], whose table stays the framework's own) that RTM calls share.
//!
//! The numbers are those of every official SDK (`RTMErrorCode.h`, `rtm_error.py`, …). Where
//! the official names are misspelt (`RTM_EC_INVALID_SERFVER_TIME`, `RTM_EC_DUPLCATED_AUTH`,
//! `RTM_EC_INVALID_AUTH_TOEKN`) the constants here are spelt correctly; [`name`] gives the
//! official name.

pub use fpnn::code::*;

macro_rules! rtm_codes {
    ($( $(#[$doc:meta])* $name:ident = $value:literal, $official:literal; )*) => {
        $( $(#[$doc])* pub const $name: i32 = $value; )*

        /// The official symbolic name of a code (`"RTM_EC_INVALID_PID_OR_SIGN"`,
        /// `"FPNN_EC_CORE_TIMEOUT"`), if it is a known RTM or FPNN code: the one lookup that
        /// knows both tables.
        pub fn name(code: i32) -> Option<&'static str> {
            match code {
                $( $value => Some($official), )*
                other => fpnn::code::name(other),
            }
        }
    };
}

rtm_codes! {
    /// Invalid project id or user id.
    INVALID_PID_OR_UID = 200001, "RTM_EC_INVALID_PID_OR_UID";
    /// Invalid project id or bad signature.
    INVALID_PID_OR_SIGN = 200002, "RTM_EC_INVALID_PID_OR_SIGN";
    /// Bad file sign or file token.
    INVALID_FILE_OR_SIGN_OR_TOKEN = 200003, "RTM_EC_INVALID_FILE_OR_SIGN_OR_TOKEN";
    /// File attrs lack sign/ext.
    ATTRS_WITHOUT_SIGN_OR_EXT = 200004, "RTM_EC_ATTRS_WITHOUT_SIGN_OR_EXT";
    /// Message type out of range.
    INVALID_MTYPE = 200005, "RTM_EC_INVALID_MTYPE";
    /// The same signature was seen before (a replay).
    SAME_SIGN = 200006, "RTM_EC_SAME_SIGN";
    /// Bad file message type.
    INVALID_FILE_MTYPE = 200007, "RTM_EC_INVALID_FILE_MTYPE";
    /// The quest's `ts` is too far from the server's clock.
    INVALID_SERVER_TIME = 200008, "RTM_EC_INVALID_SERFVER_TIME";
    /// API call rate limit.
    FREQUENCY_LIMITED = 200010, "RTM_EC_FREQUENCY_LIMITED";
    /// Message flood limit.
    REFRESH_SCREEN_LIMITED = 200011, "RTM_EC_REFRESH_SCREEN_LIMITED";
    /// A connection tried to kick itself out.
    KICKOUT_SELF = 200012, "RTM_EC_KICKOUT_SELF";
    /// Method forbidden.
    FORBIDDEN_METHOD = 200020, "RTM_EC_FORBIDDEN_METHOD";
    /// Permission denied.
    PERMISSION_DENIED = 200021, "RTM_EC_PERMISSION_DENIED";
    /// Not logged in (a quest before `auth`).
    UNAUTHORIZED = 200022, "RTM_EC_UNAUTHORIZED";
    /// Already logged in (a second `auth`).
    DUPLICATED_AUTH = 200023, "RTM_EC_DUPLCATED_AUTH";
    /// Login refused: black-listed user.
    AUTH_DENIED = 200024, "RTM_EC_AUTH_DENIED";
    /// The admin id may not log in from a client.
    ADMIN_LOGIN = 200025, "RTM_EC_ADMIN_LOGIN";
    /// Needs the admin account.
    ADMIN_ONLY = 200026, "RTM_EC_ADMIN_ONLY";
    /// Invalid login token (what clients report for `auth` answering `{ok: false}`).
    INVALID_AUTH_TOKEN = 200027, "RTM_EC_INVALID_AUTH_TOEKN";
    /// Message or attrs too large.
    LARGE_MESSAGE_OR_ATTRS = 200030, "RTM_EC_LARGE_MESSAGE_OR_ATTRS";
    /// File or attrs too large.
    LARGE_FILE_OR_ATTRS = 200031, "RTM_EC_LARGE_FILE_OR_ATTRS";
    /// A list parameter is too long.
    TOO_MANY_ITEMS_IN_PARAMETERS = 200032, "RTM_EC_TOO_MANY_ITEMS_IN_PARAMETERS";
    /// A list parameter is empty.
    EMPTY_PARAMETER = 200033, "RTM_EC_EMPTY_PARAMETER";
    /// A parameter is invalid.
    INVALID_PARAMETER = 200034, "RTM_EC_INVALID_PARAMETER";
    /// Data too large.
    LARGE_DATA = 200035, "RTM_EC_LARGE_DATA";
    /// Not in the room.
    NOT_IN_ROOM = 200040, "RTM_EC_NOT_IN_ROOM";
    /// Not a group member.
    NOT_GROUP_MEMBER = 200041, "RTM_EC_NOT_GROUP_MEMBER";
    /// The group is full.
    MAX_GROUP_MEMBER_COUNT = 200042, "RTM_EC_MAX_GROUP_MEMBER_COUNT";
    /// Not friends.
    NOT_FRIEND = 200043, "RTM_EC_NOT_FRIEND";
    /// Muted in the group.
    BANNED_IN_GROUP = 200044, "RTM_EC_BANNED_IN_GROUP";
    /// Muted in the room.
    BANNED_IN_ROOM = 200045, "RTM_EC_BANNED_IN_ROOM";
    /// The group has no members.
    EMPTY_GROUP = 200046, "RTM_EC_EMPTY_GROUP";
    /// Entered too many rooms.
    MAX_ROOM_COUNT = 200047, "RTM_EC_MAX_ROOM_COUNT";
    /// Friend limit reached.
    MAX_FRIEND_COUNT = 200048, "RTM_EC_MAX_FRIEND_COUNT";
    /// In a black list.
    BLOCKED_USER = 200049, "RTM_EC_BLOCKED_USER";
    /// Translation language unsupported.
    UNSUPPORTED_LANGUAGE = 200050, "RTM_EC_UNSUPPORTED_LANGUAGE";
    /// Nothing to translate.
    EMPTY_TRANSLATION = 200051, "RTM_EC_EMPTY_TRANSLATION";
    /// Sending to yourself.
    SEND_TO_SELF = 200052, "RTM_EC_SEND_TO_SELF";
    /// Duplicate message id.
    DUPLICATED_MID = 200053, "RTM_EC_DUPLCATED_MID";
    /// Sensitive-word filter hit.
    SENSITIVE_WORDS = 200054, "RTM_EC_SENSITIVE_WORDS";
    /// The user is not online.
    NOT_ONLINE = 200055, "RTM_EC_NOT_ONLINE";
    /// Translation failed.
    TRANSLATION_ERROR = 200056, "RTM_EC_TRANSLATION_ERROR";
    /// Profanity block.
    PROFANITY_STOP = 200057, "RTM_EC_PROFANITY_STOP";
    /// Feature not enabled in the console.
    NO_CONFIG_IN_CONSOLE = 200060, "RTM_EC_NO_CONFIG_IN_CONSOLE";
    /// Unsupported transcription type.
    UNSUPPORTED_TRANSCRIBE_TYPE = 200061, "RTM_EC_UNSUPPORTED_TRASNCRIBE_TYPE";
    /// Blocked user.
    BLOCK_USER = 200062, "RTM_EC_BLOCK_USER";
    /// Message not found.
    MESSAGE_NOT_FOUND = 200070, "RTM_EC_MESSAGE_NOT_FOUND";
    /// Unknown error.
    UNKNOWN_ERROR = 200999, "RTM_EC_UNKNOWN_ERROR";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(name(200002), Some("RTM_EC_INVALID_PID_OR_SIGN"));
        assert_eq!(
            name(INVALID_SERVER_TIME),
            Some("RTM_EC_INVALID_SERFVER_TIME")
        );
        assert_eq!(name(CORE_TIMEOUT), Some("FPNN_EC_CORE_TIMEOUT"));
        assert_eq!(name(12345), None);
    }
}
