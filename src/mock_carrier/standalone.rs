//! `sms-canary mock-carrier`: the mock as a server of its own.
//!
//! For pointing a real provider's gateway config (or its official SDK, or
//! curl) at a carrier that needs no account: `base_url =
//! "http://127.0.0.1:4010"`. The flags cover the per-number behaviours of the
//! in-process mock, each emulated provider's account (its own flags), the
//! faults to start with (which the admin API can change later), and the
//! admin API's token.
//! Bound to anything but loopback it warns: its credentials are public.

use std::collections::BTreeMap;
use std::io::Write as _;

use super::{
    DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, Faults, LatencyModel, MockCarrier, MockConfig,
    MockError, MockHandle, NumberConfig, check_http_url, is_phone_number,
};
use crate::providers::MockArgs;
use crate::redact::Secret;

#[derive(clap::Args, Debug)]
pub struct StandaloneArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:4010")]
    pub listen: String,

    /// Account SID clients authenticate with (HTTP Basic user).
    #[arg(long, value_name = "SID", default_value = DEFAULT_ACCOUNT_SID)]
    pub account_sid: String,

    /// Auth token clients authenticate with; also signs the callbacks.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "SMS_CANARY_MOCK_AUTH_TOKEN",
        default_value = DEFAULT_AUTH_TOKEN,
        hide_env_values = true
    )]
    pub auth_token: String,

    /// Delivery latency: `800ms`, `uniform:500ms..2s` or `lognormal:1s,0.5`.
    #[arg(long, value_name = "MODEL", default_value = "1s")]
    pub latency: LatencyModel,

    /// Seed for the latency draws; the same seed replays the same latencies.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,

    /// A number the mock owns: messages to it arrive as inbound messages,
    /// and are POSTed (signed) to INBOUND_URL when given. Repeatable.
    #[arg(long, value_name = "NUMBER[=INBOUND_URL]")]
    pub owned: Vec<String>,

    /// Messages to NUMBER are accepted and sent, then never delivered. Repeatable.
    #[arg(long = "drop", value_name = "NUMBER")]
    pub drop_numbers: Vec<String>,

    /// Messages to NUMBER end `undelivered` with error CODE (e.g. 30003). Repeatable.
    #[arg(long, value_name = "NUMBER=CODE")]
    pub fail: Vec<String>,

    /// The other emulated providers' accounts, each provider's own flags.
    /// Boxed so the command enum holding these args stays small.
    #[command(flatten)]
    pub accounts: Box<MockArgs>,

    /// Faults to start with, as the admin API's JSON, e.g.
    /// `{"errors":{"status":503,"count":2}}`.
    #[arg(long, value_name = "JSON")]
    pub faults: Option<String>,

    /// Require `Authorization: Bearer TOKEN` on the admin API (`/_mock/...`).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "SMS_CANARY_MOCK_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
}

impl StandaloneArgs {
    /// The mock's configuration, or an error naming the offending flag.
    pub fn to_config(&self) -> Result<MockConfig, MockError> {
        let mut numbers: BTreeMap<String, NumberConfig> = BTreeMap::new();
        for spec in &self.owned {
            let (number, url) = match spec.split_once('=') {
                Some((n, u)) => (n.trim(), Some(u.trim().to_string())),
                None => (spec.trim(), None),
            };
            check_number("--owned", number)?;
            if let Some(url) = &url {
                check_http_url(url)
                    .map_err(|message| invalid("--owned", format!("inbound URL {message}")))?;
            }
            let entry = numbers.entry(number.to_string()).or_default();
            entry.owned = true;
            entry.inbound_url = url;
        }
        for number in &self.drop_numbers {
            let number = number.trim();
            check_number("--drop", number)?;
            numbers.entry(number.to_string()).or_default().drop = true;
        }
        for spec in &self.fail {
            let (number, code) = spec
                .split_once('=')
                .ok_or_else(|| invalid("--fail", format!("expected NUMBER=CODE, got `{spec}`")))?;
            let number = number.trim();
            check_number("--fail", number)?;
            let code = code.trim().parse::<u32>().map_err(|_| {
                invalid(
                    "--fail",
                    format!("error code `{}` is not a number", code.trim()),
                )
            })?;
            numbers.entry(number.to_string()).or_default().fail = Some(code);
        }
        if self.account_sid.is_empty()
            || !self.account_sid.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(invalid(
                "--account-sid",
                "expected letters and digits, like AC + 32 hex digits".into(),
            ));
        }
        if self.auth_token.is_empty() {
            return Err(invalid("--auth-token", "must not be empty".into()));
        }
        self.latency
            .validate()
            .map_err(|message| invalid("--latency", message))?;
        let accounts = self
            .accounts
            .accounts()
            .map_err(|(flag, message)| invalid(flag, message))?;
        if self
            .admin_token
            .as_ref()
            .is_some_and(|t| t.trim().is_empty())
        {
            return Err(invalid(
                "--admin-token",
                "must not be empty (leave it out for an open admin API)".into(),
            ));
        }
        let faults = match &self.faults {
            Some(json) => {
                let faults: Faults =
                    serde_json::from_str(json).map_err(|e| invalid("--faults", e.to_string()))?;
                faults
                    .validate()
                    .map_err(|e| invalid("--faults", e.to_string()))?;
                faults
            }
            None => Faults::default(),
        };
        Ok(MockConfig {
            account_sid: self.account_sid.clone(),
            auth_token: Secret::new(self.auth_token.clone()),
            latency: self.latency.clone(),
            seed: self.seed,
            numbers,
            accounts,
            faults,
            admin_token: self.admin_token.clone().map(Secret::new),
        })
    }
}

