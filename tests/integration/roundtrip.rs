//! A round trip through the mock carrier for every outcome, for every
//! provider: a real `check` over real HTTP, each provider's own wire format,
//! signatures and receivers, one probe per outcome (ok, slow, lost,
//! undelivered, rejected) run side by side. An undelivered run ends on its
//! provider's signed failure receipt, with the provider's own code.
//!
//! `android` is a phone running SMS Gateway for Android on both ends: its
//! receipts come by the webhooks registered with the (mock) app, as a
//! person registers them with the real one, and its receiver takes the
//! app's signed `sms:received` events.
//!
//! `http` is your own API, played here by the mock's Twilio routes with a
//! templated request and an `http-poll` receiver; it takes no receipts, so
//! a failed delivery reads as lost there and its `undelivered` case is not
//! played.

use std::time::Duration;

use sms_canary::check::{CheckOptions, check};
use sms_canary::config::Config;
use sms_canary::doctor::Verdict;
use sms_canary::mock_carrier::{LatencyModel, MockCarrier, MockConfig, MockHandle, NumberConfig};
use sms_canary::probe::{Outcome, RunResult};

const FROM: &str = "+15005550006";
const OK: &str = "+15005550100";
const SLOW: &str = "+15005550101";
const LOST: &str = "+15005550102";
const UNDELIVERED: &str = "+15005550103";
/// The mock's magic number for an unsubscribed recipient: refused at submit
/// by every API but Plivo's, which refuses an invalid one.
const REJECTED: &str = "+15005550004";
const INVALID: &str = "+15005550001";

/// How a provider is wired to the mock.
struct Provider {
    name: &'static str,
    /// The `[gateways.gw]` and `[receivers.inbox]` tables, for a mock at `base`.
    tables: fn(base: &str) -> String,
    /// Where the mock posts an owned number's inbound messages (`None`: polled).
    inbound: Option<&'static str>,
    /// The number a submit is refused for, and the code a rejected and an
    /// undelivered run report ("": no code).
    rejected_to: &'static str,
    rejected_code: &'static str,
    undelivered_code: Option<&'static str>,
}

const SID: &str = "AC00000000000000000000000000000000";

