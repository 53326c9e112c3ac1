//! One run of one probe.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, sleep, sleep_until, timeout_at};
use tracing::{Instrument, debug, error_span, info, warn};

use super::TOKEN_LEN;
use super::outcome::{Finding, Outcome, Phases, RunResult};
use crate::config::Probe;
use crate::gateway::{Gateway, SubmitError, SubmitRequest};
use crate::net::ErrorClass;
use crate::receiver::poll::{self, Poller, Watch};
use crate::receiver::{DeliveryStatus, Event, Inbox, Waiter};

/// How long to wait, after the arrival, for a receipt that is on its way.
const RECEIPT_GRACE: Duration = Duration::from_millis(250);

/// A run's identity: the id that goes into every log line, header and alert,
/// and the short token from it that goes into the SMS body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Correlation {
    pub id: String,
    pub token: String,
}

impl Correlation {
    /// A fresh ULID; the token is its random tail (50 bits), lowercased so that
    /// handsets or carriers changing case cannot break the match.
    pub fn new() -> Self {
        let id = ulid::Ulid::generate().to_string();
        let token = Correlation::token_of(&id);
        Correlation { id, token }
    }

    /// The token of correlation id `id`: for a provider that echoes the id
    /// we gave a message (instead of a callback URL naming the run).
    pub fn token_of(id: &str) -> String {
        let start = id.chars().count().saturating_sub(TOKEN_LEN);
        id.chars()
            .skip(start)
            .collect::<String>()
            .to_ascii_lowercase()
    }

    /// Renders a body template: `{probe}`, `{token}`, `{correlation_id}`.
    pub fn render(&self, template: &str, probe: &str) -> String {
        template
            .replace("{probe}", probe)
            .replace("{token}", &self.token)
            .replace("{correlation_id}", &self.id)
    }
}

impl Default for Correlation {
    fn default() -> Self {
        Correlation::new()
    }
}

/// What a run is wired to: where it submits, and where it looks for arrivals.
#[derive(Clone, Copy)]
pub struct Wiring<'a> {
    pub gateway: &'a dyn Gateway,
    /// The token index webhooks and pollers feed.
    pub inbox: &'a Arc<Inbox>,
    /// Our public URL, for the gateway's status callbacks (None: no callbacks).
    pub callback_base: Option<&'a url::Url>,
    /// For polling receivers: the receiver's name and its poller.
    pub poller: Option<(&'a str, &'a dyn Poller)>,
}

/// Runs `probe` once as wired, waiting for what comes back.
pub async fn run(probe: &Probe, wiring: Wiring<'_>) -> RunResult {
    run_as(probe, wiring, Correlation::new()).await
}

/// Runs `probe` under a correlation id chosen by the caller (the daemon knows
/// the id of a run it may have to record as interrupted).
pub async fn run_as(probe: &Probe, wiring: Wiring<'_>, correlation: Correlation) -> RunResult {
    let span = span(probe, &correlation);
    run_with(probe, wiring, correlation).instrument(span).await
}

/// The span every log line of a run is in, so each carries the probe and
/// the correlation id. At ERROR level: a span is only recorded when its own
/// level is enabled, and at the default WARN an INFO span would leave a
/// run's warnings with neither.
pub fn span(probe: &Probe, correlation: &Correlation) -> tracing::Span {
    error_span!(
        "run",
        probe = %probe.name,
        gateway = %probe.gateway,
        correlation_id = %correlation.id
    )
}

