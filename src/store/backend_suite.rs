//! One behavioural suite for every [`Backend`]: each test below runs once
//! against a SQLite file and once against a PostgreSQL schema of its own,
//! so the two stores cannot drift apart. A test gets a way to open more
//! handles on the same store (another process, another fleet member).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::millis;
use super::rollups::hour_of;
use super::testing::{item, notice, run, t};
use super::{
    Backend, BeginRun, Begun, CRASH_REASON, OutboxItem, PgStore, Silence, StartedRun, Store,
    StoreError, StoredRun,
};
use crate::alert::{AlertState, Firing, Severity};
use crate::probe::{Finding, Outcome};

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
    a_receiver_is_heard_at_its_latest_sign_of_life,
    incident_runs_are_the_failed_runs_and_the_runs_that_end_them,
    counts_are_the_tallys_counts_without_histograms,
    dead_letters_handled_by_hand_are_counted,
    failures_are_counted_and_a_clean_store_checks_clean,
    recovering_a_holder_records_its_runs_as_interrupted_and_frees_its_leases,
    of_senders_racing_for_the_outbox_each_entry_goes_to_one,
    silences_replace_expire_and_lift,
    next_silence_end_is_the_earliest_live_one,
    a_lease_keeps_others_out_until_it_expires_or_is_released,
    release_leases_except_keeps_the_named_and_others_leases,
    live_leases_are_the_unexpired_ones_by_probe,
    of_members_racing_for_a_free_lease_exactly_one_wins,
    touch_writes_again_and_again,
    records_a_run_with_its_state_and_notices_once,
    a_failed_outbox_insert_rolls_the_run_back,
    alert_states_default_and_list,
    recent_runs_and_ids_are_newest_first_and_filtered,
    counts_outcomes_since,
    percentiles_use_nearest_rank_over_arrived_runs,
    counts_messages_with_an_id_since,
    a_claimed_entry_is_given_to_no_other_sender_until_its_claim_expires,
    due_is_oldest_first_and_limited,
    a_retry_waits_for_its_time_then_delivery_ends_it,
    without_a_retry_it_becomes_a_dead_letter,
    marking_an_unknown_entry_is_an_error,
    recording_a_run_replaces_its_started_row,
    begin_run_leases_writes_ahead_or_says_why_not,
    interrupting_a_run_records_it_once_and_frees_its_lease,
    runs_are_rolled_up_as_recorded_and_pruned_in_batches,
    a_window_reads_hours_then_days_and_counts_each_run_once,
    a_firing_alert_or_an_undelivered_notice_keeps_its_runs,
    a_firing_alerts_runs_neither_lose_their_notices_nor_hold_up_pruning,
    pruning_at_the_shortest_retention_leaves_the_cost_guards_day_whole,
);

fn a_receiver_is_heard_at_its_latest_sign_of_life(open: Open<'_>) {
    let store = open();
    assert_eq!(store.last_heard("phone").unwrap(), None);
    store.note_heard("phone", t(60)).unwrap();
    store.note_heard("phone", t(30)).unwrap();
    assert_eq!(store.last_heard("phone").unwrap(), Some(t(60)));
    store.note_heard("phone", t(90)).unwrap();
    assert_eq!(store.last_heard("phone").unwrap(), Some(t(90)));
    assert_eq!(store.last_heard("other").unwrap(), None);
}

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

fn live_leases_are_the_unexpired_ones_by_probe(open: Open<'_>) {
    let store = open();
    assert!(store.live_leases(t(0)).unwrap().is_empty());
    let ttl = Duration::from_secs(60);
    assert!(store.acquire_lease("b", "check-2-x", ttl, t(0)).unwrap());
    assert!(store.acquire_lease("a", "daemon-1-y", ttl, t(30)).unwrap());
    let live = store.live_leases(t(59)).unwrap();
    assert_eq!(
        live,
        [
            super::Lease {
                probe: "a".into(),
                holder: "daemon-1-y".into(),
                expires_at: t(90),
            },
            super::Lease {
                probe: "b".into(),
                holder: "check-2-x".into(),
                expires_at: t(60),
            },
        ]
    );
    let live: Vec<String> = store
        .live_leases(t(60))
        .unwrap()
        .into_iter()
        .map(|l| l.probe)
        .collect();
    assert_eq!(live, ["a"], "expired at `expires_at`");
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
    assert!(store.size_bytes() > 0);
    assert!(!store.location().is_empty());
}

fn firing(at: DateTime<Utc>) -> AlertState {
    AlertState {
        consecutive_failures: 2,
        consecutive_successes: 0,
        firing: Some(Firing {
            since: at,
            severity: Severity::Critical,
            last_notified: at,
            told: true,
            channels: vec![],
            notice: None,
        }),
        withheld: None,
        failing_since: Some(at),
    }
}

