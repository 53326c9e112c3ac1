//! The SMPP 3.4 PDUs sms-canary speaks, encoded and decoded.
//!
//! A small codec of our own rather than a general SMPP crate: the canary
//! needs thirteen PDUs, and every byte a peer sends must end in a clear
//! error (never a panic, never an allocation the peer sized): a frame is
//! refused from its `command_length` alone when that is shorter than the
//! header or longer than [`MAX_PDU_LEN`], before any body is read; C-octet
//! strings are read only within their field's size; an unknown
//! `command_id` is an error carrying the sequence number, so the session
//! can answer it with `generic_nack` as SMPP asks.

use std::fmt;

use tokio::io::{AsyncRead, AsyncReadExt as _};

use crate::redact::Secret;

/// The header: command_length, command_id, command_status, sequence_number.
pub const HEADER_LEN: usize = 16;

/// The largest PDU read or written. A submit_sm is at most a few hundred
/// bytes; a peer announcing more is broken or hostile.
pub const MAX_PDU_LEN: usize = 64 * 1024;

/// SMPP version 3.4, as `interface_version` says it.
pub const INTERFACE_VERSION: u8 = 0x34;

/// `esm_class` bit of a `deliver_sm` that is a delivery receipt.
pub const ESM_CLASS_RECEIPT: u8 = 0x04;
/// `esm_class` bit of a message whose short_message starts with a UDH.
pub const ESM_CLASS_UDHI: u8 = 0x40;

/// `data_coding`: the SMSC default alphabet (GSM 03.38).
pub const DATA_CODING_DEFAULT: u8 = 0x00;
/// `data_coding`: UCS-2 (UTF-16BE).
pub const DATA_CODING_UCS2: u8 = 0x08;

/// TLV tags the canary reads or writes.
pub mod tag {
    pub const RECEIPTED_MESSAGE_ID: u16 = 0x001E;
    pub const MESSAGE_STATE: u16 = 0x0427;
    pub const NETWORK_ERROR_CODE: u16 = 0x0423;
}

/// The command ids of the PDUs sms-canary speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandId {
    GenericNack,
    BindTransceiver,
    BindTransceiverResp,
    SubmitSm,
    SubmitSmResp,
    DeliverSm,
    DeliverSmResp,
    Unbind,
    UnbindResp,
    EnquireLink,
    EnquireLinkResp,
}

impl CommandId {
    pub const ALL: &[CommandId] = &[
        CommandId::GenericNack,
        CommandId::BindTransceiver,
        CommandId::BindTransceiverResp,
        CommandId::SubmitSm,
        CommandId::SubmitSmResp,
        CommandId::DeliverSm,
        CommandId::DeliverSmResp,
        CommandId::Unbind,
        CommandId::UnbindResp,
        CommandId::EnquireLink,
        CommandId::EnquireLinkResp,
    ];

    pub fn code(self) -> u32 {
        match self {
            CommandId::GenericNack => 0x8000_0000,
            CommandId::BindTransceiver => 0x0000_0009,
            CommandId::BindTransceiverResp => 0x8000_0009,
            CommandId::SubmitSm => 0x0000_0004,
            CommandId::SubmitSmResp => 0x8000_0004,
            CommandId::DeliverSm => 0x0000_0005,
            CommandId::DeliverSmResp => 0x8000_0005,
            CommandId::Unbind => 0x0000_0006,
            CommandId::UnbindResp => 0x8000_0006,
            CommandId::EnquireLink => 0x0000_0015,
            CommandId::EnquireLinkResp => 0x8000_0015,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            CommandId::GenericNack => "generic_nack",
            CommandId::BindTransceiver => "bind_transceiver",
            CommandId::BindTransceiverResp => "bind_transceiver_resp",
            CommandId::SubmitSm => "submit_sm",
            CommandId::SubmitSmResp => "submit_sm_resp",
            CommandId::DeliverSm => "deliver_sm",
            CommandId::DeliverSmResp => "deliver_sm_resp",
            CommandId::Unbind => "unbind",
            CommandId::UnbindResp => "unbind_resp",
            CommandId::EnquireLink => "enquire_link",
            CommandId::EnquireLinkResp => "enquire_link_resp",
        }
    }

