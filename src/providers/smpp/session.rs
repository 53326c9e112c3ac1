//! One SMPP bind, kept up: a transceiver session over TCP that the probes of
//! a process share.
//!
//! A task owns the connection: it binds, answers the SMSC's `enquire_link`,
//! `deliver_sm` (always with `deliver_sm_resp`) and `unbind`, sends its own
//! `enquire_link` every `enquire_link` interval and counts the link lost
//! when one goes unanswered, and after any loss binds again with
//! exponential backoff (factor 3, capped). Requests wait for the bind, match
//! their answer by sequence number, and give up after their timeout. The
//! task stops, unbinding first, when the last handle drops.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};

use super::pdu::{Bind, Body, CommandId, INTERFACE_VERSION, Pdu, ShortMessage};
use super::status;
use crate::redact::Secret;

/// How to reach and bind to the SMSC.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// `host:port`.
    pub address: String,
    pub system_id: String,
    pub password: Secret,
    pub system_type: String,
    /// How often the link is checked with `enquire_link`.
    pub enquire_link: Duration,
    /// How long a request (the bind included) waits for its answer.
    pub response_timeout: Duration,
    /// First wait before binding again; it grows threefold up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
}

/// Why a request got no answer.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SessionError {
    /// Not bound now (connecting, or the link was lost); says why.
    #[error("not bound to the SMSC: {0}")]
    NotBound(String),
    /// The SMSC refused the bind with this command_status.
    #[error("the SMSC refused the bind: {}", status::describe(*.0))]
    BindRefused(u32),
    #[error("no answer from the SMSC within {0:?}")]
    Timeout(Duration),
    /// The SMSC answered with generic_nack.
    #[error("the SMSC refused the PDU (generic_nack): {}", status::describe(*.0))]
    Nack(u32),
    #[error("cannot send to the SMSC: {0}")]
    Encode(String),
}

/// What the SMSC delivers: receipts and inbound messages.
pub type DeliverHandler = Arc<dyn Fn(ShortMessage) + Send + Sync>;

#[derive(Debug, Clone)]
enum Link {
    Down(String),
    Refused(u32),
    Up(mpsc::Sender<Outgoing>),
}

struct Outgoing {
    pdu: Pdu,
    answer: Option<oneshot::Sender<Result<Pdu, SessionError>>>,
}

/// A handle on the shared bind. Dropping the last one unbinds.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

struct Inner {
    link: watch::Receiver<Link>,
    sequence: Arc<AtomicU32>,
    response_timeout: Duration,
    stop: watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Session {
    /// Starts binding in the background; requests wait for the bind.
    pub fn start(config: SessionConfig, on_deliver: DeliverHandler) -> Session {
        let (link_tx, link_rx) = watch::channel(Link::Down("binding".into()));
        let (stop_tx, stop_rx) = watch::channel(false);
        let sequence = Arc::new(AtomicU32::new(1));
        let response_timeout = config.response_timeout;
        let task = tokio::spawn(keep_bound(
            config,
            on_deliver,
            link_tx,
            stop_rx,
            Arc::clone(&sequence),
        ));
        Session {
            inner: Arc::new(Inner {
                link: link_rx,
                sequence,
                response_timeout,
                stop: stop_tx,
                task: Mutex::new(Some(task)),
            }),
        }
    }

    /// Unbinds and waits for it (briefly): what a process does before it
    /// exits, so the SMSC sees an unbind rather than a dropped connection.
    pub async fn close(&self) {
        let _ = self.inner.stop.send(true);
        let task = lock(&self.inner.task).take();
        if let Some(task) = task {
            let grace = self.inner.response_timeout + Duration::from_secs(1);
            if tokio::time::timeout(grace, task).await.is_err() {
                tracing::debug!("SMPP: the unbind took too long; closing anyway");
            }
        }
    }

    /// Whether the session is bound now.
    pub fn is_bound(&self) -> bool {
        matches!(*self.inner.link.borrow(), Link::Up(_))
    }

    /// Sends a request and waits for its answer (any command_status).
    pub async fn request(&self, body: Body) -> Result<Pdu, SessionError> {
        let timeout = self.inner.response_timeout;
        let mut link = self.inner.link.clone();
        let sender = tokio::time::timeout(timeout, async {
            loop {
                let state = link.borrow_and_update().clone();
                match state {
                    Link::Up(tx) => return Ok(tx),
                    Link::Refused(status) => return Err(SessionError::BindRefused(status)),
                    Link::Down(why) => {
                        if link.changed().await.is_err() {
                            return Err(SessionError::NotBound(why));
                        }
                    }
                }
            }
        })
        .await
        .map_err(|_| match &*self.inner.link.borrow() {
            Link::Down(why) => SessionError::NotBound(why.clone()),
            Link::Refused(s) => SessionError::BindRefused(*s),
            Link::Up(_) => SessionError::Timeout(timeout),
        })??;
        let (tx, rx) = oneshot::channel();
        let pdu = Pdu::new(next_sequence(&self.inner.sequence), body);
        sender
            .send(Outgoing {
                pdu,
                answer: Some(tx),
            })
            .await
            .map_err(|_| SessionError::NotBound("the link was lost".into()))?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(SessionError::NotBound(
                "the link was lost before the answer".into(),
            )),
            Err(_) => Err(SessionError::Timeout(timeout)),
        }
    }
}