fn records_a_run_with_its_state_and_notices_once(open: Open<'_>) {
    let store = open();
    let mut r = run("p1", "01A", t(0), Outcome::Lost);
    r.findings = vec![Finding::FakeDlr, Finding::Duplicates { count: 2 }];
    r.code = Some("30003".into());
    r.phases.delivered = Some(Duration::from_millis(900));
    let items = [item("slack", &r, t(60)), item("mail", &r, t(60))];
    assert!(
        store
            .record_run(&r, "eu-1", true, &firing(t(60)), &items, t(60))
            .unwrap()
    );
    // Again, even with a different state and notices: nothing changes.
    let again = [item("slack", &r, t(61))];
    assert!(
        !store
            .record_run(&r, "eu-1", false, &AlertState::default(), &again, t(61))
            .unwrap()
    );
    assert_eq!(store.alert_state("p1").unwrap(), firing(t(60)));
    assert_eq!(store.pending_notifications().unwrap(), 2);

    let runs = store.recent_runs(None, 10).unwrap();
    assert_eq!(runs.len(), 1);
    let s = &runs[0];
    assert_eq!(
        (
            s.probe.as_str(),
            s.correlation_id.as_str(),
            s.instance.as_str()
        ),
        ("p1", "01A", "eu-1")
    );
    assert_eq!(
        (s.started_at, s.outcome, s.interrupted),
        (t(0), Outcome::Lost, true)
    );
    assert_eq!((&s.reason, &s.code), (&r.reason, &r.code));
    assert_eq!(
        (s.latency, s.threshold, s.timeout),
        (r.latency, r.threshold, r.timeout)
    );
    assert_eq!(s.phases, r.phases);
    assert_eq!((&s.message_id, s.attempts), (&r.message_id, r.attempts));
    assert_eq!(s.findings, r.findings);
}

fn a_failed_outbox_insert_rolls_the_run_back(open: Open<'_>) {
    let store = open();
    let r = run("p1", "01A", t(0), Outcome::Lost);
    let slack = item("slack", &r, t(0));
    // The same (notification, channel) twice violates the outbox key.
    let err = store
        .record_run(&r, "i", false, &firing(t(0)), &[slack.clone(), slack], t(0))
        .unwrap_err();
    assert!(err.to_string().contains("record run"), "{err}");
    assert!(store.recent_runs(None, 10).unwrap().is_empty());
    assert_eq!(store.alert_state("p1").unwrap(), AlertState::default());
    assert_eq!(store.pending_notifications().unwrap(), 0);
}

fn alert_states_default_and_list(open: Open<'_>) {
    let store = open();
    assert_eq!(store.alert_state("nobody").unwrap(), AlertState::default());
    for (probe, id) in [("b", "1"), ("a", "2"), ("b", "3")] {
        let r = run(probe, id, t(0), Outcome::Lost);
        store
            .record_run(&r, "i", false, &firing(t(id.parse().unwrap())), &[], t(0))
            .unwrap();
    }
    let states = store.alert_states().unwrap();
    let names: Vec<_> = states.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(states[1].1, firing(t(3)), "the latest state wins");
}

fn recent_runs_and_ids_are_newest_first_and_filtered(open: Open<'_>) {
    let store = open();
    for (i, probe) in ["a", "b", "a", "a"].iter().enumerate() {
        let r = run(probe, &format!("id{i}"), t(i as i64), Outcome::Ok);
        store
            .record_run(&r, "i", false, &AlertState::default(), &[], t(0))
            .unwrap();
    }
    let ids = |runs: Vec<StoredRun>| -> Vec<String> {
        runs.into_iter().map(|r| r.correlation_id).collect()
    };
    assert_eq!(
        ids(store.recent_runs(Some("a"), 2).unwrap()),
        ["id3", "id2"]
    );
    assert_eq!(
        ids(store.recent_runs(None, usize::MAX).unwrap()),
        ["id3", "id2", "id1", "id0"]
    );
    assert_eq!(
        store.recent_correlation_ids("a", 10).unwrap(),
        ["id3", "id2", "id0"]
    );
    assert!(store.recent_correlation_ids("c", 10).unwrap().is_empty());
}

fn counts_outcomes_since(open: Open<'_>) {
    let store = open();
    let outcomes = [
        ("a", Outcome::Lost, 0),
        ("a", Outcome::Ok, 10),
        ("a", Outcome::Lost, 20),
        ("b", Outcome::Ok, 30),
        ("a", Outcome::Slow, 40),
    ];
    for (i, (probe, outcome, at)) in outcomes.into_iter().enumerate() {
        let r = run(probe, &i.to_string(), t(at), outcome);
        store
            .record_run(&r, "i", false, &AlertState::default(), &[], t(at))
            .unwrap();
    }
    assert_eq!(
        store.outcome_counts(Some("a"), t(10)).unwrap(),
        [(Outcome::Ok, 1), (Outcome::Slow, 1), (Outcome::Lost, 1)]
    );
    assert_eq!(
        store.outcome_counts(None, t(0)).unwrap(),
        [(Outcome::Ok, 2), (Outcome::Slow, 1), (Outcome::Lost, 2)]
    );
    assert!(store.outcome_counts(None, t(41)).unwrap().is_empty());
}