    pub fn from_code(code: u32) -> Option<CommandId> {
        CommandId::ALL.iter().copied().find(|c| c.code() == code)
    }

    /// The answer a request of this id takes (`None` for responses).
    pub fn response(self) -> Option<CommandId> {
        match self {
            CommandId::BindTransceiver => Some(CommandId::BindTransceiverResp),
            CommandId::SubmitSm => Some(CommandId::SubmitSmResp),
            CommandId::DeliverSm => Some(CommandId::DeliverSmResp),
            CommandId::Unbind => Some(CommandId::UnbindResp),
            CommandId::EnquireLink => Some(CommandId::EnquireLinkResp),
            CommandId::GenericNack
            | CommandId::BindTransceiverResp
            | CommandId::SubmitSmResp
            | CommandId::DeliverSmResp
            | CommandId::UnbindResp
            | CommandId::EnquireLinkResp => None,
        }
    }
}

/// A PDU that could not be read. Every variant says what was wrong in
/// words a person can act on; none carries more of the input than a field name.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PduError {
    #[error("SMPP PDU length {0} is shorter than the 16-byte header")]
    TooShort(u32),
    #[error("SMPP PDU length {0} is over the limit of {MAX_PDU_LEN} bytes")]
    TooLong(u32),
    #[error("unknown SMPP command id 0x{id:08x} (sequence {sequence})")]
    UnknownCommand { id: u32, sequence: u32 },
    #[error("malformed SMPP {command}: {field} {reason}")]
    Malformed {
        command: &'static str,
        /// The sequence number, so the session can still answer.
        sequence: u32,
        field: &'static str,
        reason: &'static str,
    },
    #[error("SMPP {command}: {field} is longer than {max} bytes")]
    FieldTooLong {
        command: &'static str,
        field: &'static str,
        max: usize,
    },
    #[error("SMPP connection: {0}")]
    Io(#[from] std::io::Error),
}

impl PduError {
    /// The sequence number of a PDU whose header was read, to answer it
    /// with `generic_nack`.
    pub fn sequence(&self) -> Option<u32> {
        match self {
            PduError::UnknownCommand { sequence, .. } | PduError::Malformed { sequence, .. } => {
                Some(*sequence)
            }
            PduError::TooShort(_)
            | PduError::TooLong(_)
            | PduError::FieldTooLong { .. }
            | PduError::Io(_) => None,
        }
    }

    /// Whether the connection can go on after this error: the frame was
    /// read whole, so the next one starts where it ended.
    pub fn frame_intact(&self) -> bool {
        self.sequence().is_some()
    }
}

/// `bind_transceiver`: the ESME's credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct Bind {
    pub system_id: String,
    pub password: Secret,
    pub system_type: String,
    pub interface_version: u8,
    pub addr_ton: u8,
    pub addr_npi: u8,
    pub address_range: String,
}

/// An optional parameter: tag, and its value as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlv {
    pub tag: u16,
    pub value: Vec<u8>,
}

/// The body `submit_sm` and `deliver_sm` share.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShortMessage {
    pub service_type: String,
    pub source_addr_ton: u8,
    pub source_addr_npi: u8,
    pub source_addr: String,
    pub dest_addr_ton: u8,
    pub dest_addr_npi: u8,
    pub destination_addr: String,
    pub esm_class: u8,
    pub protocol_id: u8,
    pub priority_flag: u8,
    pub schedule_delivery_time: String,
    pub validity_period: String,
    pub registered_delivery: u8,
    pub replace_if_present_flag: u8,
    pub data_coding: u8,
    pub sm_default_msg_id: u8,
    /// At most 254 octets (its length is one byte).
    pub short_message: Vec<u8>,
    pub tlvs: Vec<Tlv>,
}

