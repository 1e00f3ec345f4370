//! The semantics every [`Store`] keeps, run against each implementation, and the tests of
//! the embedded store alone (reopen, locking, corrupt files, group commit).

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

    const SIGN: &str = "9F86D081884C7D659A2FEAA0C55AD015";

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
        assert!(s.check_and_record_sign(1, SIGN, ttl).await.unwrap());
        assert!(!s.check_and_record_sign(1, SIGN, ttl).await.unwrap());
        let lower = SIGN.to_ascii_lowercase();
        assert!(!s.check_and_record_sign(1, &lower, ttl).await.unwrap());
        assert!(s.check_and_record_sign(2, SIGN, ttl).await.unwrap());
        let err = s.check_and_record_sign(1, "nothex", ttl).await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidInput { what: "sign", .. }));
    }

    pub(super) async fn replays_expire(s: Arc<dyn Store>) {
        let ttl = Duration::from_millis(40);
        assert!(s.check_and_record_sign(1, SIGN, ttl).await.unwrap());
        assert!(!s.check_and_record_sign(1, SIGN, ttl).await.unwrap());
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(s.check_and_record_sign(1, SIGN, ttl).await.unwrap());
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
            s.check_and_record_sign(1, SIGN, Duration::from_secs(1))
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

    /// What `kill -9` leaves on disk is the files as they are at that moment: copying them
    /// while the store runs makes the same image. Writes acknowledged since the last
    /// checkpoint are in the commit log, not yet in the database file, and opening the
    /// image replays them.
    #[tokio::test]
    async fn acknowledged_writes_survive_a_crash_through_the_commit_log() {
        let dir = tempfile::tempdir().unwrap();
        let options = EmbeddedOptions {
            checkpoint_interval: Duration::from_secs(3600),
            ..EmbeddedOptions::default()
        };
        let s = EmbeddedStore::open_with(dir.path(), options).unwrap();
        let ring = s.token_keys().await.unwrap(); // a checkpoint
        for i in 0..100 {
            s.add_device(1, i % 10, "fcm", &format!("tok{i}"), 1000 + i, 5)
                .await
                .unwrap();
        }
        assert!(s.remove_device(1, 9, "tok99").await.unwrap());
        assert_eq!(s.bump_generation(1, 3).await.unwrap(), 1);
        assert_eq!(s.bump_generation(1, 3).await.unwrap(), 2);
        let expected: Vec<Vec<DeviceRecord>> = {
            let mut all = Vec::new();
            for uid in 0..10 {
                all.push(s.devices(1, uid).await.unwrap());
            }
            all
        };
        assert_eq!(expected[0].len(), 5);
        assert_eq!(expected[9].len(), 4);

        let image = |with_log: bool| {
            let copy = tempfile::tempdir().unwrap();
            let db = dir.path().join(DATABASE_FILE);
            std::fs::copy(&db, copy.path().join(DATABASE_FILE)).unwrap();
            if with_log {
                let log = dir.path().join("rtmd.log");
                std::fs::copy(&log, copy.path().join("rtmd.log")).unwrap();
            }
            copy
        };
        // Without the log, the database file alone has only the last checkpoint.
        let bare = image(false);
        let crashed = image(true);
        {
            let r = EmbeddedStore::open(bare.path()).unwrap();
            assert!(r.devices(1, 0).await.unwrap().is_empty());
            assert_eq!(r.generation(1, 3).await.unwrap(), 0);
            assert_eq!(r.token_keys().await.unwrap(), ring);
        }
        let r = EmbeddedStore::open(crashed.path()).unwrap();
        for (uid, devices) in expected.iter().enumerate() {
            assert_eq!(
                &r.devices(1, uid as i64).await.unwrap(),
                devices,
                "user {uid}"
            );
        }
        assert_eq!(r.generation(1, 3).await.unwrap(), 2);
        assert_eq!(r.token_keys().await.unwrap(), ring);
        // The tie-break sequence goes on after the replayed ones (same millisecond as the
        // newest replayed device, so only the sequence orders them).
        r.add_device(1, 0, "apns", "newest", 1090, 5).await.unwrap();
        let list = r.devices(1, 0).await.unwrap();
        assert_eq!(list.last().map(|d| d.device_token.as_str()), Some("newest"));
        // Replayed writes are checkpointed: a second crash image of the replayed store
        // holds them without its log.
        drop(r);
        let again = EmbeddedStore::open(crashed.path()).unwrap();
        assert_eq!(again.generation(1, 3).await.unwrap(), 2);
        s.close().await.unwrap();
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