fn next_sequence(sequence: &AtomicU32) -> u32 {
    // Sequence numbers run 1..=0x7FFFFFFF and wrap.
    let n = sequence.fetch_add(1, Ordering::Relaxed) & 0x7FFF_FFFF;
    n.max(1)
}

/// The bind's credentials as a bind_transceiver body.
pub fn bind_body(config: &SessionConfig) -> Body {
    Body::BindTransceiver(Bind {
        system_id: config.system_id.clone(),
        password: config.password.clone(),
        system_type: config.system_type.clone(),
        interface_version: INTERFACE_VERSION,
        addr_ton: 0,
        addr_npi: 0,
        address_range: String::new(),
    })
}

/// Connects and binds once. The stream is bound on `Ok`; a refusal is
/// `BindRefused` with the SMSC's status.
pub async fn connect_and_bind(
    config: &SessionConfig,
    sequence: u32,
) -> Result<(TcpStream, String), SessionError> {
    let timeout = config.response_timeout;
    let mut stream = tokio::time::timeout(timeout, TcpStream::connect(&config.address))
        .await
        .map_err(|_| SessionError::NotBound(format!("connecting timed out after {timeout:?}")))?
        .map_err(|e| SessionError::NotBound(format!("cannot connect: {e}")))?;
    let _ = stream.set_nodelay(true);
    let bind = Pdu::new(sequence, bind_body(config))
        .encode()
        .map_err(|e| SessionError::Encode(e.to_string()))?;
    stream
        .write_all(&bind)
        .await
        .map_err(|e| SessionError::NotBound(format!("cannot send the bind: {e}")))?;
    let answer = tokio::time::timeout(timeout, async {
        loop {
            match Pdu::read(&mut stream).await {
                Ok(Some(p)) if p.sequence == sequence => return Ok(p),
                // An enquire_link before the bind is answered: ignore it.
                Ok(Some(_)) => continue,
                Ok(None) => {
                    return Err(SessionError::NotBound(
                        "the SMSC closed the connection during the bind".into(),
                    ));
                }
                Err(e) => return Err(SessionError::NotBound(e.to_string())),
            }
        }
    })
    .await
    .map_err(|_| SessionError::Timeout(timeout))??;
    match answer.body {
        Body::BindTransceiverResp { system_id } if answer.status == 0 => Ok((stream, system_id)),
        Body::BindTransceiverResp { .. } | Body::GenericNack => {
            Err(SessionError::BindRefused(answer.status))
        }
        other => Err(SessionError::NotBound(format!(
            "the SMSC answered the bind with {}",
            other.command()
        ))),
    }
}

/// Unbinds a bound stream and waits (briefly) for the answer.
pub async fn unbind(stream: &mut TcpStream, sequence: u32, timeout: Duration) -> bool {
    let Ok(bytes) = Pdu::new(sequence, Body::Unbind).encode() else {
        return false;
    };
    if stream.write_all(&bytes).await.is_err() {
        return false;
    }
    let answered = tokio::time::timeout(timeout, async {
        loop {
            match Pdu::read(stream).await {
                Ok(Some(p)) if p.command() == CommandId::UnbindResp => return true,
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return false,
            }
        }
    })
    .await
    .unwrap_or(false);
    let _ = stream.shutdown().await;
    answered
}