impl ShortMessage {
    pub fn tlv(&self, tag: u16) -> Option<&[u8]> {
        self.tlvs
            .iter()
            .find(|t| t.tag == tag)
            .map(|t| t.value.as_slice())
    }
}

/// A PDU's body, one variant per command.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    GenericNack,
    BindTransceiver(Bind),
    /// `system_id` is absent on refusals.
    BindTransceiverResp {
        system_id: String,
    },
    SubmitSm(ShortMessage),
    /// `message_id` is absent on refusals.
    SubmitSmResp {
        message_id: String,
    },
    DeliverSm(ShortMessage),
    DeliverSmResp,
    Unbind,
    UnbindResp,
    EnquireLink,
    EnquireLinkResp,
}

impl Body {
    pub fn command(&self) -> CommandId {
        match self {
            Body::GenericNack => CommandId::GenericNack,
            Body::BindTransceiver(_) => CommandId::BindTransceiver,
            Body::BindTransceiverResp { .. } => CommandId::BindTransceiverResp,
            Body::SubmitSm(_) => CommandId::SubmitSm,
            Body::SubmitSmResp { .. } => CommandId::SubmitSmResp,
            Body::DeliverSm(_) => CommandId::DeliverSm,
            Body::DeliverSmResp => CommandId::DeliverSmResp,
            Body::Unbind => CommandId::Unbind,
            Body::UnbindResp => CommandId::UnbindResp,
            Body::EnquireLink => CommandId::EnquireLink,
            Body::EnquireLinkResp => CommandId::EnquireLinkResp,
        }
    }
}

/// One PDU: header fields and body.
#[derive(Debug, Clone, PartialEq)]
pub struct Pdu {
    pub status: u32,
    pub sequence: u32,
    pub body: Body,
}

impl Pdu {
    pub fn new(sequence: u32, body: Body) -> Pdu {
        Pdu {
            status: 0,
            sequence,
            body,
        }
    }

    /// An answer to a request, with `status`.
    pub fn response(sequence: u32, status: u32, body: Body) -> Pdu {
        Pdu {
            status,
            sequence,
            body,
        }
    }

    pub fn command(&self) -> CommandId {
        self.body.command()
    }

