//! The load side's FPNN: quests built with the `fpnn` codec and the requests of
//! `rtm-protocol`, signed as the SDK signs them, and a blocking reader of answers. No task,
//! timer or channel per quest, so that the load generator costs as little CPU as it can on the
//! cores it shares with the server.

use bytes::BytesMut;
use fpnn::{Answer, Frame, FrameDecoder, Quest, Value};
use rtm_protocol::api::{self, app_type, AddDevice, GetToken, Kickout};
use rtm_protocol::clock::unix_secs;
use rtm_protocol::gate::{self, Auth};
use rtm_protocol::salt::next_salt;
use std::io::{Read, Write};
use std::net::TcpStream;

/// The server API methods a load mixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// `gettoken {uid}`.
    GetToken,
    /// `adddevice {uid, apptype, devicetoken}`: a durable write.
    AddDevice,
    /// `kickout {uid}` of a user who is not logged in.
    Kickout,
}

impl Method {
    /// The server API method.
    pub fn api(self) -> api::Method {
        match self {
            Method::GetToken => api::Method::GetToken,
            Method::AddDevice => api::Method::AddDevice,
            Method::Kickout => api::Method::Kickout,
        }
    }

    /// The method name on the wire.
    pub fn name(self) -> &'static str {
        self.api().name()
    }

    /// Every method, in the order of [`Mix`] weights.
    pub const ALL: [Method; 3] = [Method::GetToken, Method::AddDevice, Method::Kickout];

    /// The method named `name`.
    pub fn parse(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// A weighted mix of methods, e.g. `gettoken=80,adddevice=10,kickout=10`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    weights: [u32; 3],
}