fn percentiles_use_nearest_rank_over_arrived_runs(open: Open<'_>) {
    let store = open();
    // 1..=20 seconds, shuffled; plus a lost run that must not count.
    for (i, secs) in [
        7, 3, 20, 1, 15, 9, 12, 2, 18, 5, 11, 4, 19, 6, 14, 8, 17, 10, 16, 13,
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = run("a", &format!("ok{i}"), t(i as i64), Outcome::Ok);
        r.latency = Some(Duration::from_secs(secs));
        store
            .record_run(&r, "i", false, &AlertState::default(), &[], t(0))
            .unwrap();
    }
    let mut lost = run("a", "lost", t(0), Outcome::Lost);
    lost.latency = Some(Duration::from_secs(999));
    store
        .record_run(&lost, "i", false, &AlertState::default(), &[], t(0))
        .unwrap();

    let p = store.latency_percentiles(Some("a"), t(0)).unwrap().unwrap();
    // n = 20: p50 = rank 10, p95 = rank 19, p99 = rank 20.
    assert_eq!(p.count, 20);
    assert_eq!(p.p50, Duration::from_secs(10));
    assert_eq!(p.p95, Duration::from_secs(19));
    assert_eq!(p.p99, Duration::from_secs(20));
    // Since t(15): the runs started at t(15)..t(19) took 8, 17, 10, 16, 13 s;
    // sorted 8 10 13 16 17, p50 = rank ceil(2.5) = 3, p95 = p99 = rank 5.
    let p = store.latency_percentiles(None, t(15)).unwrap().unwrap();
    assert_eq!(p.count, 5);
    assert_eq!(
        (p.p50, p.p95, p.p99),
        (
            Duration::from_secs(13),
            Duration::from_secs(17),
            Duration::from_secs(17)
        )
    );
    assert!(
        store
            .latency_percentiles(Some("b"), t(0))
            .unwrap()
            .is_none()
    );
}

fn counts_messages_with_an_id_since(open: Open<'_>) {
    let store = open();
    for (i, at) in [0, 10, 20].into_iter().enumerate() {
        let r = run("a", &i.to_string(), t(at), Outcome::Ok);
        store
            .record_run(&r, "i", false, &AlertState::default(), &[], t(at))
            .unwrap();
    }
    let mut rejected = run("b", "rejected", t(30), Outcome::Rejected);
    rejected.message_id = None;
    store
        .record_run(&rejected, "i", false, &AlertState::default(), &[], t(30))
        .unwrap();
    let mut cut = run("b", "cut", t(40), Outcome::Error);
    cut.message_id = None;
    store
        .record_run(&cut, "i", true, &AlertState::default(), &[], t(40))
        .unwrap();
    assert_eq!(store.messages_since(t(0)).unwrap(), 4);
    assert_eq!(store.messages_since(t(10)).unwrap(), 3);
    assert_eq!(store.messages_since(t(31)).unwrap(), 1);
    assert_eq!(store.messages_since(t(41)).unwrap(), 0);
}

/// Records one run with notices on `channels`, created at `at`.
fn queue_notice(store: &dyn Backend, id: &str, channels: &[&str], at: DateTime<Utc>) -> String {
    let r = run("p", id, at, Outcome::Lost);
    // One notice, fanned out to every channel under the same id.
    let notice = notice(&r, at);
    let items: Vec<_> = channels
        .iter()
        .map(|c| OutboxItem {
            channel: c.to_string(),
            notification: notice.clone(),
        })
        .collect();
    store
        .record_run(&r, "i", false, &AlertState::default(), &items, at)
        .unwrap();
    items[0].notification.id.clone()
}

fn due_ids(store: &dyn Backend, now: DateTime<Utc>) -> Vec<(String, String)> {
    store
        .due_notifications(now, 100)
        .unwrap()
        .into_iter()
        .map(|e| (e.notification.id, e.channel))
        .collect()
}

