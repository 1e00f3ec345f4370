//! FPNN encryption against the official vectors (`tests/data/fpnn-vectors.txt`, produced by
//! the official code and cross-checked against the C++ framework's C sources), both ways, and
//! the behaviour around them: pipelining after `*key`, wrong keys, the C++ reader's quirks,
//! limits, key files.
#![cfg(feature = "encryption")]

use bytes::BytesMut;
use fpnn::encryption::{
    self, Bits, ClientEncryption, ClientHandshake, Curve, FrameEncryptor, FrameReceiver,
    HandshakeError, KeyError, KeyFiles, KeyMaterial, KeyRequest, Mode, PrivateKey, PublicKey,
    Session,
};
use fpnn::{Answer, CodecError, Format, Frame, FrameDecoder, Quest, Value, DEFAULT_MAX_FRAME};

mod common;

use common::{hex, vector};

/// One `## ECDH <curve> bits=<n> streamMode=<b>` section of the vectors file.
#[derive(Debug)]
struct EcdhVector {
    curve: Curve,
    bits: Bits,
    mode: Mode,
    client_private: Vec<u8>,
    server_private: Vec<u8>,
    client_public: Vec<u8>,
    server_public: Vec<u8>,
    server_der: Vec<u8>,
    server_pem: String,
    secret: Vec<u8>,
    key: Vec<u8>,
    iv: Vec<u8>,
}

fn ecdh_vectors() -> Vec<EcdhVector> {
    let text = include_str!("data/fpnn-vectors.txt");
    let mut out = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(title) = line.strip_prefix("## ECDH ") else {
            continue;
        };
        let mut words = title.split_whitespace();
        let curve: Curve = words.next().unwrap().parse().unwrap();
        let bits = match words.next().unwrap() {
            "bits=128" => Bits::Aes128,
            "bits=256" => Bits::Aes256,
            other => panic!("{other}"),
        };
        let mode = match words.next().unwrap() {
            "streamMode=False" => Mode::Package,
            "streamMode=True" => Mode::Stream,
            other => panic!("{other}"),
        };
        let mut fields = std::collections::HashMap::new();
        let mut pem = String::new();
        // The section's fields run to the first blank line.
        while let Some(line) = lines.next_if(|l| !l.trim().is_empty()) {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let name = name.trim();
            if name == "server public PEM" {
                for pem_line in lines.by_ref() {
                    pem.push_str(pem_line);
                    pem.push('\n');
                    if pem_line.starts_with("-----END") {
                        break;
                    }
                }
            } else {
                fields.insert(name.to_owned(), hex(value));
            }
        }
        let field = |name: &str| {
            fields
                .get(name)
                .cloned()
                .unwrap_or_else(|| panic!("{name}"))
        };
        out.push(EcdhVector {
            curve,
            bits,
            mode,
            client_private: field("client private key"),
            server_private: field("server private key"),
            client_public: field("client public (X||Y)"),
            server_public: field("server public (X||Y)"),
            server_der: field("server public DER"),
            server_pem: pem,
            secret: field("shared secret (x)"),
            key: field("AES key"),
            iv: field("IV = md5(secret)"),
        });
    }
    out
}

fn find(curve: Curve, bits: Bits, mode: Mode) -> EcdhVector {
    ecdh_vectors()
        .into_iter()
        .find(|v| v.curve == curve && v.bits == bits && v.mode == mode)
        .unwrap_or_else(|| panic!("no vector for {curve} {bits:?} {mode:?}"))
}

fn server_key(v: &EcdhVector) -> PrivateKey {
    PrivateKey::from_bytes(v.curve, &v.server_private).unwrap()
}

fn client(v: &EcdhVector) -> ClientHandshake {
    let server = PublicKey::from_raw(v.curve, &v.server_public).unwrap();
    let ephemeral = PrivateKey::from_bytes(v.curve, &v.client_private).unwrap();
    ClientEncryption::new(server)
        .mode(v.mode)
        .bits(v.bits)
        .start_with(&ephemeral)
        .unwrap()
}

fn decode_plain(bytes: &[u8]) -> Frame {
    Frame::decode(bytes, DEFAULT_MAX_FRAME).unwrap()
}

fn encode(frame: impl Into<Frame>) -> Vec<u8> {
    frame.into().encode().unwrap().to_vec()
}

/// A vector frame with its seq (bytes 12..16) replaced.
fn with_seq(frame: &[u8], seq: u32) -> Vec<u8> {
    let mut out = frame.to_vec();
    out[12..16].copy_from_slice(&seq.to_le_bytes());
    out
}

fn encrypt(encryptor: &mut FrameEncryptor, frame: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    encryptor.encrypt_frame(frame, &mut out).unwrap();
    out.to_vec()
}

/// Every frame `receiver` takes from `wire`, fed whole; the buffer must end empty.
fn receive_all(receiver: &mut FrameReceiver, wire: &[u8]) -> Vec<Frame> {
    let mut buf = BytesMut::from(wire);
    let mut frames = Vec::new();
    while let Some(frame) = receiver.decode(&mut buf).unwrap() {
        frames.push(frame);
    }
    assert!(buf.is_empty(), "{} bytes left", buf.len());
    frames
}

/// The same, fed `chunk` bytes at a time.
fn receive_chunked(receiver: &mut FrameReceiver, wire: &[u8], chunk: usize) -> Vec<Frame> {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in wire.chunks(chunk) {
        buf.extend_from_slice(piece);
        while let Some(frame) = receiver.decode(&mut buf).unwrap() {
            frames.push(frame);
        }
    }
    assert!(buf.is_empty(), "{} bytes left", buf.len());
    frames
}

