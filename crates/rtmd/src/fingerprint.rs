//! What the replay window remembers of a server API request: its [`Fingerprint`], chosen by
//! the project's [`ReplayMode`].
//!
//! # Why a request, not a sign
//!
//! The sign covers `pid:secret:salt:method:ts` and nothing of the other parameters, and the
//! official SDKs repeat their salts: the C++ SDK makes at most 64 distinct salts a second
//! (`unix_seconds << 14 | randId << 6 | counter & 63`, with a `randId` from an unseeded
//! `rand()`, so the same in every process), the Python SDK one per millisecond (`ms << 14 |
//! rand_id << 6`, its counter never OR-ed in). Two distinct calls of theirs in the same
//! second (or millisecond) to the same method therefore carry the same sign. Keyed on the
//! sign alone, the window refuses all but the first; keyed on the request, it answers each
//! distinct one and still refuses an exact resend.
//!
//! # The fingerprint of a request
//!
//! `(sign digest, method, parameters other than the envelope)`, hashed to 16 bytes with
//! XXH3-128 (a fixed, specified hash: every node of a cluster, whatever its build, computes
//! the same fingerprint for the same request). The envelope (`pid`, `sign`, `salt`, `ts`) is
//! left out of the parameters because the sign's digest stands for it: the sign was checked
//! against exactly those values. The parameters are taken in a canonical form, so that a
//! request re-encoded by another client library is still the same request:
//!
//! * integers by value, whatever their msgpack width or signedness;
//! * `str` and `bin` as the same bytes (the handlers read them alike);
//! * `f32` as the `f64` of the same value;
//! * map entries in any order: each entry (key and value) is hashed on its own and the
//!   entries' hashes are added (modulo 2^128), an order-free combination that needs no sorting
//!   and so no allocation; nested maps the same way, arrays in their order.
//!
//! Computing it allocates nothing; for a `gettoken` it costs some tens of nanoseconds
//! (`cargo bench -p rtmd --bench fingerprint`).
//!
//! # Layout (version 1)
//!
//! Every node of a cluster must compute the same bytes, so the layout is fixed (integers
//! little-endian, `len` as a `u64`):
//!
//! * a value: `0` nil; `1, b` bool; `2, u64` a non-negative integer; `3, i64` a negative
//!   one; `4, f64 bits` a float; `5, len, bytes` str or bin; `6, len, values…` an array;
//!   `7, len, sum` a map, where `sum` is the `u128` sum (wrapping) of its entries' hashes;
//!   `8, type, len, bytes` an ext; nesting past 256 levels is the single byte `0xff`;
//! * an entry's hash: XXH3-128 of its key's value followed by its value's value;
//! * the fingerprint: XXH3-128 of `"rtmd request v1\0"`, the 16 digest bytes, the method
//!   (`len, bytes`), the number of entries outside the envelope (`u64`) and the sum of their
//!   hashes (`u128`), as 16 little-endian bytes (parameters that are not a map, which the
//!   signature check never lets through: `u64::MAX` and the XXH3-128 of the value).
//!
//! Two distinct requests get the same 128-bit fingerprint with probability about 2^-128 per
//! pair. The in-process window ([`crate::store::ReplayWindow`]) places a request by the
//! first 8 bytes and keeps 40 bits folded from all 16: there a distinct request is refused
//! as a replay with probability at most `12 / 2^40` (about one call in 90 billion) at any
//! fill it allows; its documentation has the arithmetic.
//!
//! # What each mode protects against
//!
//! * [`ReplayMode::Request`] (the default): an exact resend of a request inside its `ts`
//!   window is refused (200006). A sign seen on the wire can still be reused with *other*
//!   parameters inside the window, because the sign does not cover them; only an encrypted
//!   connection keeps signs out of an eavesdropper's hands.
//! * [`ReplayMode::Sign`]: any reuse of a sign is refused, whatever the parameters. This
//!   closes the gap above, but it refuses the distinct calls of SDKs whose salts repeat (the
//!   official C++ and Python SDKs): for SDKs with unique salts only, like this workspace's
//!   `rtm-server-sdk`.
//! * [`ReplayMode::Off`]: nothing is remembered; a request can be replayed as often as
//!   wanted while its `ts` is in the window. For SDKs that resend identical signed quests
//!   and cannot take a 200006 (PHP's resend after a socket error).