    /// The PDU on the wire. Fails only for fields over their SMPP size
    /// (which a peer's data cannot cause: we never echo unchecked input).
    pub fn encode(&self) -> Result<Vec<u8>, PduError> {
        let command = self.command().name();
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&self.command().code().to_be_bytes());
        out.extend_from_slice(&self.status.to_be_bytes());
        out.extend_from_slice(&self.sequence.to_be_bytes());
        let mut w = Writer { out, command };
        match &self.body {
            Body::GenericNack
            | Body::DeliverSmResp
            | Body::Unbind
            | Body::UnbindResp
            | Body::EnquireLink
            | Body::EnquireLinkResp => {}
            Body::BindTransceiver(b) => {
                w.cstr("system_id", &b.system_id, 16)?;
                w.cstr("password", b.password.expose(), 9)?;
                w.cstr("system_type", &b.system_type, 13)?;
                w.out
                    .extend_from_slice(&[b.interface_version, b.addr_ton, b.addr_npi]);
                w.cstr("address_range", &b.address_range, 41)?;
            }
            Body::BindTransceiverResp { system_id } => {
                if self.status == 0 || !system_id.is_empty() {
                    w.cstr("system_id", system_id, 16)?;
                }
            }
            Body::SubmitSmResp { message_id } => {
                if self.status == 0 || !message_id.is_empty() {
                    w.cstr("message_id", message_id, 65)?;
                }
            }
            Body::SubmitSm(m) | Body::DeliverSm(m) => w.short_message(m)?,
        }
        let mut out = w.out;
        let len = out.len();
        if len > MAX_PDU_LEN {
            return Err(PduError::FieldTooLong {
                command,
                field: "the PDU",
                max: MAX_PDU_LEN,
            });
        }
        out[..4].copy_from_slice(&(len as u32).to_be_bytes());
        Ok(out)
    }

    /// Decodes one whole PDU (`frame` is exactly `command_length` bytes).
    pub fn decode(frame: &[u8]) -> Result<Pdu, PduError> {
        let len = check_length(frame.get(..4).map_or(0, be32))?;
        if frame.len() != len {
            return Err(PduError::Malformed {
                command: "PDU",
                sequence: frame.get(12..16).map_or(0, be32),
                field: "command_length",
                reason: "does not match the bytes given",
            });
        }
        let id = be32(&frame[4..8]);
        let status = be32(&frame[8..12]);
        let sequence = be32(&frame[12..16]);
        let command = CommandId::from_code(id).ok_or(PduError::UnknownCommand { id, sequence })?;
        let mut r = Reader {
            buf: &frame[HEADER_LEN..],
            command: command.name(),
            sequence,
        };
        let body = match command {
            CommandId::GenericNack => Body::GenericNack,
            CommandId::DeliverSmResp => {
                // Some SMSCs send an empty message_id here; it means nothing.
                if !r.buf.is_empty() {
                    r.cstr("message_id", 65)?;
                }
                Body::DeliverSmResp
            }
            CommandId::Unbind => Body::Unbind,
            CommandId::UnbindResp => Body::UnbindResp,
            CommandId::EnquireLink => Body::EnquireLink,
            CommandId::EnquireLinkResp => Body::EnquireLinkResp,
            CommandId::BindTransceiver => Body::BindTransceiver(Bind {
                system_id: r.cstr("system_id", 16)?,
                password: Secret::new(r.cstr("password", 9)?),
                system_type: r.cstr("system_type", 13)?,
                interface_version: r.u8("interface_version")?,
                addr_ton: r.u8("addr_ton")?,
                addr_npi: r.u8("addr_npi")?,
                address_range: r.cstr("address_range", 41)?,
            }),
            CommandId::BindTransceiverResp => {
                let system_id = if r.buf.is_empty() && status != 0 {
                    String::new()
                } else {
                    r.cstr("system_id", 16)?
                };
                // SMPP 3.4 allows the sc_interface_version TLV here.
                r.tlvs()?;
                Body::BindTransceiverResp { system_id }
            }
            CommandId::SubmitSmResp => {
                let message_id = if r.buf.is_empty() && status != 0 {
                    String::new()
                } else {
                    r.cstr("message_id", 65)?
                };
                Body::SubmitSmResp { message_id }
            }
            CommandId::SubmitSm => Body::SubmitSm(r.short_message()?),
            CommandId::DeliverSm => Body::DeliverSm(r.short_message()?),
        };
        if !r.buf.is_empty() {
            return Err(r.malformed("the body", "has bytes after its last field"));
        }
        Ok(Pdu {
            status,
            sequence,
            body,
        })
    }

    /// Splits the first PDU off `buf` if it holds a whole one: `Ok(None)`
    /// asks for more bytes. A bad length fails at once, from 4 bytes.
    pub fn parse_frame(buf: &[u8]) -> Result<Option<(Pdu, usize)>, PduError> {
        let Some(head) = buf.get(..4) else {
            return Ok(None);
        };
        let len = check_length(be32(head))?;
        match buf.get(..len) {
            Some(frame) => Pdu::decode(frame).map(|p| Some((p, len))),
            None => Ok(None),
        }
    }

    /// Reads one PDU from a stream. `Ok(None)` at a clean end of stream
    /// (between PDUs). Memory is bounded by [`MAX_PDU_LEN`] whatever the peer says.
    pub async fn read<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Option<Pdu>, PduError> {
        let mut head = [0u8; 4];
        match reader.read(&mut head[..1]).await? {
            0 => return Ok(None),
            _ => reader.read_exact(&mut head[1..]).await?,
        };
        let len = check_length(u32::from_be_bytes(head))?;
        let mut frame = vec![0u8; len];
        frame[..4].copy_from_slice(&head);
        reader.read_exact(&mut frame[4..]).await?;
        Pdu::decode(&frame).map(Some)
    }
}