// ---------------------------------------------------------------------------------------
// Keys and derivation, every curve in the vectors file.

#[test]
fn the_vectors_file_has_every_curve() {
    let curves: Vec<Curve> = ecdh_vectors().iter().map(|v| v.curve).collect();
    for curve in Curve::ALL {
        assert!(curves.contains(&curve), "{curve}");
    }
}

#[test]
fn public_keys_der_and_pem_match_every_vector() {
    for v in ecdh_vectors() {
        let client = PrivateKey::from_bytes(v.curve, &v.client_private).unwrap();
        assert_eq!(
            client.public_key().as_bytes(),
            v.client_public,
            "{}",
            v.curve
        );
        let server = server_key(&v);
        let public = server.public_key();
        assert_eq!(public.as_bytes(), v.server_public, "{}", v.curve);
        assert_eq!(public.curve(), v.curve);

        // Written byte for byte ...
        assert_eq!(public.to_der(), v.server_der, "{} DER", v.curve);
        assert_eq!(public.to_pem(), v.server_pem, "{} PEM", v.curve);
        // ... and read back, in every form.
        assert_eq!(&PublicKey::from_der(&v.server_der).unwrap(), public);
        assert_eq!(
            &PublicKey::from_pem(v.server_pem.as_bytes()).unwrap(),
            public
        );
        assert_eq!(
            &PublicKey::from_raw(v.curve, &v.server_public).unwrap(),
            public
        );
        for form in [&v.server_der[..], v.server_pem.as_bytes()] {
            assert_eq!(&PublicKey::decode(form, None).unwrap(), public);
        }
        assert_eq!(
            &PublicKey::decode(&v.server_public, Some(v.curve)).unwrap(),
            public
        );
    }
}

#[test]
fn derivation_matches_every_vector() {
    for v in ecdh_vectors() {
        // §5.3 from the secret alone (the derivation table of §9.3) ...
        let keys = KeyMaterial::derive(&v.secret, v.bits).unwrap();
        assert_eq!(keys.key(), v.key, "{} key", v.curve);
        assert_eq!(keys.iv()[..], v.iv[..], "{} IV", v.curve);
        assert_eq!(keys.bits(), v.bits);

        // ... from the client's side (its ephemeral key and the server's public key) ...
        let client = client(&v);
        assert_eq!(client.session().keys().key(), v.key, "{} client", v.curve);
        assert_eq!(client.session().keys().iv()[..], v.iv[..]);
        assert_eq!(client.request().public_key, v.client_public);

        // ... and from the server's (its static key and the client's public key).
        let request = KeyRequest {
            public_key: v.client_public.clone(),
            mode: v.mode,
            bits: v.bits,
        };
        let session = Session::accept_request(&server_key(&v), &request).unwrap();
        assert_eq!(session.keys().key(), v.key, "{} server", v.curve);
        assert_eq!(session.keys().iv()[..], v.iv[..]);
        assert_eq!(session.mode(), v.mode);
    }
}

#[test]
fn the_other_key_size_derives_as_section_5_3_says() {
    // The file gives one key size per curve; the other follows §5.3 from the same secret.
    for v in ecdh_vectors() {
        let k128 = KeyMaterial::derive(&v.secret, Bits::Aes128).unwrap();
        assert_eq!(k128.key(), &v.secret[..16]);
        let k256 = KeyMaterial::derive(&v.secret, Bits::Aes256).unwrap();
        if v.secret.len() == 32 {
            assert_eq!(k256.key(), v.secret);
        } else {
            assert_ne!(k256.key(), &v.secret[..]);
            assert_eq!(k256.key().len(), 32);
        }
        assert_eq!(k128.iv(), k256.iv());
    }
}

// ---------------------------------------------------------------------------------------
// The exchange and the framing, byte for byte: K1–K3 (package, 128) and S1–S3b (stream, 256).

#[test]
fn k1_the_key_quest_is_the_official_bytes() {
    let v = find(Curve::Secp256r1, Bits::Aes128, Mode::Package);
    let quest = client(&v).quest(1).unwrap();
    assert_eq!(encode(quest.clone()), vector("K1 "));
    // And the server reads it back.
    let request = KeyRequest::from_quest(&quest).unwrap();
    assert_eq!(request.public_key, v.client_public);
    assert_eq!((request.mode, request.bits), (Mode::Package, Bits::Aes128));
}

#[test]
fn k1b_the_cpp_clients_str8_public_key_reads_the_same() {
    let k1 = vector("K1 ");
    let k1b = vector("K1b ");
    // The C++ client writes the 64 raw bytes as str8 (d9 40) instead of bin8 (c4 40).
    let at = k1.windows(2).position(|w| w == [0xc4, 0x40]).unwrap();
    assert_eq!(k1b[at..at + 2], [0xd9, 0x40]);
    assert_eq!(k1[..at], k1b[..at]);
    assert_eq!(k1[at + 2..], k1b[at + 2..]);

    let v = find(Curve::Secp256r1, Bits::Aes128, Mode::Package);
    let Frame::Quest(from_bin) = decode_plain(&k1) else {
        panic!()
    };
    let Frame::Quest(from_str) = decode_plain(&k1b) else {
        panic!()
    };
    let a = encryption::accept(&server_key(&v), &from_bin).unwrap();
    let b = encryption::accept(&server_key(&v), &from_str).unwrap();
    assert_eq!(a.request, b.request);
    assert_eq!(b.request.public_key, v.client_public);
    assert_eq!(a.session.keys().key(), b.session.keys().key());
    assert_eq!(b.session.keys().key(), v.key);
}

