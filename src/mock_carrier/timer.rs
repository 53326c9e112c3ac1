//! A sub-millisecond sleep for delivery deadlines.
//!
//! tokio's timer wheel has a 1 ms resolution and rounds up, so a message with
//! a 20 ms latency would arrive between 20 and 22 ms late-ish, which is more
//! error than the latency benchmarks allow. One dedicated thread instead keeps
//! every pending deadline in a heap and sleeps on a channel with
//! `recv_timeout`, which the OS wakes within tens of microseconds; due
//! entries are released through oneshot channels, so waiting costs an async
//! task nothing but its oneshot. The thread starts on first use and serves
//! the whole process.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::OnceLock;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Instant;

use tokio::sync::oneshot;

struct Entry {
    deadline: Instant,
    wake: oneshot::Sender<()>,
}

// BinaryHeap is a max-heap: order by reversed deadline to pop the earliest.
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        other.deadline.cmp(&self.deadline)
    }
}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.deadline == other.deadline
    }
}
impl Eq for Entry {}

/// `None` when the thread could not be spawned; callers then use tokio's timer.
fn timer_thread() -> Option<&'static mpsc::Sender<Entry>> {
    static SENDER: OnceLock<Option<mpsc::Sender<Entry>>> = OnceLock::new();
    SENDER
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel();
            std::thread::Builder::new()
                .name("mock-carrier-timer".into())
                .spawn(move || run(rx))
                .ok()
                .map(|_| tx)
        })
        .as_ref()
}

fn run(rx: mpsc::Receiver<Entry>) {
    let mut heap: BinaryHeap<Entry> = BinaryHeap::new();
    // Sleeps cancelled before their deadline (a dropped delivery task) leave
    // a closed sender behind; sweep them out whenever the heap doubles.
    let mut sweep_at = 1024;
    loop {
        let received = match heap.peek() {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(next) => {
                let now = Instant::now();
                if next.deadline <= now {
                    Err(RecvTimeoutError::Timeout)
                } else {
                    rx.recv_timeout(next.deadline - now)
                }
            }
        };
        match received {
            Ok(entry) => heap.push(entry),
            Err(RecvTimeoutError::Timeout) => {}
            // The sender lives in a static, so this only happens at process exit.
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        while heap.peek().is_some_and(|e| e.deadline <= now) {
            if let Some(entry) = heap.pop() {
                // The waiter may be gone; nothing to do then.
                let _ = entry.wake.send(());
            }
        }
        if heap.len() >= sweep_at {
            heap.retain(|e| !e.wake.is_closed());
            sweep_at = (heap.len() * 2).max(1024);
        }
    }
}

/// Completes at `deadline` or within a fraction of a millisecond after it,
/// never before.
pub async fn sleep_until(deadline: Instant) {
    if deadline <= Instant::now() {
        return;
    }
    if let Some(tx) = timer_thread() {
        let (wake, woken) = oneshot::channel();
        if tx.send(Entry { deadline, wake }).is_ok() && woken.await.is_ok() {
            return;
        }
    }
    tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Prints the lateness distribution; asserts only what cannot flake.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wakes_at_or_just_after_the_deadline() {
        let mut late = Vec::new();
        for i in 0..50u64 {
            let deadline = Instant::now() + Duration::from_micros(1_000 + 137 * i);
            sleep_until(deadline).await;
            let now = Instant::now();
            assert!(now >= deadline);
            late.push(now - deadline);
        }
        late.sort();
        println!(
            "timer lateness: p50 {:?}, p99 {:?}, max {:?}",
            late[late.len() / 2],
            late[late.len() * 99 / 100],
            late[late.len() - 1]
        );
        assert!(late[late.len() / 2] < Duration::from_millis(50));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_concurrent_sleeps_fire_in_any_order_of_registration() {
        let start = Instant::now();
        let tasks: Vec<_> = (0..10_000u64)
            .map(|i| {
                let deadline = start + Duration::from_micros(5_000 + (i * 7919) % 20_000);
                tokio::spawn(async move {
                    sleep_until(deadline).await;
                    Instant::now() >= deadline
                })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap());
        }
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn past_deadline_and_cancelled_sleeps_are_fine() {
        sleep_until(Instant::now() - Duration::from_millis(5)).await;
        let far = Instant::now() + Duration::from_secs(3600);
        let cancelled = tokio::time::timeout(Duration::from_millis(5), sleep_until(far)).await;
        assert!(cancelled.is_err());
    }
}
