//! A client and a server [`Connection`] driven against each other in memory, on simulated
//! time: the pair harness. Every timer (quest timeout, idle, write stall, keep-alive, close
//! flush) is tested in microseconds of real time, deterministically.

use super::*;
use bytes::Buf;

/// Bytes in flight in one direction: the kernel buffers of both ends, `capacity` at most.
#[derive(Default)]
struct Pipe {
    bytes: BytesMut,
    /// What the sender's `poll_transmit` handed out and the pipe had no room for yet.
    unsent: Option<Bytes>,
    capacity: usize,
}

/// What the server's application does with the quests it gets.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum App {
    /// Answers every two-way quest with its params, at once.
    Echo,
    /// Keeps the quests and answers none.
    Hold,
}

struct Pair {
    now: Instant,
    client: Connection<u32>,
    server: Connection<u32>,
    to_server: Pipe,
    to_client: Pipe,
    /// Whether each side reads from its pipe.
    client_reads: bool,
    server_reads: bool,
    app: App,
    /// Quests the server held (App::Hold).
    held: Vec<Quest>,
    /// Answers and failures the client saw, by waiter.
    client_events: Vec<(u32, Result<Value, Error>)>,
    /// Methods of the quests the server's application saw.
    server_saw: Vec<String>,
}

fn server_config() -> Config {
    Config {
        idle_timeout: Some(Duration::from_secs(60)),
        outbound_high_water: Some(DEFAULT_OUTBOUND_HIGH_WATER),
        ..Config::default()
    }
}

impl Pair {
    fn new(client: Config, server: Config) -> Pair {
        let now = Instant::now();
        Pair {
            now,
            client: Connection::new(client, now),
            server: Connection::new(server, now),
            to_server: Pipe {
                capacity: 256 * 1024,
                ..Pipe::default()
            },
            to_client: Pipe {
                capacity: 256 * 1024,
                ..Pipe::default()
            },
            client_reads: true,
            server_reads: true,
            app: App::Echo,
            held: Vec::new(),
            client_events: Vec::new(),
            server_saw: Vec::new(),
        }
    }

    fn default() -> Pair {
        Pair::new(Config::default(), server_config())
    }

    /// Moves bytes from `from` into `pipe` as far as the pipe has room. Returns the count.
    fn send(from: &mut Connection<u32>, pipe: &mut Pipe, now: Instant) -> usize {
        let mut moved = 0;
        loop {
            if pipe.unsent.is_none() {
                pipe.unsent = from.poll_transmit();
            }
            let Some(bytes) = &mut pipe.unsent else {
                return moved;
            };
            let room = pipe.capacity.saturating_sub(pipe.bytes.len());
            let n = room.min(bytes.len());
            if n == 0 {
                return moved;
            }
            pipe.bytes.extend_from_slice(&bytes[..n]);
            bytes.advance(n);
            if bytes.is_empty() {
                pipe.unsent = None;
            }
            from.on_transmitted(n, now);
            moved += n;
        }
    }

    /// Moves bytes from `pipe` into `to`, as far as it wants to read.
    fn receive(to: &mut Connection<u32>, pipe: &mut Pipe, now: Instant) -> usize {
        let mut moved = 0;
        while !pipe.bytes.is_empty() {
            let Some(mut buf) = to.recv_buffer() else {
                break;
            };
            let n = buf.remaining_mut().min(pipe.bytes.len());
            if n == 0 {
                break;
            }
            buf.put_slice(&pipe.bytes[..n]);
            pipe.bytes.advance(n);
            to.handle_input(n, now);
            moved += n;
        }
        moved
    }