#[test]
fn k2_the_servers_answer_is_its_first_encrypted_bytes() {
    let v = find(Curve::Secp256r1, Bits::Aes128, Mode::Package);
    let Frame::Quest(quest) = decode_plain(&vector("K1 ")) else {
        panic!()
    };
    let accepted = encryption::accept(&server_key(&v), &quest).unwrap();
    let plain = encode(accepted.answer.clone());
    assert_eq!(plain, vector("K2 *key answer plaintext"));
    let wire = encrypt(&mut accepted.session.encryptor(), &plain);
    assert_eq!(wire, vector("K2 *key answer on the wire"));

    // The client decrypts it and finds the empty answer to seq 1.
    let handshake = client(&v);
    let frames = receive_all(&mut handshake.session().receiver(DEFAULT_MAX_FRAME), &wire);
    let [Frame::Answer(answer)] = &frames[..] else {
        panic!("{frames:?}")
    };
    assert_eq!((answer.seq, answer.status), (1, 0));
    assert_eq!(answer.body().unwrap(), Value::map());
    ClientHandshake::check_answer(answer).unwrap();
}

#[test]
fn k3_the_next_client_frame_restarts_the_cipher_at_the_iv() {
    let v = find(Curve::Secp256r1, Bits::Aes128, Mode::Package);
    let gettoken = with_seq(&vector("V1 twoway quest gettoken seq=7 (version byte 1"), 2);
    let handshake = client(&v);
    let mut out = handshake.session().encryptor();
    let k3 = vector("K3 ");
    assert_eq!(encrypt(&mut out, &gettoken), k3);
    // Package mode: the same frame again gives the same bytes.
    assert_eq!(encrypt(&mut out, &gettoken), k3);

    let accepted = encryption::accept(&server_key(&v), &handshake.quest(1).unwrap()).unwrap();
    let frames = receive_all(&mut accepted.session.receiver(DEFAULT_MAX_FRAME), &k3);
    assert_eq!(frames, vec![decode_plain(&gettoken)]);
}

#[test]
fn the_secp256k1_package_answer_matches() {
    // fpnn-protocol.md §9.3: the secp256k1 `*key` answer in package mode, 128 bits.
    let v = find(Curve::Secp256k1, Bits::Aes128, Mode::Package);
    let handshake = client(&v);
    let accepted = encryption::accept(&server_key(&v), &handshake.quest(1).unwrap()).unwrap();
    let wire = encrypt(
        &mut accepted.session.encryptor(),
        &encode(accepted.answer.clone()),
    );
    assert_eq!(wire, hex("11000000 b28c24810b0f236720c2bedd8bf1fd8ba3"));
    let frames = receive_all(&mut handshake.session().receiver(DEFAULT_MAX_FRAME), &wire);
    assert_eq!(frames, vec![Frame::Answer(accepted.answer)]);
}

/// The stream-mode vectors: S1 (the plaintext `*key`), then the server's S2, S2b and the
/// client's S3, S3b.
struct StreamVectors {
    v: EcdhVector,
    key_quest: Vec<u8>,
    key_answer: Vec<u8>,
    token_answer: Vec<u8>,
    gettoken: Vec<u8>,
    ping: Vec<u8>,
}

fn stream_vectors() -> StreamVectors {
    StreamVectors {
        v: find(Curve::Secp256r1, Bits::Aes256, Mode::Stream),
        key_quest: vector("S1 "),
        key_answer: vector("K2 *key answer plaintext"),
        token_answer: with_seq(&vector("V2 answer ok seq=7 {token:xyz} (version 1)"), 2),
        gettoken: with_seq(&vector("V1 twoway quest gettoken seq=7 (version byte 1"), 2),
        ping: with_seq(&vector("V5 twoway *ping"), 3),
    }
}

#[test]
fn s1_the_stream_mode_key_quest_is_the_official_bytes() {
    let s = stream_vectors();
    let quest = client(&s.v).quest(1).unwrap();
    assert_eq!(encode(quest), s.key_quest);
}

#[test]
fn s2_the_server_stream_continues_across_frames() {
    let s = stream_vectors();
    let Frame::Quest(quest) = decode_plain(&s.key_quest) else {
        panic!()
    };
    let accepted = encryption::accept(&server_key(&s.v), &quest).unwrap();
    assert_eq!(
        (accepted.request.mode, accepted.request.bits),
        (Mode::Stream, Bits::Aes256)
    );
    assert_eq!(encode(accepted.answer.clone()), s.key_answer);
    let mut out = accepted.session.encryptor();
    let s2 = encrypt(&mut out, &s.key_answer);
    assert_eq!(s2, vector("S2 "));
    let s2b = encrypt(&mut out, &s.token_answer);
    assert_eq!(s2b, vector("S2b "));

    // The client reads both, whole or a byte at a time.
    let wire = [s2, s2b].concat();
    let expected = vec![decode_plain(&s.key_answer), decode_plain(&s.token_answer)];
    for chunk in [wire.len(), 1, 5, 13] {
        let mut receiver = client(&s.v).session().receiver(DEFAULT_MAX_FRAME);
        assert_eq!(receive_chunked(&mut receiver, &wire, chunk), expected);
    }
}

