//! The SMPP gateway: submit over the shared bind, read what the SMSC
//! delivers on it, and the receipt-state table.
//!
//! A submit sends one `submit_sm` per part (`registered_delivery` asks for
//! the receipt) and is accepted with the first part's message id; a refused
//! part is classified by its command_status ([`super::status`]). The ids of
//! every part are kept (bounded) with the body, so a `deliver_sm` receipt
//! (esm_class receipt bit; `receipted_message_id` and `message_state`
//! TLVs, else the customary `id:` / `stat:` / `err:` text) reaches the run
//! whose token the body carries. Other `deliver_sm` are inbound messages,
//! reassembled and matched by token like every receiver's.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::config::SmppGatewayConfig;
use super::encoding::{self, Reassembly};
use super::pdu::{Body, ESM_CLASS_RECEIPT, ShortMessage, tag};
use super::session::{self, Session, SessionConfig, SessionError};
use super::status;
use crate::gateway::{Accepted, BoxFuture, Gateway, SubmitError, SubmitRequest};
use crate::net::ErrorClass;
use crate::receiver::inbox::{Arrival, DeliveryStatus, Inbox, Receipt};

/// How many submitted parts' ids are remembered for their receipts.
const RECEIPTS_KEPT: usize = 10_000;

/// A receipt's state, from `message_state` or the text's `stat:`.
pub fn receipt_state(word_or_state: &str) -> (DeliveryStatus, &'static str) {
    match word_or_state {
        "DELIVRD" | "2" => (DeliveryStatus::Delivered, "delivered"),
        "ENROUTE" | "1" => (DeliveryStatus::Sent, "en route"),
        "ACCEPTD" | "6" => (DeliveryStatus::Queued, "accepted by the SMSC"),
        "UNDELIV" | "5" => (
            DeliveryStatus::Undelivered,
            "UNDELIV: the SMSC could not deliver it",
        ),
        "EXPIRED" | "3" => (
            DeliveryStatus::Undelivered,
            "EXPIRED: its validity period ended before it could be delivered",
        ),
        "DELETED" | "4" => (
            DeliveryStatus::Undelivered,
            "DELETED: the SMSC deleted it before delivery",
        ),
        "REJECTD" | "8" => (
            DeliveryStatus::Undelivered,
            "REJECTD: the SMSC or the network rejected it",
        ),
        _ => (DeliveryStatus::Other("unknown".into()), "state unknown"),
    }
}

/// A receipt read from a `deliver_sm`.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedReceipt {
    pub message_id: String,
    pub status: DeliveryStatus,
    pub stat: String,
    pub err: Option<String>,
    pub words: &'static str,
}

fn text_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let lower = text.to_ascii_lowercase();
    let at = lower.find(&format!("{key}:"))?;
    let rest = &text[at + key.len() + 1..];
    Some(rest.split_whitespace().next().unwrap_or(""))
}

/// Reads a receipt: the TLVs first, the text where they are missing.
pub fn parse_receipt(m: &ShortMessage) -> Option<ParsedReceipt> {
    let text = String::from_utf8_lossy(&m.short_message);
    let id = m
        .tlv(tag::RECEIPTED_MESSAGE_ID)
        .map(|v| String::from_utf8_lossy(v.split(|&b| b == 0).next().unwrap_or(v)).into_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| text_field(&text, "id").map(str::to_string))?;
    let stat = m
        .tlv(tag::MESSAGE_STATE)
        .and_then(|v| v.first())
        .map(|s| s.to_string())
        .or_else(|| text_field(&text, "stat").map(str::to_ascii_uppercase))
        .unwrap_or_default();
    let (status, words) = receipt_state(&stat);
    let stat = match stat.as_str() {
        "1" => "ENROUTE",
        "2" => "DELIVRD",
        "3" => "EXPIRED",
        "4" => "DELETED",
        "5" => "UNDELIV",
        "6" => "ACCEPTD",
        "8" => "REJECTD",
        other => other,
    }
    .to_string();
    let err = m
        .tlv(tag::NETWORK_ERROR_CODE)
        .filter(|v| v.len() == 3)
        .map(|v| u16::from_be_bytes([v[1], v[2]]).to_string())
        .or_else(|| text_field(&text, "err").map(str::to_string))
        .filter(|e| !e.trim_start_matches('0').is_empty());
    Some(ParsedReceipt {
        message_id: id,
        status,
        stat,
        err,
        words,
    })
}

/// Submitted parts' ids and their bodies, oldest forgotten first.
#[derive(Default)]
struct Sent {
    body: HashMap<String, Arc<str>>,
    order: VecDeque<String>,
}

impl Sent {
    fn insert(&mut self, id: String, body: Arc<str>) {
        if self.order.len() >= RECEIPTS_KEPT
            && let Some(old) = self.order.pop_front()
        {
            self.body.remove(&old);
        }
        self.order.push_back(id.clone());
        self.body.insert(id, body);
    }
}

