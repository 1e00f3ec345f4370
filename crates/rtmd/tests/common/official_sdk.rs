//! Salts and quests made exactly as the official server SDKs make them, quirks included, so
//! that the tests see what rtmd sees from those SDKs (our own SDK's salts never repeat).
//!
//! The clocks are passed in: a test decides what "one second" or "one millisecond" is, and
//! the generators read it as often as the official code reads the real one.
//!
//! The quests are built as those SDKs build them: the same keys in the same order, integers
//! as integers and text as `str`. Our msgpack writer puts every integer in its smallest form,
//! non-negative ones in the unsigned family, as msgpack-c (under the C++ SDK's `FPQWriter`)
//! and Python's `msgpack` do.

use fpnn::Value;
use rtm_protocol::sign::sign;

/// The first value of glibc's `rand()` when nothing called `srand` (the seed is then 1).
pub const GLIBC_FIRST_RAND: i64 = 1_804_289_383;

/// The C++ SDK's `RTMMidGenerator` (since `1b8be49`): `unix_seconds << 14 | randId << 6 |
/// (counter & 63)`.
///
/// * `init()` sets `randId = rand() % 255 + 1` with an unseeded `rand()`: 164 in every
///   process.
/// * `genMid()` adds one to the counter modulo 64 first (so the first salt has counter 1);
///   when it wraps to 0 it waits for the "next tick", but its loop (`getNextMillis`, which
///   reads seconds despite its name) waits only while the time is *less than* the last time:
///   in the same second it returns at once. So one process makes at most 64 distinct salts
///   a second, and every process makes the same ones.
pub struct CppMidGenerator<C: FnMut() -> i64> {
    count: i32,
    rand_id: i32,
    last_time: i64,
    clock: C,
}

/// The C++ SDK's 6 sequence bits.
const CPP_SEQUENCE_MASK: i32 = -1 ^ (-1 << 6);

impl<C: FnMut() -> i64> CppMidGenerator<C> {
    /// A "process" whose clock reads `clock()` (Unix seconds, `slack_real_sec()`).
    pub fn new(clock: C) -> Self {
        CppMidGenerator {
            count: 0,
            rand_id: (GLIBC_FIRST_RAND % 255 + 1) as i32,
            last_time: 0,
            clock,
        }
    }

    /// The process's random part.
    pub fn rand_id(&self) -> i32 {
        self.rand_id
    }

    fn next_tick(&mut self, last_time: i64) -> i64 {
        let mut time = (self.clock)();
        while time < last_time {
            time = (self.clock)();
        }
        time
    }

    /// `genMid()`: the next salt.
    pub fn gen_mid(&mut self) -> i64 {
        let mut time = (self.clock)();
        self.count = (self.count + 1) & CPP_SEQUENCE_MASK;
        if self.count == 0 {
            time = self.next_tick(self.last_time);
        }
        self.last_time = time;
        // `(uint32_t)(_randId << 6) | (uint32_t)_count`, OR-ed into the int64.
        (time << 14) | i64::from((self.rand_id << 6) as u32) | i64::from(self.count as u32)
    }
}

/// A C++ SDK `gettoken` quest (`_getGetTokenQuest`): `FPQWriter(5, "gettoken")` with `pid`
/// (int32), `sign`, `salt` (int64), `ts` (int32), `uid` (int64), in that order; `ts` is read
/// apart from the salt, and the salt made first (`_makeSignAndSalt`).
pub fn cpp_gettoken(pid: i32, secret: &str, salt: i64, ts: i64, uid: i64) -> Value {
    Value::map()
        .with("pid", pid)
        .with("sign", sign(pid, secret, salt, "gettoken", ts))
        .with("salt", salt)
        .with("ts", ts)
        .with("uid", uid)
}

/// The Python SDK's `gen_mid` (2.x): `ms << 14 | rand_id << 6`, where the sequence is
/// computed and never OR-ed in.
///
/// `self.seq += 1`, then `self.seq = (self.seq + 1) & 63`: the sequence steps by two and
/// wraps to 0 every 32 calls, and only then does it wait for the next millisecond
/// (`get_next_millis`, which waits while the time is *not after* the last). So every call in
/// one millisecond, up to 32 of them, gets the same salt.
pub struct PythonMidGenerator<C: FnMut() -> i64> {
    seq: i64,
    rand_id: i64,
    last_time: i64,
    clock: C,
}

impl<C: FnMut() -> i64> PythonMidGenerator<C> {
    /// A client whose `random.randint(1, 255)` gave `rand_id`, reading `clock()` (Unix
    /// milliseconds, `int(time.time() * 1000)`).
    pub fn new(rand_id: i64, clock: C) -> Self {
        PythonMidGenerator {
            seq: 0,
            rand_id,
            last_time: 0,
            clock,
        }
    }

    fn next_millis(&mut self) -> i64 {
        let mut t = (self.clock)();
        while t <= self.last_time {
            t = (self.clock)();
        }
        t
    }

    /// `gen_mid()`: the next salt.
    pub fn gen_mid(&mut self) -> i64 {
        self.seq += 1;
        let mut t = (self.clock)();
        self.seq = (self.seq + 1) & 63;
        if self.seq == 0 {
            t = self.next_millis();
        }
        self.last_time = t;
        (t << (8 + 6)) | (self.rand_id << 6)
    }
}

/// The `version` the Python SDK 2.2.6 adds to `gettoken`.
pub const PYTHON_VERSION: &str = "PYTHON-2.2.6";

/// A Python SDK `gettoken` quest (`get_token`): the dict `{pid, sign, salt, ts, uid,
/// version}` in that order (dicts keep insertion order); `ts` is read before the salt.
pub fn python_gettoken(pid: i32, secret: &str, salt: i64, ts: i64, uid: i64) -> Value {
    // The C++ SDK's keys in the same order, then `version`.
    cpp_gettoken(pid, secret, salt, ts, uid).with("version", PYTHON_VERSION)
}

/// A clock frozen at `at`: every read in the same second (or millisecond).
pub fn frozen(at: i64) -> impl FnMut() -> i64 {
    move || at
}

/// A clock starting at `at` that moves on by one unit every `reads_per_tick` reads: a busy
/// loop reading it sees time pass.
pub fn ticking(at: i64, reads_per_tick: i64) -> impl FnMut() -> i64 {
    let mut reads = 0;
    move || {
        reads += 1;
        at + (reads - 1) / reads_per_tick
    }
}