#[test]
fn s3_the_client_stream_starts_after_the_plaintext_key_quest() {
    let s = stream_vectors();
    let handshake = client(&s.v);
    let mut out = handshake.session().encryptor();
    let s3 = encrypt(&mut out, &s.gettoken);
    assert_eq!(s3, vector("S3 "));
    let s3b = encrypt(&mut out, &s.ping);
    assert_eq!(s3b, vector("S3b "));

    // In place, as a writer batching frames into its output buffer would do it.
    let mut out = handshake.session().encryptor();
    let mut buf = BytesMut::from(&b"already sent"[..]);
    for frame in [&s.gettoken, &s.ping] {
        let start = out.start_frame(&mut buf);
        buf.extend_from_slice(frame);
        out.seal_frame(&mut buf, start).unwrap();
    }
    assert_eq!(buf[12..], [vector("S3 "), vector("S3b ")].concat());
}

#[test]
fn seal_frame_in_place_gives_the_package_bytes() {
    let v = find(Curve::Secp256r1, Bits::Aes128, Mode::Package);
    let mut out = client(&v).session().encryptor();
    assert_eq!(out.prefix_len(), 4);
    let gettoken = with_seq(&vector("V1 twoway quest gettoken seq=7 (version byte 1"), 2);
    let mut buf = BytesMut::new();
    let start = out.start_frame(&mut buf);
    buf.extend_from_slice(&gettoken);
    out.seal_frame(&mut buf, start).unwrap();
    assert_eq!(buf.to_vec(), vector("K3 "));
    // A buffer too short for the prefix is refused, untouched.
    let mut short = BytesMut::from(&[1u8, 2][..]);
    assert!(out.seal_frame(&mut short, 0).is_err());
    assert_eq!(short[..], [1, 2]);
}

// ---------------------------------------------------------------------------------------
// Pipelining: the server reads the plaintext `*key` with the plain decoder, then switches
// the same buffer to the receiver.

/// What a server does with a buffer that starts with `*key`: one plain frame, the switch, then
/// every frame through the receiver. The wire arrives `chunk` bytes at a time.
fn server_reads(key: &PrivateKey, wire: &[u8], chunk: usize) -> (encryption::Accepted, Vec<Frame>) {
    let mut buf = BytesMut::new();
    let mut plain = FrameDecoder::default();
    let mut accepted: Option<encryption::Accepted> = None;
    let mut receiver: Option<FrameReceiver> = None;
    let mut frames = Vec::new();
    for piece in wire.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            if let Some(receiver) = receiver.as_mut() {
                match receiver.decode(&mut buf).unwrap() {
                    Some(frame) => frames.push(frame),
                    None => break,
                }
            } else {
                // Exactly one frame is read in plaintext.
                let Some(Frame::Quest(quest)) = plain.decode(&mut buf).unwrap() else {
                    break;
                };
                assert_eq!(quest.method, encryption::KEY_METHOD);
                let a = encryption::accept(key, &quest).unwrap();
                receiver = Some(a.session.receiver(DEFAULT_MAX_FRAME));
                accepted = Some(a);
            }
        }
    }
    assert!(buf.is_empty(), "{} bytes left", buf.len());
    (accepted.unwrap(), frames)
}

#[test]
fn a_client_that_pipelines_after_key_is_read_correctly() {
    // Package mode: K1 then K3 in one write, as Go and Node.js clients do.
    let v = find(Curve::Secp256r1, Bits::Aes128, Mode::Package);
    let gettoken = with_seq(&vector("V1 twoway quest gettoken seq=7 (version byte 1"), 2);
    let wire = [vector("K1 "), vector("K3 "), vector("K3 ")].concat();
    for chunk in [wire.len(), 1, 7, 116, 117] {
        let (accepted, frames) = server_reads(&server_key(&v), &wire, chunk);
        assert_eq!(accepted.session.mode(), Mode::Package);
        assert_eq!(
            frames,
            vec![decode_plain(&gettoken), decode_plain(&gettoken)]
        );
    }

    // Stream mode: S1, S3, S3b.
    let s = stream_vectors();
    let wire = [s.key_quest.clone(), vector("S3 "), vector("S3b ")].concat();
    for chunk in [wire.len(), 1, 3, 117, 118] {
        let (_, frames) = server_reads(&server_key(&s.v), &wire, chunk);
        assert_eq!(
            frames,
            vec![decode_plain(&s.gettoken), decode_plain(&s.ping)]
        );
    }
}

// ---------------------------------------------------------------------------------------
// Every curve × mode × key size, our client against our server.

#[test]
fn every_curve_mode_and_key_size_round_trips() {
    let frames: Vec<Frame> = vec![
        Quest::twoway("gettoken", 2, &Value::map().with("uid", 42))
            .unwrap()
            .into(),
        Quest::oneway("bye", &Value::map()).unwrap().into(),
        Quest::new(
            "json",
            Some(3),
            Format::Json,
            &Value::map().with("text", "é".repeat(40)),
        )
        .unwrap()
        .into(),
        Quest::twoway("big", 4, &Value::map().with("blob", vec![7u8; 70_000]))
            .unwrap()
            .into(),
        Answer::ok(9, Format::MsgPack, &Value::map().with("token", "xyz"))
            .unwrap()
            .into(),
    ];
    for curve in Curve::ALL {
        let server = PrivateKey::generate(curve).unwrap();
        for mode in [Mode::Package, Mode::Stream] {
            for bits in [Bits::Aes128, Bits::Aes256] {
                let handshake = ClientEncryption::new(server.public_key().clone())
                    .mode(mode)
                    .bits(bits)
                    .start()
                    .unwrap();
                assert_eq!(handshake.request().public_key.len(), curve.public_key_len());
                let mut wire = encode(handshake.quest(1).unwrap());
                let mut client_out = handshake.session().encryptor();
                for frame in &frames {
                    wire.extend(encrypt(&mut client_out, &encode(frame.clone())));
                }
                let (accepted, got) = server_reads(&server, &wire, 1000);
                assert_eq!(got, frames, "{curve} {mode:?} {bits:?}");
                assert_eq!(
                    accepted.session.keys().key(),
                    handshake.session().keys().key()
                );

                // And back: the answer first, then the frames.
                let mut server_out = accepted.session.encryptor();
                let mut back = encrypt(&mut server_out, &encode(accepted.answer.clone()));
                for frame in &frames {
                    back.extend(encrypt(&mut server_out, &encode(frame.clone())));
                }
                let mut client_in = handshake.session().receiver(DEFAULT_MAX_FRAME);
                let got = receive_chunked(&mut client_in, &back, 777);
                assert_eq!(got[0], Frame::Answer(accepted.answer.clone()));
                assert_eq!(got[1..], frames[..], "{curve} {mode:?} {bits:?}");
            }
        }
    }
}

