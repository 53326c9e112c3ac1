//! The mock carrier as an SMSC: SMPP 3.4 transceiver binds on a TCP port,
//! around the same engine as the HTTP APIs (latency models, per-number
//! behaviour, faults, magic numbers).
//!
//! A bind is checked against the account (`ESME_RBINDFAIL` for an unknown
//! system_id, `ESME_RINVPASWD` for a wrong password); a submit_sm is refused
//! the way the HTTP APIs refuse (outage and error bursts as
//! `ESME_RSYSERR`, rate limits as `ESME_RTHROTTLED`, magic numbers as
//! address errors) or accepted with a message id per part. After the
//! number's latency the part is delivered (a `deliver_sm` receipt with
//! `stat:DELIVRD` when asked for), undelivered (`stat:UNDELIV` with the
//! number's error code), or dropped (nothing at all); a fake receipt says
//! delivered and nothing arrives. Messages to owned numbers come back as
//! inbound `deliver_sm` to every bound session, parts and UDH as submitted.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use subtle::ConstantTimeEq as _;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::pdu::{Body, ESM_CLASS_RECEIPT, Pdu, PduError, ShortMessage, Tlv, tag};
use super::status;
use crate::mock_carrier::faults::SubmitFault;
use crate::mock_carrier::{MockError, MockHandle, NumberConfig, Shared};
use crate::redact::{Secret, mask_number};

/// The mock SMSC's account: what a bind must present.
#[derive(Debug, Clone)]
pub struct Account {
    pub system_id: String,
    pub password: Secret,
}

/// The name its listener goes by ([`MockHandle::listener`]).
pub const PROTOCOL: &str = "SMPP";

pub const DEFAULT_SYSTEM_ID: &str = "sms-canary";
pub const DEFAULT_PASSWORD: &str = "mock-pw";

impl Default for Account {
    fn default() -> Self {
        Account {
            system_id: DEFAULT_SYSTEM_ID.into(),
            password: Secret::new(DEFAULT_PASSWORD),
        }
    }
}

impl Account {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.system_id.is_empty() || self.system_id.len() > 15 {
            return Err("the SMPP system_id must be 1 to 15 characters".into());
        }
        if self.password.is_empty() || self.password.expose().len() > 8 {
            return Err("the SMPP password must be 1 to 8 characters".into());
        }
        Ok(())
    }
}

/// The standalone mock's SMPP flags.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Also serve SMPP 3.4 (transceiver binds) on this address, e.g. 127.0.0.1:2775.
    #[arg(long, value_name = "ADDR")]
    pub smpp_listen: Option<String>,
    /// The system_id SMPP binds must present.
    #[arg(long, default_value = DEFAULT_SYSTEM_ID, value_name = "ID")]
    pub smpp_system_id: String,
    /// The password SMPP binds must present (at most 8 characters).
    #[arg(long, default_value = DEFAULT_PASSWORD, value_name = "PW", env = "SMS_CANARY_MOCK_SMPP_PASSWORD", hide_env_values = true)]
    pub smpp_password: String,
}

impl Args {
    pub(crate) fn account(&self) -> Result<Account, (&'static str, String)> {
        let account = Account {
            system_id: self.smpp_system_id.clone(),
            password: Secret::new(self.smpp_password.clone()),
        };
        account
            .validate()
            .map_err(|e| ("--smpp-system-id/--smpp-password", e))?;
        Ok(account)
    }
}

/// The bound sessions, to deliver inbound messages to.
#[derive(Default)]
struct Sessions {
    next: AtomicU64,
    bound: Mutex<HashMap<u64, mpsc::Sender<Pdu>>>,
}

impl Sessions {
    fn senders(&self) -> Vec<mpsc::Sender<Pdu>> {
        crate::mock_carrier::lock(&self.bound)
            .values()
            .cloned()
            .collect()
    }
}