fn a_claimed_entry_is_given_to_no_other_sender_until_its_claim_expires(open: Open<'_>) {
    let store = open();
    let id = queue_notice(&*store, "1", &["slack"], t(0));
    let hold = std::time::Duration::from_secs(45);
    let a = store.claim_next("a", t(1), hold).unwrap().unwrap();
    assert_eq!(a.notification.id, id);
    assert_eq!(
        store.claim_next("b", t(2), hold).unwrap(),
        None,
        "a holds it"
    );
    // a died mid-send: once the claim expires, b gets it.
    let b = store.claim_next("b", t(46), hold).unwrap().unwrap();
    assert_eq!(b.notification.id, id);
    store.mark_delivered(&id, "slack", t(47)).unwrap();
    assert_eq!(
        store.claim_next("a", t(200), hold).unwrap(),
        None,
        "delivered"
    );
    // A failure ends the claim too: the retry is due for anyone.
    let id2 = queue_notice(&*store, "2", &["slack"], t(300));
    store.claim_next("a", t(300), hold).unwrap().unwrap();
    store
        .mark_failed(&id2, "slack", "503", Some(t(301)), t(300))
        .unwrap();
    assert_eq!(
        store
            .claim_next("b", t(301), hold)
            .unwrap()
            .unwrap()
            .notification
            .id,
        id2
    );
}

fn due_is_oldest_first_and_limited(open: Open<'_>) {
    let store = open();
    let old = queue_notice(&*store, "1", &["slack"], t(0));
    let new = queue_notice(&*store, "2", &["slack"], t(10));
    assert_eq!(
        due_ids(&*store, t(10)),
        [(old.clone(), "slack".into()), (new, "slack".into())]
    );
    assert_eq!(due_ids(&*store, t(5)), [(old, "slack".into())]);
    assert_eq!(store.due_notifications(t(10), 1).unwrap().len(), 1);
    let entry = &store.due_notifications(t(10), 1).unwrap()[0];
    assert_eq!((entry.attempts, entry.dead), (0, false));
    assert_eq!((entry.created_at, entry.next_attempt_at), (t(0), t(0)));
    assert_eq!(entry.notification.correlation_ids, ["1"]);
}

fn a_retry_waits_for_its_time_then_delivery_ends_it(open: Open<'_>) {
    let store = open();
    let id = queue_notice(&*store, "1", &["slack", "mail"], t(0));
    store
        .mark_failed(&id, "slack", "503 from slack", Some(t(30)), t(1))
        .unwrap();
    assert_eq!(due_ids(&*store, t(29)), [(id.clone(), "mail".into())]);
    assert_eq!(store.next_notification_due().unwrap(), Some(t(0)));
    store.mark_delivered(&id, "mail", t(2)).unwrap();
    assert_eq!(store.next_notification_due().unwrap(), Some(t(30)));
    let entries = store.due_notifications(t(30), 10).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].attempts, 1);
    assert_eq!(entries[0].last_error.as_deref(), Some("503 from slack"));
    assert_eq!(store.pending_notifications().unwrap(), 1);
    store.mark_delivered(&id, "slack", t(31)).unwrap();
    assert!(due_ids(&*store, t(1000)).is_empty());
    assert_eq!(store.pending_notifications().unwrap(), 0);
    assert_eq!(store.next_notification_due().unwrap(), None);
}

fn without_a_retry_it_becomes_a_dead_letter(open: Open<'_>) {
    let store = open();
    let first = queue_notice(&*store, "1", &["slack"], t(0));
    let second = queue_notice(&*store, "2", &["slack"], t(5));
    store
        .mark_failed(&first, "slack", "gone", None, t(1))
        .unwrap();
    store
        .mark_failed(&second, "slack", "gone too", None, t(6))
        .unwrap();
    assert!(due_ids(&*store, t(1000)).is_empty());
    assert_eq!(store.pending_notifications().unwrap(), 0);
    assert_eq!(store.next_notification_due().unwrap(), None);
    let dead = store.dead_letters(10).unwrap();
    let ids: Vec<_> = dead.iter().map(|e| e.notification.id.as_str()).collect();
    assert_eq!(ids, [second.as_str(), first.as_str()], "newest first");
    assert!(dead.iter().all(|e| e.dead && e.attempts == 1));
    assert_eq!(store.dead_letter_count().unwrap(), 2);
    assert_eq!(store.dead_letters(1).unwrap().len(), 1);
}