#[test]
fn an_ephemeral_key_on_another_curve_is_refused() {
    let server = PrivateKey::generate(Curve::Secp256r1).unwrap();
    let ephemeral = PrivateKey::generate(Curve::Secp256k1).unwrap();
    assert!(matches!(
        ClientEncryption::new(server.public_key().clone()).start_with(&ephemeral),
        Err(HandshakeError::Key(KeyError::CurveMismatch {
            expected: Curve::Secp256r1,
            found: Curve::Secp256k1
        }))
    ));
}

#[test]
fn each_connection_gets_a_fresh_ephemeral_key() {
    let server = PrivateKey::generate(Curve::Secp256r1).unwrap();
    let config = ClientEncryption::new(server.public_key().clone());
    let a = config.start().unwrap();
    let b = config.start().unwrap();
    assert_ne!(a.request().public_key, b.request().public_key);
    assert_ne!(a.session().keys().key(), b.session().keys().key());
}

// ---------------------------------------------------------------------------------------
// Wrong keys and hostile input: clean errors, no panic, no allocation on announcements.

#[test]
fn a_wrong_server_key_gives_garbage_that_is_refused() {
    for mode in [Mode::Package, Mode::Stream] {
        let real = PrivateKey::generate(Curve::Secp256r1).unwrap();
        let other = PrivateKey::generate(Curve::Secp256r1).unwrap();
        // The client believes `other` is the server.
        let handshake = ClientEncryption::new(other.public_key().clone())
            .mode(mode)
            .start()
            .unwrap();
        let frame = encode(Quest::twoway("gettoken", 2, &Value::map().with("uid", 1)).unwrap());
        let wire = [
            encode(handshake.quest(1).unwrap()),
            encrypt(&mut handshake.session().encryptor(), &frame),
        ]
        .concat();
        let mut buf = BytesMut::from(&wire[..]);
        let Some(Frame::Quest(quest)) = FrameDecoder::default().decode(&mut buf).unwrap() else {
            panic!()
        };
        // The server cannot tell: the exchange itself succeeds ...
        let accepted = encryption::accept(&real, &quest).unwrap();
        // ... but the next frame is garbage.
        let mut receiver = accepted.session.receiver(DEFAULT_MAX_FRAME);
        let error = receiver.decode(&mut buf).unwrap_err();
        assert!(
            matches!(error, CodecError::BadMagic(_)),
            "{mode:?}: {error:?}"
        );
        // And it stays failed.
        assert_eq!(receiver.decode(&mut BytesMut::new()), Err(error));

        // The client, reading what the real server sends, fails the same way.
        let answer = encrypt(
            &mut accepted.session.encryptor(),
            &encode(accepted.answer.clone()),
        );
        let mut client_in = handshake.session().receiver(DEFAULT_MAX_FRAME);
        assert!(client_in.decode(&mut BytesMut::from(&answer[..])).is_err());
    }
}

#[test]
fn announced_lengths_are_checked_before_anything_is_buffered() {
    let v = find(Curve::Secp256r1, Bits::Aes128, Mode::Package);
    let session = client(&v).into_session();
    let max = 1024;

    // Package mode: the length prefix is plaintext and checked first.
    let mut receiver = FrameReceiver::new(session.keys(), Mode::Package, max);
    let mut buf = BytesMut::from(&(max as u32 + 1).to_le_bytes()[..]);
    assert_eq!(
        receiver.decode(&mut buf),
        Err(CodecError::FrameTooLarge { len: max + 1, max })
    );
    let mut receiver = FrameReceiver::new(session.keys(), Mode::Package, DEFAULT_MAX_FRAME);
    let mut buf = BytesMut::with_capacity(64);
    buf.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        receiver.decode(&mut buf),
        Err(CodecError::FrameTooLarge { .. })
    ));
    // Within the limit, an announcement alone reserves nothing.
    let mut receiver = FrameReceiver::new(session.keys(), Mode::Package, DEFAULT_MAX_FRAME);
    let mut buf = BytesMut::with_capacity(64);
    buf.extend_from_slice(&(DEFAULT_MAX_FRAME as u32).to_le_bytes());
    buf.extend_from_slice(&[0; 20]);
    assert_eq!(receiver.decode(&mut buf), Ok(None));
    assert_eq!((buf.len(), buf.capacity()), (24, 64));

    // Stream mode: a decrypted header announcing too much is refused at 12 bytes.
    let mut sender = FrameEncryptor::new(session.keys(), Mode::Stream);
    let mut huge = vec![0u8; 16];
    huge[..12].copy_from_slice(&hex("46504e4e 01 80 02 00 00001000")); // psize 1 MiB
    let wire = encrypt(&mut sender, &huge);
    let mut receiver = FrameReceiver::new(session.keys(), Mode::Stream, max);
    let mut buf = BytesMut::from(&wire[..12]);
    assert!(matches!(
        receiver.decode(&mut buf),
        Err(CodecError::FrameTooLarge { .. })
    ));
    // Within the limit: the header is taken in, the body waited for, nothing reserved.
    let mut receiver = FrameReceiver::new(session.keys(), Mode::Stream, DEFAULT_MAX_FRAME);
    let mut buf = BytesMut::with_capacity(64);
    buf.extend_from_slice(&wire[..14]);
    assert_eq!(receiver.decode(&mut buf), Ok(None));
    assert_eq!((buf.len(), buf.capacity()), (14, 64));
}