/// Serves SMPP on `listener` for `mock` (its account, numbers and faults)
/// until the mock stops.
pub fn listen(mock: &MockHandle, listener: TcpListener) -> Result<SocketAddr, MockError> {
    let addr = listener.local_addr().map_err(MockError::LocalAddr)?;
    if !mock.add_listener(PROTOCOL, addr) {
        return Err(MockError::InvalidConfig(
            "the mock already serves SMPP".into(),
        ));
    }
    let shared = Arc::clone(mock.shared());
    let account = shared.accounts.smpp.clone();
    tokio::spawn(serve(shared, account, listener));
    Ok(addr)
}

async fn serve(shared: Arc<Shared>, account: Account, listener: TcpListener) {
    let sessions = Arc::new(Sessions::default());
    let ids = Arc::new(AtomicU64::new(1));
    let mut stopped = shared.stopped.clone();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stopped.changed() => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let _ = stream.set_nodelay(true);
        let conn = Connection {
            shared: Arc::clone(&shared),
            account: account.clone(),
            sessions: Arc::clone(&sessions),
            ids: Arc::clone(&ids),
        };
        let mut stop = shared.stopped.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = conn.run(stream) => {}
                _ = stop.changed() => {}
            }
        });
    }
}

struct Connection {
    shared: Arc<Shared>,
    account: Account,
    sessions: Arc<Sessions>,
    ids: Arc<AtomicU64>,
}

impl Connection {
    async fn run(self, stream: TcpStream) {
        let (mut read, mut write) = stream.into_split();
        let (tx, mut rx) = mpsc::channel::<Pdu>(256);
        let writer = tokio::spawn(async move {
            while let Some(pdu) = rx.recv().await {
                let Ok(bytes) = pdu.encode() else { continue };
                if write.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            let _ = write.shutdown().await;
        });
        let session = self.sessions.next.fetch_add(1, Ordering::Relaxed);
        let mut bound = false;
        let sequence = AtomicU64::new(1);
        loop {
            let pdu = match Pdu::read(&mut read).await {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e) => {
                    if let Some(nack) = nack(&e) {
                        let _ = tx.send(nack).await;
                        continue;
                    }
                    break;
                }
            };
            let seq = pdu.sequence;
            let reply = match pdu.body {
                Body::BindTransceiver(b) => {
                    let status = if bound {
                        0x05 // ESME_RALYBND
                    } else if b.system_id != self.account.system_id {
                        status::ESME_RBINDFAIL
                    } else if !bool::from(
                        b.password
                            .expose()
                            .as_bytes()
                            .ct_eq(self.account.password.expose().as_bytes()),
                    ) {
                        status::ESME_RINVPASWD
                    } else {
                        0
                    };
                    if status == 0 {
                        bound = true;
                        crate::mock_carrier::lock(&self.sessions.bound).insert(session, tx.clone());
                    }
                    let system_id = if status == 0 {
                        "mock-smsc".to_string()
                    } else {
                        String::new()
                    };
                    Some(Pdu::response(
                        seq,
                        status,
                        Body::BindTransceiverResp { system_id },
                    ))
                }
                Body::SubmitSm(m) if bound => Some(self.submit(seq, m, &tx, &sequence)),
                Body::SubmitSm(_) => Some(refuse(seq, status::ESME_RINVBNDSTS)),
                Body::EnquireLink => Some(Pdu::new(seq, Body::EnquireLinkResp)),
                Body::Unbind => {
                    crate::mock_carrier::lock(&self.sessions.bound).remove(&session);
                    let _ = tx.send(Pdu::new(seq, Body::UnbindResp)).await;
                    break;
                }
                Body::DeliverSmResp | Body::EnquireLinkResp | Body::GenericNack => None,
                Body::UnbindResp
                | Body::BindTransceiverResp { .. }
                | Body::SubmitSmResp { .. }
                | Body::DeliverSm(_) => Some(Pdu::response(
                    seq,
                    status::ESME_RINVCMDID,
                    Body::GenericNack,
                )),
            };
            if let Some(reply) = reply
                && tx.send(reply).await.is_err()
            {
                break;
            }
        }
        crate::mock_carrier::lock(&self.sessions.bound).remove(&session);
        drop(tx);
        let _ = writer.await;
    }

