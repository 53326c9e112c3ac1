//! The URLs `validate` tells a person to configure at each provider are the
//! ones the webhook server serves: every printed URL reaches its route (a
//! signature refusal, never a 404), and the same receiver name on another
//! provider's route is a 404.

use std::sync::Arc;

use sms_canary::config::Config;
use sms_canary::receiver::Inbox;
use sms_canary::receiver::webhook::{Hooks, router};

fn urls_in(plan: &str) -> Vec<(String, String)> {
    plan.lines()
        .filter_map(|line| {
            let at = line.find(" URL http")?;
            let who = line.trim_start().split(' ').next()?.to_string();
            // A URL registered once at the provider is followed by its events.
            let url = line[at + " URL ".len()..].split_whitespace().next()?;
            // Receipt URLs go with each message: `?run=` names the run.
            let url = url.split("?run=").next()?.to_string();
            Some((who, url))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_url_validate_prints_is_a_route_the_server_serves() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        format!(
            "[canary]\npublic_url = \"http://{addr}/\"\nprobes = []\n\
             [gateways.tw]\nkind = \"twilio\"\naccount_sid = \"AC{z}\"\nauth_token = \"t\"\n\
             [gateways.vg]\nkind = \"vonage\"\napi_key = \"k\"\napi_secret = \"s\"\nsignature_secret = \"sig\"\n\
             [gateways.sandbox]\nkind = \"mock\"\n\
             [gateways.api]\nkind = \"http\"\nurl = \"http://127.0.0.1:9/send\"\n\
             [gateways.phone]\nkind = \"android\"\nusername = \"u\"\npassword = \"p\"\nsigning_key = \"s\"\n\
             [receivers.ain]\nkind = \"android\"\nsigning_key = \"s\"\n\
             [receivers.tin]\nkind = \"webhook\"\ngateway = \"tw\"\n\
             [receivers.vin]\nkind = \"webhook\"\ngateway = \"vg\"\njson_secret = \"j\"\n\
             [receivers.sin]\nkind = \"webhook\"\ngateway = \"sandbox\"\n\
             [receivers.jin]\nkind = \"webhook\"\njson_secret = \"j\"\n",
            z = "0".repeat(32)
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sms-canary"))
        .args(["--config"])
        .arg(&path)
        .arg("validate")
        .output()
        .unwrap();
    let plan = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{plan}");
    let urls = urls_in(&plan);
    let who: Vec<&str> = urls.iter().map(|(w, _)| w.as_str()).collect();
    // A receipt URL per gateway that takes receipts by webhook, an inbound
    // URL per webhook receiver, and the JSON route of one with a json_secret.
    assert_eq!(
        who,
        [
            "phone", "sandbox", "tw", "vg", "ain", "jin", "sin", "tin", "vin", "vin"
        ],
        "{plan}"
    );

    let config = Config::load_with_env(&path, &|_| None).unwrap();
    let public = url::Url::parse(&format!("http://{addr}/")).unwrap();
    let hooks = Hooks::new(&config, Inbox::new(), public);
    tokio::spawn(axum::serve(listener, router(Arc::clone(&hooks))).into_future());
    let client = reqwest::Client::new();
    let post = |url: String| {
        let client = client.clone();
        async move {
            client
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body("a=b")
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    for (who, url) in &urls {
        assert!(url.starts_with(&format!("http://{addr}/hooks/")), "{url}");
        // Unsigned: the route is there and refuses the request for that.
        let status = post(format!("{url}?run=abcdefghjk")).await;
        assert_eq!(status, 403, "{who}: {url} answered {status}");
    }
    // The check can fail: a receiver on another provider's route is unknown there.
    let elsewhere = urls
        .iter()
        .find(|(w, _)| w == "tin")
        .map(|(_, u)| u.replace("/tin", "/vin"))
        .unwrap();
    assert_eq!(post(elsewhere).await, 404);
}
