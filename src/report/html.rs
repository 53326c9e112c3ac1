//! The status page: an overview of every probe and a page per probe with a
//! latency chart, served by the daemon on its admin listener and written to
//! one self-contained file by `sms-canary report --html`.
//!
//! Server-side HTML with inline CSS and SVG: no script, no font, no request
//! to anywhere, so it works offline, in a CI artifact and with JavaScript
//! off. Everything from the config, the store or a provider is escaped; no
//! secret is ever read here, and numbers appear masked.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::short_duration;
use super::stats::{self, ProbeStats};
use crate::alert::{AlertState, time};
use crate::config::{Config, Probe};
use crate::probe::Outcome;
use crate::store::{Lease, Silence, Store, StoreError, StoredRun, Tally};

/// The windows the overview shows availability over.
const AVAILABILITY_WINDOWS: [(&str, u64); 3] = [("24h", 1), ("7d", 7), ("30d", 30)];

/// Above this window a chart draws the hourly rollups, not each run.
const RAW_CHART_MAX: Duration = Duration::from_secs(7 * 86_400);

/// The windows a probe page offers.
pub const WINDOWS: [&str; 5] = ["24h", "7d", "30d", "90d", "365d"];

/// Where the pages link to each other: the daemon's routes, or anchors in
/// one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    Served,
    OneFile,
}

impl Links {
    fn probe(self, name: &str) -> String {
        match self {
            Links::Served => format!("/probes/{}", url_escape(name)),
            Links::OneFile => format!("#probe-{}", escape(name)),
        }
    }
}