fn marking_an_unknown_entry_is_an_error(open: Open<'_>) {
    let store = open();
    let id = queue_notice(&*store, "1", &["slack"], t(0));
    let err = store.mark_delivered(&id, "mail", t(1)).unwrap_err();
    assert!(
        matches!(err, StoreError::UnknownNotification { .. }),
        "{err}"
    );
    let err = store
        .mark_failed("nope", "slack", "x", None, t(1))
        .unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

fn of_senders_racing_for_the_outbox_each_entry_goes_to_one(open: Open<'_>) {
    let store = open();
    let mut queued = Vec::new();
    for i in 0..30 {
        queued.push(queue_notice(
            &*store,
            &format!("r{i}"),
            &["slack", "mail"],
            t(i),
        ));
    }
    let senders: Vec<Box<dyn Backend>> = (0..4).map(|_| open()).collect();
    let hold = Duration::from_secs(60);
    let claimed: Vec<(String, String)> = std::thread::scope(|s| {
        let racers: Vec<_> = senders
            .iter()
            .enumerate()
            .map(|(i, sender)| {
                s.spawn(move || {
                    let mut mine = Vec::new();
                    // Claimed and never marked: a claim alone must keep the others off.
                    while let Some(e) = sender.claim_next(&format!("s{i}"), t(100), hold).unwrap() {
                        mine.push((e.notification.id, e.channel));
                    }
                    mine
                })
            })
            .collect();
        racers.into_iter().flat_map(|r| r.join().unwrap()).collect()
    });
    assert_eq!(claimed.len(), 60, "every entry claimed");
    let distinct: std::collections::BTreeSet<_> = claimed.iter().collect();
    assert_eq!(distinct.len(), 60, "none claimed twice");
    for id in &queued {
        assert!(distinct.contains(&(id.clone(), "mail".to_string())));
    }
}

fn started(id: &str, holder: &str, at: DateTime<Utc>) -> StartedRun {
    StartedRun {
        probe: "p".into(),
        correlation_id: id.into(),
        instance: "i".into(),
        holder: holder.into(),
        started_at: at,
        threshold: Duration::from_secs(5),
        timeout: Duration::from_secs(60),
    }
}

fn begin(id: &str, holder: &str, at: DateTime<Utc>, cap: u32) -> BeginRun {
    BeginRun {
        run: started(id, holder, at),
        lease_ttl: Duration::from_secs(600),
        cap,
        in_flight: 0,
    }
}

fn recording_a_run_replaces_its_started_row(open: Open<'_>) {
    let store = open();
    store.start_run(&started("a", "h1", t(0))).unwrap();
    store.start_run(&started("a", "h1", t(0))).unwrap();
    store.start_run(&started("b", "h1", t(1))).unwrap();
    assert_eq!(store.started_runs().unwrap(), ["a", "b"]);
    let r = run("p", "a", t(0), Outcome::Ok);
    store
        .record_run(&r, "i", false, &AlertState::default(), &[], t(2))
        .unwrap();
    assert_eq!(store.started_runs().unwrap(), ["b"]);
}

fn begin_run_leases_writes_ahead_or_says_why_not(open: Open<'_>) {
    let store = open();
    let started_ok = Begun::Started {
        cost_guard_firing: false,
    };
    assert_eq!(
        store.begin_run(&begin("a", "h1", t(0), 2)).unwrap(),
        started_ok
    );
    assert_eq!(store.started_runs().unwrap(), ["a"]);
    // The lease is h1's: another holder is refused and writes nothing.
    assert_eq!(
        store.begin_run(&begin("b", "h2", t(1), 2)).unwrap(),
        Begun::LeaseHeld {
            holder: "h1".into()
        }
    );
    assert_eq!(store.started_runs().unwrap(), ["a"]);
    // Recorded (it sent a message) and released: h2 may run it.
    let r = run("p", "a", t(0), Outcome::Ok);
    store
        .record_run(&r, "i", false, &AlertState::default(), &[], t(2))
        .unwrap();
    store.release_lease("p", "h1").unwrap();
    assert_eq!(
        store.begin_run(&begin("b", "h2", t(3), 2)).unwrap(),
        started_ok
    );
    let r = run("p", "b", t(3), Outcome::Ok);
    store
        .record_run(&r, "i", false, &AlertState::default(), &[], t(4))
        .unwrap();
    // Two messages in the window, cap two: refused until the first
    // leaves the window, 24 hours after it started.
    assert_eq!(
        store.begin_run(&begin("c", "h2", t(5), 2)).unwrap(),
        Begun::CostGuard {
            sent: 2,
            resumes_at: t(0) + chrono::Duration::hours(24),
        }
    );
    // Runs this process has in flight count too.
    let mut with_one_going = begin("c", "h2", t(5), 3);
    with_one_going.in_flight = 1;
    assert!(matches!(
        store.begin_run(&with_one_going).unwrap(),
        Begun::CostGuard { sent: 3, .. }
    ));
    assert!(store.started_runs().unwrap().is_empty());
}

fn interrupting_a_run_records_it_once_and_frees_its_lease(open: Open<'_>) {
    let store = open();
    store.begin_run(&begin("a", "h1", t(0), 10)).unwrap();
    assert!(store.interrupt_run("a", "cut off").unwrap());
    assert!(!store.interrupt_run("a", "again").unwrap(), "idempotent");
    let runs = store.recent_runs(None, 10).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].reason.as_deref(), runs[0].interrupted),
        (Some("cut off"), true)
    );
    assert!(
        store
            .acquire_lease("p", "h2", Duration::from_secs(60), t(1))
            .unwrap()
    );
    assert!(!store.interrupt_run("never-started", "x").unwrap());
}