fn providers() -> Vec<Provider> {
    vec![
        Provider {
            name: "twilio",
            tables: |base| {
                format!(
                    "[gateways.gw]\nkind = \"twilio\"\naccount_sid = \"{SID}\"\nauth_token = \"mock-auth-token\"\nbase_url = \"{base}\"\n\
                     [receivers.inbox]\nkind = \"webhook\"\ngateway = \"gw\"\n"
                )
            },
            inbound: Some("/hooks/twilio/inbound/inbox"),
            rejected_to: REJECTED,
            rejected_code: "21610",
            undelivered_code: Some("30003"),
        },
        Provider {
            name: "vonage",
            tables: |base| {
                format!(
                    "[gateways.gw]\nkind = \"vonage\"\napi_key = \"mockkey\"\napi_secret = \"mock-api-secret\"\nbase_url = \"{base}\"\n\
                     [receivers.inbox]\nkind = \"webhook\"\ngateway = \"gw\"\n"
                )
            },
            inbound: Some("/hooks/vonage/inbound/inbox"),
            rejected_to: REJECTED,
            rejected_code: "7",
            // Twilio's 30003 (handset unreachable) as Vonage's receipt says it.
            undelivered_code: Some("2"),
        },
        Provider {
            name: "telnyx",
            tables: |base| {
                format!(
                    "[gateways.gw]\nkind = \"telnyx\"\napi_key = \"KEYmock-telnyx-api-key\"\n\
                     public_key = \"DwfOtQn4P2wYiIZ4xG50Tj04t8zyFxMAi5fNJBMREhs=\"\nbase_url = \"{base}/v2\"\n\
                     [receivers.inbox]\nkind = \"webhook\"\ngateway = \"gw\"\n"
                )
            },
            inbound: Some("/hooks/telnyx/inbound/inbox"),
            rejected_to: REJECTED,
            rejected_code: "40300",
            // Twilio's 30003 as Telnyx's receipt says it.
            undelivered_code: Some("40006"),
        },
        Provider {
            name: "http",
            tables: |base| {
                let auth =
                    "Basic QUMwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDptb2NrLWF1dGgtdG9rZW4=";
                format!(
                    "[gateways.gw]\nkind = \"http\"\nurl = \"{base}/2010-04-01/Accounts/{SID}/Messages.json\"\n\
                     headers = {{ Authorization = \"{auth}\" }}\n\
                     form = {{ To = \"{{{{to}}}}\", From = \"{{{{from}}}}\", Body = \"{{{{body}}}}\" }}\n\
                     message_id = \"$.sid\"\n\
                     [receivers.inbox]\nkind = \"http-poll\"\ninterval = \"50ms\"\n\
                     url = \"{base}/2010-04-01/Accounts/{SID}/Messages.json?To={{{{to}}}}\"\n\
                     headers = {{ Authorization = \"{auth}\" }}\n\
                     messages = \"$.messages[?@.direction == 'inbound']\"\nbody = \"$.body\"\nid = \"$.sid\"\n"
                )
            },
            inbound: None,
            rejected_to: REJECTED,
            rejected_code: "",
            undelivered_code: None,
        },
        Provider {
            name: "plivo",
            tables: |base| {
                format!(
                    "[gateways.gw]\nkind = \"plivo\"\nauth_id = \"MAMOCKPLIVOACCOUNT00\"\n\
                     auth_token = \"mock-plivo-auth-token\"\nbase_url = \"{base}\"\n\
                     [receivers.inbox]\nkind = \"webhook\"\ngateway = \"gw\"\n"
                )
            },
            inbound: Some("/hooks/plivo/inbound/inbox"),
            // Plivo refuses an invalid number at submit, in words; a STOP
            // comes later, as a failed delivery.
            rejected_to: INVALID,
            rejected_code: "",
            // Twilio's 30003 as Plivo's callback says it.
            undelivered_code: Some("80"),
        },
        Provider {
            name: "android",
            tables: |base| {
                format!(
                    "[gateways.gw]\nkind = \"android\"\nusername = \"sms\"\n\
                     password = \"mock-android-password\"\nsigning_key = \"mock-android-signing-key\"\n\
                     base_url = \"{base}/3rdparty/v1\"\n\
                     [receivers.inbox]\nkind = \"android\"\nsigning_key = \"mock-android-signing-key\"\n"
                )
            },
            inbound: Some("/hooks/android/inbox"),
            // The app refuses a number it cannot dial with a 400.
            rejected_to: INVALID,
            rejected_code: "400",
            // Twilio's 30003 as Android's send result says it.
            undelivered_code: Some("RESULT_ERROR_NO_SERVICE"),
        },
    ]
}