#[test]
fn a_package_must_hold_exactly_one_frame() {
    let v = find(Curve::Secp256r1, Bits::Aes128, Mode::Package);
    let session = client(&v).into_session();
    let ping = vector("V5 twoway *ping");
    let cases: Vec<(Vec<u8>, CodecError)> = vec![
        // An empty package.
        (
            vec![],
            CodecError::LengthMismatch {
                expected: 12,
                actual: 0,
            },
        ),
        // Two frames in one package.
        (
            [ping.clone(), ping.clone()].concat(),
            CodecError::LengthMismatch {
                expected: 22,
                actual: 44,
            },
        ),
        // A frame cut short.
        (
            ping[..20].to_vec(),
            CodecError::LengthMismatch {
                expected: 22,
                actual: 20,
            },
        ),
    ];
    for (plain, error) in cases {
        let mut out = FrameEncryptor::new(session.keys(), Mode::Package);
        let wire = encrypt(&mut out, &plain);
        let mut receiver = session.receiver(DEFAULT_MAX_FRAME);
        assert_eq!(receiver.decode(&mut BytesMut::from(&wire[..])), Err(error));
    }
}

// ---------------------------------------------------------------------------------------
// The server's reading of `*key`, quirks of the C++ reader included.

fn key_quest(params: &Value) -> Quest {
    Quest::twoway(encryption::KEY_METHOD, 1, params).unwrap()
}

fn request(params: Value) -> Result<KeyRequest, HandshakeError> {
    KeyRequest::from_value(&params)
}

fn v256() -> EcdhVector {
    find(Curve::Secp256r1, Bits::Aes128, Mode::Package)
}

#[test]
fn bits_other_than_128_and_256_are_refused() {
    let v = v256();
    for bits in [192i64, 0, 64, 512, -128, 129] {
        let params = Value::map()
            .with("publicKey", v.client_public.clone())
            .with("bits", bits);
        assert!(
            matches!(request(params.clone()), Err(HandshakeError::Bits(b)) if b == bits),
            "{bits}"
        );
        assert!(matches!(
            encryption::accept(&server_key(&v), &key_quest(&params)),
            Err(HandshakeError::Bits(_))
        ));
    }
}

#[test]
fn bits_and_stream_mode_are_read_as_the_cpp_reader_does() {
    let public = v256().client_public;
    let base = || Value::map().with("publicKey", public.clone());
    let read = |params: Value| {
        let r = request(params).unwrap();
        (r.mode, r.bits)
    };
    // Defaults: package mode, 128 bits.
    assert_eq!(read(base()), (Mode::Package, Bits::Aes128));
    // bits from any integer width; a non-integer is the default 128, silently.
    assert_eq!(
        read(base().with("bits", 256u64)),
        (Mode::Package, Bits::Aes256)
    );
    assert_eq!(
        read(base().with("bits", "256")),
        (Mode::Package, Bits::Aes128)
    );
    assert_eq!(
        read(base().with("bits", 256.0)),
        (Mode::Package, Bits::Aes128)
    );
    assert_eq!(
        read(base().with("bits", Value::Nil)),
        (Mode::Package, Bits::Aes128)
    );
    assert_eq!(
        read(base().with("bits", u64::MAX)),
        (Mode::Package, Bits::Aes128)
    );
    // `int bits = getInt(...)`: the 64-bit value is truncated to 32 bits.
    assert_eq!(
        read(base().with("bits", (1i64 << 32) + 256)),
        (Mode::Package, Bits::Aes256)
    );
    // streamMode only from a msgpack bool: an int 1 or a string is package mode.
    assert_eq!(
        read(base().with("streamMode", true)),
        (Mode::Stream, Bits::Aes128)
    );
    assert_eq!(
        read(base().with("streamMode", 1)),
        (Mode::Package, Bits::Aes128)
    );
    assert_eq!(
        read(base().with("streamMode", "true")),
        (Mode::Package, Bits::Aes128)
    );
    // The first of duplicate keys wins.
    assert_eq!(
        read(base().with("bits", 256).with("bits", 128)),
        (Mode::Package, Bits::Aes256)
    );
}