    /// Refuses or accepts one submitted part; an accepted one is delivered later.
    fn submit(
        &self,
        seq: u32,
        m: ShortMessage,
        tx: &mpsc::Sender<Pdu>,
        sequence: &AtomicU64,
    ) -> Pdu {
        if let Some(fault) = self.shared.request_fault() {
            return refuse(
                seq,
                match fault {
                    SubmitFault::RateLimited { .. } => status::ESME_RTHROTTLED,
                    SubmitFault::Outage | SubmitFault::Error { .. } => status::ESME_RSYSERR,
                },
            );
        }
        let to = plus(&m.destination_addr);
        let from = plus(&m.source_addr);
        if let Some(code) = check_numbers(&to, &from) {
            return refuse(seq, code);
        }
        if self.shared.code_fault().is_some() {
            return refuse(seq, status::ESME_RSUBMITFAIL);
        }
        let behaviour = magic(&to, self.shared.number(&to));
        let faults = self.shared.message_faults();
        let latency = self.shared.sample_latency(&behaviour);
        let id = format!("{:016x}", self.ids.fetch_add(1, Ordering::Relaxed));
        let submitted = chrono::Utc::now();
        let receipt_to = tx.clone();
        let sessions = Arc::clone(&self.sessions);
        let receipt_seq = u32::try_from(sequence.fetch_add(1, Ordering::Relaxed) % 0x7FFF_0000)
            .unwrap_or(1)
            + 0x1000;
        let message_id = id.clone();
        tokio::spawn(async move {
            tokio::time::sleep(latency).await;
            if behaviour.drop || faults.drop {
                tracing::debug!(id = %message_id, to = %mask_number(&to), "mock SMSC dropped a message");
                return;
            }
            let fake = behaviour.fake_dlr || faults.fake_dlr;
            let failed = behaviour.fail;
            if m.registered_delivery & 0x01 != 0 {
                let receipt = receipt(&message_id, &m, failed, submitted);
                let _ = receipt_to
                    .send(Pdu::new(receipt_seq, Body::DeliverSm(receipt)))
                    .await;
            }
            if failed.is_none() && !fake && behaviour.is_owned() {
                let copies = 1 + behaviour.duplicates + u32::from(faults.duplicate);
                let inbound = ShortMessage {
                    source_addr_ton: m.source_addr_ton,
                    source_addr_npi: m.source_addr_npi,
                    source_addr: m.source_addr.clone(),
                    dest_addr_ton: m.dest_addr_ton,
                    dest_addr_npi: m.dest_addr_npi,
                    destination_addr: m.destination_addr.clone(),
                    esm_class: m.esm_class & super::pdu::ESM_CLASS_UDHI,
                    data_coding: m.data_coding,
                    short_message: m.short_message.clone(),
                    ..ShortMessage::default()
                };
                for session in sessions.senders() {
                    for _ in 0..copies {
                        let _ = session
                            .send(Pdu::new(receipt_seq, Body::DeliverSm(inbound.clone())))
                            .await;
                    }
                }
            }
        });
        Pdu::new(seq, Body::SubmitSmResp { message_id: id })
    }
}

/// The same number as the HTTP APIs see it: SMPP addresses often drop the `+`.
fn plus(addr: &str) -> String {
    if addr.starts_with('+') || !addr.bytes().all(|b| b.is_ascii_digit()) {
        addr.to_string()
    } else {
        format!("+{addr}")
    }
}

/// Refusals by the mock's magic test numbers (the same in every API it
/// speaks, with SMPP's codes), then by plain validation.
fn check_numbers(to: &str, from: &str) -> Option<u32> {
    let alphanumeric = (1..=11).contains(&from.len())
        && from.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ');
    if matches!(from, "+15005550001" | "+15005550007")
        || !(crate::mock_carrier::is_phone_number(from) || alphanumeric)
    {
        return Some(status::ESME_RINVSRCADR);
    }
    if matches!(to, "+15005550001" | "+15005550009") || !crate::mock_carrier::is_phone_number(to) {
        return Some(status::ESME_RINVDSTADR);
    }
    None
}

