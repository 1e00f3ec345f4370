//! The semantics every [`Store`] keeps, run against each implementation, and the tests of
//! the embedded store alone (reopen, locking, corrupt files, group commit).
//!
//! The Redis store runs the same cases against the Redis on 127.0.0.1:6379, each under a
//! key prefix of its own (deleted afterwards). Without a Redis there they print
//! "SKIPPED: no Redis on 127.0.0.1:6379" and pass, unless `RTM_REQUIRE_REDIS=1` (CI), where
//! they fail.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use super::*;

/// A store under test, and the directory it lives in (if any).
struct Fixture {
    store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
}

fn memory() -> Fixture {
    Fixture {
        store: Arc::new(MemoryStore::new()),
        _dir: None,
    }
}

fn embedded() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    Fixture {
        store: Arc::new(store),
        _dir: Some(dir),
    }
}

/// The Redis of the tests.
const TEST_REDIS: &str = "redis://127.0.0.1:6379/0";

/// A Redis store under a fresh key prefix, or `None` (after saying so) when no Redis answers
/// and the environment does not require one.
async fn redis() -> Option<(Arc<RedisStore>, String)> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    let prefix = format!(
        "rtmd-test-{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let settings = crate::config::RedisSettings {
        key_prefix: prefix.clone(),
        command_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    match RedisStore::connect(TEST_REDIS, &settings).await {
        Ok(store) => Some((Arc::new(store), prefix)),
        Err(e) if std::env::var("RTM_REQUIRE_REDIS").as_deref() == Ok("1") => {
            panic!("RTM_REQUIRE_REDIS=1 but no Redis on 127.0.0.1:6379: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: no Redis on 127.0.0.1:6379 ({e})");
            None
        }
    }
}

/// Deletes every key under `prefix`.
async fn delete_prefix(prefix: &str) {
    let Ok(client) = ::redis::Client::open(TEST_REDIS) else {
        return;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return;
    };
    for pattern in [format!("{prefix}:*"), format!("{{{prefix}:*")] {
        let keys: Vec<String> = ::redis::cmd("KEYS")
            .arg(&pattern)
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<i64, _> = ::redis::cmd("DEL").arg(&keys).query_async(&mut conn).await;
        }
    }
}

/// One `#[tokio::test]` per case and store, named `<store>::<case>`.
macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod memory_store {
            $(
                #[tokio::test]
                async fn $case() {
                    let fixture = super::memory();
                    super::cases::$case(fixture.store.clone()).await;
                }
            )*
        }
        mod embedded_store {
            $(
                #[tokio::test]
                async fn $case() {
                    let fixture = super::embedded();
                    super::cases::$case(fixture.store.clone()).await;
                }
            )*
        }
        mod redis_store {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some((store, prefix)) = super::redis().await else { return };
                    super::cases::$case(store).await;
                    super::delete_prefix(&prefix).await;
                }
            )*
        }
    };
}

suite!(
    generations_start_at_zero_and_bump,
    concurrent_bumps_are_serial,
    devices_are_listed_oldest_first,
    adding_for_another_user_moves_the_device,
    re_adding_refreshes_without_duplicating,
    the_cap_drops_the_oldest,
    a_cap_of_zero_keeps_the_newest,
    removing_needs_the_owner,
    devices_are_per_project,
    extreme_ids_do_not_mix,
    long_and_unicode_tokens,
    concurrent_adds_all_land,
    replays_are_detected,
    replays_expire,
    token_keys_are_created_once,
    ping_then_close,
);

/// The cases, each against any store.
mod cases {
    use super::*;

    /// A request's fingerprint.
    const REQUEST: Fingerprint = Fingerprint::from_bytes(*b"a request's 16 b");

    fn tokens(list: &[DeviceRecord]) -> Vec<&str> {
        list.iter().map(|d| d.device_token.as_str()).collect()
    }

