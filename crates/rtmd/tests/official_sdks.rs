//! The official server SDKs' salts against the replay window, with salts and quests made
//! exactly as those SDKs make them ([`common::official_sdk`]):
//!
//! * the C++ SDK: one process at 200 distinct `gettoken` in one second (64 distinct salts);
//!   two processes in the same second (the same salts);
//! * the Python SDK: many calls in one millisecond (one salt);
//!
//! in each replay mode: `request` (the default) answers every distinct request and refuses
//! an exact resend, however it is encoded; `sign` refuses any reuse of a sign (and so
//! reproduces what the official SDKs met before: 64 of a C++ burst of 200 answered);
//! `off` refuses nothing. The same runs over the Redis store (cluster mode's), which
//! needs Redis on 127.0.0.1:6379 (skipped without it, unless `RTM_REQUIRE_REDIS=1`).

mod common;

use common::official_sdk::*;
use common::*;
use fpnn::client::Client;
use fpnn::Value;
use rtm_protocol::sign::sign;
use rtmd::config::RedisSettings;
use rtmd::config::ReplayMode;
use rtmd::store::{RedisStore, Store};
use std::collections::HashSet;
use std::sync::Arc;
use tokio::task::JoinSet;

/// The project of each mode (all with [`SECRET`]).
fn pid_of(mode: ReplayMode) -> i32 {
    match mode {
        ReplayMode::Sign => PID + 1,
        ReplayMode::Off => PID + 2,
        _ => PID,
    }
}

fn projects() -> Vec<rtmd::config::Project> {
    [ReplayMode::Request, ReplayMode::Sign, ReplayMode::Off]
        .into_iter()
        .map(|mode| {
            let mut p = project(pid_of(mode), SECRET);
            p.replay = mode;
            p
        })
        .collect()
}

/// The service over a memory store.
async fn memory_server() -> TestServer {
    TestServer::start_with(projects(), |_| {}).await
}

/// The Redis of the tests.
const TEST_REDIS: &str = "redis://127.0.0.1:6379/0";

/// The service over the Redis store under a key prefix of its own (returned, to delete its
/// keys after), or `None` when no Redis answers and none is required.
async fn redis_server() -> Option<(TestServer, String)> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("random bytes");
    let prefix = format!("rtmd-sdk-test-{:016x}", u64::from_le_bytes(bytes));
    let settings = RedisSettings {
        key_prefix: prefix.clone(),
        ..RedisSettings::default()
    };
    match RedisStore::connect(TEST_REDIS, &settings).await {
        Ok(store) => {
            let store: Arc<dyn Store> = Arc::new(store);
            let server = TestServer::start_over(projects(), |_| {}, store).await;
            Some((server, prefix))
        }
        Err(e) if std::env::var("RTM_REQUIRE_REDIS").as_deref() == Ok("1") => {
            panic!("RTM_REQUIRE_REDIS=1 but no Redis on 127.0.0.1:6379: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: no Redis on 127.0.0.1:6379 ({e})");
            None
        }
    }
}

/// How a batch of `gettoken` quests fared.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    /// Answered with a token.
    answered: usize,
    /// Refused as replays (200006).
    replayed: usize,
}

/// Sends every quest at once on one connection, as an SDK's asynchronous calls do, and
/// sorts the answers. Any other answer fails the test.
async fn send_all(client: &Client, quests: Vec<Value>) -> Outcome {
    let mut calls = JoinSet::new();
    for quest in quests {
        let client = client.clone();
        calls.spawn(async move { client.quest("gettoken", &quest).await });
    }
    let mut outcome = Outcome {
        answered: 0,
        replayed: 0,
    };
    let mut tokens = HashSet::new();
    while let Some(result) = within("the answers", calls.join_next()).await {
        match result.expect("the call task") {
            Ok(answer) => {
                let token = answer
                    .get("token")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                assert!(tokens.insert(token.expect("a token")), "a token twice");
                outcome.answered += 1;
            }
            Err(fpnn::Error::Answer(e)) if e.code == 200006 => outcome.replayed += 1,
            Err(e) => panic!("unexpected answer: {e}"),
        }
    }
    outcome
}

/// One C++ process: `calls` `gettoken` for distinct users in one second. Returns the
/// quests and how many distinct salts they carry.
fn cpp_burst(pid: i32, second: i64, calls: i64, first_uid: i64) -> (Vec<Value>, usize) {
    let mut process = CppMidGenerator::new(frozen(second));
    let mut salts = HashSet::new();
    let quests = (0..calls)
        .map(|i| {
            let salt = process.gen_mid();
            salts.insert(salt);
            cpp_gettoken(pid, SECRET, salt, second, first_uid + i)
        })
        .collect();
    (quests, salts.len())
}

