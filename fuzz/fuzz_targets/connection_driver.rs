//! The body of the `connection` and `web_connection` fuzz targets: a server connection fed
//! arbitrary bytes in arbitrary pieces, with timers firing and quests answered, held or left
//! unanswered. It must never panic, never buffer more input than its limits allow, and never
//! hold more output than its budget, high-water mark and in-flight cap allow.

use bytes::BufMut;
use fpnn::proto::{Config, Connection, Event, FrameMemory, Wire};
use fpnn::{Format, Value};
use std::time::{Duration, Instant};

pub const MAX_FRAME: usize = 4096;
const READ_BUFFER: usize = 512;
const HIGH_WATER: usize = 2048;
const IN_FLIGHT: usize = 4;

/// Runs the connection over `data`, starting with `wire` (plain FPNN when `None`).
pub fn run(data: &[u8], wire: Option<Wire>) {
    let start = Instant::now();
    let config = Config {
        max_frame: MAX_FRAME,
        read_buffer: READ_BUFFER,
        frame_memory: FrameMemory::new(2 * MAX_FRAME),
        outbound_budget: 4096,
        outbound_high_water: Some(HIGH_WATER),
        max_in_flight: IN_FLIGHT,
        idle_timeout: Some(Duration::from_secs(60)),
        ..Config::default()
    };
    let mut conn: Connection<u32> = Connection::new(config, start);
    if let Some(wire) = wire {
        conn.set_wire(wire);
    }
    let mut now = start;
    let mut held = Vec::new();
    let mut input = data;
    while let Some((&op, rest)) = input.split_first() {
        input = rest;
        match op % 5 {
            0 | 1 => {
                let want = (usize::from(op >> 2) + 1) * 8;
                if let Some(mut buf) = conn.recv_buffer() {
                    let n = want.min(input.len()).min(buf.remaining_mut());
                    buf.put_slice(&input[..n]);
                    input = &input[n..];
                    conn.handle_input(n, now);
                }
            }
            2 => {
                now += Duration::from_millis(u64::from(op) * 500);
                conn.handle_timeout(now);
            }
            3 => {
                if let Some(bytes) = conn.poll_transmit() {
                    let n = bytes.len() / 2 + usize::from(op & 1);
                    conn.on_transmitted(n.min(bytes.len()), now);
                }
                if let Some(seq) = held.pop() {
                    conn.answer(seq, Format::MsgPack, Ok(Value::map().with("s", "x".repeat(300))));
                }
            }
            _ => {
                let _ = conn.send_quest("push", Format::MsgPack, &Value::map(), Duration::from_secs(1), 0, now);
                if op & 0x80 != 0 {
                    conn.handle_input(0, now);
                }
            }
        }
        while let Some(event) = conn.poll_event() {
            if let Event::Quest(quest) = event {
                match quest.seq {
                    Some(seq) if op & 0x40 != 0 => held.push(seq),
                    Some(seq) => conn.answer(seq, quest.format, quest.params().map_err(|e| fpnn::ErrorAnswer::new(1, e.to_string()))),
                    None => conn.oneway_done(),
                }
            }
        }
        assert!(conn.in_flight() <= IN_FLIGHT);
        assert!(conn.buffered_input() <= MAX_FRAME + READ_BUFFER);
        // Output: the high-water mark, one answer or push past it, and the answers of the
        // quests in flight (each at most a max frame here, echoed).
        // (On a web connection, HTTP heads or WebSocket headers, a pong and a close frame.)
        assert!(conn.queued() <= 4096 + (IN_FLIGHT + 2) * (MAX_FRAME + 512) + 2 * 127);
        if conn.is_closed() {
            break;
        }
    }
}