#[test]
fn the_public_key_is_required_as_str_or_bin() {
    let v = v256();
    let text = String::from_utf8(vec![b'a'; 64]).unwrap();
    // A str of 64 bytes is read (and here it is not a point on the curve).
    let r = request(Value::map().with("publicKey", text.as_str())).unwrap();
    assert_eq!(r.public_key, text.as_bytes());
    assert!(matches!(
        encryption::accept(
            &server_key(&v),
            &key_quest(&Value::map().with("publicKey", text))
        ),
        Err(HandshakeError::PublicKey(KeyError::NotOnCurve { .. }))
    ));
    assert!(matches!(
        request(Value::map()),
        Err(HandshakeError::MissingPublicKey)
    ));
    assert!(matches!(
        request(Value::map().with("publicKey", 5)),
        Err(HandshakeError::PublicKeyType("int"))
    ));
    // A key that is not a string before publicKey: the C++ reader throws there.
    let non_string_first = Value::Map(vec![
        (Value::from(1), Value::from(2)),
        (
            Value::from("publicKey"),
            Value::from(v.client_public.clone()),
        ),
    ]);
    assert!(matches!(
        request(non_string_first),
        Err(HandshakeError::NonStringKey("publicKey"))
    ));
    // After publicKey, before bits: bits takes its default.
    let non_string_later = Value::Map(vec![
        (
            Value::from("publicKey"),
            Value::from(v.client_public.clone()),
        ),
        (Value::from(1), Value::from(2)),
        (Value::from("bits"), Value::from(256)),
    ]);
    assert_eq!(request(non_string_later).unwrap().bits, Bits::Aes128);
    // A payload that is not a map.
    assert!(matches!(
        request(Value::from(5)),
        Err(HandshakeError::Payload(CodecError::NotAMap(_)))
    ));
}

#[test]
fn public_keys_of_the_wrong_length_or_off_the_curve_are_refused() {
    let v = v256();
    let key = server_key(&v);
    // The Go SDK zero-pads short curves' keys to 64 bytes: refused on secp224r1, as by C++.
    let v224 = find(Curve::Secp224r1, Bits::Aes256, Mode::Stream);
    let mut padded = v224.client_public.clone();
    padded.resize(64, 0);
    assert!(matches!(
        encryption::accept(
            &server_key(&v224),
            &key_quest(&Value::map().with("publicKey", padded))
        ),
        Err(HandshakeError::PublicKey(KeyError::Length {
            expected: 56,
            actual: 64,
            ..
        }))
    ));
    // With the 0x04 prefix (65 bytes): refused.
    let mut prefixed = vec![0x04];
    prefixed.extend_from_slice(&v.client_public);
    assert!(matches!(
        encryption::accept(&key, &key_quest(&Value::map().with("publicKey", prefixed))),
        Err(HandshakeError::PublicKey(KeyError::Length {
            actual: 65,
            ..
        }))
    ));
    // A point off the curve (micro-ecc would multiply it; we refuse).
    let mut off = v.client_public.clone();
    off[63] ^= 1;
    assert!(matches!(
        encryption::accept(&key, &key_quest(&Value::map().with("publicKey", off))),
        Err(HandshakeError::PublicKey(KeyError::NotOnCurve { .. }))
    ));
    // The point at infinity has no affine form; all zeros is not on the curve either.
    assert!(matches!(
        encryption::accept(
            &key,
            &key_quest(&Value::map().with("publicKey", vec![0u8; 64]))
        ),
        Err(HandshakeError::PublicKey(KeyError::NotOnCurve { .. }))
    ));
}

#[test]
fn a_oneway_key_quest_is_refused() {
    let v = v256();
    let params = KeyRequest {
        public_key: v.client_public.clone(),
        mode: Mode::Package,
        bits: Bits::Aes128,
    }
    .to_value();
    let oneway = Quest::oneway(encryption::KEY_METHOD, &params).unwrap();
    assert!(matches!(
        encryption::accept(&server_key(&v), &oneway),
        Err(HandshakeError::Oneway)
    ));
}

#[test]
fn a_json_key_quest_is_read_too() {
    // JSON has no binary type, so a real key (not UTF-8) cannot travel in it; an ASCII one
    // reaches the point check, which shows the payload was read.
    let v = v256();
    let quest = Quest::new(
        encryption::KEY_METHOD,
        Some(4),
        Format::Json,
        &Value::map()
            .with("publicKey", "k".repeat(64))
            .with("bits", 256),
    )
    .unwrap();
    let request = KeyRequest::from_quest(&quest).unwrap();
    assert_eq!((request.public_key.len(), request.bits), (64, Bits::Aes256));
    assert!(matches!(
        encryption::accept(&server_key(&v), &quest),
        Err(HandshakeError::PublicKey(KeyError::NotOnCurve { .. }))
    ));
}

#[test]
fn an_error_answer_to_key_is_a_refusal() {
    let answer = Answer::error(
        1,
        Format::MsgPack,
        &fpnn::ErrorAnswer::new(20003, "timeout"),
    );
    assert!(matches!(
        ClientHandshake::check_answer(&answer),
        Err(HandshakeError::Refused(e)) if e.code == 20003
    ));
}

// ---------------------------------------------------------------------------------------
// Key files.