    pub(super) async fn generations_start_at_zero_and_bump(s: Arc<dyn Store>) {
        assert_eq!(s.generation(1, 10).await.unwrap(), 0);
        assert_eq!(s.bump_generation(1, 10).await.unwrap(), 1);
        assert_eq!(s.bump_generation(1, 10).await.unwrap(), 2);
        assert_eq!(s.generation(1, 10).await.unwrap(), 2);
        assert_eq!(s.generation(1, 11).await.unwrap(), 0);
        assert_eq!(s.generation(2, 10).await.unwrap(), 0);
    }

    pub(super) async fn concurrent_bumps_are_serial(s: Arc<dyn Store>) {
        let mut tasks = JoinSet::new();
        for _ in 0..40 {
            let s = s.clone();
            tasks.spawn(async move { s.bump_generation(3, 7).await.unwrap() });
        }
        let mut seen: Vec<u64> = tasks.join_all().await;
        seen.sort_unstable();
        assert_eq!(seen, (1..=40).collect::<Vec<_>>());
        assert_eq!(s.generation(3, 7).await.unwrap(), 40);
    }

    pub(super) async fn devices_are_listed_oldest_first(s: Arc<dyn Store>) {
        assert!(s.devices(1, 1).await.unwrap().is_empty());
        s.add_device(1, 1, "apns", "c", 300, 32).await.unwrap();
        s.add_device(1, 1, "fcm", "a", 100, 32).await.unwrap();
        s.add_device(1, 1, "apns", "b", 200, 32).await.unwrap();
        // Same millisecond: in the order added, whatever the token sorts like.
        s.add_device(1, 1, "fcm", "z", 400, 32).await.unwrap();
        s.add_device(1, 1, "fcm", "y", 400, 32).await.unwrap();
        let list = s.devices(1, 1).await.unwrap();
        assert_eq!(tokens(&list), ["a", "b", "c", "z", "y"]);
        assert_eq!(
            list[0],
            DeviceRecord {
                apptype: "fcm".into(),
                device_token: "a".into(),
                time_ms: 100,
            }
        );
    }

    pub(super) async fn adding_for_another_user_moves_the_device(s: Arc<dyn Store>) {
        s.add_device(1, 1, "apns", "t", 100, 32).await.unwrap();
        s.add_device(1, 1, "apns", "keep", 101, 32).await.unwrap();
        s.add_device(1, 2, "fcm", "t", 200, 32).await.unwrap();
        assert_eq!(tokens(&s.devices(1, 1).await.unwrap()), ["keep"]);
        let list = s.devices(1, 2).await.unwrap();
        assert_eq!(tokens(&list), ["t"]);
        assert_eq!(list[0].apptype, "fcm");
        // The former owner can no longer remove it.
        assert!(!s.remove_device(1, 1, "t").await.unwrap());
        assert_eq!(tokens(&s.devices(1, 2).await.unwrap()), ["t"]);
    }

    pub(super) async fn re_adding_refreshes_without_duplicating(s: Arc<dyn Store>) {
        s.add_device(1, 1, "apns", "t", 100, 32).await.unwrap();
        s.add_device(1, 1, "apns", "u", 200, 32).await.unwrap();
        s.add_device(1, 1, "apns", "t", 100, 32).await.unwrap();
        assert_eq!(tokens(&s.devices(1, 1).await.unwrap()), ["t", "u"]);
        s.add_device(1, 1, "fcm", "t", 300, 32).await.unwrap();
        let list = s.devices(1, 1).await.unwrap();
        assert_eq!(tokens(&list), ["u", "t"]);
        assert_eq!((list[1].apptype.as_str(), list[1].time_ms), ("fcm", 300));
    }