use std::fmt;

use fpnn::Value;
use serde::Deserialize;
use xxhash_rust::xxh3::{xxh3_128, Xxh3Default};

/// How a project's server API calls are checked against replays (`replay` in a project's
/// configuration). See the [module documentation](self) for what each protects against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ReplayMode {
    /// A request — sign, method and parameters — is answered once per `ts` window; distinct
    /// requests that share a sign are all answered. The default.
    #[default]
    Request,
    /// A sign is answered once per `ts` window, whatever the parameters.
    Sign,
    /// No replay window.
    Off,
}

impl ReplayMode {
    /// The name used in the configuration: `request`, `sign` or `off`.
    pub fn name(self) -> &'static str {
        match self {
            ReplayMode::Request => "request",
            ReplayMode::Sign => "sign",
            ReplayMode::Off => "off",
        }
    }

    /// What the replay window remembers of a request whose sign checked out, with the MD5
    /// digest `sign` (the 16 bytes its hex spells): `None` in [`ReplayMode::Off`].
    pub fn fingerprint(self, sign: &[u8; 16], method: &str, params: &Value) -> Option<Fingerprint> {
        match self {
            ReplayMode::Request => Some(Fingerprint::of_request(sign, method, params)),
            ReplayMode::Sign => Some(Fingerprint::of_sign(sign)),
            ReplayMode::Off => None,
        }
    }
}

/// 16 bytes that stand for a request (or a sign) in the replay window: uniformly
/// distributed, so that any part of them is as good a key as any other.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 16]);

impl Fingerprint {
    /// The fingerprint of a request: its sign's digest, its method and its parameters other
    /// than the envelope, in the canonical form of the [module documentation](self).
    pub fn of_request(sign: &[u8; 16], method: &str, params: &Value) -> Fingerprint {
        let (sum, count) = match params {
            Value::Map(entries) => entries.iter().filter(|(key, _)| !is_envelope(key)).fold(
                (0u128, 0u64),
                |(sum, count), (key, value)| {
                    (sum.wrapping_add(entry_hash(key, value, 0)), count + 1)
                },
            ),
            // Server API parameters are always a map (the signature check reads `pid` from
            // it); anything else is taken whole.
            other => (value_hash(other), u64::MAX),
        };
        let mut h = Sink::new();
        h.update(REQUEST_DOMAIN);
        h.update(sign);
        write_bytes(&mut h, method.as_bytes());
        h.update(&count.to_le_bytes());
        h.update(&sum.to_le_bytes());
        Fingerprint(h.digest128().to_le_bytes())
    }

    /// The fingerprint of a sign alone ([`ReplayMode::Sign`]): its digest, already uniformly
    /// distributed.
    pub fn of_sign(sign: &[u8; 16]) -> Fingerprint {
        Fingerprint(*sign)
    }

    /// A fingerprint from its bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Fingerprint {
        Fingerprint(bytes)
    }

    /// Its 16 bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Its 16 bytes as 32 upper-case hex digits (the Redis store's keys).
    pub fn to_hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
        let mut hex = String::with_capacity(32);
        for byte in self.0 {
            hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
            hex.push(char::from(DIGITS[usize::from(byte & 15)]));
        }
        hex
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.to_hex())
    }
}

/// Starts every request's hashed text, so that a request's fingerprint is never a sign's
/// digest by construction (and a later layout can change the tag).
const REQUEST_DOMAIN: &[u8] = b"rtmd request v1\0";

/// Nested values deeper than this are hashed as a marker only. The msgpack reader refuses
/// nesting deeper than [`fpnn::msgpack::MAX_DEPTH`], so requests from the wire never get
/// there; this only bounds the recursion for values built otherwise.
const MAX_DEPTH: usize = 256;

/// The keys of the envelope, which the sign's digest stands for.
fn is_envelope(key: &Value) -> bool {
    matches!(key.as_bytes(), Some(b"pid" | b"sign" | b"salt" | b"ts"))
}

/// What is hashed, gathered on the stack while it is short (then hashed in one call, the
/// fast path of XXH3 for inputs up to 240 bytes), streamed into XXH3's hasher beyond. Both
/// give the same digest for the same bytes.
struct Sink {
    inline: [u8; INLINE],
    len: usize,
    stream: Option<Xxh3Default>,
}