/// One probe's row on the overview.
#[derive(Debug)]
struct Row {
    name: String,
    state: (&'static str, String),
    last: Option<StoredRun>,
    day: ProbeStats,
    availability: Vec<Option<f64>>,
    alert: Option<String>,
    labels: String,
}

/// The overview page: every configured probe (and any the store knows that
/// the config no longer has), its state and figures, the firing alerts.
pub fn overview(
    config: &Config,
    store: &Store,
    now: DateTime<Utc>,
    links: Links,
) -> Result<String, StoreError> {
    let rows = rows(config, store, now)?;
    let mut body = String::new();
    let _ = writeln!(
        body,
        "<header><h1>sms-canary: {}</h1><p class=\"muted\">{} probe{} · {} · availability is the share of due runs that ended ok; skipped and missed runs count against it</p></header>",
        escape(&config.canary.instance),
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        escape(&time(now)),
    );
    let firing: Vec<&Row> = rows.iter().filter(|r| r.alert.is_some()).collect();
    if !firing.is_empty() {
        body.push_str("<section class=\"alerts\"><h2>Firing alerts</h2><ul>\n");
        for r in firing {
            let _ = writeln!(
                body,
                "<li><a href=\"{}\">{}</a>: {}</li>",
                links.probe(&r.name),
                escape(&r.name),
                escape(r.alert.as_deref().unwrap_or(""))
            );
        }
        body.push_str("</ul></section>\n");
    }
    // Grouped by the probes' labels (`country=DE · carrier=…`), when any
    // has them: the unlabelled first, then the groups in order.
    let mut groups: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for r in &rows {
        groups.entry(r.labels.as_str()).or_default().push(r);
    }
    let grouped = groups.keys().any(|l| !l.is_empty());
    for (labels, members) in groups {
        if grouped {
            let title = if labels.is_empty() {
                "no labels"
            } else {
                labels
            };
            let _ = writeln!(body, "<h2 class=\"group\">{}</h2>", escape(title));
        }
        body.push_str(
            "<table class=\"probes\"><thead><tr><th>probe</th><th>state</th><th>last run</th>\
             <th>p50 · p95 · p99 (24h)</th><th>available 24h</th><th>7d</th><th>30d</th></tr></thead><tbody>\n",
        );
        for r in members {
            let last = r.last.as_ref().map_or_else(
                || "never".to_string(),
                |run| {
                    format!(
                        "{} <span class=\"muted\">{}</span>",
                        escape(run.outcome.as_str()),
                        escape(&time(run.started_at))
                    )
                },
            );
            let pct = |p: Option<Duration>| p.map_or_else(|| "-".to_string(), short_duration);
            let _ = write!(
                body,
                "<tr class=\"{}\"><td><a href=\"{}\">{}</a></td><td><span class=\"state {0}\">{}</span> {}</td><td>{last}</td><td>{} · {} · {}</td>",
                r.state.0,
                links.probe(&r.name),
                escape(&r.name),
                r.state.0,
                escape(&r.state.1),
                pct(r.day.p50),
                pct(r.day.p95),
                pct(r.day.p99),
            );
            for a in &r.availability {
                let _ = write!(body, "<td>{}</td>", availability(*a));
            }
            body.push_str("</tr>\n");
        }
        body.push_str("</tbody></table>\n");
    }
    Ok(page("sms-canary status", &body))
}

/// A probe's page: its state, a latency chart over `window` with the
/// threshold and each phase, failures marked and listed, silences and
/// alert firings on the timeline.
pub fn probe_page(
    config: &Config,
    store: &Store,
    name: &str,
    window: Duration,
    now: DateTime<Utc>,
    links: Links,
) -> Result<String, StoreError> {
    let body = probe_section(config, store, name, window, now, links)?;
    let back = match links {
        Links::Served => "<p><a href=\"/\">← all probes</a></p>\n",
        Links::OneFile => "",
    };
    Ok(page(
        &format!("{name} · sms-canary"),
        &format!("{back}{body}"),
    ))
}

/// Every page in one file: the overview, then each probe's section.
pub fn one_file(
    config: &Config,
    store: &Store,
    window: Duration,
    now: DateTime<Utc>,
) -> Result<String, StoreError> {
    let overview = overview(config, store, now, Links::OneFile)?;
    let mut sections = String::new();
    for name in names(config, store, now)? {
        sections.push_str(&probe_section(
            config,
            store,
            &name,
            window,
            now,
            Links::OneFile,
        )?);
    }
    Ok(overview.replace("</main>", &format!("{sections}</main>")))
}

fn probe_section(
    config: &Config,
    store: &Store,
    name: &str,
    window: Duration,
    now: DateTime<Utc>,
    links: Links,
) -> Result<String, StoreError> {
    let probe = config.probe(name);
    let since = since(now, window);
    let stats = stats::probe_stats(store, name, probe, window, now)?;
    let state = store.alert_state(name)?;
    let silence = store.silenced(name, now)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<section class=\"probe\" id=\"probe-{0}\"><h2>{0}</h2>",
        escape(name)
    );
    if let Some(p) = probe {
        let _ = writeln!(
            out,
            "<p class=\"muted\">{} → {} via {} → {} · threshold {} · timeout {} · {}{}{}</p>",
            escape(&p.from.masked()),
            escape(&p.to.masked()),
            escape(&p.gateway),
            escape(&p.receiver),
            short_duration(p.threshold),
            short_duration(p.timeout),
            escape(&p.schedule.to_string()),
            if p.enabled { "" } else { " · disabled" },
            if p.labels.is_empty() {
                String::new()
            } else {
                format!(
                    " · <span class=\"labels\">{}</span>",
                    escape(&p.labels_line())
                )
            }
        );
    } else {
        out.push_str("<p class=\"muted\">no longer in the config</p>\n");
    }
    if let Links::Served = links {
        out.push_str("<nav>");
        for w in WINDOWS {
            let _ = write!(out, "<a href=\"{}?window={w}\">{w}</a> ", links.probe(name));
        }
        out.push_str("</nav>\n");
    }
    let _ = writeln!(
        out,
        "<p>last {}: {} runs, {} of {} due ok ({}) · p50 {} · p95 {} · p99 {}</p>",
        super::window_text(window),
        stats.runs,
        stats.ok,
        stats.due,
        availability(stats.availability),
        stats.p50.map_or_else(|| "-".into(), short_duration),
        stats.p95.map_or_else(|| "-".into(), short_duration),
        stats.p99.map_or_else(|| "-".into(), short_duration),
    );
    if let Some(f) = &state.firing {
        let _ = writeln!(
            out,
            "<p class=\"firing\">alert firing ({}) since {}, {} failed runs</p>",
            f.severity.as_str(),
            escape(&time(f.since)),
            state.consecutive_failures
        );
    }
    if let Some(s) = &silence {
        let _ = writeln!(
            out,
            "<p class=\"silenced\">silenced until {}{}</p>",
            escape(&time(s.until)),
            s.reason
                .as_deref()
                .map(|r| format!(": {}", escape(r)))
                .unwrap_or_default()
        );
    }
    let threshold = probe.map(|p| p.threshold);
    // A long window charts hours; its failure list needs the failed runs only.
    let runs = if window <= RAW_CHART_MAX {
        store.runs_since(name, since, stats::MAX_RUNS)?
    } else {
        store.incident_runs(name, since, stats::MAX_RUNS)?
    };
    if window <= RAW_CHART_MAX {
        out.push_str(&chart_runs(
            &runs,
            since,
            now,
            threshold,
            &state,
            silence.as_ref(),
        ));
    } else {
        let hours = store.hourly(name, since)?;
        out.push_str(&chart_hours(
            &hours,
            since,
            now,
            threshold,
            &state,
            silence.as_ref(),
        ));
    }
    let failures: Vec<&StoredRun> = runs
        .iter()
        .rev()
        .filter(|r| r.outcome != Outcome::Ok)
        .take(100)
        .collect();
    if failures.is_empty() {
        out.push_str("<p>No failed run in the window.</p>\n");
    } else {
        out.push_str(
            "<table class=\"failures\"><thead><tr><th>started</th><th>outcome</th><th>reason</th>\
             <th>code</th><th>correlation id</th><th>message id</th></tr></thead><tbody>\n",
        );
        for r in failures {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"id\">{}</td><td class=\"id\">{}</td></tr>",
                escape(&time(r.started_at)),
                escape(r.outcome.as_str()),
                escape(r.reason.as_deref().unwrap_or("")),
                escape(r.code.as_deref().unwrap_or("")),
                escape(&r.correlation_id),
                escape(r.message_id.as_deref().unwrap_or("")),
            );
        }
        out.push_str("</tbody></table>\n");
    }
    out.push_str("</section>\n");
    Ok(out)
}