    pub(super) async fn the_cap_drops_the_oldest(s: Arc<dyn Store>) {
        for (i, t) in ["a", "b", "c", "d"].iter().enumerate() {
            s.add_device(1, 1, "apns", t, 10 + i as i64, 3)
                .await
                .unwrap();
        }
        assert_eq!(tokens(&s.devices(1, 1).await.unwrap()), ["b", "c", "d"]);
        // The dropped device belongs to no one now.
        assert!(!s.remove_device(1, 1, "a").await.unwrap());
        s.add_device(1, 2, "apns", "a", 20, 3).await.unwrap();
        assert_eq!(tokens(&s.devices(1, 2).await.unwrap()), ["a"]);
        assert_eq!(tokens(&s.devices(1, 1).await.unwrap()), ["b", "c", "d"]);
        // A refresh makes a device the newest, so the next drop spares it.
        s.add_device(1, 1, "apns", "b", 30, 3).await.unwrap();
        s.add_device(1, 1, "apns", "e", 31, 3).await.unwrap();
        assert_eq!(tokens(&s.devices(1, 1).await.unwrap()), ["d", "b", "e"]);
        // A lower cap later drops several at once.
        s.add_device(1, 1, "apns", "f", 32, 1).await.unwrap();
        assert_eq!(tokens(&s.devices(1, 1).await.unwrap()), ["f"]);
        for gone in ["b", "d", "e"] {
            assert!(!s.remove_device(1, 1, gone).await.unwrap(), "{gone}");
        }
    }

    pub(super) async fn a_cap_of_zero_keeps_the_newest(s: Arc<dyn Store>) {
        s.add_device(1, 1, "apns", "a", 1, 0).await.unwrap();
        s.add_device(1, 1, "apns", "b", 2, 0).await.unwrap();
        assert_eq!(tokens(&s.devices(1, 1).await.unwrap()), ["b"]);
    }

    pub(super) async fn removing_needs_the_owner(s: Arc<dyn Store>) {
        s.add_device(1, 1, "apns", "t", 1, 32).await.unwrap();
        assert!(!s.remove_device(1, 2, "t").await.unwrap());
        assert!(!s.remove_device(2, 1, "t").await.unwrap());
        assert!(!s.remove_device(1, 1, "other").await.unwrap());
        assert_eq!(tokens(&s.devices(1, 1).await.unwrap()), ["t"]);
        assert!(s.remove_device(1, 1, "t").await.unwrap());
        assert!(s.devices(1, 1).await.unwrap().is_empty());
        assert!(!s.remove_device(1, 1, "t").await.unwrap());
    }

    pub(super) async fn devices_are_per_project(s: Arc<dyn Store>) {
        s.add_device(1, 1, "apns", "t", 1, 32).await.unwrap();
        s.add_device(2, 9, "apns", "t", 2, 32).await.unwrap();
        assert_eq!(tokens(&s.devices(1, 1).await.unwrap()), ["t"]);
        assert_eq!(tokens(&s.devices(2, 9).await.unwrap()), ["t"]);
        assert!(s.devices(2, 1).await.unwrap().is_empty());
    }

    pub(super) async fn extreme_ids_do_not_mix(s: Arc<dyn Store>) {
        let users = [
            (i32::MIN, i64::MIN),
            (i32::MIN, i64::MAX),
            (-1, -1),
            (0, 0),
            (i32::MAX, i64::MAX - 1),
            (i32::MAX, i64::MAX),
        ];
        for (i, &(pid, uid)) in users.iter().enumerate() {
            s.add_device(pid, uid, "fcm", &format!("d{i}"), 1, 32)
                .await
                .unwrap();
            // The empty token sorts first in the table: still this user's, and only theirs.
            s.add_device(pid, uid, "fcm", "", 2, 32).await.unwrap();
            s.add_device(pid, uid, "fcm", "\u{10FFFF}", 3, 32)
                .await
                .unwrap();
            assert_eq!(s.bump_generation(pid, uid).await.unwrap(), 1);
        }
        // Tokens are per project: "" and U+10FFFF moved to the last user of each pid.
        for (i, &(pid, uid)) in users.iter().enumerate() {
            let expected = format!("d{i}");
            let last_of_pid = users.get(i + 1).is_none_or(|next| next.0 != pid);
            let list = s.devices(pid, uid).await.unwrap();
            if last_of_pid {
                assert_eq!(tokens(&list), [expected.as_str(), "", "\u{10FFFF}"]);
            } else {
                assert_eq!(tokens(&list), [expected.as_str()]);
            }
            assert_eq!(s.generation(pid, uid).await.unwrap(), 1);
        }
    }