/// The behaviour of the mock's magic numbers, unless configured otherwise.
fn magic(to: &str, mut behaviour: NumberConfig) -> NumberConfig {
    if to == "+15005550004" && behaviour.fail.is_none() {
        behaviour.fail = Some(21610);
    }
    behaviour
}

fn refuse(seq: u32, code: u32) -> Pdu {
    Pdu::response(
        seq,
        code,
        Body::SubmitSmResp {
            message_id: String::new(),
        },
    )
}

fn nack(e: &PduError) -> Option<Pdu> {
    e.frame_intact().then(|| {
        Pdu::response(
            e.sequence().unwrap_or(0),
            status::nack_status(e),
            Body::GenericNack,
        )
    })
}

/// A delivery receipt in the customary text format, with the SMPP 3.4 TLVs.
fn receipt(
    id: &str,
    m: &ShortMessage,
    failed: Option<u32>,
    submitted: chrono::DateTime<chrono::Utc>,
) -> ShortMessage {
    let (stat, state, err) = match failed {
        None => ("DELIVRD", 2u8, 0),
        Some(code) => ("UNDELIV", 5u8, code),
    };
    let date = |t: chrono::DateTime<chrono::Utc>| t.format("%y%m%d%H%M").to_string();
    let text = format!(
        "id:{id} sub:001 dlvrd:{} submit date:{} done date:{} stat:{stat} err:{:03} text:",
        if failed.is_none() { "001" } else { "000" },
        date(submitted),
        date(chrono::Utc::now()),
        err % 1000,
    );
    let mut receipted = id.as_bytes().to_vec();
    receipted.push(0);
    let mut tlvs = vec![
        Tlv {
            tag: tag::RECEIPTED_MESSAGE_ID,
            value: receipted,
        },
        Tlv {
            tag: tag::MESSAGE_STATE,
            value: vec![state],
        },
    ];
    if let Some(code) = failed {
        // network_error_code: type 3 (GSM), then the code.
        let code = u16::try_from(code % 65536).unwrap_or(0).to_be_bytes();
        tlvs.push(Tlv {
            tag: tag::NETWORK_ERROR_CODE,
            value: vec![3, code[0], code[1]],
        });
    }
    ShortMessage {
        source_addr_ton: m.dest_addr_ton,
        source_addr_npi: m.dest_addr_npi,
        source_addr: m.destination_addr.clone(),
        dest_addr_ton: m.source_addr_ton,
        dest_addr_npi: m.source_addr_npi,
        destination_addr: m.source_addr.clone(),
        esm_class: ESM_CLASS_RECEIPT,
        short_message: text.into_bytes(),
        tlvs,
        ..ShortMessage::default()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::gateway::{Gateway as _, SubmitRequest};
    use crate::mock_carrier::{Faults, LatencyModel, MockCarrier, MockConfig, RateLimit};
    use crate::providers::smpp::config::SmppGatewayConfig;
    use crate::providers::smpp::gateway::SmppGateway;
    use crate::receiver::inbox::{DeliveryStatus, Event, Inbox};
    use crate::values::E164;

    async fn mock(numbers: &[(&str, NumberConfig)]) -> MockHandle {
        let config = MockConfig {
            latency: LatencyModel::Fixed(Duration::from_millis(20)),
            numbers: numbers
                .iter()
                .map(|(n, b)| (n.to_string(), b.clone()))
                .collect(),
            ..MockConfig::default()
        };
        let handle = MockCarrier::start(config, TcpListener::bind("127.0.0.1:0").await.unwrap())
            .await
            .unwrap();
        listen(&handle, TcpListener::bind("127.0.0.1:0").await.unwrap()).unwrap();
        handle
    }

    fn gateway(handle: &MockHandle, password: &str, inbox: &Arc<Inbox>) -> SmppGateway {
        let config = SmppGatewayConfig {
            address: handle.listener(PROTOCOL).unwrap().to_string(),
            system_id: DEFAULT_SYSTEM_ID.into(),
            password: Secret::new(password),
            system_type: String::new(),
            enquire_link: Duration::from_secs(30),
            request_timeout: Duration::from_secs(5),
        };
        SmppGateway::new("smsc", &config, Arc::clone(inbox), Some("inbound".into()))
    }

    fn owned() -> NumberConfig {
        NumberConfig {
            owned: true,
            ..NumberConfig::default()
        }
    }

    async fn submit(
        g: &SmppGateway,
        to: &str,
        body: &str,
    ) -> Result<String, crate::gateway::SubmitError> {
        let from = E164::parse("+15005550006").unwrap();
        let to = E164::parse(to).unwrap();
        g.submit(SubmitRequest {
            from: &from,
            to: &to,
            body,
            correlation_id: "c",
            status_callback: None,
        })
        .await
        .map(|a| a.message_id)
    }

    async fn next(w: &mut crate::receiver::inbox::Waiter) -> Event {
        tokio::time::timeout(Duration::from_secs(5), w.recv())
            .await
            .unwrap()
            .unwrap()
    }

    #[tokio::test]
    async fn a_message_is_accepted_receipted_and_arrives_over_the_bind() {
        let handle = mock(&[("+15005550100", owned())]).await;
        let inbox = Inbox::new();
        let g = gateway(&handle, DEFAULT_PASSWORD, &inbox);
        for (token, body) in [
            ("abcdefghjk", "sms-canary p abcdefghjk".to_string()),
            ("bcdefghjkm", "sms-canary Привет bcdefghjkm".to_string()),
            (
                "cdefghjkmn",
                format!("sms-canary cdefghjkmn {}", "long ".repeat(80)),
            ),
        ] {
            let mut w = inbox.register(token);
            let id = submit(&g, "+15005550100", &body).await.unwrap();
            let mut saw = (false, false);
            while saw != (true, true) {
                match next(&mut w).await {
                    Event::Receipt(r) => {
                        assert_eq!(r.status, DeliveryStatus::Delivered);
                        saw.0 = true;
                        let _ = &id;
                    }
                    Event::Arrival(a) => {
                        assert_eq!(a.receiver, "inbound");
                        saw.1 = true;
                    }
                }
            }
        }
        assert_eq!(inbox.strangers(), 0);
        let doctor = g.preflight().await.unwrap().unwrap();
        assert!(
            doctor.contains("bound as transceiver") && doctor.contains("and unbound"),
            "{doctor}"
        );
    }

    #[tokio::test]
    async fn refusals_are_classified_by_their_status() {
        let handle = mock(&[(
            "+15005550101",
            NumberConfig {
                fail: Some(30003),
                ..NumberConfig::default()
            },
        )])
        .await;
        let inbox = Inbox::new();
        let g = gateway(&handle, DEFAULT_PASSWORD, &inbox);
        let e = submit(&g, "+15005550001", "x dddddddddd")
            .await
            .unwrap_err();
        assert!(!e.is_transient());
        assert_eq!(e.code.as_deref(), Some("ESME_RINVDSTADR"));
        assert!(
            e.reason.contains("destination address (to) is invalid"),
            "{}",
            e.reason
        );

        handle.set_faults(Faults {
            rate_limit: Some(RateLimit {
                count: 1,
                retry_after: Duration::from_secs(1),
            }),
            ..Faults::default()
        });
        let e = submit(&g, "+15005550101", "x dddddddddd")
            .await
            .unwrap_err();
        assert!(e.is_transient());
        assert_eq!(e.code.as_deref(), Some("ESME_RTHROTTLED"));

        let mut w = inbox.register("eeeeeeeeee");
        submit(&g, "+15005550101", "x eeeeeeeeee").await.unwrap();
        let Event::Receipt(r) = next(&mut w).await else {
            panic!("a receipt first")
        };
        assert_eq!(r.status, DeliveryStatus::Undelivered);
        assert_eq!(r.error_code.as_deref(), Some("UNDELIV err:30003"));
        assert!(r.explanation.unwrap().contains("could not deliver"));

        let bad = gateway(&handle, "wrong", &inbox);
        let e = submit(&bad, "+15005550101", "x ffffffffff")
            .await
            .unwrap_err();
        assert!(!e.is_transient());
        assert_eq!(e.code.as_deref(), Some("ESME_RINVPASWD"));
        let e = bad.preflight().await.unwrap_err();
        assert_eq!(e.code.as_deref(), Some("ESME_RINVPASWD"));
    }

    #[tokio::test]
    async fn a_lost_bind_is_bound_again() {
        let handle = mock(&[("+15005550100", owned())]).await;
        let inbox = Inbox::new();
        let g = gateway(&handle, DEFAULT_PASSWORD, &inbox);
        submit(&g, "+15005550100", "x gggggggggg").await.unwrap();
        // The SMSC goes away: submits fail as transient, not as refusals.
        let addr = handle.listener(PROTOCOL).unwrap();
        handle.shutdown().await;
        let e = submit(&g, "+15005550100", "x hhhhhhhhhh")
            .await
            .unwrap_err();
        assert!(e.is_transient(), "{}", e.reason);
        // A new SMSC on the same address: the session binds again by itself.
        let again = MockCarrier::start(
            MockConfig::default(),
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
        )
        .await
        .unwrap();
        listen(&again, TcpListener::bind(addr).await.unwrap()).unwrap();
        let mut ok = false;
        for _ in 0..20 {
            if submit(&g, "+15005550100", "x jjjjjjjjjj").await.is_ok() {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(ok, "bound again after the SMSC came back");
    }

    async fn read(stream: &mut TcpStream) -> Option<Pdu> {
        tokio::time::timeout(Duration::from_secs(5), Pdu::read(stream))
            .await
            .unwrap()
            .unwrap()
    }

    #[tokio::test]
    async fn hostile_esmes_get_nacks_and_cannot_take_the_smsc_down() {
        let handle = mock(&[]).await;
        let addr = handle.listener(PROTOCOL).unwrap();
        let mut raw = TcpStream::connect(addr).await.unwrap();
        // An unknown command: generic_nack with its sequence.
        let mut unknown = Pdu::new(77, Body::EnquireLink).encode().unwrap();
        unknown[4..8].copy_from_slice(&0x0000_0103u32.to_be_bytes());
        raw.write_all(&unknown).await.unwrap();
        let nack = read(&mut raw).await.unwrap();
        assert_eq!(
            (nack.command(), nack.status, nack.sequence),
            (
                super::super::pdu::CommandId::GenericNack,
                status::ESME_RINVCMDID,
                77
            )
        );
        // A submit before any bind.
        let submit = Pdu::new(78, Body::SubmitSm(ShortMessage::default()))
            .encode()
            .unwrap();
        raw.write_all(&submit).await.unwrap();
        let refused = read(&mut raw).await.unwrap();
        assert_eq!(
            (refused.status, refused.sequence),
            (status::ESME_RINVBNDSTS, 78)
        );
        // A length of 4 GiB: the connection is closed, nothing is allocated.
        raw.write_all(&[0xff; 16]).await.unwrap();
        assert!(read(&mut raw).await.is_none());
        // The SMSC still binds others.
        let inbox = Inbox::new();
        let g = gateway(&handle, DEFAULT_PASSWORD, &inbox);
        submit_ok(&g).await;
    }

    async fn submit_ok(g: &SmppGateway) {
        submit(g, "+15005550100", "x kkkkkkkkkk").await.unwrap();
    }

    #[tokio::test]
    async fn a_hostile_smsc_is_a_lost_bind_not_a_crash() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let Ok(Some(bind)) = Pdu::read(&mut s).await else {
                    continue;
                };
                let ok = Pdu::new(
                    bind.sequence,
                    Body::BindTransceiverResp {
                        system_id: "evil".into(),
                    },
                );
                let _ = s.write_all(&ok.encode().unwrap()).await;
                // Then a frame announcing 4 GiB.
                let _ = s.write_all(&[0xff; 64]).await;
            }
        });
        let config = SmppGatewayConfig {
            address: addr.to_string(),
            system_id: "x".into(),
            password: Secret::new("y"),
            system_type: String::new(),
            enquire_link: Duration::from_secs(30),
            request_timeout: Duration::from_secs(2),
        };
        let inbox = Inbox::new();
        let g = SmppGateway::new("evil", &config, Arc::clone(&inbox), None);
        let e = submit(&g, "+15005550100", "x mmmmmmmmmm")
            .await
            .unwrap_err();
        assert!(e.is_transient(), "{}", e.reason);
    }

    /// A hand-written SMSC: it checks that the client answers what the SMSC
    /// sends (enquire_link, deliver_sm of every kind, even unreadable
    /// receipts), then stops answering, so the client's own enquire_link
    /// goes unanswered and it must count the bind lost and bind again.
    #[tokio::test]
    async fn the_bind_is_kept_alive_answers_everything_and_is_rebound_when_silent() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (done_tx, mut done_rx) = mpsc::channel::<&'static str>(4);
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let bind = read(&mut s).await.unwrap();
            let ok = Pdu::new(
                bind.sequence,
                Body::BindTransceiverResp {
                    system_id: "t".into(),
                },
            );
            s.write_all(&ok.encode().unwrap()).await.unwrap();
            let receipt_without_id = ShortMessage {
                esm_class: ESM_CLASS_RECEIPT,
                short_message: b"stat:DELIVRD".to_vec(),
                ..ShortMessage::default()
            };
            let stranger = ShortMessage {
                source_addr: "15005550199".into(),
                short_message: b"hello from nobody".to_vec(),
                ..ShortMessage::default()
            };
            for (seq, body, want) in [
                (900, Body::EnquireLink, Body::EnquireLinkResp),
                (901, Body::DeliverSm(stranger), Body::DeliverSmResp),
                (
                    902,
                    Body::DeliverSm(receipt_without_id),
                    Body::DeliverSmResp,
                ),
            ] {
                s.write_all(&Pdu::new(seq, body).encode().unwrap())
                    .await
                    .unwrap();
                let answer = read(&mut s).await.unwrap();
                assert_eq!((answer.sequence, answer.body), (seq, want));
            }
            done_tx.send("answered").await.unwrap();
            // Its own enquire_link comes, and goes unanswered.
            let probe = read(&mut s).await.unwrap();
            assert_eq!(probe.body, Body::EnquireLink);
            // Then it gives up on this connection and binds again.
            let closed = tokio::time::timeout(Duration::from_secs(5), Pdu::read(&mut s)).await;
            assert!(matches!(closed, Ok(Ok(None)) | Ok(Err(_))), "{closed:?}");
            let (mut again, _) = listener.accept().await.unwrap();
            let bind = read(&mut again).await.unwrap();
            assert_eq!(
                bind.command(),
                super::super::pdu::CommandId::BindTransceiver
            );
            done_tx.send("bound again").await.unwrap();
        });
        let config = SmppGatewayConfig {
            address: addr.to_string(),
            system_id: "x".into(),
            password: Secret::new("y"),
            system_type: String::new(),
            enquire_link: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
        };
        let inbox = Inbox::new();
        let g = SmppGateway::new("silent", &config, Arc::clone(&inbox), None);
        g.bind();
        let ten = Duration::from_secs(10);
        let first = tokio::time::timeout(ten, done_rx.recv()).await.unwrap();
        assert_eq!(first, Some("answered"));
        assert_eq!(inbox.strangers(), 1, "the stranger went to the inbox");
        let second = tokio::time::timeout(ten, done_rx.recv()).await.unwrap();
        assert_eq!(second, Some("bound again"));
    }
}