async fn run_with(probe: &Probe, wiring: Wiring<'_>, correlation: Correlation) -> RunResult {
    let Wiring {
        gateway,
        inbox,
        callback_base,
        poller,
    } = wiring;
    let started_at = chrono::Utc::now();
    let body = correlation.render(&probe.body, &probe.name);
    // Register before submitting: a fast carrier may deliver before submit returns.
    let mut waiter = inbox.register(&correlation.token);
    let deadline = Instant::now() + probe.timeout;
    let mut result = RunResult {
        probe: probe.name.clone(),
        gateway: probe.gateway.clone(),
        receiver: probe.receiver.clone(),
        correlation_id: correlation.id.clone(),
        started_at,
        outcome: Outcome::Error,
        reason: None,
        code: None,
        latency: None,
        threshold: probe.threshold,
        timeout: probe.timeout,
        phases: Phases::default(),
        message_id: None,
        attempts: 0,
        findings: Vec::new(),
        gateway_errors: Vec::new(),
    };
    let status_callback =
        callback_base
            .zip(gateway.status_callback_path())
            .and_then(|(base, path)| {
                let mut url = base.join(path.trim_start_matches('/')).ok()?;
                url.query_pairs_mut().append_pair("run", &correlation.token);
                Some(url.to_string())
            });
    info!(from = %probe.from.masked(), to = %probe.to.masked(), "submitting");
    let request = SubmitRequest {
        from: &probe.from,
        to: &probe.to,
        body: &body,
        correlation_id: &correlation.id,
        status_callback,
    };
    // Phases count from the start of the attempt that got accepted: time lost to
    // failed attempts and backoff is ours, not the pipeline's, and is reported
    // as a `Retried` finding instead of inflating the latency.
    let t0 = match submit_with_retries(probe, gateway, request, deadline, &mut result).await {
        Ok((message_id, attempt_start)) => {
            result.phases.submit = Some(attempt_start.elapsed());
            info!(%message_id, submit_ms = attempt_start.elapsed().as_millis() as u64, "accepted");
            result.message_id = Some(message_id);
            attempt_start
        }
        Err(e) => {
            result.outcome = match e.class {
                ErrorClass::Permanent => Outcome::Rejected,
                ErrorClass::Transient => Outcome::Error,
            };
            result.reason = Some(match e.class {
                ErrorClass::Permanent => format!("gateway rejected the message: {}", e.reason),
                ErrorClass::Transient => format!(
                    "gateway kept failing ({} attempt{}): {}",
                    result.attempts,
                    if result.attempts == 1 { "" } else { "s" },
                    e.reason
                ),
            });
            result.code = e.code;
            warn!(outcome = %result.outcome, reason = result.reason.as_deref().unwrap_or(""), "run failed at submit");
            return result;
        }
    };
    let watch = Watch {
        to: probe.to.clone(),
        since: started_at,
        correlation_id: correlation.id.clone(),
    };
    let failing = std::sync::Mutex::new(None);
    let polling = async {
        match poller {
            Some((receiver, poller)) => (
                receiver,
                poll::watch_reporting(poller, &watch, inbox, receiver, &failing).await,
            ),
            None => std::future::pending().await,
        }
    };
    wait_for_arrival(&mut waiter, polling, t0, deadline, probe, &mut result).await;
    let last_poll = failing.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let (Outcome::Lost, Some(e), Some((receiver, _))) = (result.outcome, last_poll, poller) {
        // Nothing arrived, but the receiver could not look either: that is a
        // receiver failure, not proof of a lost message.
        result.outcome = Outcome::Error;
        result.reason = Some(format!(
            "receiver `{receiver}` could not look for the message: its last poll failed: {e}"
        ));
    }
    if result.outcome == Outcome::Lost
        && let Some(silence) = inbox.silence(&probe.receiver)
    {
        // The receiving phone said nothing for too long: it is offline,
        // which the canary's own alert tells; the message is not proved lost.
        result.outcome = Outcome::Error;
        result.reason = Some(format!(
            "{}; the message may have arrived unseen",
            silence.describe(&probe.receiver, None)
        ));
    }
    match result.outcome {
        Outcome::Ok => info!(latency_ms = millis(result.latency), "arrived"),
        _ => {
            warn!(outcome = %result.outcome, reason = result.reason.as_deref().unwrap_or(""), "run failed")
        }
    }
    result
}

/// Submits, retrying transient errors with exponential backoff (honouring
/// Retry-After) as long as another attempt can start before the deadline.
async fn submit_with_retries(
    probe: &Probe,
    gateway: &dyn Gateway,
    request: SubmitRequest<'_>,
    deadline: Instant,
    result: &mut RunResult,
) -> Result<(String, Instant), SubmitError> {
    let mut absorbed = Vec::new();
    loop {
        result.attempts += 1;
        let attempt = result.attempts;
        let attempt_start = Instant::now();
        let outcome = match timeout_at(deadline, gateway.submit(request.clone())).await {
            // A provider's words enter the run here: numbers in them are masked
            // before they reach a log line, the reason, the store or an alert.
            Ok(outcome) => outcome.map_err(SubmitError::masked),
            Err(_) => Err(SubmitError::transient(
                "the run's timeout passed while submitting",
            )),
        };
        let error = match outcome {
            Ok(accepted) => {
                if !absorbed.is_empty() {
                    result.findings.push(Finding::Retried { errors: absorbed });
                }
                return Ok((accepted.message_id, attempt_start));
            }
            Err(e) => e,
        };
        result
            .gateway_errors
            .push((error.class, error.code.clone()));
        if error.class == ErrorClass::Permanent {
            return Err(error);
        }
        let backoff = probe
            .retry
            .delay_after(attempt)
            .max(error.retry_after.unwrap_or_default());
        let next = Instant::now() + backoff;
        if attempt >= probe.retry.attempts || next >= deadline {
            return Err(error);
        }
        warn!(attempt, error = %error, retry_in_ms = backoff.as_millis() as u64, "transient submit error, retrying");
        absorbed.push(error.to_string());
        sleep(backoff).await;
    }
}