impl Mix {
    /// Parses `name=weight,…` (a bare name has weight 1).
    pub fn parse(text: &str) -> Result<Mix, String> {
        let mut weights = [0u32; 3];
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = match part.split_once('=') {
                Some((n, w)) => (
                    n.trim(),
                    w.trim()
                        .parse::<u32>()
                        .map_err(|_| format!("bad weight in '{part}'"))?,
                ),
                None => (part, 1),
            };
            let method = Method::parse(name).ok_or_else(|| {
                format!("unknown method '{name}': use gettoken, adddevice or kickout")
            })?;
            weights[method as usize] += weight;
        }
        if weights.iter().all(|&w| w == 0) {
            return Err("the mix is empty".into());
        }
        Ok(Mix { weights })
    }

    /// The method of draw `r` (any number; spread evenly over the weights).
    pub fn pick(&self, r: u64) -> Method {
        let total: u64 = self.weights.iter().map(|&w| u64::from(w)).sum();
        let mut x = r % total;
        for (i, &w) in self.weights.iter().enumerate() {
            if x < u64::from(w) {
                return Method::ALL[i];
            }
            x -= u64::from(w);
        }
        Method::GetToken
    }

    /// The methods with a weight, for reports.
    pub fn methods(&self) -> Vec<Method> {
        Method::ALL
            .into_iter()
            .filter(|m| self.weights[*m as usize] > 0)
            .collect()
    }

    /// `gettoken=80,adddevice=20` form.
    pub fn describe(&self) -> String {
        self.methods()
            .iter()
            .map(|m| format!("{}={}", m.name(), self.weights[*m as usize]))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A small, fast pseudo-random generator (xorshift64*), for uids and the mix.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (any value).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Builds signed server API quests, byte for byte what `RtmServerClient` sends.
#[derive(Debug, Clone)]
pub struct Signer(api::Signer);

impl Signer {
    /// The signer of project `pid`.
    pub fn new(pid: i32, secret: &str) -> Signer {
        Signer(api::Signer::new(pid, secret))
    }

    /// The project.
    pub fn pid(&self) -> i32 {
        self.0.pid()
    }

    /// Its secret.
    pub fn secret(&self) -> &str {
        self.0.secret()
    }

    /// Appends quest `seq` of `method` for user `uid` to `out`, signed now with a fresh salt.
    /// `n` varies the device token of `adddevice`.
    pub fn append(&self, out: &mut BytesMut, method: Method, seq: u32, uid: i64, n: u64) {
        let (salt, ts) = (next_salt(), unix_secs());
        let payload = match method {
            Method::GetToken => self.0.payload(&GetToken { uid }, salt, ts),
            Method::AddDevice => {
                let request = AddDevice {
                    uid,
                    apptype: app_type::FCM.into(),
                    devicetoken: format!("bench-device-{uid}-{n}"),
                };
                self.0.payload(&request, salt, ts)
            }
            Method::Kickout => self.0.payload(&Kickout { uid, ce: None }, salt, ts),
        };
        // Only a value serde cannot write could fail; these requests are plain.
        if let Ok(payload) = payload {
            encode(out, method.name(), seq, &payload);
        }
    }

    /// Appends quest `seq` of `request`, signed now with a fresh salt (e.g. `getdevices`,
    /// which no [`Mix`] holds).
    pub fn append_request<R: api::Request>(&self, out: &mut BytesMut, seq: u32, request: &R) {
        // Only a value serde cannot write could fail; the protocol's requests are plain.
        if let Ok(payload) = self.0.payload(request, next_salt(), unix_secs()) {
            encode(out, R::METHOD.name(), seq, &payload);
        }
    }
}

/// Appends a two-way msgpack quest to `out`.
pub fn encode(out: &mut BytesMut, method: &str, seq: u32, params: &Value) {
    // Only a method name over 255 bytes could fail; ours are constants.
    if let Ok(quest) = Quest::twoway(method, seq, params) {
        let _ = Frame::Quest(quest).encode_into(out);
    }
}

/// The gate's `auth` quest.
pub fn auth(out: &mut BytesMut, seq: u32, pid: i32, uid: i64, token: &str) {
    let auth = Auth {
        pid: pid.into(),
        uid: uid.into(),
        token,
        version: Some("rtm-bench"),
    };
    if let Ok(params) = fpnn::to_value(&auth) {
        encode(out, gate::Method::Auth.name(), seq, &params);
    }
}

/// A frame read from the server: an answer, or a quest it pushed.
pub enum Incoming {
    /// An answer.
    Answer(Answer),
    /// A quest the server pushed (`ping`, `kickout`), which these readers ignore.
    Pushed,
}

/// Reads frames from a blocking stream.
pub struct Reader {
    buf: BytesMut,
    decoder: FrameDecoder,
    /// After a key exchange: the decrypting receiver.
    receiver: Option<fpnn::encryption::FrameReceiver>,
}

impl Default for Reader {
    fn default() -> Self {
        Reader {
            buf: BytesMut::with_capacity(64 * 1024),
            decoder: FrameDecoder::default(),
            receiver: None,
        }
    }
}

/// The sending half of an encrypted connection (`--encrypt`).
pub struct Sealer {
    encryptor: fpnn::encryption::FrameEncryptor,
    out: BytesMut,
}

impl Sealer {
    /// Encrypts the frames in `buf` (whole frames, back to back), in order, replacing them
    /// with their wire form.
    pub fn seal(&mut self, buf: &mut BytesMut) -> std::io::Result<()> {
        let bad = |e: fpnn::CodecError| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
        };
        self.out.clear();
        let mut at = 0;
        while at < buf.len() {
            let len = FrameDecoder::default()
                .needed(&buf[at..])
                .map_err(bad)?
                .filter(|len| at + len <= buf.len())
                .ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, "a partial frame to seal")
                })?;
            self.encryptor
                .encrypt_frame(&buf[at..at + len], &mut self.out)
                .map_err(bad)?;
            at += len;
        }
        std::mem::swap(buf, &mut self.out);
        Ok(())
    }
}

/// Runs the `*key` exchange on a new blocking connection when `encryption` is given: `*key`
/// first, then the reader decrypts and the returned sealer encrypts.
pub fn key_exchange(
    stream: &mut TcpStream,
    reader: &mut Reader,
    encryption: Option<&fpnn::encryption::ClientEncryption>,
) -> std::io::Result<Option<Sealer>> {
    let Some(encryption) = encryption else {
        return Ok(None);
    };
    let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    let handshake = encryption.start().map_err(|e| invalid(e.to_string()))?;
    let quest = handshake
        .quest(u32::MAX)
        .map_err(|e| invalid(e.to_string()))?;
    let bytes = Frame::from(quest)
        .encode()
        .map_err(|e| invalid(e.to_string()))?;
    stream.write_all(&bytes)?;
    let (encryptor, receiver) = handshake.session().split(fpnn::DEFAULT_MAX_FRAME);
    reader.receiver = Some(receiver);
    let answer = reader.answer(stream)?;
    fpnn::encryption::ClientHandshake::check_answer(&answer).map_err(|e| invalid(e.to_string()))?;
    Ok(Some(Sealer {
        encryptor,
        out: BytesMut::new(),
    }))
}