    /// Runs both sides until nothing moves.
    fn step(&mut self) {
        for _ in 0..10_000 {
            let mut moved = 0;
            moved += Pair::send(&mut self.client, &mut self.to_server, self.now);
            moved += Pair::send(&mut self.server, &mut self.to_client, self.now);
            if self.server_reads {
                moved += Pair::receive(&mut self.server, &mut self.to_server, self.now);
            }
            if self.client_reads {
                moved += Pair::receive(&mut self.client, &mut self.to_client, self.now);
            }
            while let Some(event) = self.server.poll_event() {
                moved += 1;
                if let Event::Quest(quest) = event {
                    self.server_saw.push(quest.method.clone());
                    match (self.app, quest.seq) {
                        (App::Echo, Some(seq)) => {
                            let result = quest
                                .params()
                                .map_err(|e| ErrorAnswer::new(1, e.to_string()));
                            self.server.answer(seq, quest.format, result);
                        }
                        (App::Echo, None) => self.server.oneway_done(),
                        (App::Hold, _) => self.held.push(quest),
                    }
                }
            }
            while let Some(event) = self.client.poll_event() {
                moved += 1;
                match event {
                    Event::Answer { waiter, answer } => {
                        let result = match answer.into_result() {
                            Ok(Ok(body)) => Ok(body),
                            Ok(Err(e)) => Err(Error::Answer(e)),
                            Err(e) => Err(Error::decode(e)),
                        };
                        self.client_events.push((waiter, result));
                    }
                    Event::Failed { waiter, error } => {
                        self.client_events.push((waiter, Err(error)))
                    }
                    Event::Quest(quest) => {
                        // The client answers pushes like the echo server.
                        match quest.seq {
                            Some(seq) => self.client.answer(seq, quest.format, Ok(Value::map())),
                            None => self.client.oneway_done(),
                        }
                    }
                }
            }
            if moved == 0 {
                return;
            }
        }
        panic!("the pair never settled");
    }

