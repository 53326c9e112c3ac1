//! One behavioural suite for every [`Backend`]: each test below runs once
//! against a SQLite file and once against a PostgreSQL schema of its own,
//! so the two stores cannot drift apart. A test gets a way to open more
//! handles on the same store (another process, another fleet member).

use std::time::Duration;

use super::testing::t;
use super::{Backend, PgStore, Silence, Store};

type Open<'a> = &'a dyn Fn() -> Box<dyn Backend>;

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let path = dir.path().join("state");
                    let open = || Box::new(super::Store::open(&path).unwrap()) as Box<dyn super::Backend>;
                    super::$name(&open);
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    let Some(db) = super::super::postgres::testing::test_db() else { return };
                    let open = || Box::new(super::PgStore::connect(&db.dsn).unwrap()) as Box<dyn super::Backend>;
                    super::$name(&open);
                }
            )*
        }
    };
}

suite!(
    silences_replace_expire_and_lift,
    next_silence_end_is_the_earliest_live_one,
    a_lease_keeps_others_out_until_it_expires_or_is_released,
    release_leases_except_keeps_the_named_and_others_leases,
    of_members_racing_for_a_free_lease_exactly_one_wins,
    touch_writes_again_and_again,
);

fn silences_replace_expire_and_lift(open: Open<'_>) {
    let store = open();
    assert_eq!(store.silenced("p", t(0)).unwrap(), None);
    store
        .silence("p", t(60), Some("maintenance"), t(0))
        .unwrap();
    store.silence("q", t(30), None, t(0)).unwrap();
    let s = store.silenced("p", t(59)).unwrap().unwrap();
    assert_eq!(
        s,
        Silence {
            probe: "p".into(),
            until: t(60),
            reason: Some("maintenance".into()),
            created_at: t(0),
        }
    );
    assert_eq!(
        store.silenced("p", t(60)).unwrap(),
        None,
        "expired at `until`"
    );
    let live = |now| -> Vec<String> {
        store
            .silences(now)
            .unwrap()
            .into_iter()
            .map(|s| s.probe)
            .collect()
    };
    assert_eq!(live(t(10)), ["p", "q"]);
    assert_eq!(live(t(30)), ["p"]);
    // Extending replaces the old silence.
    store.silence("p", t(120), None, t(50)).unwrap();
    assert_eq!(store.silenced("p", t(100)).unwrap().unwrap().reason, None);
    assert!(store.unsilence("p").unwrap());
    assert!(!store.unsilence("p").unwrap());
    assert_eq!(store.silenced("p", t(100)).unwrap(), None);
    // Another handle (another process, another member) sees the same.
    store.silence("Zeta", t(500), None, t(0)).unwrap();
    store.silence("alpha", t(500), None, t(0)).unwrap();
    let names: Vec<String> = open()
        .silences(t(100))
        .unwrap()
        .into_iter()
        .map(|s| s.probe)
        .collect();
    assert_eq!(names, ["Zeta", "alpha"], "byte order, like SQLite's");
}

fn next_silence_end_is_the_earliest_live_one(open: Open<'_>) {
    let store = open();
    assert_eq!(store.next_silence_end(t(0)).unwrap(), None);
    store.silence("a", t(90), None, t(0)).unwrap();
    store.silence("b", t(30), None, t(0)).unwrap();
    assert_eq!(store.next_silence_end(t(0)).unwrap(), Some(t(30)));
    assert_eq!(store.next_silence_end(t(30)).unwrap(), Some(t(90)));
    assert_eq!(store.next_silence_end(t(90)).unwrap(), None);
}

fn a_lease_keeps_others_out_until_it_expires_or_is_released(open: Open<'_>) {
    let store = open();
    let ttl = Duration::from_secs(60);
    assert!(store.acquire_lease("p", "cron-1", ttl, t(0)).unwrap());
    assert!(!store.acquire_lease("p", "cron-2", ttl, t(59)).unwrap());
    assert!(
        store.acquire_lease("q", "cron-2", ttl, t(59)).unwrap(),
        "per probe"
    );
    // Renewing its own lease pushes the expiry out.
    assert!(store.acquire_lease("p", "cron-1", ttl, t(30)).unwrap());
    assert!(!store.acquire_lease("p", "cron-2", ttl, t(89)).unwrap());
    assert!(
        store.acquire_lease("p", "cron-2", ttl, t(90)).unwrap(),
        "expired"
    );
    // Releasing someone else's lease does nothing; one's own frees it.
    store.release_lease("p", "cron-1").unwrap();
    assert!(!store.acquire_lease("p", "cron-1", ttl, t(91)).unwrap());
    store.release_lease("p", "cron-2").unwrap();
    assert!(store.acquire_lease("p", "cron-1", ttl, t(91)).unwrap());
    // A ttl too large to represent saturates instead of failing.
    assert!(store.acquire_lease("r", "x", Duration::MAX, t(0)).unwrap());
    assert!(!store.acquire_lease("r", "y", ttl, t(1_000_000)).unwrap());
}

fn release_leases_except_keeps_the_named_and_others_leases(open: Open<'_>) {
    let store = open();
    let ttl = Duration::from_secs(60);
    for probe in ["a", "b", "c"] {
        assert!(store.acquire_lease(probe, "me", ttl, t(0)).unwrap());
    }
    assert!(store.acquire_lease("d", "other", ttl, t(0)).unwrap());
    assert_eq!(
        store
            .release_leases_except("me", &["b".to_string()])
            .unwrap(),
        2
    );
    assert!(
        store.acquire_lease("a", "other", ttl, t(1)).unwrap(),
        "freed"
    );
    assert!(
        !store.acquire_lease("b", "other", ttl, t(1)).unwrap(),
        "kept"
    );
    assert!(
        !store.acquire_lease("d", "me", ttl, t(1)).unwrap(),
        "not mine"
    );
    assert_eq!(store.release_leases_except("me", &[]).unwrap(), 1);
}

fn of_members_racing_for_a_free_lease_exactly_one_wins(open: Open<'_>) {
    let members: Vec<Box<dyn Backend>> = (0..4).map(|_| open()).collect();
    for round in 0..5 {
        let probe = format!("p{round}");
        let barrier = std::sync::Barrier::new(members.len());
        let won = std::thread::scope(|s| {
            let racers: Vec<_> = members
                .iter()
                .enumerate()
                .map(|(i, member)| {
                    let (barrier, probe) = (&barrier, &probe);
                    s.spawn(move || {
                        barrier.wait();
                        member
                            .acquire_lease(
                                probe,
                                &format!("member-{i}"),
                                Duration::from_secs(60),
                                t(0),
                            )
                            .unwrap()
                    })
                })
                .collect();
            racers
                .into_iter()
                .map(|r| r.join().unwrap())
                .filter(|won| *won)
                .count()
        });
        assert_eq!(won, 1, "round {round}");
    }
}

fn touch_writes_again_and_again(open: Open<'_>) {
    let store = open();
    store.touch(t(0)).unwrap();
    store.touch(t(1)).unwrap();
    open().touch(t(2)).unwrap();
    assert!(!store.location().is_empty());
}

#[test]
fn both_stores_are_backends() {
    fn backend<T: Backend + Clone>() {}
    backend::<Store>();
    backend::<PgStore>();
}