async fn keep_bound(
    config: SessionConfig,
    on_deliver: DeliverHandler,
    link: watch::Sender<Link>,
    mut stop: watch::Receiver<bool>,
    sequence: Arc<AtomicU32>,
) {
    let mut backoff = config.backoff;
    loop {
        let bound = tokio::select! {
            r = connect_and_bind(&config, next_sequence(&sequence)) => r,
            () = stopped(&mut stop) => return,
        };
        match bound {
            Ok((stream, _)) => {
                tracing::info!(smsc = %config.address, "SMPP bound as transceiver");
                backoff = config.backoff;
                let why = serve(stream, &config, &on_deliver, &link, &mut stop, &sequence).await;
                match why {
                    None => return,
                    Some(why) => {
                        tracing::warn!(smsc = %config.address, "SMPP bind lost: {why}");
                        link.send_replace(Link::Down(format!("bind lost: {why}")));
                    }
                }
            }
            Err(SessionError::BindRefused(status)) => {
                tracing::warn!(smsc = %config.address, "SMPP bind refused: {}", status::describe(status));
                link.send_replace(Link::Refused(status));
            }
            Err(e) => {
                tracing::warn!(smsc = %config.address, "SMPP bind failed: {e}");
                link.send_replace(Link::Down(e.to_string()));
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = stopped(&mut stop) => return,
        }
        backoff = (backoff * 3).min(config.max_backoff);
    }
}

type Pending = Arc<Mutex<HashMap<u32, oneshot::Sender<Result<Pdu, SessionError>>>>>;

/// Runs a bound connection until it is lost (`Some(why)`) or the session
/// stops (`None`, after unbinding).
async fn serve(
    stream: TcpStream,
    config: &SessionConfig,
    on_deliver: &DeliverHandler,
    link: &watch::Sender<Link>,
    stop: &mut watch::Receiver<bool>,
    sequence: &AtomicU32,
) -> Option<String> {
    let (read_half, mut write_half) = stream.into_split();
    let mut reader = read_half;
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 8192];
    let (tx, mut rx) = mpsc::channel::<Outgoing>(64);
    link.send_replace(Link::Up(tx.clone()));
    let pending: Pending = Arc::default();
    let mut ticker = tokio::time::interval(config.enquire_link);
    ticker.tick().await;
    // The sequence of an enquire_link not answered yet, and when it was sent.
    let mut probing: Option<(u32, tokio::time::Instant)> = None;
    let lost = loop {
        tokio::select! {
            out = rx.recv() => {
                let Some(out) = out else { break "the session ended".to_string() };
                let bytes = match out.pdu.encode() {
                    Ok(b) => b,
                    Err(e) => {
                        if let Some(a) = out.answer { let _ = a.send(Err(SessionError::Encode(e.to_string()))); }
                        continue;
                    }
                };
                if let Some(answer) = out.answer {
                    let mut pending = lock(&pending);
                    // Requests that gave up waiting leave their entry behind.
                    pending.retain(|_, waiting| !waiting.is_closed());
                    pending.insert(out.pdu.sequence, answer);
                }
                if let Err(e) = write_half.write_all(&bytes).await {
                    break format!("cannot write: {e}");
                }
            }
            // `read` is cancel-safe (a frame half read stays in `buf`);
            // reading a whole PDU inside `select!` would not be.
            n = reader.read(&mut chunk) => {
                let n = match n {
                    Ok(0) => break "the SMSC closed the connection".to_string(),
                    Ok(n) => n,
                    Err(e) => break format!("cannot read: {e}"),
                };
                buf.extend_from_slice(&chunk[..n]);
                let (replies, fatal) = take_frames(&mut buf, &pending, on_deliver, &mut probing);
                let mut failed = None;
                for reply in replies {
                    let unbound = reply.command() == CommandId::UnbindResp;
                    match reply.encode() {
                        Ok(bytes) => {
                            if let Err(e) = write_half.write_all(&bytes).await {
                                failed = Some(format!("cannot write: {e}"));
                                break;
                            }
                        }
                        Err(e) => tracing::warn!("SMPP: cannot answer: {e}"),
                    }
                    if unbound {
                        failed = Some("the SMSC unbound".to_string());
                        break;
                    }
                }
                if let Some(why) = failed.or(fatal) {
                    break why;
                }
            }
            _ = ticker.tick() => {
                if let Some((_, since)) = probing
                    && since.elapsed() >= config.response_timeout {
                    break format!("enquire_link unanswered for {:?}", config.response_timeout);
                }
                if probing.is_none() {
                    let seq = next_sequence(sequence);
                    probing = Some((seq, tokio::time::Instant::now()));
                    if let Ok(bytes) = Pdu::new(seq, Body::EnquireLink).encode()
                        && let Err(e) = write_half.write_all(&bytes).await {
                        break format!("cannot write: {e}");
                    }
                }
            }
            () = stopped(stop) => {
                link.send_replace(Link::Down("the session stopped".into()));
                let mut stream = match reader.reunite(write_half) {
                    Ok(s) => s,
                    Err(_) => return None,
                };
                unbind(&mut stream, next_sequence(sequence), config.response_timeout).await;
                return None;
            }
        }
    };
    link.send_replace(Link::Down(lost.clone()));
    // Requests in flight will get no answer on this link.
    for (_, answer) in lock(&pending).drain() {
        let _ = answer.send(Err(SessionError::NotBound(format!("bind lost: {lost}"))));
    }
    Some(lost)
}