/// Waits for receipts and the arrival until the deadline, while `polling`
/// (a poll receiver's loop, or nothing) runs; it only ends on a receiver failure.
async fn wait_for_arrival(
    waiter: &mut Waiter,
    polling: impl std::future::Future<Output = (&str, poll::PollError)>,
    t0: Instant,
    deadline: Instant,
    probe: &Probe,
    result: &mut RunResult,
) {
    let mut duplicates = 0u32;
    let mut arrived = false;
    tokio::pin!(polling);
    loop {
        let event = tokio::select! {
            event = waiter.recv() => event,
            _ = sleep_until(deadline) => None,
            (receiver, error) = &mut polling => {
                result.outcome = Outcome::Error;
                result.reason = Some(format!("receiver `{receiver}` failed: {error}"));
                return;
            }
        };
        let Some(event) = event else { break };
        if apply(event, t0, result, &mut arrived, &mut duplicates) {
            break;
        }
    }
    // A "delivered" receipt often races the arrival. When the carrier has been
    // sending receipts, give it a moment so the phase breakdown is complete;
    // the outcome is already decided and does not wait on this.
    if arrived && result.phases.sent.is_some() && result.phases.delivered.is_none() {
        let grace = (Instant::now() + RECEIPT_GRACE).min(deadline);
        while result.phases.delivered.is_none() {
            match timeout_at(grace, waiter.recv()).await {
                Ok(Some(event)) => {
                    apply(event, t0, result, &mut arrived, &mut duplicates);
                }
                _ => break,
            }
        }
    }
    while let Some(event) = waiter.try_recv() {
        apply(event, t0, result, &mut arrived, &mut duplicates);
    }
    if duplicates > 0 {
        result
            .findings
            .push(Finding::Duplicates { count: duplicates });
    }
    if arrived || result.outcome == Outcome::Undelivered {
        if arrived {
            judge_latency(probe, result);
        }
        return;
    }
    result.outcome = Outcome::Lost;
    let waited = humantime::format_duration(round_ms(probe.timeout));
    result.reason = Some(if result.phases.delivered.is_some() {
        result.findings.push(Finding::FakeDlr);
        format!("the gateway reported it delivered, but nothing arrived within {waited} (fake DLR)")
    } else if result.phases.sent.is_some() {
        format!("sent by the carrier, but nothing arrived within {waited}")
    } else {
        format!("accepted by the gateway, but nothing arrived within {waited}")
    });
}

/// Records one event; true when the run is decided.
fn apply(
    event: Event,
    t0: Instant,
    result: &mut RunResult,
    arrived: &mut bool,
    duplicates: &mut u32,
) -> bool {
    match event {
        Event::Arrival(a) => {
            if *arrived {
                *duplicates += 1;
                return false;
            }
            *arrived = true;
            result.phases.received = Some(a.at.saturating_duration_since(t0));
            debug!(receiver = %a.receiver, "arrival matched");
            true
        }
        Event::Receipt(r) => {
            let at = r.at.saturating_duration_since(t0);
            debug!(status = ?r.status, code = r.error_code.as_deref().unwrap_or(""), "receipt");
            match r.status {
                DeliveryStatus::Sent => {
                    result.phases.sent.get_or_insert(at);
                }
                DeliveryStatus::Delivered => {
                    result.phases.sent.get_or_insert(at);
                    result.phases.delivered.get_or_insert(at);
                }
                status if status.is_failure() && !*arrived => {
                    result.outcome = Outcome::Undelivered;
                    let code = r.error_code.filter(|c| !c.is_empty() && c != "0");
                    result.reason = Some(match (r.explanation, &code) {
                        (Some(reason), _) => format!("carrier could not deliver: {reason}"),
                        (None, Some(c)) => format!("carrier could not deliver (error {c})"),
                        (None, None) => {
                            "carrier could not deliver (no error code given)".to_string()
                        }
                    });
                    result.code = code;
                    return true;
                }
                _ => {}
            }
            false
        }
    }
}