/// The Python SDK: `calls` `get_token` for distinct users, as fast as it goes (its clock
/// moves on every 1000 reads), starting at the top of `second`.
fn python_burst(pid: i32, second: i64, calls: i64) -> (Vec<Value>, usize) {
    let mut client = PythonMidGenerator::new(77, ticking(second * 1000, 1000));
    let mut salts = HashSet::new();
    let quests = (0..calls)
        .map(|i| {
            let salt = client.gen_mid();
            salts.insert(salt);
            python_gettoken(pid, SECRET, salt, second, 30_001 + i)
        })
        .collect();
    (quests, salts.len())
}

#[test]
fn the_generators_make_the_official_salts() {
    let second = 1_700_000_000;
    let mut a = CppMidGenerator::new(frozen(second));
    let mut b = CppMidGenerator::new(frozen(second));
    assert_eq!(a.rand_id(), 164);
    let salts: Vec<i64> = (0..200).map(|_| a.gen_mid()).collect();
    let theirs: Vec<i64> = (0..200).map(|_| b.gen_mid()).collect();
    assert_eq!(salts, theirs, "two processes, the same salts");
    assert_eq!(salts.iter().collect::<HashSet<_>>().len(), 64);
    // Seconds, then 164, then the counter (1 first, 0 after 63).
    assert_eq!(salts[0], second << 14 | 164 << 6 | 1);
    assert_eq!(salts[63], second << 14 | 164 << 6);
    assert_eq!(salts[64], salts[0]);

    let ms = second * 1000;
    // 32 calls a millisecond, then the wait for the next one.
    let mut py = PythonMidGenerator::new(77, ticking(ms, 1000));
    let salts: Vec<i64> = (0..64).map(|_| py.gen_mid()).collect();
    assert!(salts[..31].iter().all(|&s| s == ms << 14 | 77 << 6));
    assert_eq!(salts[31], (ms + 1) << 14 | 77 << 6);
    assert_eq!(salts.iter().collect::<HashSet<_>>().len(), 3);

    let q = python_gettoken(PID, SECRET, salts[0], second, 5);
    let keys: Vec<&str> = q
        .as_map()
        .unwrap()
        .iter()
        .filter_map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(keys, ["pid", "sign", "salt", "ts", "uid", "version"]);
}

/// Request mode: a C++ process's 200 distinct calls in one second, on 64 salts, are all
/// answered.
async fn cpp_process_in_one_second(server: &TestServer, mode: ReplayMode) -> Outcome {
    let (quests, salts) = cpp_burst(pid_of(mode), now(), 200, 1);
    assert_eq!(salts, 64);
    send_all(&server.raw_api(), quests).await
}

/// Two C++ processes started in the same second: the same salts, distinct users.
async fn two_cpp_processes_in_one_second(server: &TestServer, mode: ReplayMode) -> Outcome {
    let second = now();
    // Users of their own: the scenarios share one project.
    let (first, _) = cpp_burst(pid_of(mode), second, 50, 10_001);
    let (second_process, _) = cpp_burst(pid_of(mode), second, 50, 20_001);
    let salt = |q: &Value| q.get("salt").cloned();
    assert_eq!(
        first.iter().map(salt).collect::<Vec<_>>(),
        second_process.iter().map(salt).collect::<Vec<_>>()
    );
    let (a, b) = (server.raw_api(), server.raw_api());
    let (x, y) = tokio::join!(send_all(&a, first), send_all(&b, second_process));
    Outcome {
        answered: x.answered + y.answered,
        replayed: x.replayed + y.replayed,
    }
}

/// Python's calls, 32 to a millisecond.
async fn python_in_one_millisecond(server: &TestServer, mode: ReplayMode) -> (Outcome, usize) {
    let (quests, salts) = python_burst(pid_of(mode), now(), 200);
    assert!(salts <= 7, "{salts} salts");
    (send_all(&server.raw_api(), quests).await, salts)
}