/// Takes the whole PDUs off the front of `buf` and handles them: the answers
/// to send, and why the link cannot go on (a frame that cannot be skipped).
fn take_frames(
    buf: &mut Vec<u8>,
    pending: &Pending,
    on_deliver: &DeliverHandler,
    probing: &mut Option<(u32, tokio::time::Instant)>,
) -> (Vec<Pdu>, Option<String>) {
    let mut replies = Vec::new();
    loop {
        match Pdu::parse_frame(buf) {
            Ok(Some((pdu, used))) => {
                buf.drain(..used);
                replies.extend(handle(pdu, pending, on_deliver, probing));
            }
            Ok(None) => return (replies, None),
            Err(e) if e.frame_intact() => {
                tracing::warn!("SMPP: {e}");
                // The length was read and is within bounds: skip the frame.
                let len = buf.get(..4).map_or(buf.len(), |h| {
                    u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize
                });
                buf.drain(..len.min(buf.len()));
                replies.push(Pdu::response(
                    e.sequence().unwrap_or(0),
                    status::nack_status(&e),
                    Body::GenericNack,
                ));
            }
            Err(e) => return (replies, Some(e.to_string())),
        }
    }
}

/// Handles one PDU from the SMSC; returns the answer to send, if any.
fn handle(
    pdu: Pdu,
    pending: &Pending,
    on_deliver: &DeliverHandler,
    probing: &mut Option<(u32, tokio::time::Instant)>,
) -> Option<Pdu> {
    let sequence = pdu.sequence;
    match pdu.body {
        Body::DeliverSm(message) => {
            on_deliver(message);
            Some(Pdu::new(sequence, Body::DeliverSmResp))
        }
        Body::EnquireLink => Some(Pdu::new(sequence, Body::EnquireLinkResp)),
        Body::Unbind => Some(Pdu::new(sequence, Body::UnbindResp)),
        Body::EnquireLinkResp => {
            if probing.is_some_and(|(s, _)| s == sequence) {
                *probing = None;
            }
            None
        }
        Body::GenericNack => {
            if let Some(answer) = lock(pending).remove(&sequence) {
                let _ = answer.send(Err(SessionError::Nack(pdu.status)));
            }
            None
        }
        Body::SubmitSmResp { .. } | Body::BindTransceiverResp { .. } | Body::UnbindResp => {
            if let Some(answer) = lock(pending).remove(&sequence) {
                let _ = answer.send(Ok(pdu));
            }
            None
        }
        // An answer to nothing we sent.
        Body::DeliverSmResp => None,
        // Requests an ESME does not take.
        Body::SubmitSm(_) | Body::BindTransceiver(_) => Some(Pdu::response(
            sequence,
            status::ESME_RINVCMDID,
            Body::GenericNack,
        )),
    }
}

/// Resolves once the session is told to stop (or its handle is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`: drop it here.
    let _ = stop.wait_for(|s| *s).await;
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
