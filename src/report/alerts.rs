//! `sms-canary alerts`: the alerts firing now, one line each.

use crate::operate::FiringAlert;

/// One line per firing alert, or a line saying there is none.
pub fn render(alerts: &[FiringAlert]) -> String {
    if alerts.is_empty() {
        return "no alert is firing\n".to_string();
    }
    let mut out = String::new();
    for a in alerts {
        let mut notes = Vec::new();
        if let Some(until) = a.silenced_until {
            notes.push(format!(
                "silenced until {}",
                until.format("%Y-%m-%d %H:%M:%S UTC")
            ));
        }
        if !a.told {
            notes.push("not told yet".to_string());
        }
        let failures = if a.consecutive_failures > 0 {
            format!(", {} failed runs in a row", a.consecutive_failures)
        } else {
            String::new()
        };
        out.push_str(&format!(
            "FIRING  {:<24} {:<8} since {}{failures}{}\n",
            a.probe,
            a.severity.as_str(),
            a.since.format("%Y-%m-%d %H:%M:%S UTC"),
            if notes.is_empty() {
                String::new()
            } else {
                format!(" ({})", notes.join("; "))
            }
        ));
    }
    out.push_str("resolve one by hand: sms-canary alerts clear PROBE\n");
    out
}