fn names(config: &Config, store: &Store, now: DateTime<Utc>) -> Result<Vec<String>, StoreError> {
    let mut names: Vec<String> = config.probes.iter().map(|p| p.name.clone()).collect();
    for known in store.counted_probes(since(now, Duration::from_secs(30 * 86_400)))? {
        if !names.contains(&known) {
            names.push(known);
        }
    }
    Ok(names)
}

fn rows(config: &Config, store: &Store, now: DateTime<Utc>) -> Result<Vec<Row>, StoreError> {
    let states: Vec<(String, AlertState)> = store.alert_states()?;
    // The cost guard's own alert: while it fires, probes are held back.
    let budget_spent = states
        .iter()
        .any(|(key, s)| key == crate::store::COST_GUARD_KEY && s.firing.is_some());
    // Who holds each probe's lease: a probe another process keeps to itself
    // is not running here, and the page says by whom.
    let leases = store.live_leases(now)?;
    let mut rows = Vec::new();
    for name in names(config, store, now)? {
        let probe = config.probe(&name);
        // The overview shows no incidents: the day's figures need no runs.
        let one_day = Duration::from_secs(86_400);
        let day_tally = store.tally(&name, since(now, one_day))?;
        let day = stats::from_parts(&name, probe, one_day, now, &day_tally, &[]);
        let mut availability = Vec::new();
        for (_, days) in AVAILABILITY_WINDOWS {
            let w = Duration::from_secs(days * 86_400);
            if w == one_day {
                availability.push(day.availability);
                continue;
            }
            let tally = store.counts(&name, since(now, w))?;
            availability.push(stats::from_parts(&name, probe, w, now, &tally, &[]).availability);
        }
        let last = store.recent_runs(Some(&name), 1)?.into_iter().next();
        let state = states.iter().find(|(p, _)| *p == name).map(|(_, s)| s);
        let silence = store.silenced(&name, now)?;
        let alert = state.and_then(|s| s.firing.as_ref()).map(|f| {
            let reason = last
                .as_ref()
                .and_then(|r| r.reason.clone())
                .unwrap_or_else(|| "failing".to_string());
            format!("{} since {}: {reason}", f.severity.as_str(), time(f.since))
        });
        rows.push(Row {
            state: state_of(
                probe,
                state,
                silence.as_ref(),
                last.as_ref(),
                budget_spent,
                leases.iter().find(|l| l.probe == name),
                now,
            ),
            name,
            last,
            day,
            availability,
            alert,
            labels: probe.map(Probe::labels_line).unwrap_or_default(),
        });
    }
    Ok(rows)
}