fn invalid(flag: &'static str, message: String) -> MockError {
    MockError::InvalidArgument { flag, message }
}

fn check_number(flag: &'static str, number: &str) -> Result<(), MockError> {
    if is_phone_number(number) {
        Ok(())
    } else {
        Err(invalid(
            flag,
            format!("`{number}` is not an E.164 phone number like +15005550006"),
        ))
    }
}

/// Serves until Ctrl-C or SIGTERM, then shuts down gracefully.
pub async fn run_standalone(args: StandaloneArgs) -> Result<(), MockError> {
    serve(&args, announce, shutdown_signal()).await
}

fn announce(handle: &MockHandle, account_sid: &str) {
    let shown: String = account_sid.chars().take(5).collect();
    if let Some(warning) = exposure_warning(handle.local_addr(), handle.has_admin_token()) {
        eprintln!("{warning}");
    }
    let mut out = std::io::stdout().lock();
    // Someone may be waiting for this line (a script, a test): flush it now.
    let _ = writeln!(
        out,
        "mock carrier listening on {} (account {shown}…)",
        handle.base_url()
    );
    for (protocol, addr) in handle.listeners() {
        let _ = writeln!(out, "mock carrier's {protocol} listening on {addr}");
    }
    for line in handle.accounts().announce() {
        let _ = writeln!(out, "{line}");
    }
    let _ = out.flush();
}

/// What to say when the mock is reachable from other hosts: its provider
/// credentials are public defaults, and without a token anyone reaching it
/// can change its faults and read its messages.
fn exposure_warning(addr: std::net::SocketAddr, admin_token: bool) -> Option<String> {
    if addr.ip().to_canonical().is_loopback() {
        return None;
    }
    let admin = if admin_token {
        ""
    } else {
        "; its admin API (/_mock/faults, /_mock/messages, /_mock/reset) is open: set --admin-token"
    };
    Some(format!(
        "warning: the mock carrier listens on {addr}, reachable from other hosts; it is a test double whose credentials anyone can read in the docs{admin}"
    ))
}

async fn serve(
    args: &StandaloneArgs,
    ready: impl FnOnce(&MockHandle, &str),
    stop: impl Future<Output = Result<(), MockError>>,
) -> Result<(), MockError> {
    let config = args.to_config()?;
    let account = config.account_sid.clone();
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|source| MockError::Bind {
            addr: args.listen.clone(),
            source,
        })?;
    let handle = MockCarrier::start(config, listener).await?;
    crate::providers::start_mock_listeners(&handle, &args.accounts).await?;
    ready(&handle, &account);
    let stopped = stop.await;
    tracing::info!("mock carrier shutting down");
    handle.shutdown().await;
    stopped
}