fn recovering_a_holder_records_its_runs_as_interrupted_and_frees_its_leases(open: Open<'_>) {
    let store = open();
    store.start_run(&started("a", "dead", t(0))).unwrap();
    store.start_run(&started("b", "alive", t(1))).unwrap();
    let ttl = std::time::Duration::from_secs(600);
    assert!(store.acquire_lease("p", "dead", ttl, t(0)).unwrap());
    assert!(store.acquire_lease("q", "alive", ttl, t(0)).unwrap());
    let before = store.alert_state("p").unwrap();

    assert_eq!(store.recover_holder("dead").unwrap(), ["a"]);
    assert_eq!(store.started_runs().unwrap(), ["b"]);
    let runs = store.recent_runs(None, 10).unwrap();
    assert_eq!(runs.len(), 1);
    let a = &runs[0];
    assert_eq!(
        (a.correlation_id.as_str(), a.outcome, a.interrupted),
        ("a", Outcome::Error, true)
    );
    assert_eq!(a.reason.as_deref(), Some(CRASH_REASON));
    assert_eq!((a.started_at, a.timeout), (t(0), Duration::from_secs(60)));
    assert_eq!(store.alert_state("p").unwrap(), before, "nothing counted");
    // Its lease is free at once; the live holder's is not.
    assert!(store.acquire_lease("p", "next", ttl, t(1)).unwrap());
    assert!(!store.acquire_lease("q", "next", ttl, t(1)).unwrap());
    // Again: nothing left to do.
    assert!(store.recover_holder("dead").unwrap().is_empty());
    assert_eq!(store.recent_runs(None, 10).unwrap().len(), 1);
}

fn runs_are_rolled_up_as_recorded_and_pruned_in_batches(open: Open<'_>) {
    let store = open();
    for i in 0..30 {
        let outcome = if i % 10 == 0 {
            Outcome::Lost
        } else {
            Outcome::Ok
        };
        let r = run("p", &format!("r{i}"), t(i * 600), outcome);
        store
            .record_run(&r, "i", false, &AlertState::default(), &[], t(i * 600))
            .unwrap();
    }
    let tally = store.tally("p", t(0)).unwrap();
    assert_eq!(tally.runs, 30);
    assert_eq!(tally.ok(), 27);
    assert_eq!(tally.by_outcome[&Outcome::Lost], 3);
    assert_eq!(tally.latency.count(), 27);
    // Pruning the raw runs keeps the rollups.
    let mut pruned = 0;
    loop {
        let p = store.prune(t(30 * 600), t(-1)).unwrap();
        if p.is_empty() {
            break;
        }
        pruned += p.runs;
    }
    assert_eq!(pruned, 30);
    assert!(store.recent_runs(Some("p"), 100).unwrap().is_empty());
    assert_eq!(store.tally("p", t(0)).unwrap().runs, 30);
    // Old rollups go too.
    store.prune(t(0), t(100 * 3600)).unwrap();
    assert_eq!(store.tally("p", t(0)).unwrap().runs, 0);
}

fn a_window_reads_hours_then_days_and_counts_each_run_once(open: Open<'_>) {
    let store = open();
    // Every 50 minutes for five days, from mid-morning of a day.
    let starts: Vec<DateTime<Utc>> = (0..144).map(|i| t(i * 3000)).collect();
    for (i, at) in starts.iter().enumerate() {
        let outcome = if i % 7 == 0 {
            Outcome::Lost
        } else {
            Outcome::Ok
        };
        let r = run("p", &format!("r{i}"), *at, outcome);
        store
            .record_run(&r, "i", false, &AlertState::default(), &[], *at)
            .unwrap();
    }
    // Windows starting at a day's midnight, mid-day, in the first hour.
    for since in [
        t(-86_400),
        t(0),
        t(7_000),
        t(86_400 * 2 + 5_000),
        t(400_000),
    ] {
        let tally = store.tally("p", since).unwrap();
        let hour = |d: &DateTime<Utc>| hour_of(millis(*d));
        let inside: Vec<(usize, &DateTime<Utc>)> = starts
            .iter()
            .enumerate()
            .filter(|(_, at)| hour(at) >= hour(&since))
            .collect();
        let lost = inside.iter().filter(|(i, _)| i % 7 == 0).count() as u64;
        assert_eq!(tally.runs, inside.len() as u64, "since {since}");
        assert_eq!(
            tally.by_outcome.get(&Outcome::Lost).copied().unwrap_or(0),
            lost
        );
        // The first run, not the start of its day: a young probe is due
        // from there.
        assert_eq!(
            tally.first,
            inside.first().map(|(_, at)| **at),
            "since {since}"
        );
    }
    // The charts read hours.
    let hours = store.hourly("p", t(0)).unwrap();
    assert!(hours.len() > 100, "{}", hours.len());
    assert_eq!(hours.iter().map(|(_, t)| t.runs).sum::<u64>(), 144);
}