/// What a probe is doing, in a word (a CSS class too) and why.
fn state_of(
    probe: Option<&Probe>,
    state: Option<&AlertState>,
    silence: Option<&Silence>,
    last: Option<&StoredRun>,
    budget_spent: bool,
    lease: Option<&Lease>,
    now: DateTime<Utc>,
) -> (&'static str, String) {
    let Some(probe) = probe else {
        return ("stopped", "not running: removed from the config".into());
    };
    if !probe.enabled {
        return ("stopped", "not running: disabled".into());
    }
    if let Some(s) = silence {
        return ("silenced", format!("until {}", time(s.until)));
    }
    if let Some(f) = state.and_then(|s| s.firing.as_ref()) {
        return (
            "failing",
            format!("{} since {}", f.severity.as_str(), time(f.since)),
        );
    }
    let Some(last) = last else {
        return ("stopped", "not running: no run recorded yet".into());
    };
    // Two missed intervals: the canary is not running it.
    let interval = 86_400.0 / probe.schedule.runs_per_day().max(1e-9);
    let quiet = (now - last.started_at)
        .to_std()
        .unwrap_or_default()
        .as_secs_f64();
    if quiet > 2.0 * interval + probe.timeout.as_secs_f64() {
        let since = time(last.started_at);
        let why = if budget_spent {
            format!("not running: the cost guard's daily budget is spent since {since}")
        } else if let Some(lease) = lease {
            format!(
                "not running since {since}: its lease is held by {} until {}",
                holder_words(&lease.holder),
                time(lease.expires_at)
            )
        } else {
            format!("not running: no run since {since}")
        };
        return ("stopped", why);
    }
    match last.outcome {
        Outcome::Ok => ("ok", String::new()),
        Outcome::Slow => ("slow", "the last run was slow".into()),
        other => ("failing", format!("the last run: {other}")),
    }
}

/// A lease holder (`check-4242-01J…`) as a person reads it: "check process
/// 4242".
fn holder_words(holder: &str) -> String {
    let mut parts = holder.splitn(3, '-');
    match (
        parts.next(),
        parts.next().filter(|p| p.parse::<u32>().is_ok()),
    ) {
        (Some(kind), Some(pid)) => format!("{kind} process {pid}"),
        _ => crate::net::clip(holder, 60),
    }
}