/// Bytes kept on the stack before streaming: a `gettoken`'s entries and its final text fit.
const INLINE: usize = 128;

impl Sink {
    fn new() -> Sink {
        Sink {
            inline: [0; INLINE],
            len: 0,
            stream: None,
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        if let Some(stream) = &mut self.stream {
            stream.update(bytes);
        } else if let Some(room) = self.inline.get_mut(self.len..self.len + bytes.len()) {
            room.copy_from_slice(bytes);
            self.len += bytes.len();
        } else {
            let mut stream = Xxh3Default::new();
            stream.update(&self.inline[..self.len]);
            stream.update(bytes);
            self.stream = Some(stream);
        }
    }

    fn digest128(&self) -> u128 {
        match &self.stream {
            Some(stream) => stream.digest128(),
            None => xxh3_128(&self.inline[..self.len]),
        }
    }
}

/// The hash of one map entry, key and value.
fn entry_hash(key: &Value, value: &Value, depth: usize) -> u128 {
    let mut h = Sink::new();
    write_value(&mut h, key, depth + 1);
    write_value(&mut h, value, depth + 1);
    h.digest128()
}

/// The hash of one value alone.
fn value_hash(value: &Value) -> u128 {
    let mut h = Sink::new();
    write_value(&mut h, value, 0);
    h.digest128()
}

/// A length-prefixed byte string.
fn write_bytes(h: &mut Sink, bytes: &[u8]) {
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

/// Feeds the canonical form of `value`: a tag byte, then what the tag says.
fn write_value(h: &mut Sink, value: &Value, depth: usize) {
    if depth > MAX_DEPTH {
        h.update(&[0xff]);
        return;
    }
    match value {
        Value::Nil => h.update(&[0]),
        Value::Bool(b) => h.update(&[1, u8::from(*b)]),
        // By value: a non-negative integer is one form whatever its width or variant.
        Value::Int(_) | Value::UInt(_) => match value.as_u64() {
            Some(u) => {
                let mut bytes = [2u8; 9];
                bytes[1..].copy_from_slice(&u.to_le_bytes());
                h.update(&bytes);
            }
            None => {
                let i = value.as_i64().unwrap_or(i64::MIN);
                let mut bytes = [3u8; 9];
                bytes[1..].copy_from_slice(&i.to_le_bytes());
                h.update(&bytes);
            }
        },
        Value::F32(_) | Value::F64(_) => {
            let x = value.as_f64().unwrap_or(f64::NAN);
            let mut bytes = [4u8; 9];
            bytes[1..].copy_from_slice(&x.to_bits().to_le_bytes());
            h.update(&bytes);
        }
        Value::Str(s) => {
            h.update(&[5]);
            write_bytes(h, s.as_bytes());
        }
        Value::Bin(b) => {
            h.update(&[5]);
            write_bytes(h, b);
        }
        Value::Array(items) => {
            h.update(&[6]);
            h.update(&(items.len() as u64).to_le_bytes());
            for item in items {
                write_value(h, item, depth + 1);
            }
        }
        Value::Map(entries) => {
            let sum = entries.iter().fold(0u128, |sum, (k, v)| {
                sum.wrapping_add(entry_hash(k, v, depth))
            });
            h.update(&[7]);
            h.update(&(entries.len() as u64).to_le_bytes());
            h.update(&sum.to_le_bytes());
        }
        Value::Ext(tag, data) => {
            h.update(&[8, *tag as u8]);
            write_bytes(h, data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SIGN: [u8; 16] = *b"0123456789abcdef";

    fn gettoken(uid: impl Into<Value>) -> Value {
        Value::map()
            .with("pid", 11_000_001)
            .with("sign", "A1B2")
            .with("salt", 5)
            .with("ts", 1_700_000_000)
            .with("uid", uid)
    }

    fn fp(params: &Value) -> Fingerprint {
        Fingerprint::of_request(&SIGN, "gettoken", params)
    }

    #[test]
    fn distinct_requests_sharing_a_sign_differ() {
        assert_ne!(fp(&gettoken(1)), fp(&gettoken(2)));
        assert_ne!(
            fp(&gettoken(1)),
            Fingerprint::of_request(&SIGN, "kickout", &gettoken(1))
        );
        let mut other_sign = SIGN;
        other_sign[15] ^= 1;
        assert_ne!(
            fp(&gettoken(1)),
            Fingerprint::of_request(&other_sign, "gettoken", &gettoken(1))
        );
        // An extra parameter makes another request.
        assert_ne!(
            fp(&gettoken(1)),
            fp(&gettoken(1).with("version", "PYTHON-2.2.6"))
        );
        // So does a value of another type.
        assert_ne!(fp(&gettoken(1)), fp(&gettoken("1")));
        assert_ne!(fp(&gettoken(1)), fp(&gettoken(true)));
        assert_ne!(fp(&gettoken(-1)), fp(&gettoken(Value::UInt(u64::MAX))));
    }

    #[test]
    fn the_envelope_is_the_signs_to_stand_for() {
        // The digest stands for pid, salt and ts (and the sign's spelling, any case).
        let q = gettoken(1);
        let respelled = Value::map()
            .with("pid", 11_000_001)
            .with("sign", "a1b2")
            .with("salt", 5)
            .with("ts", 1_700_000_000)
            .with("uid", 1);
        assert_eq!(fp(&q), fp(&respelled));
        let without = Value::map().with("uid", 1);
        assert_eq!(fp(&q), fp(&without));
    }

    #[test]
    fn re_encodings_of_a_request_are_the_same_request() {
        let cpp = gettoken(42).with("ce", "");
        // Keys in another order (Go writes maps in random order), integers in another
        // width, text as bin.
        let reordered = Value::map()
            .with("ce", Value::Bin(Vec::new()))
            .with("uid", Value::Int(42))
            .with("ts", 1_700_000_000)
            .with("salt", 5)
            .with("sign", "A1B2")
            .with("pid", 11_000_001);
        assert_eq!(fp(&cpp), fp(&reordered));
        let nested = |inner: Value| gettoken(1).with("attrs", inner);
        assert_eq!(
            fp(&nested(Value::map().with("a", 1).with("b", 2.5f32))),
            fp(&nested(Value::map().with("b", 2.5f64).with("a", 1u8)))
        );
        // Arrays keep their order.
        assert_ne!(
            fp(&nested(Value::Array(vec![1.into(), 2.into()]))),
            fp(&nested(Value::Array(vec![2.into(), 1.into()])))
        );
    }

    #[test]
    fn modes() {
        let q = gettoken(1);
        assert_eq!(
            ReplayMode::Request.fingerprint(&SIGN, "gettoken", &q),
            Some(fp(&q))
        );
        // In sign mode the parameters do not count.
        assert_eq!(
            ReplayMode::Sign.fingerprint(&SIGN, "gettoken", &q),
            ReplayMode::Sign.fingerprint(&SIGN, "kickout", &gettoken(2))
        );
        assert_eq!(
            ReplayMode::Sign.fingerprint(&SIGN, "gettoken", &q),
            Some(Fingerprint::from_bytes(SIGN))
        );
        assert_eq!(ReplayMode::Off.fingerprint(&SIGN, "gettoken", &q), None);
        assert_eq!(ReplayMode::default(), ReplayMode::Request);
        assert_eq!(
            [ReplayMode::Request, ReplayMode::Sign, ReplayMode::Off].map(ReplayMode::name),
            ["request", "sign", "off"]
        );
    }

    #[test]
    fn the_fingerprint_is_stable() {
        // Nodes of one cluster, whatever their build, must agree: this value may only change
        // together with REQUEST_DOMAIN (and the cluster documentation).
        let q = gettoken(42).with("version", "PYTHON-2.2.6");
        assert_eq!(fp(&q).to_hex(), STABLE_FINGERPRINT);
        assert_eq!(
            format!("{:?}", fp(&q)),
            format!("Fingerprint({STABLE_FINGERPRINT})")
        );
    }

    /// The fingerprint of `the_fingerprint_is_stable`'s request, computed apart from this
    /// code: the documented layout fed to Python's `xxhash.xxh3_128_intdigest`.
    const STABLE_FINGERPRINT: &str = "7E08A8FADA38F5B1B568472F1839C04E";

    #[test]
    fn the_stack_and_the_stream_give_the_same_digest() {
        let text: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        for len in [0, 1, 127, 128, 129, 240, 241, 1000] {
            for split in [0, 1, len / 2, len] {
                let mut sink = Sink::new();
                sink.update(&text[..split.min(len)]);
                sink.update(&text[split.min(len)..len]);
                assert_eq!(sink.digest128(), xxh3_128(&text[..len]), "{len} {split}");
            }
        }
    }

    #[test]
    fn deep_values_do_not_overflow_the_stack() {
        let mut deep = Value::Nil;
        for _ in 0..(MAX_DEPTH * 4) {
            deep = Value::Array(vec![deep]);
        }
        let _ = fp(&gettoken(1).with("deep", deep));
    }

    /// Any msgpack value, nested a few levels.
    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Nil),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            (i64::MAX as u64..=u64::MAX).prop_map(Value::UInt),
            any::<f64>().prop_map(Value::F64),
            any::<f32>().prop_map(Value::F32),
            ".{0,8}".prop_map(Value::Str),
            proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::Bin),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec(("[a-z]{1,3}".prop_map(Value::Str), inner), 0..4)
                    .prop_map(Value::Map),
            ]
        })
    }

    /// The same value as another client library might encode it: map entries rotated,
    /// non-negative integers in the other variant where it holds them, text as bin.
    fn re_encoded(value: &Value) -> Value {
        match value {
            Value::Int(i) if *i >= 0 => Value::UInt(*i as u64),
            Value::UInt(u) => match i64::try_from(*u) {
                Ok(i) => Value::Int(i),
                Err(_) => Value::UInt(*u),
            },
            Value::Str(s) => Value::Bin(s.as_bytes().to_vec()),
            Value::Array(items) => Value::Array(items.iter().map(re_encoded).collect()),
            Value::Map(entries) => {
                let mut entries: Vec<_> = entries
                    .iter()
                    .map(|(k, v)| (re_encoded(k), re_encoded(v)))
                    .collect();
                if !entries.is_empty() {
                    entries.rotate_left(1);
                }
                Value::Map(entries)
            }
            Value::F32(x) => Value::F64(f64::from(*x)),
            other => other.clone(),
        }
    }

    proptest! {
        #[test]
        fn re_encoding_keeps_the_fingerprint(params in proptest::collection::vec(
            ("[a-z]{1,4}".prop_map(Value::Str), value()), 0..6)
        ) {
            let request = Value::Map(params);
            prop_assert_eq!(fp(&request), fp(&re_encoded(&request)));
        }

        #[test]
        fn another_value_of_a_parameter_is_another_request(a in value(), b in value()) {
            // Values equal in the canonical form (same by value) may share a fingerprint.
            prop_assume!(!canonically_equal(&a, &b));
            prop_assert_ne!(fp(&gettoken(1).with("x", a)), fp(&gettoken(1).with("x", b)));
        }
    }

    /// Equal in the canonical form, decided without hashing: integers by value, floats by
    /// their `f64` bits, str and bin alike, arrays in order, maps as multisets of entries.
    fn canonically_equal(a: &Value, b: &Value) -> bool {
        let int = |v: &Value| match *v {
            Value::Int(i) => Some(i128::from(i)),
            Value::UInt(u) => Some(i128::from(u)),
            _ => None,
        };
        let float = |v: &Value| match *v {
            Value::F32(x) => Some(f64::from(x).to_bits()),
            Value::F64(x) => Some(x.to_bits()),
            _ => None,
        };
        match (a, b) {
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(x, y)| canonically_equal(x, y))
            }
            (Value::Map(x), Value::Map(y)) => {
                // Each entry of x takes a distinct, equal entry of y.
                let mut taken = vec![false; y.len()];
                x.len() == y.len()
                    && x.iter().all(|(kx, vx)| {
                        let found = y.iter().enumerate().position(|(i, (ky, vy))| {
                            !taken[i] && canonically_equal(kx, ky) && canonically_equal(vx, vy)
                        });
                        found.map(|i| taken[i] = true).is_some()
                    })
            }
            _ => match (int(a), int(b), float(a), float(b)) {
                (Some(x), Some(y), _, _) => x == y,
                (_, _, Some(x), Some(y)) => x == y,
                _ => match (a.as_bytes(), b.as_bytes()) {
                    (Some(x), Some(y)) => x == y,
                    _ => a == b,
                },
            },
        }
    }
}