fn a_firing_alert_or_an_undelivered_notice_keeps_its_runs(open: Open<'_>) {
    let store = open();
    let r = run("firing", "f1", t(0), Outcome::Lost);
    let state = AlertState {
        firing: Some(crate::alert::Firing {
            since: t(0),
            severity: crate::alert::Severity::Critical,
            last_notified: t(0),
            told: true,
            channels: vec![],
            notice: None,
        }),
        ..AlertState::default()
    };
    store.record_run(&r, "i", false, &state, &[], t(0)).unwrap();
    let q = run("queued", "q1", t(0), Outcome::Lost);
    store
        .record_run(
            &q,
            "i",
            false,
            &AlertState::default(),
            &[item("slack", &q, t(0))],
            t(0),
        )
        .unwrap();
    let gone = run("old", "o1", t(0), Outcome::Ok);
    store
        .record_run(&gone, "i", false, &AlertState::default(), &[], t(0))
        .unwrap();
    let p = store.prune(t(3600), t(-1)).unwrap();
    assert_eq!(p.runs, 1);
    let left: Vec<String> = store
        .recent_runs(None, 10)
        .unwrap()
        .into_iter()
        .map(|r| r.correlation_id)
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&"f1".to_string()) && left.contains(&"q1".to_string()));
}

/// A probe whose alert has fired for longer than the retention keeps its
/// runs and the notices they told, since the resolve threads under the first
/// one's message; and more than a batch of them at the head of the runs
/// must not stop other probes' old runs from going.
fn a_firing_alerts_runs_neither_lose_their_notices_nor_hold_up_pruning(open: Open<'_>) {
    let store = open();
    let firing = AlertState {
        firing: Some(Firing {
            since: t(0),
            severity: Severity::Critical,
            last_notified: t(0),
            told: true,
            channels: vec![],
            notice: None,
        }),
        ..AlertState::default()
    };
    let told = run("down", "d0", t(0), Outcome::Lost);
    let first = item("slack", &told, t(0));
    let first_id = first.notification.id.clone();
    store
        .record_run(&told, "i", false, &firing, &[first], t(0))
        .unwrap();
    store
        .mark_delivered_as(&first_id, "slack", Some("1700000000.000100"), t(1))
        .unwrap();
    let batch = super::PRUNE_BATCH as i64;
    for i in 1..=batch + 10 {
        let r = run("down", &format!("d{i}"), t(i), Outcome::Lost);
        let notice = item("slack", &r, t(i));
        let id = notice.notification.id.clone();
        store
            .record_run(&r, "i", false, &firing, &[notice], t(i))
            .unwrap();
        store.mark_delivered(&id, "slack", t(i)).unwrap();
    }
    // Another probe's old runs, each with a delivered notice, after them.
    for i in 0..5 {
        let r = run("fine", &format!("f{i}"), t(batch + 100 + i), Outcome::Lost);
        let notice = item("slack", &r, t(batch + 100 + i));
        let id = notice.notification.id.clone();
        store
            .record_run(&r, "i", false, &AlertState::default(), &[notice], t(0))
            .unwrap();
        store
            .mark_delivered(&id, "slack", t(batch + 100 + i))
            .unwrap();
    }
    let mut pruned = 0;
    for _ in 0..20 {
        let p = store.prune(t(10 * batch), t(-1)).unwrap();
        if p.is_empty() {
            break;
        }
        pruned += p.runs;
    }
    assert_eq!(pruned, 5, "the other probe's old runs go");
    assert!(store.recent_runs(Some("fine"), 10).unwrap().is_empty());
    assert_eq!(
        store.recent_runs(Some("down"), 1000).unwrap().len() as i64,
        batch + 11
    );
    assert_eq!(
        store.delivered_ref(&first_id, "slack").unwrap().as_deref(),
        Some("1700000000.000100"),
        "the firing's message is still there to thread the resolve under"
    );
}

/// `retention` is at least a day (the loader refuses less), and pruning at
/// exactly a day leaves every run of the cost guard's 24 hours in place: a
/// store opened afresh, which counts from the rows, counts the same.
fn pruning_at_the_shortest_retention_leaves_the_cost_guards_day_whole(open: Open<'_>) {
    let store = open();
    let now = t(10 * 86_400);
    let day = chrono::Duration::days(1);
    let ago = |secs: i64| now - chrono::Duration::seconds(secs);
    for (i, at) in [ago(86_401), ago(86_399), ago(43_200), ago(60)]
        .into_iter()
        .enumerate()
    {
        let r = run("p", &format!("r{i}"), at, Outcome::Ok);
        store
            .record_run(&r, "i", false, &AlertState::default(), &[], at)
            .unwrap();
    }
    assert_eq!(store.messages_since(now - day).unwrap(), 3);
    while !store.prune(now - day, t(-1)).unwrap().is_empty() {}
    assert_eq!(store.recent_runs(Some("p"), 10).unwrap().len(), 3);
    assert_eq!(store.messages_since(now - day).unwrap(), 3);
    assert_eq!(
        open().messages_since(now - day).unwrap(),
        3,
        "counted afresh"
    );
}