/// A chart of each run: the phases as lines, the threshold dashed, failed
/// runs marked on top; the silence and the firing shaded.
fn chart_runs(
    runs: &[StoredRun],
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    threshold: Option<Duration>,
    state: &AlertState,
    silence: Option<&Silence>,
) -> String {
    let mut series: Vec<Series> = Vec::new();
    for (i, phase) in ["submit", "sent", "delivered", "received"]
        .iter()
        .enumerate()
    {
        let points = runs
            .iter()
            .filter_map(|r| {
                r.phases.named()[i]
                    .1
                    .map(|d| (r.started_at, d.as_secs_f64()))
            })
            .collect();
        series.push((phase, points));
    }
    let failures: Vec<(DateTime<Utc>, String)> = runs
        .iter()
        .filter(|r| r.outcome != Outcome::Ok && !r.interrupted)
        .map(|r| {
            (
                r.started_at,
                format!(
                    "{} {}: {}",
                    time(r.started_at),
                    r.outcome,
                    r.reason.as_deref().unwrap_or("")
                ),
            )
        })
        .collect();
    svg(&series, &failures, since, now, threshold, state, silence)
}

/// A chart of the hourly rollups: p50 and p95 of the arrivals per hour.
fn chart_hours(
    hours: &[(DateTime<Utc>, Tally)],
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    threshold: Option<Duration>,
    state: &AlertState,
    silence: Option<&Silence>,
) -> String {
    let line = |p: f64| {
        hours
            .iter()
            .filter_map(|(at, t)| t.latency.percentile(p).map(|d| (*at, d.as_secs_f64())))
            .collect::<Vec<_>>()
    };
    let series = vec![("received p50", line(50.0)), ("received p95", line(95.0))];
    let failures: Vec<(DateTime<Utc>, String)> = hours
        .iter()
        .filter(|(_, t)| t.runs > t.ok())
        .map(|(at, t)| {
            (
                *at,
                format!(
                    "{}: {} of {} runs failed",
                    time(*at),
                    t.runs - t.ok(),
                    t.runs
                ),
            )
        })
        .collect();
    svg(&series, &failures, since, now, threshold, state, silence)
}

/// A chart's line: its name and its points (time, seconds).
type Series<'a> = (&'a str, Vec<(DateTime<Utc>, f64)>);

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 56.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 28.0;

