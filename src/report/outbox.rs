//! `sms-canary outbox`: the notifications not delivered yet, and the dead
//! letters, one line each, with what to do about them.

use crate::alert::time;
use crate::store::OutboxEntry;

/// One line per entry, then how to act on them.
pub fn render(entries: &[OutboxEntry]) -> String {
    if entries.is_empty() {
        return "the outbox is empty: every notification was delivered\n".to_string();
    }
    let mut out = String::new();
    for e in entries {
        let state = if e.dead { "DEAD" } else { "PENDING" };
        let next = if e.dead {
            String::new()
        } else {
            format!(", next attempt {}", time(e.next_attempt_at))
        };
        out.push_str(&format!(
            "{state:<8} {}  {:<14} {}  ({} attempt{}{next})\n",
            e.notification.id,
            e.channel,
            e.notification.headline(),
            e.attempts,
            if e.attempts == 1 { "" } else { "s" },
        ));
        if let Some(error) = &e.last_error {
            out.push_str(&format!("{:9}↳ {error}\n", ""));
        }
    }
    if entries.iter().any(|e| e.dead) {
        out.push_str(
            "dead letters: `sms-canary outbox retry ID` (or --all) sends them again, \
             `sms-canary outbox purge ID` (or --older-than 30d --yes) drops them\n",
        );
    }
    out
}