    pub(super) async fn long_and_unicode_tokens(s: Arc<dyn Store>) {
        let long = "x".repeat(4096);
        let unicode = "jeton-é-令牌-🔔";
        s.add_device(1, 1, "apns", &long, 1, 32).await.unwrap();
        s.add_device(1, 1, "fcm", unicode, 2, 32).await.unwrap();
        assert_eq!(
            tokens(&s.devices(1, 1).await.unwrap()),
            [long.as_str(), unicode]
        );
        assert!(s.remove_device(1, 1, unicode).await.unwrap());
    }

    pub(super) async fn concurrent_adds_all_land(s: Arc<dyn Store>) {
        let mut tasks = JoinSet::new();
        for i in 0..64i64 {
            let s = s.clone();
            tasks.spawn(async move {
                s.add_device(5, i % 4, "apns", &format!("tok{i}"), i, 100)
                    .await
                    .unwrap();
            });
        }
        tasks.join_all().await;
        for uid in 0..4 {
            let list = s.devices(5, uid).await.unwrap();
            let expected: Vec<String> = (0..64)
                .filter(|i| i % 4 == uid)
                .map(|i| format!("tok{i}"))
                .collect();
            assert_eq!(tokens(&list), expected);
        }
    }

    pub(super) async fn replays_are_detected(s: Arc<dyn Store>) {
        let ttl = Duration::from_secs(600);
        assert!(s.check_and_record_request(1, &REQUEST, ttl).await.unwrap());
        assert!(!s.check_and_record_request(1, &REQUEST, ttl).await.unwrap());
        // Another project, another request.
        assert!(s.check_and_record_request(2, &REQUEST, ttl).await.unwrap());
        let mut other = *REQUEST.as_bytes();
        other[15] ^= 1;
        let other = Fingerprint::from_bytes(other);
        assert!(s.check_and_record_request(1, &other, ttl).await.unwrap());
        assert!(!s.check_and_record_request(1, &other, ttl).await.unwrap());
    }

    pub(super) async fn replays_expire(s: Arc<dyn Store>) {
        let ttl = Duration::from_millis(40);
        assert!(s.check_and_record_request(1, &REQUEST, ttl).await.unwrap());
        assert!(!s.check_and_record_request(1, &REQUEST, ttl).await.unwrap());
        // Real time, for Redis's sake; the in-process window counts whole seconds, and may
        // remember a request up to a second longer than its ttl (its own tests check the
        // exact second on a simulated clock).
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(s.check_and_record_request(1, &REQUEST, ttl).await.unwrap());
    }

    pub(super) async fn token_keys_are_created_once(s: Arc<dyn Store>) {
        let mut tasks = JoinSet::new();
        for _ in 0..8 {
            let s = s.clone();
            tasks.spawn(async move { s.token_keys().await.unwrap() });
        }
        let rings = tasks.join_all().await;
        let ring = s.token_keys().await.unwrap();
        assert_eq!(ring.len(), 1);
        assert_eq!(ring[0].id, FIRST_TOKEN_KEY_ID);
        assert_ne!(ring[0].secret, [0; 32]);
        assert!(rings.iter().all(|r| *r == ring));
        assert!(format!("{:?}", ring[0]).contains("redacted"));
    }

    pub(super) async fn ping_then_close(s: Arc<dyn Store>) {
        s.ping().await.unwrap();
        s.add_device(1, 1, "apns", "t", 1, 32).await.unwrap();
        s.close().await.unwrap();
        s.close().await.unwrap();
        assert!(matches!(s.ping().await, Err(StoreError::Closed)));
        assert!(matches!(s.generation(1, 1).await, Err(StoreError::Closed)));
        assert!(matches!(
            s.bump_generation(1, 1).await,
            Err(StoreError::Closed)
        ));
        assert!(matches!(
            s.add_device(1, 1, "apns", "u", 2, 32).await,
            Err(StoreError::Closed)
        ));
        assert!(matches!(s.devices(1, 1).await, Err(StoreError::Closed)));
        assert!(matches!(
            s.check_and_record_request(1, &REQUEST, Duration::from_secs(1))
                .await,
            Err(StoreError::Closed)
        ));
    }
}