fn svg(
    series: &[Series],
    failures: &[(DateTime<Utc>, String)],
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    threshold: Option<Duration>,
    state: &AlertState,
    silence: Option<&Silence>,
) -> String {
    let span = (now - since).num_milliseconds().max(1) as f64;
    let x = |t: DateTime<Utc>| {
        LEFT + (WIDTH - LEFT - 8.0) * ((t - since).num_milliseconds() as f64 / span).clamp(0.0, 1.0)
    };
    let top_value = series
        .iter()
        .flat_map(|(_, points)| points.iter().map(|(_, v)| *v))
        .chain(threshold.map(|t| t.as_secs_f64() * 1.25))
        .fold(0.0_f64, f64::max)
        .max(0.001);
    let plot_h = HEIGHT - TOP - BOTTOM;
    let y = |v: f64| TOP + plot_h * (1.0 - (v / top_value).clamp(0.0, 1.0));
    let mut out = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" role=\"img\" aria-label=\"latency chart\">\n"
    );
    // The firing and the silence, shaded behind.
    if let Some(f) = &state.firing {
        let _ = writeln!(
            out,
            "<rect class=\"firing\" x=\"{:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{plot_h}\"><title>alert firing since {}</title></rect>",
            x(f.since),
            (x(now) - x(f.since)).max(1.0),
            escape(&time(f.since))
        );
    }
    if let Some(s) = silence {
        let from = s.created_at.max(since);
        let _ = writeln!(
            out,
            "<rect class=\"silenced\" x=\"{:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{plot_h}\"><title>silenced until {}</title></rect>",
            x(from),
            (x(now) - x(from)).max(1.0),
            escape(&time(s.until))
        );
    }
    // Axes and the scale.
    let _ = writeln!(
        out,
        "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/>",
        TOP + plot_h,
        WIDTH - 8.0,
        TOP + plot_h
    );
    for frac in [0.0, 0.5, 1.0] {
        let v = top_value * frac;
        let _ = writeln!(
            out,
            "<text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            LEFT - 6.0,
            y(v) + 4.0,
            short_duration(Duration::from_secs_f64(v))
        );
    }
    let _ = writeln!(
        out,
        "<text class=\"tick start\" x=\"{LEFT}\" y=\"{:.1}\">{}</text><text class=\"tick end\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
        HEIGHT - 8.0,
        escape(&time(since)),
        WIDTH - 8.0,
        HEIGHT - 8.0,
        escape(&time(now))
    );
    if let Some(t) = threshold {
        let ty = y(t.as_secs_f64());
        let _ = writeln!(
            out,
            "<line class=\"threshold\" data-seconds=\"{}\" x1=\"{LEFT}\" y1=\"{ty:.1}\" x2=\"{:.1}\" y2=\"{ty:.1}\"><title>threshold {}</title></line>",
            t.as_secs_f64(),
            WIDTH - 8.0,
            short_duration(t)
        );
    }
    for (i, (name, points)) in series.iter().enumerate() {
        if points.is_empty() {
            continue;
        }
        let path: Vec<String> = points
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
            .collect();
        let _ = writeln!(
            out,
            "<polyline class=\"series s{i}\" data-series=\"{}\" points=\"{}\"/>",
            escape(name),
            path.join(" ")
        );
        if *name == "received" || name.starts_with("received p50") {
            for (t, v) in points {
                let _ = writeln!(
                    out,
                    "<circle class=\"point\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"2\"><title>{} {}</title></circle>",
                    x(*t),
                    y(*v),
                    escape(&time(*t)),
                    short_duration(Duration::from_secs_f64(*v))
                );
            }
        }
    }
    for (t, what) in failures {
        let _ = writeln!(
            out,
            "<path class=\"failure\" d=\"M{0:.1},{1:.1} l-4,-7 h8 z\"><title>{2}</title></path>",
            x(*t),
            TOP + 8.0,
            escape(what)
        );
    }
    out.push_str("</svg>\n<p class=\"legend\">");
    for (i, (name, _)) in series.iter().enumerate() {
        let _ = write!(out, "<span class=\"key s{i}\">{}</span> ", escape(name));
    }
    out.push_str(
        "<span class=\"key threshold\">threshold</span> <span class=\"key failure\">failed run</span></p>\n",
    );
    out
}

fn since(now: DateTime<Utc>, window: Duration) -> DateTime<Utc> {
    now - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::days(365))
}

fn availability(a: Option<f64>) -> String {
    a.map_or_else(|| "-".to_string(), |a| format!("{:.2}%", a * 100.0))
}