fn failures_are_counted_and_a_clean_store_checks_clean(open: Open<'_>) {
    let store = open();
    store.quick_check().unwrap();
    store.integrity_check().unwrap();
    assert!(store.error_counts().is_empty());
    assert_eq!(store.failed_within(Duration::from_secs(60)), None);
    assert!(store.mark_delivered("no-such", "slack", t(0)).is_err());
    assert_eq!(store.error_counts(), [("mark notification delivered", 1)]);
    let last = store.failed_within(Duration::from_secs(60)).unwrap();
    assert!(last.contains("no-such"), "{last}");
    assert_eq!(store.failed_within(Duration::ZERO), None);
}

fn dead_letters_handled_by_hand_are_counted(open: Open<'_>) {
    let store = open();
    assert_eq!(store.outbox_actions().unwrap(), Default::default());
    let id = queue_notice(&*store, "r1", &["slack", "mail"], t(0));
    for channel in ["slack", "mail"] {
        store.mark_failed(&id, channel, "gone", None, t(1)).unwrap();
    }
    assert_eq!(store.retry_dead(Some(&id), t(2)).unwrap(), 2);
    store.mark_failed(&id, "slack", "gone", None, t(3)).unwrap();
    assert_eq!(store.purge_dead(None, None).unwrap(), 1);
    assert_eq!(store.retry_dead(None, t(4)).unwrap(), 0, "nothing dead");
    let actions = open().outbox_actions().unwrap();
    assert_eq!((actions.requeued, actions.purged), (2, 1));
}

fn incident_runs_are_the_failed_runs_and_the_runs_that_end_them(open: Open<'_>) {
    use crate::report::stats::incidents;
    let store = open();
    let pattern = [
        Outcome::Ok,
        Outcome::Slow,
        Outcome::Lost,
        Outcome::Ok,
        Outcome::Ok,
        Outcome::Lost, // interrupted: says nothing about the pipeline
        Outcome::Ok,
        Outcome::Error,
        Outcome::Ok,
        Outcome::Ok,
        Outcome::Rejected,
    ];
    for (i, outcome) in pattern.iter().enumerate() {
        let r = run("p", &format!("{i:02}"), t(i as i64 * 60), *outcome);
        store
            .record_run(
                &r,
                "eu-1",
                i == 5,
                &AlertState::default(),
                &[],
                t(i as i64 * 60),
            )
            .unwrap();
    }
    let q = run("q", "q0", t(30), Outcome::Lost);
    store
        .record_run(&q, "eu-1", false, &AlertState::default(), &[], t(30))
        .unwrap();
    let ids = |runs: &[StoredRun]| -> Vec<String> {
        runs.iter().map(|r| r.correlation_id.clone()).collect()
    };
    let read = store.incident_runs("p", t(0), 100).unwrap();
    assert_eq!(ids(&read), ["01", "02", "03", "07", "08", "10"]);
    let all = store.runs_since("p", t(0), 100).unwrap();
    assert_eq!(incidents(&read), incidents(&all));
    let newest = store.incident_runs("p", t(0), 2).unwrap();
    assert_eq!(ids(&newest), ["07", "08", "10"]);
    let late = store.incident_runs("p", t(7 * 60), 100).unwrap();
    assert_eq!(ids(&late), ["07", "08", "10"]);
}

fn counts_are_the_tallys_counts_without_histograms(open: Open<'_>) {
    let store = open();
    for i in 0..30 {
        let outcome = if i % 10 == 0 {
            Outcome::Lost
        } else {
            Outcome::Ok
        };
        let r = run("p", &format!("r{i}"), t(i * 6_000), outcome);
        store
            .record_run(&r, "i", false, &AlertState::default(), &[], t(i * 6_000))
            .unwrap();
    }
    for since in [t(-86_400), t(7_000), t(100_000)] {
        let (full, counts) = (
            store.tally("p", since).unwrap(),
            store.counts("p", since).unwrap(),
        );
        assert!(full.runs > 0);
        assert_eq!(
            (counts.runs, &counts.by_outcome, counts.first),
            (full.runs, &full.by_outcome, full.first)
        );
        assert!(
            full.latency.percentile(50.0).is_some() && counts.latency.percentile(50.0).is_none()
        );
    }
}

#[test]
fn both_stores_are_backends() {
    fn backend<T: Backend + Clone>() {}
    backend::<Store>();
    backend::<PgStore>();
}