/// What only the embedded store does: keep data across reopen, lock its file, refuse bad
/// files, share commits.
mod embedded_only {
    use super::*;

    #[tokio::test]
    async fn reopen_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let ring = {
            let s = EmbeddedStore::open(dir.path()).unwrap();
            s.bump_generation(1, 1).await.unwrap();
            s.bump_generation(1, 1).await.unwrap();
            s.bump_generation(2, -5).await.unwrap();
            s.add_device(1, 1, "apns", "a", 500, 32).await.unwrap();
            s.add_device(1, 1, "fcm", "b", 500, 32).await.unwrap();
            s.add_device(1, 2, "fcm", "c", 1, 32).await.unwrap();
            s.token_keys().await.unwrap()
        };
        let s = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(s.generation(1, 1).await.unwrap(), 2);
        assert_eq!(s.generation(2, -5).await.unwrap(), 1);
        assert_eq!(s.bump_generation(1, 1).await.unwrap(), 3);
        assert_eq!(s.token_keys().await.unwrap(), ring);
        // The tie-break sequence goes on where it was: a device added in the same
        // millisecond after the restart still counts as newer.
        s.add_device(1, 1, "apns", "0", 500, 32).await.unwrap();
        let list = s.devices(1, 1).await.unwrap();
        let names: Vec<_> = list.iter().map(|d| d.device_token.as_str()).collect();
        assert_eq!(names, ["a", "b", "0"]);
        assert_eq!(s.devices(1, 2).await.unwrap().len(), 1);
        assert!(s.remove_device(1, 2, "c").await.unwrap());
    }

    #[tokio::test]
    async fn owners_are_known_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = EmbeddedStore::open(dir.path()).unwrap();
            s.add_device(1, 1, "apns", "t", 1, 32).await.unwrap();
            s.add_device(1, 1, "apns", "u", 2, 32).await.unwrap();
            s.add_device(2, 1, "apns", "t", 3, 32).await.unwrap();
            assert_eq!(s.stats().devices, 3);
        }
        let s = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(s.stats().devices, 3);
        s.add_device(1, 2, "fcm", "t", 4, 32).await.unwrap();
        let names = |list: Vec<DeviceRecord>| -> Vec<String> {
            list.into_iter().map(|d| d.device_token).collect()
        };
        assert_eq!(names(s.devices(1, 1).await.unwrap()), ["u"]);
        assert_eq!(names(s.devices(1, 2).await.unwrap()), ["t"]);
        assert_eq!(names(s.devices(2, 1).await.unwrap()), ["t"]);
        assert!(!s.remove_device(1, 1, "t").await.unwrap());
        assert!(s.remove_device(1, 1, "u").await.unwrap());
        assert_eq!(s.stats().devices, 2);
    }

    #[tokio::test]
    async fn a_token_listed_twice_is_left_with_its_newest_owner_at_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = EmbeddedStore::open(dir.path()).unwrap();
            s.add_device(1, 5, "apns", "t", 100, 32).await.unwrap();
            s.add_device(1, 5, "apns", "u", 100, 32).await.unwrap();
        }
        // Rows no writer leaves: "t" also under users 3 (older) and 9 (newer).
        {
            let db = redb::Database::open(dir.path().join(DATABASE_FILE)).unwrap();
            let table: redb::TableDefinition<(i32, i64, &str), (&str, i64, u64)> =
                redb::TableDefinition::new("user_devices");
            let txn = db.begin_write().unwrap();
            {
                let mut rows = txn.open_table(table).unwrap();
                rows.insert((1, 3, "t"), ("fcm", 50, 1)).unwrap();
                rows.insert((1, 9, "t"), ("fcm", 200, 1)).unwrap();
            }
            txn.commit().unwrap();
        }
        let s = EmbeddedStore::open(dir.path()).unwrap();
        let names = |list: Vec<DeviceRecord>| -> Vec<String> {
            list.into_iter().map(|d| d.device_token).collect()
        };
        assert!(s.devices(1, 3).await.unwrap().is_empty());
        assert_eq!(names(s.devices(1, 5).await.unwrap()), ["u"]);
        assert_eq!(names(s.devices(1, 9).await.unwrap()), ["t"]);
        // And the index knows: moving it takes it from user 9.
        s.add_device(1, 4, "apns", "t", 300, 32).await.unwrap();
        assert!(s.devices(1, 9).await.unwrap().is_empty());
        assert_eq!(s.stats().devices, 2);
    }

    #[tokio::test]
    async fn close_releases_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let first = EmbeddedStore::open(dir.path()).unwrap();
        first.bump_generation(1, 1).await.unwrap();
        let err = EmbeddedStore::open(dir.path()).err().unwrap();
        let message = err.to_string();
        assert!(matches!(err, StoreError::Open { .. }), "{message}");
        assert!(message.contains(DATABASE_FILE), "{message}");

        first.close().await.unwrap();
        let second = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(second.generation(1, 1).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DATABASE_FILE);
        let mut junk = vec![0u8; 64 * 1024];
        for (i, b) in junk.iter_mut().enumerate() {
            *b = (i * 7 % 251) as u8;
        }
        std::fs::write(&path, &junk).unwrap();
        let err = EmbeddedStore::open(dir.path()).err().unwrap();
        assert!(matches!(err, StoreError::Open { .. }), "{err}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_damaged_store_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = EmbeddedStore::open(dir.path()).unwrap();
            for i in 0..200 {
                s.add_device(1, i, "apns", &format!("tok{i}"), i, 32)
                    .await
                    .unwrap();
            }
        }
        // Damage the header behind its magic number: the commit slots and their checksums.
        let path = dir.path().join(DATABASE_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        for b in bytes.iter_mut().take(4096).skip(32) {
            *b ^= 0x5a;
        }
        std::fs::write(&path, &bytes).unwrap();
        let err = EmbeddedStore::open(dir.path()).err().unwrap();
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_foreign_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DATABASE_FILE);
        {
            let db = redb::Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            let table: redb::TableDefinition<&str, &str> = redb::TableDefinition::new("other");
            txn.open_table(table).unwrap().insert("k", "v").unwrap();
            txn.commit().unwrap();
        }
        let err = EmbeddedStore::open(dir.path()).err().unwrap();
        assert!(matches!(err, StoreError::Incompatible { .. }), "{err}");
        assert!(err.to_string().contains(DATABASE_FILE), "{err}");
    }

    #[tokio::test]
    async fn an_unusable_directory_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let err = EmbeddedStore::open(&file).err().unwrap();
        assert!(matches!(err, StoreError::Open { .. }), "{err}");
        assert!(err.to_string().contains("not-a-dir"), "{err}");
    }

    #[tokio::test]
    async fn concurrent_writes_share_commits() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let mut tasks = JoinSet::new();
        for i in 0..256i64 {
            let s = s.clone();
            tasks.spawn(async move {
                s.add_device(1, i, "apns", &format!("tok{i}"), i, 32)
                    .await
                    .unwrap()
            });
        }
        tasks.join_all().await;
        let stats = s.stats();
        assert_eq!(stats.committed_ops, 256);
        assert!(stats.commits < 256, "{stats:?}");
    }

    #[tokio::test]
    async fn reads_without_writes_do_not_commit() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedStore::open(dir.path()).unwrap();
        s.ping().await.unwrap();
        assert!(!s.remove_device(1, 1, "nothing").await.unwrap());
        s.token_keys().await.unwrap(); // creates the ring: one commit
        s.token_keys().await.unwrap(); // from memory
        assert_eq!(s.stats().commits, 1);
    }
}
