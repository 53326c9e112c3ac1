//! A Vonage gateway end to end through the mock carrier's Vonage API: submit,
//! signed delivery receipts and a signed inbound webhook in Vonage's fields,
//! all checked by `check`; and the same account refusing a message for lack
//! of credit.

use sms_canary::check::{CheckOptions, check};
use sms_canary::config::Config;
use sms_canary::mock_carrier::{CodeFault, Faults, MockCarrier, MockConfig, NumberConfig};
use sms_canary::probe::Outcome;
use sms_canary::providers::MockAccounts;
use sms_canary::providers::vonage::mock::Account as VonageAccount;
use sms_canary::providers::vonage::signature::SignatureMethod as VonageMethod;
use sms_canary::redact::Secret;

const SIG_SECRET: &str = "vonage-e2e-signature-secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vonage_round_trip_with_signed_receipts_and_inbound() {
    // Our listener's port must be known before the mock, which posts to it.
    let hooks_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut mock = MockConfig {
        latency: sms_canary::mock_carrier::LatencyModel::Fixed(std::time::Duration::from_millis(
            40,
        )),
        accounts: MockAccounts {
            vonage: VonageAccount {
                signature_secret: Some(Secret::new(SIG_SECRET)),
                signature_method: VonageMethod::Sha256,
                ..VonageAccount::default()
            },
            ..MockAccounts::default()
        },
        ..MockConfig::default()
    };
    let inbound = NumberConfig {
        owned: true,
        inbound_url: Some(format!(
            "http://127.0.0.1:{hooks_port}/hooks/vonage/inbound/inbox"
        )),
        ..NumberConfig::default()
    };
    mock.numbers.insert("+447700900100".into(), inbound);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let carrier = MockCarrier::start(mock, listener).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let defaults = VonageAccount::default();
    let main = format!(
        "[canary]\nlisten = \"127.0.0.1:{hooks_port}\"\npublic_url = \"http://127.0.0.1:{hooks_port}\"\n\n\
         [gateways.vonage]\nkind = \"vonage\"\napi_key = \"{key}\"\napi_secret = \"{secret}\"\n\
         base_url = \"{base}\"\nsignature_secret = \"{SIG_SECRET}\"\nsignature_method = \"sha256\"\n\n\
         [receivers.inbox]\nkind = \"webhook\"\ngateway = \"vonage\"\n",
        key = defaults.api_key,
        secret = defaults.api_secret.expose(),
        base = carrier.base_url(),
    );
    std::fs::write(dir.path().join("config.toml"), main).unwrap();
    std::fs::create_dir(dir.path().join("probes")).unwrap();
    let probe = "name = \"v-ok\"\ngateway = \"vonage\"\nreceiver = \"inbox\"\nfrom = \"+447700900001\"\n\
                 to = \"+447700900100\"\ntimeout = \"3s\"\nthreshold = \"1s\"\n";
    std::fs::write(dir.path().join("probes/v-ok.toml"), probe).unwrap();
    let config = Config::load_with_env(&dir.path().join("config.toml"), &|_| None).unwrap();
    let report = check(&config, &CheckOptions::default()).await.unwrap();
    let ok = &report.runs[0];
    assert_eq!(ok.outcome, Outcome::Ok, "{ok:?}");
    assert!(
        ok.phases.delivered.is_some(),
        "signed receipts reached the run: {ok:?}"
    );
    assert!(ok.latency.unwrap() >= std::time::Duration::from_millis(40));
    assert_eq!(report.strangers, 0);

    // The account runs out of credit: Vonage status 9, refused at once.
    let faults = Faults {
        error_code: Some(CodeFault { code: 9, count: 0 }),
        ..Faults::default()
    };
    carrier.set_faults(faults);
    let report = check(&config, &CheckOptions::default()).await.unwrap();
    let broke = &report.runs[0];
    assert_eq!(broke.outcome, Outcome::Rejected, "{broke:?}");
    assert_eq!((broke.attempts, broke.code.as_deref()), (1, Some("9")));
    assert!(
        broke.reason.as_deref().unwrap().contains("no credit"),
        "{broke:?}"
    );
    carrier.shutdown().await;
}