async fn shutdown_signal() -> Result<(), MockError> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate()).map_err(MockError::Signal)?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.map_err(MockError::Signal),
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map_err(MockError::Signal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: StandaloneArgs,
    }

    fn parse(argv: &[&str]) -> Result<MockConfig, String> {
        let cli = Cli::try_parse_from(std::iter::once("mock-carrier").chain(argv.iter().copied()))
            .map_err(|e| e.to_string())?;
        cli.args.to_config().map_err(|e| e.to_string())
    }

    #[test]
    fn defaults() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.account_sid, DEFAULT_ACCOUNT_SID);
        assert_eq!(
            c.latency,
            LatencyModel::Fixed(std::time::Duration::from_secs(1))
        );
        assert!(c.numbers.is_empty());
    }

    #[test]
    fn number_flags() {
        let c = parse(&[
            "--owned",
            "+15005550100=http://127.0.0.1:9187/hooks/json/inbox",
            "--owned",
            "+15005550101",
            "--drop",
            "+15005550102",
            "--fail",
            "+15005550103=30003",
            "--latency",
            "uniform:10ms..20ms",
            "--seed",
            "9",
        ])
        .unwrap();
        assert_eq!(
            c.numbers["+15005550100"].inbound_url.as_deref(),
            Some("http://127.0.0.1:9187/hooks/json/inbox")
        );
        assert!(c.numbers["+15005550101"].owned);
        assert!(c.numbers["+15005550102"].drop);
        assert_eq!(c.numbers["+15005550103"].fail, Some(30003));
        assert_eq!(c.seed, 9);
    }

    #[test]
    fn fault_flags() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.faults, Faults::default());
        let c = parse(&["--faults", r#"{"drop_rate":0.5,"outage":{"for":"2s"}}"#]).unwrap();
        assert_eq!(c.faults.drop_rate, 0.5);
        assert!(c.faults.outage.is_some());
    }

    #[tokio::test]
    async fn serves_until_stopped() {
        let cli = Cli::try_parse_from(["mock-carrier", "--listen", "127.0.0.1:0"]).unwrap();
        let (url_tx, url_rx) = tokio::sync::oneshot::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let ready = |h: &MockHandle, _: &str| {
                let _ = url_tx.send(h.base_url());
            };
            serve(&cli.args, ready, async {
                let _ = stop_rx.await;
                Ok(())
            })
            .await
        });
        let base = url_rx.await.unwrap();
        let url = format!("{base}/_mock/messages");
        let response = reqwest::Client::new().get(&url).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        stop_tx.send(()).unwrap();
        server.await.unwrap().unwrap();
        assert!(reqwest::Client::new().get(&url).send().await.is_err());
    }

    #[tokio::test]
    async fn a_taken_address_names_it() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let cli = Cli::try_parse_from(["mock-carrier", "--listen", &addr]).unwrap();
        let e = serve(&cli.args, |_, _| {}, async { Ok(()) })
            .await
            .unwrap_err();
        assert!(e.to_string().contains(&addr), "{e}");
    }

    #[test]
    fn exposure_is_warned_about_beyond_loopback() {
        let at = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
        assert_eq!(exposure_warning(at("127.0.0.1:4010"), false), None);
        assert_eq!(exposure_warning(at("[::1]:4010"), false), None);
        assert_eq!(exposure_warning(at("[::ffff:127.0.0.1]:4010"), false), None);
        let open = exposure_warning(at("0.0.0.0:4010"), false).unwrap();
        assert!(
            open.contains("0.0.0.0:4010") && open.contains("--admin-token"),
            "{open}"
        );
        let closed = exposure_warning(at("[::]:4010"), true).unwrap();
        assert!(!closed.contains("--admin-token"), "{closed}");
    }

    #[test]
    fn bad_flags_are_named() {
        for (argv, flag) in [
            (&["--fail", "+15005550103"][..], "--fail"),
            (&["--fail", "+15005550103=oops"][..], "--fail"),
            (&["--drop", "tomorrow"][..], "--drop"),
            (&["--owned", "+15005550100=not a url"][..], "--owned"),
            (&["--latency", "uniform:2s..1s"][..], "--latency"),
            (&["--account-sid", "AC/.."][..], "--account-sid"),
            (&["--faults", "{\"drop_rate\":2}"][..], "--faults"),
            (&["--faults", "{\"nope\":1}"][..], "--faults"),
            (&["--admin-token", " "][..], "--admin-token"),
        ] {
            let e = parse(argv).unwrap_err();
            assert!(e.contains(flag), "{argv:?}: {e}");
        }
    }
}