fn check_length(len: u32) -> Result<usize, PduError> {
    let n = len as usize;
    if n < HEADER_LEN {
        Err(PduError::TooShort(len))
    } else if n > MAX_PDU_LEN {
        Err(PduError::TooLong(len))
    } else {
        Ok(n)
    }
}

fn be32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    let n = b.len().min(4);
    a[..n].copy_from_slice(&b[..n]);
    u32::from_be_bytes(a)
}

struct Writer {
    out: Vec<u8>,
    command: &'static str,
}

impl Writer {
    /// A C-octet string of at most `max` bytes, its NUL included.
    fn cstr(&mut self, field: &'static str, s: &str, max: usize) -> Result<(), PduError> {
        if s.len() >= max || s.as_bytes().contains(&0) {
            return Err(PduError::FieldTooLong {
                command: self.command,
                field,
                max: max - 1,
            });
        }
        self.out.extend_from_slice(s.as_bytes());
        self.out.push(0);
        Ok(())
    }

    fn short_message(&mut self, m: &ShortMessage) -> Result<(), PduError> {
        self.cstr("service_type", &m.service_type, 6)?;
        self.out
            .extend_from_slice(&[m.source_addr_ton, m.source_addr_npi]);
        self.cstr("source_addr", &m.source_addr, 21)?;
        self.out
            .extend_from_slice(&[m.dest_addr_ton, m.dest_addr_npi]);
        self.cstr("destination_addr", &m.destination_addr, 21)?;
        self.out
            .extend_from_slice(&[m.esm_class, m.protocol_id, m.priority_flag]);
        self.cstr("schedule_delivery_time", &m.schedule_delivery_time, 17)?;
        self.cstr("validity_period", &m.validity_period, 17)?;
        self.out.extend_from_slice(&[
            m.registered_delivery,
            m.replace_if_present_flag,
            m.data_coding,
            m.sm_default_msg_id,
        ]);
        let sm_length = u8::try_from(m.short_message.len())
            .ok()
            .filter(|&n| n < 255)
            .ok_or(PduError::FieldTooLong {
                command: self.command,
                field: "short_message",
                max: 254,
            })?;
        self.out.push(sm_length);
        self.out.extend_from_slice(&m.short_message);
        for t in &m.tlvs {
            let len = u16::try_from(t.value.len()).map_err(|_| PduError::FieldTooLong {
                command: self.command,
                field: "a TLV",
                max: usize::from(u16::MAX),
            })?;
            self.out.extend_from_slice(&t.tag.to_be_bytes());
            self.out.extend_from_slice(&len.to_be_bytes());
            self.out.extend_from_slice(&t.value);
        }
        Ok(())
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    command: &'static str,
    sequence: u32,
}

impl Reader<'_> {
    fn malformed(&self, field: &'static str, reason: &'static str) -> PduError {
        PduError::Malformed {
            command: self.command,
            sequence: self.sequence,
            field,
            reason,
        }
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, PduError> {
        let (&b, rest) = self
            .buf
            .split_first()
            .ok_or_else(|| self.malformed(field, "is missing (the PDU ends early)"))?;
        self.buf = rest;
        Ok(b)
    }

    fn bytes(&mut self, field: &'static str, n: usize) -> Result<&[u8], PduError> {
        if self.buf.len() < n {
            return Err(self.malformed(field, "is cut off (the PDU ends early)"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// A C-octet string whose NUL must come within `max` bytes.
    fn cstr(&mut self, field: &'static str, max: usize) -> Result<String, PduError> {
        let window = &self.buf[..self.buf.len().min(max)];
        let Some(nul) = window.iter().position(|&b| b == 0) else {
            return Err(if self.buf.len() < max && !self.buf.contains(&0) {
                self.malformed(field, "has no terminating NUL (the PDU ends early)")
            } else {
                self.malformed(field, "is longer than SMPP allows")
            });
        };
        let s = String::from_utf8_lossy(&window[..nul]).into_owned();
        self.buf = &self.buf[nul + 1..];
        Ok(s)
    }

    fn short_message(&mut self) -> Result<ShortMessage, PduError> {
        let mut m = ShortMessage {
            service_type: self.cstr("service_type", 6)?,
            source_addr_ton: self.u8("source_addr_ton")?,
            source_addr_npi: self.u8("source_addr_npi")?,
            source_addr: self.cstr("source_addr", 21)?,
            dest_addr_ton: self.u8("dest_addr_ton")?,
            dest_addr_npi: self.u8("dest_addr_npi")?,
            destination_addr: self.cstr("destination_addr", 21)?,
            esm_class: self.u8("esm_class")?,
            protocol_id: self.u8("protocol_id")?,
            priority_flag: self.u8("priority_flag")?,
            schedule_delivery_time: self.cstr("schedule_delivery_time", 17)?,
            validity_period: self.cstr("validity_period", 17)?,
            registered_delivery: self.u8("registered_delivery")?,
            replace_if_present_flag: self.u8("replace_if_present_flag")?,
            data_coding: self.u8("data_coding")?,
            sm_default_msg_id: self.u8("sm_default_msg_id")?,
            ..ShortMessage::default()
        };
        let sm_length = self.u8("sm_length")?;
        if sm_length == 255 {
            return Err(self.malformed("sm_length", "is 255 (at most 254)"));
        }
        m.short_message = self
            .bytes("short_message", usize::from(sm_length))?
            .to_vec();
        m.tlvs = self.tlvs()?;
        Ok(m)
    }

    fn tlvs(&mut self) -> Result<Vec<Tlv>, PduError> {
        let mut tlvs = Vec::new();
        while !self.buf.is_empty() {
            let head = self.bytes("a TLV header", 4)?;
            let tag = u16::from_be_bytes([head[0], head[1]]);
            let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
            let value = self.bytes("a TLV value", len)?.to_vec();
            tlvs.push(Tlv { tag, value });
        }
        Ok(tlvs)
    }
}

impl fmt::Display for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_message() -> ShortMessage {
        ShortMessage {
            source_addr_ton: 1,
            source_addr_npi: 1,
            source_addr: "15005550006".into(),
            dest_addr_ton: 1,
            dest_addr_npi: 1,
            destination_addr: "15005550100".into(),
            registered_delivery: 1,
            short_message: b"sms-canary p abcdefghjk".to_vec(),
            tlvs: vec![Tlv {
                tag: tag::RECEIPTED_MESSAGE_ID,
                value: b"m1\0".to_vec(),
            }],
            ..ShortMessage::default()
        }
    }

    fn every_pdu() -> Vec<Pdu> {
        vec![
            Pdu::new(1, Body::GenericNack),
            Pdu::new(
                2,
                Body::BindTransceiver(Bind {
                    system_id: "canary".into(),
                    password: Secret::new("secret08"),
                    system_type: "".into(),
                    interface_version: INTERFACE_VERSION,
                    addr_ton: 0,
                    addr_npi: 0,
                    address_range: "".into(),
                }),
            ),
            Pdu::new(
                3,
                Body::BindTransceiverResp {
                    system_id: "mock".into(),
                },
            ),
            Pdu::response(
                3,
                0x0e,
                Body::BindTransceiverResp {
                    system_id: String::new(),
                },
            ),
            Pdu::new(4, Body::SubmitSm(sample_message())),
            Pdu::new(
                5,
                Body::SubmitSmResp {
                    message_id: "abc123".into(),
                },
            ),
            Pdu::response(
                5,
                0x58,
                Body::SubmitSmResp {
                    message_id: String::new(),
                },
            ),
            Pdu::new(6, Body::DeliverSm(sample_message())),
            Pdu::new(7, Body::DeliverSmResp),
            Pdu::new(8, Body::Unbind),
            Pdu::new(9, Body::UnbindResp),
            Pdu::new(10, Body::EnquireLink),
            Pdu::new(u32::MAX, Body::EnquireLinkResp),
        ]
    }

    #[test]
    fn every_pdu_round_trips() {
        for pdu in every_pdu() {
            let bytes = pdu.encode().unwrap();
            assert_eq!(be32(&bytes[..4]) as usize, bytes.len());
            assert_eq!(Pdu::decode(&bytes).unwrap(), pdu, "{}", pdu.command());
            let (parsed, used) = Pdu::parse_frame(&bytes).unwrap().unwrap();
            assert_eq!((parsed, used), (pdu.clone(), bytes.len()));
            assert!(
                Pdu::parse_frame(&bytes[..bytes.len() - 1])
                    .unwrap()
                    .is_none()
            );
        }
    }

    #[test]
    fn bind_matches_the_specification_example() {
        // The bind example of the SMPP specification, as a transceiver.
        let bytes = [
            0x00, 0x00, 0x00, 0x2f, 0x00, 0x00, 0x00, 0x09, 0, 0, 0, 0, 0, 0, 0, 1, b'S', b'M',
            b'P', b'P', b'3', b'T', b'E', b'S', b'T', 0, b's', b'e', b'c', b'r', b'e', b't', b'0',
            b'8', 0, b'S', b'U', b'B', b'M', b'I', b'T', b'1', 0, 0x34, 1, 1, 0,
        ];
        let pdu = Pdu::decode(&bytes).unwrap();
        let Body::BindTransceiver(b) = &pdu.body else {
            panic!("{pdu:?}")
        };
        assert_eq!(b.system_id, "SMPP3TEST");
        assert_eq!(b.password.expose(), "secret08");
        assert_eq!(b.system_type, "SUBMIT1");
        assert!(!format!("{pdu:?}").contains("secret08"), "Debug hides it");
        assert_eq!(pdu.encode().unwrap(), bytes);
    }

    #[test]
    fn bad_lengths_are_refused_from_the_header_alone() {
        let mut huge = vec![0u8; 8];
        huge[..4].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
        let e = Pdu::parse_frame(&huge).unwrap_err();
        assert!(matches!(e, PduError::TooLong(0x7fff_ffff)), "{e}");
        assert!(e.to_string().contains("over the limit of 65536"), "{e}");
        let e = Pdu::parse_frame(&[0, 0, 0, 5, 1]).unwrap_err();
        assert!(
            e.to_string().contains("shorter than the 16-byte header"),
            "{e}"
        );
        assert!(!e.frame_intact());
    }

    #[test]
    fn unknown_commands_and_cut_bodies_name_what_is_wrong() {
        let mut bytes = Pdu::new(7, Body::EnquireLink).encode().unwrap();
        bytes[4..8].copy_from_slice(&0x0000_0103u32.to_be_bytes());
        let e = Pdu::decode(&bytes).unwrap_err();
        assert_eq!(e.sequence(), Some(7));
        assert_eq!(
            e.to_string(),
            "unknown SMPP command id 0x00000103 (sequence 7)"
        );

        let full = Pdu::new(9, Body::SubmitSm(sample_message()))
            .encode()
            .unwrap();
        for cut in HEADER_LEN..full.len() {
            let mut frame = full[..cut].to_vec();
            frame[..4].copy_from_slice(&(cut as u32).to_be_bytes());
            match Pdu::decode(&frame) {
                Err(e @ PduError::Malformed { .. }) => {
                    assert_eq!(e.sequence(), Some(9));
                    assert!(
                        e.to_string().starts_with("malformed SMPP submit_sm: "),
                        "{e}"
                    );
                }
                // Cut exactly between TLVs: a valid PDU with fewer of them.
                Ok(p) => assert_eq!(cut, full.len() - 7, "{p:?}"),
                Err(e) => panic!("{e}"),
            }
        }
        let mut long = Pdu::new(1, Body::EnquireLink).encode().unwrap();
        long.push(0);
        long[..4].copy_from_slice(&17u32.to_be_bytes());
        let e = Pdu::decode(&long).unwrap_err().to_string();
        assert!(e.contains("has bytes after its last field"), "{e}");
    }

    #[test]
    fn strings_over_their_size_are_refused_both_ways() {
        let mut m = sample_message();
        m.destination_addr = "1".repeat(21);
        let e = Pdu::new(1, Body::SubmitSm(m)).encode().unwrap_err();
        assert_eq!(
            e.to_string(),
            "SMPP submit_sm: destination_addr is longer than 20 bytes"
        );
        let mut m = sample_message();
        m.short_message = vec![b'x'; 255];
        assert!(Pdu::new(1, Body::SubmitSm(m)).encode().is_err());
        // A system_id with no NUL in its 16 bytes.
        let mut frame = Pdu::new(
            3,
            Body::BindTransceiverResp {
                system_id: "x".into(),
            },
        )
        .encode()
        .unwrap();
        frame.truncate(HEADER_LEN);
        frame.extend_from_slice(&[b'a'; 20]);
        frame.push(0);
        let len = frame.len() as u32;
        frame[..4].copy_from_slice(&len.to_be_bytes());
        let e = Pdu::decode(&frame).unwrap_err().to_string();
        assert!(e.contains("system_id is longer than SMPP allows"), "{e}");
    }

    #[tokio::test]
    async fn streams_are_read_pdu_by_pdu_and_end_cleanly() {
        let mut bytes = Vec::new();
        for pdu in every_pdu() {
            bytes.extend(pdu.encode().unwrap());
        }
        let mut reader = bytes.as_slice();
        let mut read = Vec::new();
        while let Some(pdu) = Pdu::read(&mut reader).await.unwrap() {
            read.push(pdu);
        }
        assert_eq!(read, every_pdu());
        let mut cut: &[u8] = &bytes[..bytes.len() - 2];
        let last = loop {
            match Pdu::read(&mut cut).await {
                Ok(Some(_)) => {}
                Ok(None) => panic!("a cut PDU is not a clean end"),
                Err(e) => break e,
            }
        };
        assert!(matches!(last, PduError::Io(_)), "{last}");
        let mut huge: &[u8] = &[0xff, 0xff, 0xff, 0xff, 0, 0];
        assert!(matches!(
            Pdu::read(&mut huge).await,
            Err(PduError::TooLong(u32::MAX))
        ));
    }

    /// Random bytes, and valid PDUs with random bytes changed, through the
    /// decoder: an error or a PDU, never a panic; and whatever decodes
    /// encodes back to a PDU that decodes the same.
    #[test]
    fn random_input_never_panics() {
        let mut rng = crate::mock_carrier::latency::Rng::new(19);
        let valid: Vec<Vec<u8>> = every_pdu().iter().map(|p| p.encode().unwrap()).collect();
        for round in 0..200_000u32 {
            let mut bytes = if round % 2 == 0 {
                let n = (rng.next_u64() % 96) as usize;
                (0..n).map(|_| rng.next_u64() as u8).collect::<Vec<u8>>()
            } else {
                let mut b = valid[(rng.next_u64() as usize) % valid.len()].clone();
                for _ in 0..=(rng.next_u64() % 4) {
                    let i = (rng.next_u64() as usize) % b.len();
                    b[i] = rng.next_u64() as u8;
                }
                b
            };
            if round % 3 == 0 && bytes.len() >= 4 {
                let len = bytes.len() as u32;
                bytes[..4].copy_from_slice(&len.to_be_bytes());
            }
            check_one(&bytes);
        }
    }

    fn check_one(bytes: &[u8]) {
        if let Ok(Some((pdu, used))) = Pdu::parse_frame(bytes) {
            assert!(used <= bytes.len());
            if let Ok(again) = pdu.encode() {
                assert_eq!(Pdu::decode(&again).unwrap().body, pdu.body);
            }
        }
    }
}