async fn start_mock(hooks: &str, inbound: Option<&str>) -> MockHandle {
    let mut config = MockConfig {
        latency: LatencyModel::Fixed(Duration::from_millis(30)),
        ..MockConfig::default()
    };
    let owned = |latency: Option<Duration>| NumberConfig {
        owned: true,
        inbound_url: inbound.map(|path| format!("{hooks}{path}")),
        latency: latency.map(LatencyModel::Fixed),
        ..NumberConfig::default()
    };
    config.numbers.insert(OK.into(), owned(None));
    config
        .numbers
        .insert(SLOW.into(), owned(Some(Duration::from_millis(1600))));
    config.numbers.insert(
        LOST.into(),
        NumberConfig {
            drop: true,
            ..owned(None)
        },
    );
    config.numbers.insert(
        UNDELIVERED.into(),
        NumberConfig {
            fail: Some(30003),
            ..owned(None)
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    MockCarrier::start(config, listener).await.unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn round_trip(provider: &Provider) -> Vec<RunResult> {
    let port = free_port();
    let hooks = format!("http://127.0.0.1:{port}");
    let android = provider.name == "android";
    let mock = start_mock(&hooks, provider.inbound).await;
    if android {
        // As a person registers them with the app, for its receipts.
        let client = reqwest::Client::new();
        for event in ["sms:sent", "sms:delivered", "sms:failed"] {
            let status = client
                .post(format!("{}/3rdparty/v1/webhooks", mock.base_url()))
                .basic_auth("sms", Some("mock-android-password"))
                .json(&serde_json::json!({
                    "url": format!("{hooks}/hooks/android/receipt/gw"),
                    "event": event,
                }))
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status.as_u16(), 201);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let main = format!(
        "[canary]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"{hooks}\"\n{}",
        (provider.tables)(&mock.base_url())
    );
    std::fs::write(dir.path().join("config.toml"), main).unwrap();
    std::fs::create_dir(dir.path().join("probes")).unwrap();
    let mut outcomes = vec![
        ("ok", OK),
        ("slow", SLOW),
        ("lost", LOST),
        ("rejected", provider.rejected_to),
    ];
    if provider.undelivered_code.is_some() {
        outcomes.push(("undelivered", UNDELIVERED));
    }
    for (name, to) in outcomes {
        std::fs::write(
            dir.path().join(format!("probes/{name}.toml")),
            format!(
                "name = \"{name}\"\ngateway = \"gw\"\nreceiver = \"inbox\"\nfrom = \"{FROM}\"\nto = \"{to}\"\n\
                 timeout = \"4s\"\nthreshold = \"1s\"\nalerts = []\n"
            ),
        )
        .unwrap();
    }
    let config = Config::load_with_env(&dir.path().join("config.toml"), &|_| None)
        .unwrap_or_else(|e| panic!("{}: {e}", provider.name));
    let options = CheckOptions {
        stateless: true,
        ..CheckOptions::default()
    };
    let report = check(&config, &options).await.unwrap();
    // `doctor` proves the same credentials with a read-only call.
    let items = sms_canary::doctor::doctor(&config, Some("127.0.0.1:0".parse().unwrap())).await;
    let gateway = items.iter().find(|i| i.check == "gateway").unwrap();
    let verdict = if provider.undelivered_code.is_some() {
        Verdict::Ok
    } else {
        Verdict::Skip
    };
    assert_eq!(gateway.verdict, verdict, "{}: {gateway:?}", provider.name);
    mock.shutdown().await;
    report.runs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_provider_round_trips_every_outcome_through_the_mock() {
    let providers = providers();
    let runs = futures_util::future::join_all(
        providers
            .iter()
            .map(|p| async move { (p, round_trip(p).await) }),
    )
    .await;
    let mut problems = Vec::new();
    for (provider, runs) in runs {
        let name = provider.name;
        let run = |probe: &str| runs.iter().find(|r| r.probe == probe);
        let mut want = |probe: &str, outcome: Outcome, code: Option<&str>| match run(probe) {
            None => problems.push(format!("{name} {probe}: did not run")),
            Some(r) if r.outcome != outcome => problems.push(format!(
                "{name} {probe}: {:?}, want {outcome:?} ({:?})",
                r.outcome, r.reason
            )),
            Some(r) if code.is_some_and(|c| !c.is_empty()) && r.code.as_deref() != code => problems
                .push(format!(
                    "{name} {probe}: code {:?}, want {code:?} ({:?})",
                    r.code, r.reason
                )),
            Some(_) => {}
        };
        want("ok", Outcome::Ok, None);

        want("slow", Outcome::Slow, None);
        want("lost", Outcome::Lost, None);
        want("rejected", Outcome::Rejected, Some(provider.rejected_code));
        if let Some(code) = provider.undelivered_code {
            want("undelivered", Outcome::Undelivered, Some(code));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