/// A C++ `gettoken` sent, resent as it is, resent re-encoded (keys in another order,
/// integers in other widths: the same request), and its sign used for another user.
/// Returns the codes: 0 for answered.
async fn resends(server: &TestServer, mode: ReplayMode) -> [i32; 4] {
    let pid = pid_of(mode);
    let (second, salt) = (now(), 987_654_321_i64);
    let quest = cpp_gettoken(pid, SECRET, salt, second, 7);
    let mut raw = RawConn::connect(&server.api()).await;
    let code = |result: Result<Value, fpnn::ErrorAnswer>| match result {
        Ok(answer) => {
            assert!(answer.get("token").is_some(), "{answer}");
            0
        }
        Err(e) => e.code,
    };
    let first = code(raw.quest("gettoken", &quest).await);
    let again = code(raw.quest("gettoken", &quest).await);
    let sign = sign(pid, SECRET, salt, "gettoken", second);
    let payload = Mp::map(5)
        .str("uid")
        .u64(7)
        .str("ts")
        .u64(second as u64)
        .str("salt")
        .u64(salt as u64)
        .str("sign")
        .str(&sign)
        .str("pid")
        .u32(pid as u32);
    let re_encoded = code(
        raw.raw_quest(&raw_frame("gettoken", 1000, &payload.0), 1000)
            .await,
    );
    let other_user = cpp_gettoken(pid, SECRET, salt, second, 8);
    let shared_sign = code(raw.quest("gettoken", &other_user).await);
    [first, again, re_encoded, shared_sign]
}

const ALL: Outcome = Outcome {
    answered: 200,
    replayed: 0,
};
const ALL_TWO_PROCESSES: Outcome = Outcome {
    answered: 100,
    replayed: 0,
};

async fn request_mode(server: &TestServer) {
    let mode = ReplayMode::Request;
    assert_eq!(cpp_process_in_one_second(server, mode).await, ALL);
    assert_eq!(
        two_cpp_processes_in_one_second(server, mode).await,
        ALL_TWO_PROCESSES
    );
    assert_eq!(python_in_one_millisecond(server, mode).await.0, ALL);
    assert_eq!(resends(server, mode).await, [0, 200006, 200006, 0]);
}

async fn sign_mode(server: &TestServer) {
    let mode = ReplayMode::Sign;
    // What the official C++ SDK met: 64 of 200 answered.
    assert_eq!(
        cpp_process_in_one_second(server, mode).await,
        Outcome {
            answered: 64,
            replayed: 136
        }
    );
    let (outcome, salts) = python_in_one_millisecond(server, mode).await;
    assert_eq!(
        outcome,
        Outcome {
            answered: salts,
            replayed: 200 - salts
        }
    );
    assert_eq!(resends(server, mode).await, [0, 200006, 200006, 200006]);
}

async fn off_mode(server: &TestServer) {
    let mode = ReplayMode::Off;
    assert_eq!(cpp_process_in_one_second(server, mode).await, ALL);
    assert_eq!(
        two_cpp_processes_in_one_second(server, mode).await,
        ALL_TWO_PROCESSES
    );
    assert_eq!(resends(server, mode).await, [0, 0, 0, 0]);
}

#[tokio::test]
async fn request_mode_answers_every_distinct_request_and_refuses_resends() {
    request_mode(&memory_server().await).await;
}

#[tokio::test]
async fn sign_mode_refuses_any_reuse_of_a_sign() {
    sign_mode(&memory_server().await).await;
}

#[tokio::test]
async fn off_mode_refuses_nothing() {
    off_mode(&memory_server().await).await;
}

#[tokio::test]
async fn request_mode_through_the_redis_store() {
    if let Some((mut server, prefix)) = redis_server().await {
        request_mode(&server).await;
        server.shutdown().await;
        redis_keys::delete_prefix(TEST_REDIS, &prefix).await;
    }
}

#[tokio::test]
async fn sign_mode_through_the_redis_store() {
    if let Some((mut server, prefix)) = redis_server().await {
        sign_mode(&server).await;
        server.shutdown().await;
        redis_keys::delete_prefix(TEST_REDIS, &prefix).await;
    }
}

#[tokio::test]
async fn off_mode_through_the_redis_store() {
    if let Some((mut server, prefix)) = redis_server().await {
        off_mode(&server).await;
        server.shutdown().await;
        redis_keys::delete_prefix(TEST_REDIS, &prefix).await;
    }
}

#[tokio::test]
async fn the_replay_answer_says_what_was_replayed() {
    let server = memory_server().await;
    let raw = server.raw_api();
    for (mode, says) in [
        (ReplayMode::Request, "this request"),
        (ReplayMode::Sign, "this sign"),
    ] {
        let q = cpp_gettoken(pid_of(mode), SECRET, 42, now(), 1);
        within("first", raw.quest("gettoken", &q)).await.unwrap();
        let e = answer_error(within("resend", raw.quest("gettoken", &q)).await);
        assert_eq!(e.code, 200006);
        assert!(e.ex.contains(says), "{}", e.ex);
    }
}
