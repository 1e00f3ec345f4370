//! Answers as HTTP responses, rendered as the framework renders them.

use crate::error::{code, ErrorAnswer};
use crate::frame::Answer;
use crate::payload::Format;
use bytes::{BufMut, BytesMut};
use std::time::SystemTime;

/// How to render one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Render {
    /// The request carried `Origin`: add the framework's CORS headers.
    pub cors: bool,
    /// The connection stays open after this answer.
    pub keep_alive: bool,
}

/// Appends the HTTP response for `answer`:
///
/// ```text
/// HTTP/1.1 200 OK                      (500 Internal Server Error for an error answer)
/// Date: Tue, 01 Dec 2026 20:00:00 GMT
/// Server: FPNN/1.0
/// Content-Type: application/json
/// Content-Length: 16
/// Connection: Keep-Alive               (close when the connection closes after it)
/// Access-Control-Allow-Origin: *       (these three when the request had Origin)
/// Access-Control-Allow-Credentials: true
/// Access-Control-Allow-Methods: GET, POST
///
/// {"token":"..."}                      ({"code":…,"ex":"…"} for an error answer)
/// ```
///
/// The body is JSON whatever the answer's format (a msgpack answer is converted). An answer
/// whose payload cannot be read becomes a 500 with code 20005 (`CORE_ENCODING`): the client
/// gets an answer either way. `Content-Type` is our addition (the framework sends none).
pub fn write_response(answer: &Answer, render: Render, now: SystemTime, out: &mut BytesMut) {
    let (status, body) = body(answer);
    let date = httpdate::fmt_http_date(now);
    let length = body.len().to_string();
    let connection = if render.keep_alive {
        "Keep-Alive"
    } else {
        "close"
    };
    out.reserve(256 + body.len());
    for part in [
        status,
        "\r\nDate: ",
        &date,
        "\r\nServer: FPNN/1.0\r\nContent-Type: application/json\r\nContent-Length: ",
        &length,
        "\r\nConnection: ",
        connection,
        "\r\n",
    ] {
        out.put_slice(part.as_bytes());
    }
    if render.cors {
        out.put_slice(b"Access-Control-Allow-Origin: *\r\nAccess-Control-Allow-Credentials: true\r\nAccess-Control-Allow-Methods: GET, POST\r\n");
    }
    out.put_slice(b"\r\n");
    out.put_slice(&body);
}

const OK: &str = "HTTP/1.1 200 OK";
const ERROR: &str = "HTTP/1.1 500 Internal Server Error";

/// The status line and the JSON body of an answer.
fn body(answer: &Answer) -> (&'static str, Vec<u8>) {
    let value = match answer.body() {
        Ok(value) => value,
        Err(e) => {
            return (
                ERROR,
                error_json(&ErrorAnswer::new(code::CORE_ENCODING, e.to_string())),
            )
        }
    };
    if answer.is_error() {
        return (ERROR, error_json(&ErrorAnswer::from_value(&value)));
    }
    if answer.format == Format::Json {
        // Already JSON text, and it read back as a map just above.
        return (OK, answer.payload.to_vec());
    }
    match serde_json::to_vec(&value) {
        Ok(json) => (OK, json),
        Err(e) => (
            ERROR,
            error_json(&ErrorAnswer::new(code::CORE_ENCODING, e.to_string())),
        ),
    }
}

/// `{"code":…,"ex":"…"}`.
fn error_json(error: &ErrorAnswer) -> Vec<u8> {
    let value = crate::Value::map()
        .with("code", error.code)
        .with("ex", error.ex.as_str());
    serde_json::to_vec(&value)
        .unwrap_or_else(|_| format!("{{\"code\":{}}}", error.code).into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Value;
    use std::time::{Duration, UNIX_EPOCH};

    fn at() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_764_619_200) // Mon, 01 Dec 2025 20:00:00 GMT
    }

    fn render(answer: &Answer, cors: bool, keep_alive: bool) -> String {
        let mut out = BytesMut::new();
        write_response(answer, Render { cors, keep_alive }, at(), &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn an_ok_answer() {
        let answer = Answer::ok(3, Format::MsgPack, &Value::map().with("token", "abc")).unwrap();
        assert_eq!(
            render(&answer, false, true),
            "HTTP/1.1 200 OK\r\nDate: Mon, 01 Dec 2025 20:00:00 GMT\r\nServer: FPNN/1.0\r\nContent-Type: application/json\r\nContent-Length: 15\r\nConnection: Keep-Alive\r\n\r\n{\"token\":\"abc\"}"
        );
    }

    #[test]
    fn an_error_answer_is_a_500_with_code_and_ex() {
        let err = ErrorAnswer {
            raiser: Some("x".into()),
            ..ErrorAnswer::new(20004, "unknown method")
        };
        let answer = Answer::error(0, Format::Json, &err);
        assert_eq!(
            render(&answer, true, false),
            "HTTP/1.1 500 Internal Server Error\r\nDate: Mon, 01 Dec 2025 20:00:00 GMT\r\nServer: FPNN/1.0\r\nContent-Type: application/json\r\nContent-Length: 36\r\nConnection: close\r\nAccess-Control-Allow-Origin: *\r\nAccess-Control-Allow-Credentials: true\r\nAccess-Control-Allow-Methods: GET, POST\r\n\r\n{\"code\":20004,\"ex\":\"unknown method\"}"
        );
    }

    #[test]
    fn an_unreadable_answer_is_still_answered() {
        let answer = Answer {
            seq: 1,
            status: 0,
            format: Format::MsgPack,
            payload: bytes::Bytes::from_static(&[0x01]),
        };
        let text = render(&answer, false, true);
        assert!(text.starts_with("HTTP/1.1 500 "), "{text}");
        assert!(
            text.ends_with("{\"code\":20005,\"ex\":\"payload root is a int, not a map\"}"),
            "{text}"
        );
    }
}