fn judge_latency(probe: &Probe, result: &mut RunResult) {
    let latency = result.phases.received.unwrap_or_default();
    result.latency = Some(latency);
    if latency > probe.threshold {
        result.outcome = Outcome::Slow;
        result.reason = Some(slow_reason(latency, probe.threshold));
    } else {
        result.outcome = Outcome::Ok;
    }
}

/// Why a run is `slow`, in the words alerts carry.
pub(crate) fn slow_reason(latency: Duration, threshold: Duration) -> String {
    format!(
        "arrived after {}, over the {} threshold",
        humantime::format_duration(round_ms(latency)),
        humantime::format_duration(round_ms(threshold))
    )
}

/// To the millisecond, as reasons quote durations.
pub(crate) fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

fn millis(d: Option<Duration>) -> f64 {
    d.map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_the_lowercased_tail_of_the_id() {
        let c = Correlation::new();
        assert_eq!(c.id.len(), 26);
        assert_eq!(c.token.len(), TOKEN_LEN);
        assert!(c.id.to_ascii_lowercase().ends_with(&c.token));
        assert_ne!(Correlation::new().token, c.token);
    }

    #[test]
    fn renders_all_placeholders() {
        let c = Correlation {
            id: "01ARZ3NDEKTSV4RRFFQ69G5FAV".into(),
            token: "rrffq69g5fav".into(),
        };
        assert_eq!(
            c.render("{probe}: {token} / {correlation_id}", "p1"),
            "p1: rrffq69g5fav / 01ARZ3NDEKTSV4RRFFQ69G5FAV"
        );
    }
}