/// Text as HTML: nothing in it can open a tag or an attribute.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn url_escape(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"icon\" href=\"data:,\"><title>{}</title><style>{STYLE}</style></head>\n<body><main>\n{body}</main></body></html>\n",
        escape(title)
    )
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2430;background:#f7f8fa}\
main{max-width:1000px;margin:0 auto;padding:16px}h1{font-size:20px}h2{font-size:16px;margin-top:28px}\
table{border-collapse:collapse;width:100%;background:#fff}th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e3e6ea;vertical-align:top}\
.muted{color:#6b7380}.state{font-weight:600;padding:1px 6px;border-radius:4px}\
.state.ok{background:#e3f6e8;color:#17692f}.state.slow{background:#fff3d6;color:#8a5a00}\
.state.failing{background:#fde3e1;color:#a1231a}.state.silenced{background:#e8e6f7;color:#4b3f99}\
.state.stopped{background:#e9ebee;color:#454c57}.firing{color:#a1231a}.silenced{color:#4b3f99}\
.alerts{background:#fde3e1;padding:8px 16px;border-radius:6px}.id{font-family:ui-monospace,monospace;font-size:12px}\
svg.chart{background:#fff;border:1px solid #e3e6ea;max-width:100%;height:auto}\
.axis{stroke:#9aa1ab}.tick{font-size:10px;fill:#6b7380;text-anchor:end}.tick.start{text-anchor:start}\
.threshold{stroke:#a1231a;stroke-dasharray:6 4;stroke-width:1.5}rect.firing{fill:#fde3e1;opacity:.6}\
rect.silenced{fill:#e8e6f7;opacity:.6}.series{fill:none;stroke-width:1.5}.s0{stroke:#9aa1ab}.s1{stroke:#7c93c3}\
.s2{stroke:#3e7bd6}.s3{stroke:#17692f}.point{fill:#17692f}.failure{fill:#a1231a}\
.legend .key{display:inline-block;margin-right:12px}.legend .key::before{content:'';display:inline-block;width:14px;height:3px;margin-right:4px;vertical-align:middle;background:currentColor}\
.key.s0{color:#9aa1ab}.key.s1{color:#7c93c3}.key.s2{color:#3e7bd6}.key.s3{color:#17692f}.key.threshold{color:#a1231a}.key.failure{color:#a1231a}\
nav a{margin-right:8px}";

#[cfg(test)]
mod tests {
    use super::*;

    /// The example config's probe, whose last run was three hours ago: long
    /// enough for the page to call it not running.
    fn quiet_for_three_hours() -> (Config, String, tempfile::TempDir, Store, DateTime<Utc>) {
        let config = Config::load(std::path::Path::new("config.example.toml")).unwrap();
        let name = config.probes[0].name.clone();
        let (dir, store) = crate::store::testing::store();
        let now = Utc::now();
        let last = now - chrono::Duration::hours(3);
        store
            .record_run(
                &crate::store::testing::run(&name, "r1", last, Outcome::Ok),
                "t",
                false,
                &AlertState::default(),
                &[],
                last,
            )
            .unwrap();
        (config, name, dir, store, now)
    }

    #[test]
    fn a_probe_held_back_by_the_cost_guard_says_so() {
        let (config, _name, _dir, store, now) = quiet_for_three_hours();
        let page = |store: &Store| overview(&config, store, now, Links::Served).unwrap();
        assert!(
            page(&store).contains("not running: no run since"),
            "{}",
            page(&store)
        );
        let spent = AlertState {
            firing: Some(crate::alert::Firing {
                since: now,
                severity: crate::alert::Severity::Critical,
                last_notified: now,
                told: true,
                channels: vec![],
                notice: None,
            }),
            ..AlertState::default()
        };
        store
            .record_alert(crate::store::COST_GUARD_KEY, &spent, &[], now)
            .unwrap();
        assert!(
            page(&store).contains("not running: the cost guard&#39;s daily budget is spent since"),
            "{}",
            page(&store)
        );
    }

    #[test]
    fn a_probe_whose_lease_another_process_holds_says_by_whom() {
        let (config, name, _dir, store, now) = quiet_for_three_hours();
        assert!(
            store
                .acquire_lease(
                    &name,
                    "check-4242-01J0000000",
                    Duration::from_secs(600),
                    now
                )
                .unwrap()
        );
        let page = overview(&config, &store, now, Links::Served).unwrap();
        assert!(
            page.contains("its lease is held by check process 4242 until"),
            "{page}"
        );
        // Another probe's lease says nothing about this one.
        store.release_lease(&name, "check-4242-01J0000000").unwrap();
        assert!(
            store
                .acquire_lease("other", "daemon-7-01J", Duration::from_secs(600), now)
                .unwrap()
        );
        let page = overview(&config, &store, now, Links::Served).unwrap();
        assert!(page.contains("not running: no run since"), "{page}");
    }

    #[test]
    fn escaping_leaves_no_markup() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }
}
