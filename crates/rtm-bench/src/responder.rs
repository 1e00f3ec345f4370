//! The `limit` baseline: a minimal FPNN responder that does no work. It decodes each frame
//! (header and body split, as any FPNN server must) and answers every two-way quest with one
//! fixed answer, `{ok: true, token: <72 characters>}` (the size of a `gettoken` answer),
//! with the quest's seq. No payload decoding, no routing, no task per quest: one task per
//! connection that reads, answers in a batch and writes. Like the gate, it closes the
//! connection after answering `bye`, so that a login cycle ends the same way on both.
//! Run against it, the same load shows what this machine's loopback, kernel and load
//! generator allow: the ceiling.

use bytes::{BufMut, BytesMut};
use fpnn::{Answer, Format, Frame, FrameDecoder, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The fixed answer with seq 0; the seq is at bytes 12..16.
fn template() -> Vec<u8> {
    let body = Value::map().with("ok", true).with("token", "x".repeat(72));
    let answer = Answer::ok(0, Format::MsgPack, &body).expect("a fixed map encodes");
    Frame::Answer(answer)
        .encode()
        .expect("a fixed answer encodes")
        .to_vec()
}

/// Serves until the process is killed. Prints `responder ready addr=…` once listening.
pub async fn run(listen: &str) -> Result<(), String> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    crate::target::check_loopback(&addr)?;
    println!("responder ready addr={addr}");
    let template: &'static [u8] = Box::leak(template().into_boxed_slice());
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve(stream, template));
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
}

async fn serve(mut stream: TcpStream, template: &'static [u8]) {
    let _ = stream.set_nodelay(true);
    let mut decoder = FrameDecoder::default();
    let mut input = BytesMut::with_capacity(16 * 1024);
    let mut output = BytesMut::with_capacity(16 * 1024);
    loop {
        match stream.read_buf(&mut input).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut bye = false;
        loop {
            match decoder.decode(&mut input) {
                Ok(Some(Frame::Quest(quest))) => {
                    if let Some(seq) = quest.seq {
                        output.put_slice(&template[..12]);
                        output.put_u32_le(seq);
                        output.put_slice(&template[16..]);
                    }
                    bye |= quest.method == rtm_protocol::gate::Method::Bye.name();
                }
                Ok(Some(Frame::Answer(_))) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
        if !output.is_empty() {
            if stream.write_all(&output).await.is_err() {
                return;
            }
            output.clear();
        }
        if bye {
            let _ = stream.shutdown().await;
            return;
        }
        if input.capacity() < 4096 {
            input.reserve(16 * 1024);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_is_an_answer_with_its_seq_at_bytes_12_to_16() {
        let mut bytes = template();
        bytes[12..16].copy_from_slice(&77u32.to_le_bytes());
        let mut buf = BytesMut::from(&bytes[..]);
        match FrameDecoder::default().decode(&mut buf).unwrap() {
            Some(Frame::Answer(a)) => {
                assert_eq!(a.seq, 77);
                let body = a.body().unwrap();
                assert_eq!(body.get("ok").and_then(Value::as_bool), Some(true));
            }
            other => panic!("not an answer: {other:?}"),
        }
    }
}