/// The engine under tokio's paused clock, against a scripted in-memory gateway:
/// retries, backoff, deadlines and every outcome, with exact timings and no sleeps.
#[cfg(test)]
mod engine_tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use super::*;
    use crate::config::{E164, RetryPolicy};
    use crate::gateway::Accepted;
    use crate::net::BoxFuture;
    use crate::probe::Status;
    use crate::receiver::{Arrival, Receipt};

    /// What the fake carrier does after accepting.
    #[derive(Clone, Default)]
    struct Delivery {
        arrive_after: Option<Duration>,
        copies: u32,
        receipt: Option<(Duration, &'static str, Option<&'static str>)>,
    }

    struct Scripted {
        answers: Mutex<VecDeque<Result<(), SubmitError>>>,
        delivery: Delivery,
        inbox: Arc<Inbox>,
    }

    impl Gateway for Scripted {
        fn name(&self) -> &str {
            "scripted"
        }

        fn submit<'a>(
            &'a self,
            req: SubmitRequest<'a>,
        ) -> BoxFuture<'a, Result<Accepted, SubmitError>> {
            let answer = self.answers.lock().unwrap().pop_front().unwrap_or(Ok(()));
            let body = req.body.to_string();
            let token = req.status_callback.clone().unwrap_or_default();
            let inbox = Arc::clone(&self.inbox);
            let delivery = self.delivery.clone();
            Box::pin(async move {
                answer?;
                tokio::spawn(async move {
                    if let Some((after, status, code)) = delivery.receipt {
                        let inbox = Arc::clone(&inbox);
                        let token = token.clone();
                        tokio::spawn(async move {
                            sleep(after).await;
                            let status = DeliveryStatus::parse(status);
                            let r = Receipt {
                                at: Instant::now(),
                                status,
                                error_code: code.map(String::from),
                                // What a provider's receipt table says of 30003.
                                explanation: code.map(|_| "destination handset unreachable"),
                                message_id: None,
                            };
                            inbox.receipt(token.rsplit('=').next().unwrap_or(""), r);
                        });
                    }
                    if let Some(after) = delivery.arrive_after {
                        sleep(after).await;
                        for _ in 0..delivery.copies.max(1) {
                            let a = Arrival {
                                at: Instant::now(),
                                receiver: "inbox".into(),
                                message_id: None,
                            };
                            inbox.arrival(&body, a);
                        }
                    }
                });
                Ok(Accepted {
                    message_id: "SM1".into(),
                })
            })
        }

        fn status_callback_path(&self) -> Option<String> {
            Some("/cb".into())
        }
    }

    fn probe() -> Probe {
        Probe {
            name: "p".into(),
            file: "p.toml".into(),
            gateway: "scripted".into(),
            receiver: "inbox".into(),
            from: E164::parse("+15005550006").unwrap(),
            to: E164::parse("+15005550100").unwrap(),
            enabled: true,
            schedule: crate::schedule::Schedule::Every(Duration::from_secs(300)),
            timeout: Duration::from_secs(60),
            threshold: Duration::from_secs(5),
            retry: RetryPolicy {
                attempts: 3,
                initial: Duration::from_secs(1),
                factor: 3.0,
            },
            failure_threshold: 2,
            success_threshold: 1,
            reminder: Duration::from_secs(3600),
            body: "sms-canary {probe} {token}".into(),
            alerts: Vec::new(),
            alerts_explicit: false,
            runbook_url: None,
            dashboard_url: None,
            labels: Default::default(),
            alert_on_permanent: true,
        }
    }

    fn e503() -> Result<(), SubmitError> {
        Err(SubmitError::transient("gateway error (HTTP 503)"))
    }

    async fn go(
        probe: &Probe,
        answers: Vec<Result<(), SubmitError>>,
        delivery: Delivery,
    ) -> RunResult {
        let inbox = Inbox::new();
        let gw = Scripted {
            answers: Mutex::new(answers.into()),
            delivery,
            inbox: Arc::clone(&inbox),
        };
        let base = url::Url::parse("http://127.0.0.1:9/").unwrap();
        let wiring = Wiring {
            gateway: &gw,
            inbox: &inbox,
            callback_base: Some(&base),
            poller: None,
        };
        run(probe, wiring).await
    }

    /// A run whose receiver is watched for its signs of life, with
    /// `heard` before it starts (after `limit` of watching).
    async fn go_watched(limit: Duration, heard_just_before: bool) -> RunResult {
        let inbox = Inbox::new();
        inbox.watch_receiver("inbox", limit);
        tokio::time::advance(limit).await;
        if heard_just_before {
            inbox.heard_from("inbox", Instant::now());
        }
        let gw = Scripted {
            answers: Mutex::new(VecDeque::new()),
            delivery: Delivery::default(),
            inbox: Arc::clone(&inbox),
        };
        let wiring = Wiring {
            gateway: &gw,
            inbox: &inbox,
            callback_base: None,
            poller: None,
        };
        run(&probe(), wiring).await
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_arriving_at_a_silent_phone_is_an_error_not_a_loss() {
        let limit = Duration::from_secs(600);
        let r = go_watched(limit, false).await;
        assert_eq!(r.outcome, Outcome::Error, "{:?}", r.reason);
        let reason = r.reason.unwrap();
        assert!(
            reason.contains("receiving phone `inbox` offline"),
            "{reason}"
        );
        assert!(reason.contains("ping_timeout of 10m"), "{reason}");
        // Heard just before: the phone is online, so the message is lost.
        let r = go_watched(limit, true).await;
        assert_eq!(r.outcome, Outcome::Lost, "{:?}", r.reason);
    }

    fn arrives(after_ms: u64) -> Delivery {
        Delivery {
            arrive_after: Some(Duration::from_millis(after_ms)),
            ..Delivery::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn on_time_arrival_is_ok_with_exact_latency() {
        let r = go(&probe(), vec![], arrives(800)).await;
        assert_eq!(r.outcome, Outcome::Ok);
        assert_eq!(r.latency, Some(Duration::from_millis(800)));
        assert_eq!(r.attempts, 1);
        assert!(r.findings.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_transient_burst_within_the_budget_heals_silently_with_factor_3_backoff() {
        let t0 = Instant::now();
        let r = go(&probe(), vec![e503(), e503()], arrives(500)).await;
        assert_eq!(r.outcome, Outcome::Ok, "{:?}", r.reason);
        assert_eq!(r.attempts, 3);
        // Waits of 1s then 3s before the third, successful attempt; the latency
        // counts from that attempt, so the retries do not make the run slow.
        assert_eq!(t0.elapsed(), Duration::from_millis(4500));
        assert_eq!(r.latency, Some(Duration::from_millis(500)));
        assert!(matches!(&r.findings[..], [Finding::Retried { errors }] if errors.len() == 2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_longer_than_the_budget_is_an_error_with_the_last_reason() {
        let r = go(&probe(), vec![e503(), e503(), e503(), e503()], arrives(1)).await;
        assert_eq!(r.outcome, Outcome::Error);
        assert_eq!(r.attempts, 3);
        assert!(
            r.reason.as_deref().unwrap().contains("HTTP 503"),
            "{:?}",
            r.reason
        );
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_fail_at_once_without_retry() {
        let mut e = SubmitError::permanent("recipient unsubscribed (replied STOP to this sender)");
        e.code = Some("21610".into());
        let t0 = Instant::now();
        let r = go(&probe(), vec![Err(e)], arrives(1)).await;
        assert_eq!(r.outcome, Outcome::Rejected);
        assert_eq!(r.attempts, 1);
        assert_eq!(r.code.as_deref(), Some("21610"));
        assert!(r.reason.unwrap().contains("unsubscribed"));
        assert_eq!(t0.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_when_longer_than_the_backoff() {
        let mut e = SubmitError::transient("rate limited (HTTP 429)");
        e.retry_after = Some(Duration::from_secs(10));
        let t0 = Instant::now();
        let r = go(&probe(), vec![Err(e)], arrives(100)).await;
        assert_eq!(r.outcome, Outcome::Ok);
        assert_eq!(t0.elapsed(), Duration::from_millis(10_100));
        assert_eq!(r.latency, Some(Duration::from_millis(100)));
    }

    #[tokio::test(start_paused = true)]
    async fn no_retry_starts_past_the_deadline() {
        let mut p = probe();
        p.timeout = Duration::from_secs(3);
        p.threshold = Duration::from_secs(2);
        p.retry.attempts = 10;
        let t0 = Instant::now();
        let r = go(&p, vec![e503(); 10], arrives(1)).await;
        assert_eq!(r.outcome, Outcome::Error);
        // 1s wait, then the 3s wait would cross the 3s deadline: two attempts.
        assert_eq!(r.attempts, 2);
        assert_eq!(t0.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn late_arrival_over_threshold_is_slow() {
        let r = go(&probe(), vec![], arrives(7000)).await;
        assert_eq!(r.outcome, Outcome::Slow);
        assert_eq!(r.status(), Status::Warning);
        assert!(r.reason.unwrap().contains("over the 5s threshold"));
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_arriving_is_lost_exactly_at_the_timeout() {
        let t0 = Instant::now();
        let r = go(&probe(), vec![], Delivery::default()).await;
        assert_eq!(r.outcome, Outcome::Lost);
        assert_eq!(t0.elapsed(), Duration::from_secs(60));
        assert!(r.findings.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn delivered_receipt_without_arrival_is_a_fake_dlr() {
        let d = Delivery {
            receipt: Some((Duration::from_secs(2), "delivered", None)),
            ..Delivery::default()
        };
        let r = go(&probe(), vec![], d).await;
        assert_eq!(r.outcome, Outcome::Lost);
        assert_eq!(r.phases.delivered, Some(Duration::from_secs(2)));
        assert!(r.findings.contains(&Finding::FakeDlr));
        assert!(r.reason.unwrap().contains("fake DLR"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_receipt_ends_the_run_early_as_undelivered() {
        let t0 = Instant::now();
        let d = Delivery {
            receipt: Some((Duration::from_secs(3), "undelivered", Some("30003"))),
            ..Delivery::default()
        };
        let r = go(&probe(), vec![], d).await;
        assert_eq!(r.outcome, Outcome::Undelivered);
        assert_eq!(r.code.as_deref(), Some("30003"));
        assert!(r.reason.unwrap().contains("unreachable"));
        assert_eq!(t0.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn duplicate_arrivals_are_counted_not_double_judged() {
        let d = Delivery {
            arrive_after: Some(Duration::from_millis(300)),
            copies: 3,
            ..Delivery::default()
        };
        let r = go(&probe(), vec![], d).await;
        assert_eq!(r.outcome, Outcome::Ok);
        assert!(r.findings.contains(&Finding::Duplicates { count: 2 }));
    }
}