/// A fresh directory under the system's temporary directory, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "fpnn-encryption-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn key_files_are_those_of_ecc_key_maker() {
    let dir = TempDir::new("keyfiles");
    for v in ecdh_vectors() {
        let key = server_key(&v);
        let name = dir.0.join(format!("{}-{:?}", v.curve, v.mode));
        let files = encryption::write_key_files(&key, &name, false).unwrap();
        assert_eq!(files, KeyFiles::named(&name));
        assert!(files
            .private_key
            .to_string_lossy()
            .ends_with(&format!("{}-{:?}-private.key", v.curve, v.mode)));

        assert_eq!(std::fs::read(&files.private_key).unwrap(), v.server_private);
        assert_eq!(std::fs::read(&files.public_key).unwrap(), v.server_public);
        assert_eq!(std::fs::read(&files.public_der).unwrap(), v.server_der);
        assert_eq!(
            std::fs::read_to_string(&files.public_pem).unwrap(),
            v.server_pem
        );
        let compressed = std::fs::read(&files.compressed_public_key).unwrap();
        assert_eq!(compressed.len(), v.curve.secret_len() + 1);
        assert_eq!(compressed[1..], v.server_public[..v.curve.secret_len()]);
        assert_eq!(compressed[0], 0x02 | (v.server_public.last().unwrap() & 1));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&files.private_key)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        // Read back as a server and as a client would.
        let read = PrivateKey::from_file(v.curve, &files.private_key).unwrap();
        assert_eq!(read.secret_bytes(), v.server_private);
        for path in [&files.public_der, &files.public_pem] {
            assert_eq!(&PublicKey::from_file(path, None).unwrap(), key.public_key());
        }
        assert_eq!(
            &PublicKey::from_file(&files.public_key, Some(v.curve)).unwrap(),
            key.public_key()
        );

        // No overwriting without asking; with it, every file is replaced.
        let other = PrivateKey::generate(v.curve).unwrap();
        assert!(matches!(
            encryption::write_key_files(&other, &name, false),
            Err(KeyError::Io { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists
        ));
        assert_eq!(std::fs::read(&files.private_key).unwrap(), v.server_private);
        encryption::write_key_files(&other, &name, true).unwrap();
        assert_eq!(
            std::fs::read(&files.private_key).unwrap(),
            other.secret_bytes()
        );
        assert_eq!(
            &PublicKey::from_file(&files.public_pem, None).unwrap(),
            other.public_key()
        );
    }
}

#[test]
fn private_key_files_must_hold_the_raw_scalar() {
    let dir = TempDir::new("private");
    let v = v256();
    let path = dir.0.join("server-private.key");
    let mut with_newline = v.server_private.clone();
    with_newline.push(b'\n');
    std::fs::write(&path, &with_newline).unwrap();
    assert!(matches!(
        PrivateKey::from_file(Curve::Secp256r1, &path),
        Err(KeyError::Length {
            expected: 32,
            actual: 33,
            ..
        })
    ));
    std::fs::write(&path, v.server_pem.as_bytes()).unwrap();
    let error = PrivateKey::from_file(Curve::Secp256r1, &path).unwrap_err();
    assert!(error.to_string().contains("raw"), "{error}");
    assert!(matches!(
        PrivateKey::from_file(Curve::Secp256r1, dir.0.join("missing")),
        Err(KeyError::Io { .. })
    ));
    // The right bytes on the wrong curve: a secp256r1 scalar is not 24 bytes.
    std::fs::write(&path, &v.server_private).unwrap();
    assert!(matches!(
        PrivateKey::from_file(Curve::Secp192r1, &path),
        Err(KeyError::Length { expected: 24, .. })
    ));
}

#[test]
fn ecc_key_makers_76_column_pem_is_read() {
    // eccKeyMaker wraps its base64 at 76 columns, RFC 7468 at 64.
    for v in ecdh_vectors() {
        let body: String = v
            .server_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for line in body.as_bytes().chunks(76) {
            pem.push_str(std::str::from_utf8(line).unwrap());
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        assert!(body.len() > 76, "the test needs a wrapped line");
        let key = PublicKey::from_pem(pem.as_bytes()).unwrap();
        assert_eq!(key.as_bytes(), v.server_public);
        // Without the final newline, and with CRLF line ends, too.
        let key = PublicKey::from_pem(pem.trim_end().as_bytes()).unwrap();
        assert_eq!(key.as_bytes(), v.server_public);
        let key = PublicKey::from_pem(pem.replace('\n', "\r\n").as_bytes()).unwrap();
        assert_eq!(key.as_bytes(), v.server_public);
        let key = PublicKey::from_pem(v.server_pem.replace('\n', "\r\n").as_bytes()).unwrap();
        assert_eq!(key.as_bytes(), v.server_public);
    }
}

#[test]
fn keys_that_are_not_ec_keys_of_the_four_curves_are_refused() {
    // An Ed25519 SubjectPublicKeyInfo (RFC 8410 example).
    let ed25519 = hex(
        "302a300506032b6570032100 19bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1",
    );
    assert!(matches!(
        PublicKey::from_der(&ed25519),
        Err(KeyError::NotEcKey(oid)) if oid == "1.3.101.112"
    ));
    // A secp384r1 key: the OID is swapped in a secp256r1 DER of the same shape.
    let v = v256();
    let der = server_key(&v).public_key().to_der();
    let p256_oid = hex("06082a8648ce3d030107");
    let at = der
        .windows(p256_oid.len())
        .position(|w| w == p256_oid)
        .unwrap();
    let mut p384 = der.clone();
    // 1.3.132.0.34 is 5 bytes: shorten the outer lengths by 3 accordingly.
    p384.splice(at..at + p256_oid.len(), hex("06052b81040022"));
    p384[1] -= 3;
    p384[3] -= 3;
    assert!(matches!(
        PublicKey::from_der(&p384),
        Err(KeyError::UnsupportedCurve(oid)) if oid == "1.3.132.0.34"
    ));
    // Trailing bytes after the DER, truncation, garbage.
    let mut trailing = der.clone();
    trailing.push(0);
    assert!(matches!(
        PublicKey::from_der(&trailing),
        Err(KeyError::Der(_))
    ));
    assert!(matches!(
        PublicKey::from_der(&der[..40]),
        Err(KeyError::Der(_))
    ));
    assert!(matches!(
        PublicKey::from_pem(b"-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n"),
        Err(KeyError::Pem(_))
    ));
    assert!(matches!(
        PublicKey::decode(&[1, 2, 3], Some(Curve::Secp256r1)),
        Err(KeyError::Der(_))
    ));
}