    /// Moves simulated time forward by `d`, firing every timer due on the way, in order.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.step();
            let next = [self.client.poll_timeout(), self.server.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(at) if at <= end => {
                    self.now = self.now.max(at);
                    self.client.handle_timeout(self.now);
                    self.server.handle_timeout(self.now);
                }
                _ => break,
            }
        }
        self.now = end;
        self.client.handle_timeout(end);
        self.server.handle_timeout(end);
        self.step();
    }

    fn quest(&mut self, waiter: u32, method: &str, params: Value, timeout: Duration) -> u32 {
        self.client
            .send_quest(method, Format::MsgPack, &params, timeout, waiter, self.now)
            .unwrap()
    }

    fn result(&self, waiter: u32) -> Option<&Result<Value, Error>> {
        self.client_events
            .iter()
            .find(|(w, _)| *w == waiter)
            .map(|(_, r)| r)
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn big(n: usize) -> Value {
    Value::map().with("s", "x".repeat(n))
}

#[test]
fn quests_and_answers_are_matched_by_seq() {
    let mut pair = Pair::default();
    let a = pair.quest(1, "echo", Value::map().with("i", 1), secs(5));
    let b = pair.quest(2, "echo", Value::map().with("i", 2), secs(5));
    assert_eq!((a, b), (1, 2));
    pair.step();
    assert_eq!(pair.result(1), Some(&Ok(Value::map().with("i", 1))));
    assert_eq!(pair.result(2), Some(&Ok(Value::map().with("i", 2))));
    assert_eq!(pair.client.pending(), 0);
    assert_eq!(pair.server.in_flight(), 0);
}

#[test]
fn a_quest_without_an_answer_times_out_with_20003_and_a_late_answer_is_dropped() {
    let mut pair = Pair::default();
    pair.app = App::Hold;
    pair.quest(1, "slow", Value::map(), secs(5));
    pair.advance(Duration::from_millis(4999));
    assert_eq!(pair.result(1), None);
    pair.advance(Duration::from_millis(1));
    let err = pair.result(1).unwrap().clone().unwrap_err();
    assert_eq!(err, Error::Timeout(secs(5)));
    assert_eq!(err.code(), code::CORE_TIMEOUT);
    // The server answers late: dropped, and the connection goes on.
    let quest = pair.held.pop().unwrap();
    pair.server
        .answer(quest.seq.unwrap(), quest.format, Ok(Value::map()));
    pair.app = App::Echo;
    pair.quest(2, "echo", Value::map(), secs(5));
    pair.step();
    assert_eq!(pair.client_events.len(), 2);
    assert!(pair.result(2).unwrap().is_ok());
}

#[test]
fn the_server_closes_an_idle_connection_after_60_s_with_20002() {
    let mut pair = Pair::default();
    pair.quest(1, "echo", Value::map(), secs(5));
    pair.advance(secs(59));
    assert!(!pair.server.is_closing());
    pair.advance(secs(1));
    assert_eq!(
        pair.server.close_reason(),
        Some(&CloseReason::IdleTimeout(secs(60)))
    );
    assert!(pair.server.is_closed());
    assert_eq!(
        CloseReason::IdleTimeout(secs(60)).code(),
        code::CORE_CONNECTION_CLOSED
    );
}

#[test]
fn keep_alive_pings_a_quiet_server_and_declares_a_silent_one_lost_with_20012() {
    let keep_alive = KeepAlive {
        interval: secs(20),
        max_retries: 3,
        ping_timeout: Some(secs(5)),
    };
    let client = Config {
        keep_alive: Some(keep_alive),
        ..Config::default()
    };
    // A live server answers the pings: the connection stays up for minutes.
    let mut pair = Pair::new(client.clone(), Config::default());
    pair.advance(secs(300));
    assert!(!pair.client.is_closing());
    assert!(pair.server_saw.iter().filter(|m| *m == "*ping").count() >= 10);

    // A server that stops reading and answering: lost after 20 + 3 × 5 = 35 s.
    let mut pair = Pair::new(client, Config::default());
    pair.server_reads = false;
    pair.quest(1, "echo", Value::map(), secs(3600));
    pair.advance(secs(34));
    assert!(!pair.client.is_closing());
    pair.advance(secs(1));
    let reason = pair.client.close_reason().cloned().unwrap();
    assert_eq!(reason, CloseReason::KeepAliveLost(secs(35)));
    let err = pair.result(1).unwrap().clone().unwrap_err();
    assert_eq!(err, Error::Closed(reason));
    assert_eq!(err.code(), code::CORE_INVALID_CONNECTION);
}

#[test]
fn a_peer_that_takes_no_bytes_is_closed_after_the_write_stall_timeout() {
    let mut pair = Pair::default();
    pair.to_client.capacity = 4096;
    pair.client_reads = false;
    // Answers pile up in the pipe, then in the server's queue.
    for i in 0..20 {
        pair.quest(i, "echo", big(1000), secs(3600));
    }
    pair.step();
    assert!(pair.server.queued() > 0);
    pair.advance(secs(29));
    assert!(!pair.server.is_closing());
    pair.advance(secs(1));
    assert_eq!(
        pair.server.close_reason(),
        Some(&CloseReason::WriteStalled(secs(30)))
    );
    // Aborted: nothing is left queued.
    assert!(pair.server.is_closed());
    assert_eq!(pair.server.queued(), 0);
}

#[test]
fn a_peer_that_takes_bytes_slowly_is_not_stalled() {
    let client = Config {
        outbound_budget: 1 << 20,
        ..Config::default()
    };
    let mut pair = Pair::new(client, server_config());
    pair.to_client.capacity = 4096;
    pair.client_reads = false;
    for i in 0..200 {
        pair.quest(i, "echo", big(1000), secs(3600));
    }
    pair.step();
    // The client reads a little every 20 s: each read is progress.
    for _ in 0..10 {
        pair.advance(secs(20));
        let n = pair.to_client.bytes.len().min(2000);
        let mut buf = pair.client.recv_buffer().unwrap();
        buf.put_slice(&pair.to_client.bytes[..n]);
        pair.to_client.bytes.advance(n);
        pair.client.handle_input(n, pair.now);
    }
    assert!(
        !pair.server.is_closing(),
        "{:?}",
        pair.server.close_reason()
    );
}

#[test]
fn the_server_stops_reading_past_the_high_water_mark_and_memory_stays_bounded() {
    let mut pair = Pair::default();
    pair.to_client.capacity = 8192;
    pair.client_reads = false;
    // The client pipelines far more than the server may queue, and never reads.
    let mut sent = 0;
    for i in 0..2000u32 {
        if pair
            .client
            .send_quest("echo", Format::MsgPack, &big(100), secs(3600), i, pair.now)
            .is_err()
        {
            break;
        }
        sent += 1;
        pair.step();
    }
    assert!(sent > 100);
    let queued = pair.server.queued();
    // Stopped at the high-water mark, give or take one answer.
    assert!(
        (DEFAULT_OUTBOUND_HIGH_WATER..DEFAULT_OUTBOUND_HIGH_WATER + 200).contains(&queued),
        "{queued}"
    );
    assert_eq!(pair.server.read_limit(), 0);
    assert!(pair.server.buffered_input() <= DEFAULT_READ_BUFFER);
    assert!(
        pair.server.buffer_memory() <= 2 * (DEFAULT_READ_BUFFER + DEFAULT_OUTBOUND_BUDGET),
        "{}",
        pair.server.buffer_memory()
    );
    let answered = pair.server_saw.len();
    // Once the client reads, the server reads on.
    pair.client_reads = true;
    pair.step();
    assert!(pair.server_saw.len() > answered);
    assert_eq!(pair.server.queued(), 0);
}

#[test]
fn a_push_to_a_peer_that_does_not_read_fails_once_the_budget_is_used_up() {
    let mut pair = Pair::default();
    pair.to_client.capacity = 1024;
    pair.client_reads = false;
    let mut pushed = 0;
    let err = loop {
        match pair
            .server
            .send_oneway("kickout", Format::MsgPack, &big(1000), pair.now)
        {
            Ok(()) => pushed += 1,
            Err(e) => break e,
        }
        pair.step();
        assert!(pushed < 1000);
    };
    assert!(
        matches!(
            err,
            SendError::Full {
                budget: DEFAULT_OUTBOUND_BUDGET,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(Error::from(err).code(), code::CORE_SEND_ERROR);
    // The close still works, and ends the session.
    pair.server.close(CloseReason::ClosedLocally, pair.now);
    pair.advance(secs(5));
    assert!(pair.server.is_closed());
}

#[test]
fn quests_beyond_the_in_flight_cap_are_answered_20011() {
    let server = Config {
        max_in_flight: 3,
        ..server_config()
    };
    let mut pair = Pair::new(Config::default(), server);
    pair.app = App::Hold;
    for i in 0..5 {
        pair.quest(i, "slow", Value::map(), secs(60));
    }
    pair.step();
    assert_eq!(pair.held.len(), 3);
    assert_eq!(pair.server.in_flight(), 3);
    for i in 3..5 {
        let err = pair.result(i).unwrap().clone().unwrap_err();
        assert_eq!(err.code(), code::CORE_WORK_QUEUE_FULL, "{err:?}");
    }
    // Answering one makes room for the next.
    let quest = pair.held.remove(0);
    pair.server
        .answer(quest.seq.unwrap(), quest.format, Ok(Value::map()));
    pair.quest(9, "slow", Value::map(), secs(60));
    pair.step();
    assert_eq!(pair.held.len(), 3);
    assert!(pair.result(9).is_none());
}

#[test]
fn close_reasons_of_each_side() {
    // The client closes: the server sees the end of the stream.
    let mut pair = Pair::default();
    pair.app = App::Hold;
    pair.quest(1, "slow", Value::map(), secs(60));
    pair.step();
    pair.client.close(CloseReason::ClosedLocally, pair.now);
    pair.step();
    assert_eq!(
        pair.result(1),
        Some(&Err(Error::Closed(CloseReason::ClosedLocally)))
    );
    assert!(pair.client.is_closed());
    pair.server.handle_input(0, pair.now);
    assert!(pair.server.poll_event().is_none());
    assert_eq!(pair.server.close_reason(), Some(&CloseReason::ClosedByPeer));

    // Garbage closes with a protocol error, 20012.
    let mut pair = Pair::default();
    pair.to_server
        .bytes
        .extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
    pair.step();
    let reason = pair.server.close_reason().cloned().unwrap();
    assert!(
        matches!(
            reason,
            CloseReason::Protocol(ProtocolError::BadFrame(CodecError::BadMagic(_)))
        ),
        "{reason:?}"
    );
    assert_eq!(reason.code(), code::CORE_INVALID_CONNECTION);
}

#[test]
fn queued_answers_go_out_before_the_close_and_a_stuck_flush_is_cut() {
    let mut pair = Pair::default();
    pair.app = App::Hold;
    pair.quest(1, "bye", Value::map(), secs(60));
    pair.step();
    pair.server.close_after_answers(pair.now);
    assert!(!pair.server.is_closing(), "waits for the quest in flight");
    let quest = pair.held.pop().unwrap();
    pair.server
        .answer(quest.seq.unwrap(), quest.format, Ok(Value::map()));
    assert!(pair.server.is_closing());
    pair.step();
    assert!(pair.result(1).unwrap().is_ok(), "the answer went out first");
    assert!(pair.server.is_closed());

    // A peer that does not take the last bytes is cut off after the close flush.
    let mut pair = Pair::default();
    pair.to_client.capacity = 0;
    pair.quest(1, "echo", Value::map(), secs(60));
    pair.step();
    pair.server.close(CloseReason::ClosedLocally, pair.now);
    assert!(pair.server.is_closing() && !pair.server.is_closed());
    pair.advance(secs(5));
    assert!(pair.server.is_closed());
}

#[test]
fn frames_larger_than_the_read_buffer_share_the_frame_memory() {
    let memory = FrameMemory::new(100_000);
    let server = Config {
        read_buffer: 1024,
        frame_memory: memory.clone(),
        ..server_config()
    };
    let mut pair = Pair::new(Config::default(), server.clone());
    let mut other: Connection<u32> = Connection::new(server, pair.now);
    // Another connection announces a 90 kB frame and sends only its header.
    let frame = Frame::from(Quest::twoway("echo", 1, &big(90_000)).unwrap())
        .encode()
        .unwrap();
    let mut buf = other.recv_buffer().unwrap();
    buf.put_slice(&frame[..12]);
    other.handle_input(12, pair.now);
    assert!(other.poll_event().is_none());
    assert!(other.read_limit() > 1024);
    assert_eq!(memory.used(), frame.len());
    // This one's 20 kB frame does not fit now: it waits, not reading...
    pair.quest(1, "echo", big(20_000), secs(60));
    pair.step();
    assert_eq!(pair.result(1), None);
    assert_eq!(pair.server.read_limit(), 0);
    // ...until the other connection goes away.
    drop(other);
    assert_eq!(memory.used(), 0);
    pair.advance(Duration::from_millis(100));
    assert!(pair.result(1).unwrap().is_ok());
    assert_eq!(memory.used(), 0, "released once the frame was read");
}

#[test]
fn an_unknown_answer_seq_is_dropped_and_a_frame_over_the_limit_closes() {
    let mut pair = Pair::default();
    let stray = Frame::from(Answer::ok(77, Format::MsgPack, &Value::map()).unwrap())
        .encode()
        .unwrap();
    pair.to_client.bytes.extend_from_slice(&stray);
    pair.quest(1, "echo", Value::map(), secs(5));
    pair.step();
    assert!(pair.result(1).unwrap().is_ok());
    assert!(!pair.client.is_closing());

    let server = Config {
        max_frame: 1000,
        ..server_config()
    };
    let mut pair = Pair::new(Config::default(), server);
    pair.quest(1, "echo", big(2000), secs(5));
    pair.step();
    assert!(matches!(
        pair.server.close_reason(),
        Some(CloseReason::Protocol(ProtocolError::BadFrame(
            CodecError::FrameTooLarge { .. }
        )))
    ));
}

/// A test layer: each frame goes out as a 4-byte little-endian length and the frame XORed
/// with a key byte, the shape of package-mode encryption.
struct XorLayer(u8);

impl WireLayer for XorLayer {
    fn name(&self) -> &'static str {
        "xor"
    }

    fn read_frame(
        &mut self,
        input: &mut BytesMut,
        max_frame: usize,
        _control: &mut BytesMut,
    ) -> Result<ReadFrame, WireError> {
        let Some(prefix) = input.get(..4) else {
            return Ok(ReadFrame::NeedMore { frame_len: None });
        };
        let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        if len > max_frame {
            return Err(WireError::new(format!("frame of {len} bytes")));
        }
        if input.len() < 4 + len {
            return Ok(ReadFrame::NeedMore {
                frame_len: Some(4 + len),
            });
        }
        input.advance(4);
        let mut frame = input.split_to(len);
        for b in frame.iter_mut() {
            *b ^= self.0;
        }
        Ok(ReadFrame::Frame(frame))
    }

    fn write_frame(&mut self, frame: &[u8], out: &mut BytesMut) -> Result<(), WireError> {
        out.put_u32_le(frame.len() as u32);
        out.extend(frame.iter().map(|b| b ^ self.0));
        Ok(())
    }
}

#[test]
fn the_wire_layer_switches_between_two_frames_with_pipelined_bytes_behind() {
    // Like `*key`: the client's first frame is plain, everything after it goes through the
    // layer, pipelined before the server has read the first frame.
    let mut pair = Pair::default();
    pair.quest(1, "*key", Value::map().with("k", 1), secs(5));
    pair.client.set_wire(Wire::from(XorLayer(0x5a)));
    pair.quest(2, "echo", Value::map().with("i", 2), secs(5));
    pair.quest(3, "echo", big(3000), secs(5));
    // All three frames reach the server's buffer in one read.
    Pair::send(&mut pair.client, &mut pair.to_server, pair.now);
    Pair::receive(&mut pair.server, &mut pair.to_server, pair.now);
    let Some(Event::Quest(key)) = pair.server.poll_event() else {
        panic!("the plain *key first")
    };
    assert_eq!(key.method, "*key");
    // The server switches, then queues the answer: its first frame through the layer.
    pair.server.set_wire(Wire::from(XorLayer(0x5a)));
    pair.server
        .answer(key.seq.unwrap(), key.format, Ok(Value::map()));
    let bytes = pair.server.poll_transmit().unwrap();
    pair.server.on_transmitted(bytes.len(), pair.now);
    assert_eq!(&bytes[..4], &(bytes.len() as u32 - 4).to_le_bytes());
    assert_ne!(&bytes[4..8], b"FPNN");
    pair.to_client.bytes.extend_from_slice(&bytes);
    pair.step();
    assert_eq!(pair.server_saw, ["echo", "echo"]);
    assert_eq!(pair.result(1), Some(&Ok(Value::map())));
    assert_eq!(pair.result(2), Some(&Ok(Value::map().with("i", 2))));
    assert_eq!(pair.result(3), Some(&Ok(big(3000))));

    // Bytes the layer refuses close the connection with the layer's name.
    pair.to_server
        .bytes
        .extend_from_slice(&u32::MAX.to_le_bytes());
    pair.step();
    assert!(matches!(
        pair.server.close_reason(),
        Some(CloseReason::Protocol(ProtocolError::Layer {
            layer: "xor",
            ..
        }))
    ));
}

#[test]
fn seqs_skip_zero_and_those_still_waiting_after_a_wrap() {
    let mut conn: Connection<u32> = Connection::new(Config::default(), Instant::now());
    let now = Instant::now();
    conn.next_seq = u32::MAX - 1;
    let a = conn
        .send_quest("a", Format::MsgPack, &Value::map(), secs(5), 0, now)
        .unwrap();
    let b = conn
        .send_quest("b", Format::MsgPack, &Value::map(), secs(5), 0, now)
        .unwrap();
    let c = conn
        .send_quest("c", Format::MsgPack, &Value::map(), secs(5), 0, now)
        .unwrap();
    assert_eq!((a, b, c), (u32::MAX - 1, u32::MAX, 1));
    conn.next_seq = u32::MAX;
    let d = conn
        .send_quest("d", Format::MsgPack, &Value::map(), secs(5), 0, now)
        .unwrap();
    assert_eq!(d, 2, "MAX and 1 are still waiting");
}

mod chunking {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever pieces the transport delivers the bytes in, the server sees the same
        /// quests in the same order, and the client gets every answer.
        #[test]
        fn any_chunking_gives_the_same_quests_and_answers(
            sizes in proptest::collection::vec(0usize..3000, 1..40),
            chunks in proptest::collection::vec(1usize..700, 1..20),
        ) {
            let client = Config {
                outbound_budget: 1 << 20,
                ..Config::default()
            };
            let mut pair = Pair::new(client, server_config());
            pair.to_server.capacity = 0;
            for (i, size) in sizes.iter().enumerate() {
                pair.quest(i as u32, "echo", big(*size), secs(60));
            }
            // Hand the client's bytes to the server in the given pieces, cycling.
            let mut bytes = BytesMut::new();
            while let Some(b) = pair.client.poll_transmit() {
                pair.client.on_transmitted(b.len(), pair.now);
                bytes.extend_from_slice(&b);
            }
            let mut i = 0;
            while !bytes.is_empty() {
                let n = chunks[i % chunks.len()].min(bytes.len());
                i += 1;
                let piece = bytes.split_to(n);
                let mut fed = 0;
                while fed < piece.len() {
                    let Some(mut buf) = pair.server.recv_buffer() else {
                        pair.step();
                        continue;
                    };
                    let k = buf.remaining_mut().min(piece.len() - fed);
                    buf.put_slice(&piece[fed..fed + k]);
                    pair.server.handle_input(k, pair.now);
                    fed += k;
                }
                pair.step();
            }
            pair.step();
            prop_assert_eq!(pair.server_saw.len(), sizes.len());
            for (i, size) in sizes.iter().enumerate() {
                prop_assert_eq!(pair.result(i as u32), Some(&Ok(big(*size))));
            }
            prop_assert!(!pair.server.is_closing());
        }
    }
}

/// A layer whose writes fail: a quest queued through it fails at once and the connection
/// closes with the layer's name, leaving no quest waiting forever.
struct BrokenLayer;

impl WireLayer for BrokenLayer {
    fn name(&self) -> &'static str {
        "broken"
    }

    fn read_frame(
        &mut self,
        _input: &mut BytesMut,
        _max_frame: usize,
        _control: &mut BytesMut,
    ) -> Result<ReadFrame, WireError> {
        Ok(ReadFrame::NeedMore { frame_len: None })
    }

    fn write_frame(&mut self, _frame: &[u8], _out: &mut BytesMut) -> Result<(), WireError> {
        Err(WireError::new("cannot write"))
    }
}

#[test]
fn a_layer_that_cannot_write_closes_the_connection_and_fails_the_quest() {
    let mut conn: Connection<u32> = Connection::new(Config::default(), Instant::now());
    conn.set_wire(Wire::from(BrokenLayer));
    let err = conn
        .send_quest(
            "x",
            Format::MsgPack,
            &Value::map(),
            secs(5),
            1,
            Instant::now(),
        )
        .unwrap_err();
    assert!(
        matches!(
            &err,
            SendError::Closed(CloseReason::Protocol(ProtocolError::Layer {
                layer: "broken",
                ..
            }))
        ),
        "{err:?}"
    );
    assert_eq!(conn.pending(), 0);
    assert!(conn.is_closed());
}