impl Reader {
    /// Reads once (blocking) and hands every whole frame to `f`. `Ok(false)` at end of
    /// stream.
    pub fn read(
        &mut self,
        stream: &mut TcpStream,
        mut f: impl FnMut(Incoming),
    ) -> std::io::Result<bool> {
        if self.buf.capacity() - self.buf.len() < 16 * 1024 {
            self.buf.reserve(64 * 1024);
        }
        let start = self.buf.len();
        let spare = self.buf.capacity() - start;
        self.buf.resize(start + spare, 0);
        let n = match stream.read(&mut self.buf[start..]) {
            Ok(n) => n,
            Err(e) => {
                self.buf.truncate(start);
                return Err(e);
            }
        };
        self.buf.truncate(start + n);
        if n == 0 {
            return Ok(false);
        }
        self.drain(&mut f)?;
        Ok(true)
    }

    /// Decodes the frames already buffered.
    fn drain(&mut self, f: &mut impl FnMut(Incoming)) -> std::io::Result<()> {
        loop {
            let decoded = match &mut self.receiver {
                Some(receiver) => receiver.decode(&mut self.buf),
                None => self.decoder.decode(&mut self.buf),
            };
            match decoded {
                Ok(Some(Frame::Answer(a))) => f(Incoming::Answer(a)),
                Ok(Some(Frame::Quest(_))) => f(Incoming::Pushed),
                Ok(None) => return Ok(()),
                Err(e) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("bad frame from the server: {e}"),
                    ))
                }
            }
        }
    }

    /// Reads until one answer arrives and returns it (pushed quests are ignored).
    pub fn answer(&mut self, stream: &mut TcpStream) -> std::io::Result<Answer> {
        loop {
            let mut got = None;
            self.drain(&mut |frame| {
                if let (Incoming::Answer(a), None) = (frame, &got) {
                    got = Some(a);
                }
            })?;
            if let Some(a) = got {
                return Ok(a);
            }
            if !self.read(stream, |frame| {
                if let (Incoming::Answer(a), None) = (frame, &got) {
                    got = Some(a);
                }
            })? {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            if let Some(a) = got {
                return Ok(a);
            }
        }
    }
}

/// Sends one quest and waits for its answer, on a blocking stream.
pub fn call(
    stream: &mut TcpStream,
    reader: &mut Reader,
    out: &mut BytesMut,
    sealer: Option<&mut Sealer>,
) -> std::io::Result<Answer> {
    if let Some(sealer) = sealer {
        sealer.seal(out)?;
    }
    stream.write_all(out)?;
    out.clear();
    reader.answer(stream)
}

/// The error code of an error answer (0 when it has none).
pub fn error_code(answer: &Answer) -> i64 {
    answer
        .body()
        .ok()
        .and_then(|b| b.get("code").and_then(Value::as_i64))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes() {
        let mix = Mix::parse("gettoken=80, adddevice=15,kickout=5").unwrap();
        let mut counts = [0; 3];
        for r in 0..100 {
            counts[mix.pick(r) as usize] += 1;
        }
        assert_eq!(counts, [80, 15, 5]);
        assert_eq!(mix.describe(), "gettoken=80,adddevice=15,kickout=5");
        assert_eq!(
            Mix::parse("adddevice").unwrap().methods(),
            vec![Method::AddDevice]
        );
        assert!(Mix::parse("gettoken=x").is_err());
        assert!(Mix::parse("removetoken=1").is_err());
        assert!(Mix::parse("gettoken=0").is_err());
    }

    #[test]
    fn signed_quests_decode_with_the_fields_of_the_sdk() {
        let signer = Signer::new(11000001, "s");
        let mut out = BytesMut::new();
        signer.append(&mut out, Method::AddDevice, 9, 42, 3);
        let frame = FrameDecoder::default().decode(&mut out).unwrap().unwrap();
        let Frame::Quest(q) = frame else {
            panic!("not a quest")
        };
        assert_eq!((q.method.as_str(), q.seq), ("adddevice", Some(9)));
        let p = q.params().unwrap();
        let salt = p.get("salt").and_then(Value::as_i64).unwrap();
        let ts = p.get("ts").and_then(Value::as_i64).unwrap();
        assert_eq!(
            p.get("sign").and_then(Value::as_text).unwrap(),
            rtm_protocol::sign::sign(11000001, "s", salt, "adddevice", ts)
        );
        assert_eq!(p.get("uid").and_then(Value::as_i64), Some(42));
        assert_eq!(
            p.get("devicetoken").and_then(Value::as_text).as_deref(),
            Some("bench-device-42-3")
        );
    }
}