/// What arrives on the bind, handed to the inbox.
struct Deliveries {
    inbox: Arc<Inbox>,
    /// The receiver inbound messages are credited to.
    receiver: String,
    sent: Mutex<Sent>,
    reassembly: Mutex<Reassembly>,
}

impl Deliveries {
    fn deliver(&self, m: ShortMessage) {
        let at = Instant::now();
        if m.esm_class & 0x3C == ESM_CLASS_RECEIPT {
            let Some(r) = parse_receipt(&m) else {
                tracing::warn!("SMPP receipt without a message id, ignored");
                return;
            };
            let body = lock(&self.sent)
                .body
                .get(&r.message_id.to_ascii_lowercase())
                .cloned();
            let Some(body) = body else {
                tracing::debug!(id = %r.message_id, "SMPP receipt for a message not sent here");
                return;
            };
            let failure = r.status.is_failure();
            let receipt = Receipt {
                at,
                status: r.status,
                error_code: failure.then(|| match &r.err {
                    Some(err) => format!("{} err:{err}", r.stat),
                    None => r.stat.clone(),
                }),
                explanation: failure.then_some(r.words),
                message_id: Some(r.message_id),
            };
            self.inbox.receipt_in(&body, receipt);
            return;
        }
        let text = lock(&self.reassembly).add(
            &m.source_addr,
            m.esm_class,
            m.data_coding,
            &m.short_message,
        );
        if let Some(text) = text {
            self.inbox.arrival(
                &text,
                Arrival {
                    at,
                    receiver: self.receiver.clone(),
                    message_id: None,
                },
            );
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `kind = "smpp"`: one shared bind, submit and receipts over it.
pub struct SmppGateway {
    name: String,
    /// Bound on first use: `doctor` builds gateways only to check them.
    session: std::sync::OnceLock<Session>,
    config: SessionConfig,
    deliveries: Arc<Deliveries>,
    reference: AtomicU8,
    preflight_sequence: AtomicU32,
}

impl SmppGateway {
    /// Starts binding now; inbound messages are credited to `receiver`.
    pub fn new(
        name: &str,
        config: &SmppGatewayConfig,
        inbox: Arc<Inbox>,
        receiver: Option<String>,
    ) -> SmppGateway {
        let session_config = SessionConfig {
            address: config.address.clone(),
            system_id: config.system_id.clone(),
            password: config.password.clone(),
            system_type: config.system_type.clone(),
            enquire_link: config.enquire_link,
            response_timeout: config.request_timeout,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        };
        let deliveries = Arc::new(Deliveries {
            inbox,
            receiver: receiver.unwrap_or_else(|| name.to_string()),
            sent: Mutex::default(),
            reassembly: Mutex::default(),
        });
        SmppGateway {
            name: name.to_string(),
            session: std::sync::OnceLock::new(),
            config: session_config,
            deliveries,
            reference: AtomicU8::new(rand_byte()),
            preflight_sequence: AtomicU32::new(1),
        }
    }
}

impl SmppGateway {
    /// The shared bind, started on first use.
    fn session(&self) -> &Session {
        self.session.get_or_init(|| {
            let handler = Arc::clone(&self.deliveries);
            Session::start(self.config.clone(), Arc::new(move |m| handler.deliver(m)))
        })
    }

    /// Starts binding now rather than at the first submit.
    pub fn bind(&self) {
        self.session();
    }
}

fn rand_byte() -> u8 {
    ulid::Ulid::generate().0 as u8
}

/// An SMPP address from an E.164 number or an alphanumeric sender:
/// (ton, npi, digits or name).
fn address(number: &str) -> (u8, u8, String) {
    match number.strip_prefix('+') {
        Some(digits) => (1, 1, digits.to_string()),
        None if number.bytes().all(|b| b.is_ascii_digit()) => (1, 1, number.to_string()),
        None => (5, 0, number.to_string()),
    }
}

fn session_error(e: SessionError) -> SubmitError {
    match e {
        SessionError::BindRefused(code) => SubmitError::permanent(format!(
            "the SMSC refused the bind: {} ({})",
            status::name(code),
            status::reason(code)
        ))
        .with_code(status::name(code)),
        SessionError::Nack(code) => SubmitError::permanent(format!(
            "the SMSC refused the submit_sm PDU: {} ({})",
            status::name(code),
            status::reason(code)
        ))
        .with_code(status::name(code)),
        SessionError::Encode(e) => SubmitError::permanent(e),
        e @ (SessionError::NotBound(_) | SessionError::Timeout(_)) => {
            SubmitError::transient(e.to_string())
        }
    }
}

impl Gateway for SmppGateway {
    fn name(&self) -> &str {
        &self.name
    }

    fn submit<'a>(
        &'a self,
        request: SubmitRequest<'a>,
    ) -> BoxFuture<'a, Result<Accepted, SubmitError>> {
        Box::pin(async move {
            let reference = self.reference.fetch_add(1, Ordering::Relaxed);
            let parts = encoding::encode(request.body, reference)
                .map_err(|e| SubmitError::permanent(e.to_string()))?;
            let (source_ton, source_npi, source) = address(request.from.as_str());
            let (_, _, destination) = address(request.to.as_str());
            let body: Arc<str> = Arc::from(request.body);
            let mut first = None;
            for part in parts {
                let message = ShortMessage {
                    source_addr_ton: source_ton,
                    source_addr_npi: source_npi,
                    source_addr: source.clone(),
                    dest_addr_ton: 1,
                    dest_addr_npi: 1,
                    destination_addr: destination.clone(),
                    esm_class: part.esm_class,
                    registered_delivery: 1,
                    data_coding: part.data_coding,
                    short_message: part.short_message,
                    ..ShortMessage::default()
                };
                let answer = self
                    .session()
                    .request(Body::SubmitSm(message))
                    .await
                    .map_err(session_error)?;
                let message_id = match answer.body {
                    Body::SubmitSmResp { message_id } if answer.status == 0 => message_id,
                    Body::SubmitSmResp { .. } => {
                        let code = answer.status;
                        let reason = format!("{} ({})", status::name(code), status::reason(code));
                        let e = match status::class(code) {
                            ErrorClass::Transient => SubmitError::transient(reason),
                            ErrorClass::Permanent => SubmitError::permanent(reason),
                        };
                        return Err(e.with_code(status::name(code)));
                    }
                    other => {
                        return Err(SubmitError::transient(format!(
                            "the SMSC answered submit_sm with {}",
                            other.command()
                        )));
                    }
                };
                lock(&self.deliveries.sent)
                    .insert(message_id.to_ascii_lowercase(), Arc::clone(&body));
                first.get_or_insert(message_id);
            }
            let message_id =
                first.ok_or_else(|| SubmitError::permanent("the message has no parts"))?;
            Ok(Accepted { message_id })
        })
    }

    fn status_callback_path(&self) -> Option<String> {
        None
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(session) = self.session.get() {
                session.close().await;
            }
        })
    }

    /// Binds on a connection of its own and unbinds: proves the address
    /// and the credentials without touching the shared bind.
    fn preflight(&self) -> BoxFuture<'_, Result<Option<String>, SubmitError>> {
        Box::pin(async move {
            let seq = self.preflight_sequence.fetch_add(2, Ordering::Relaxed);
            let (mut stream, system_id) = session::connect_and_bind(&self.config, seq)
                .await
                .map_err(session_error)?;
            let unbound = session::unbind(&mut stream, seq + 1, self.config.response_timeout).await;
            Ok(Some(format!(
                "bound as transceiver to {} (system_id `{}`){}",
                self.config.address,
                system_id,
                if unbound {
                    " and unbound"
                } else {
                    "; the unbind went unanswered"
                }
            )))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::smpp::pdu::Tlv;

    #[test]
    fn receipts_read_tlvs_first_then_the_text() {
        let text = "id:0A1b sub:001 dlvrd:000 submit date:2611281200 done date:2611281201 stat:UNDELIV err:034 text:hi";
        let mut m = ShortMessage {
            esm_class: ESM_CLASS_RECEIPT,
            short_message: text.as_bytes().to_vec(),
            ..ShortMessage::default()
        };
        let r = parse_receipt(&m).unwrap();
        assert_eq!(r.message_id, "0A1b");
        assert_eq!(r.status, DeliveryStatus::Undelivered);
        assert_eq!(
            (r.stat.as_str(), r.err.as_deref()),
            ("UNDELIV", Some("034"))
        );
        m.tlvs = vec![
            Tlv {
                tag: tag::RECEIPTED_MESSAGE_ID,
                value: b"other\0".to_vec(),
            },
            Tlv {
                tag: tag::MESSAGE_STATE,
                value: vec![3],
            },
        ];
        let r = parse_receipt(&m).unwrap();
        assert_eq!(
            (r.message_id.as_str(), r.stat.as_str()),
            ("other", "EXPIRED")
        );
        assert_eq!(r.status, DeliveryStatus::Undelivered);
        for (stat, failure) in [
            ("DELIVRD", false),
            ("REJECTD", true),
            ("DELETED", true),
            ("ENROUTE", false),
        ] {
            let m = ShortMessage {
                short_message: format!("id:1 stat:{stat} err:000").into_bytes(),
                ..ShortMessage::default()
            };
            let r = parse_receipt(&m).unwrap();
            assert_eq!(r.status.is_failure(), failure, "{stat}");
            assert_eq!(r.err, None);
        }
        assert!(parse_receipt(&ShortMessage::default()).is_none());
    }

    #[test]
    fn addresses_drop_the_plus_and_name_alphanumeric_senders() {
        assert_eq!(address("+15005550006"), (1, 1, "15005550006".into()));
        assert_eq!(address("Canary"), (5, 0, "Canary".into()));
    }
}
