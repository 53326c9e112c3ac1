//! Message text as SMPP carries it: the GSM 7-bit default alphabet
//! (`data_coding` 0, one septet an octet, as SMPP sends it unpacked) when
//! every character has a place in it, UCS-2 (`data_coding` 8) otherwise;
//! texts longer than one SMS are cut into parts behind a concatenation UDH
//! (8-bit reference), never inside an escape sequence or a surrogate pair.
//! Inbound parts are put back together by [`Reassembly`], with a bound on
//! what it keeps.

use std::collections::{HashMap, VecDeque};

use super::pdu::{DATA_CODING_DEFAULT, DATA_CODING_UCS2, ESM_CLASS_UDHI};

/// GSM 03.38, the basic table by septet.
const BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1b}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// The extension table, reached through the escape septet 0x1B.
const EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{0c}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

const ESCAPE: u8 = 0x1B;

/// Septets of one SMS, and of one part of a concatenated one (the UDH takes 7).
const GSM_SINGLE: usize = 160;
const GSM_PART: usize = 153;
/// UTF-16 units of one SMS, and of one part.
const UCS2_SINGLE: usize = 70;
const UCS2_PART: usize = 67;

/// The most parts a concatenation UDH can number.
const MAX_PARTS: usize = 255;

/// The septets of `c` in the default alphabet, if it has a place there.
fn gsm_septets(c: char) -> Option<Vec<u8>> {
    if c == '\u{1b}' {
        return None;
    }
    if let Some(i) = BASIC.iter().position(|&b| b == c) {
        return Some(vec![i as u8]);
    }
    EXTENSION
        .iter()
        .find(|(_, e)| *e == c)
        .map(|(code, _)| vec![ESCAPE, *code])
}

/// One part as submitted: its `data_coding`, `esm_class` and short_message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub data_coding: u8,
    pub esm_class: u8,
    pub short_message: Vec<u8>,
}

/// Too long even for a concatenated message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the message needs {0} SMS parts; a concatenated message has at most 255")]
pub struct TooLong(pub usize);

/// Encodes `text` in the narrowest coding that holds it and cuts it into
/// parts; `reference` numbers the parts of one message.
pub fn encode(text: &str, reference: u8) -> Result<Vec<Part>, TooLong> {
    let gsm: Option<Vec<Vec<u8>>> = text.chars().map(gsm_septets).collect();
    let (coding, units, single, part): (u8, Vec<Vec<u8>>, usize, usize) = match gsm {
        Some(septets) => (DATA_CODING_DEFAULT, septets, GSM_SINGLE, GSM_PART),
        None => {
            // One unit per char: a surrogate pair (two UTF-16 units) stays whole.
            let chars = text
                .chars()
                .map(|c| {
                    let mut buf = [0u16; 2];
                    c.encode_utf16(&mut buf)
                        .iter()
                        .flat_map(|u| u.to_be_bytes())
                        .collect()
                })
                .collect();
            (DATA_CODING_UCS2, chars, UCS2_SINGLE, UCS2_PART)
        }
    };
    // Sizes in septets (GSM) or UTF-16 units (UCS-2).
    let size = |u: &Vec<u8>| {
        if coding == DATA_CODING_UCS2 {
            u.len() / 2
        } else {
            u.len()
        }
    };
    let total: usize = units.iter().map(size).sum();
    if total <= single {
        return Ok(vec![Part {
            data_coding: coding,
            esm_class: 0,
            short_message: units.concat(),
        }]);
    }
    let mut chunks: Vec<Vec<u8>> = vec![Vec::new()];
    let mut used = 0;
    for u in &units {
        if used + size(u) > part {
            chunks.push(Vec::new());
            used = 0;
        }
        used += size(u);
        chunks.last_mut().expect("one chunk at least").extend(u);
    }
    if chunks.len() > MAX_PARTS {
        return Err(TooLong(chunks.len()));
    }
    let count = chunks.len() as u8;
    Ok(chunks
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| {
            let mut short_message = vec![0x05, 0x00, 0x03, reference, count, i as u8 + 1];
            short_message.extend(chunk);
            Part {
                data_coding: coding,
                esm_class: ESM_CLASS_UDHI,
                short_message,
            }
        })
        .collect())
}

/// The text of a short_message in `data_coding`; bytes that mean nothing in
/// it become U+FFFD, never an error (a carrier's text is what it is).
pub fn decode(data_coding: u8, bytes: &[u8]) -> String {
    match data_coding {
        DATA_CODING_UCS2 => {
            let units: Vec<u16> = bytes
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        // Latin-1, and IA5 (ASCII) which it contains.
        0x01 | 0x03 => bytes.iter().map(|&b| char::from(b)).collect(),
        DATA_CODING_DEFAULT => {
            let mut out = String::with_capacity(bytes.len());
            let mut it = bytes.iter();
            while let Some(&b) = it.next() {
                if b == ESCAPE {
                    let next = it.next().copied().unwrap_or(0);
                    let c = EXTENSION.iter().find(|(code, _)| *code == next);
                    out.push(c.map_or(' ', |(_, c)| *c));
                } else {
                    out.push(*BASIC.get(usize::from(b)).unwrap_or(&'\u{fffd}'));
                }
            }
            out
        }
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Where a part belongs: its message's reference, how many parts, which one.
type Concat = (u16, u8, u8);

/// A part's concatenation header (or "one of one") and its payload.
fn concat_header(short_message: &[u8]) -> Option<(Concat, &[u8])> {
    let (&udhl, rest) = short_message.split_first()?;
    let udh = rest.get(..usize::from(udhl))?;
    let payload = &rest[usize::from(udhl)..];
    let mut i = 0;
    let mut found = None;
    while i + 2 <= udh.len() {
        let (iei, len) = (udh[i], usize::from(udh[i + 1]));
        let data = udh.get(i + 2..i + 2 + len)?;
        match (iei, data) {
            (0x00, &[r, total, n]) => found = Some((u16::from(r), total, n)),
            (0x08, &[r1, r2, total, n]) => found = Some((u16::from_be_bytes([r1, r2]), total, n)),
            _ => {}
        }
        i += 2 + len;
    }
    Some((found.unwrap_or((0, 1, 1)), payload))
}

/// Puts inbound parts back together. Keyed by sender and reference; at most
/// [`Reassembly::KEPT`] messages wait for their parts (oldest dropped first).
#[derive(Debug, Default)]
pub struct Reassembly {
    waiting: HashMap<(String, u16), Vec<Option<String>>>,
    order: VecDeque<(String, u16)>,
}

impl Reassembly {
    pub const KEPT: usize = 256;

    /// The whole text once every part is in; `None` while parts are missing.
    pub fn add(
        &mut self,
        from: &str,
        esm_class: u8,
        data_coding: u8,
        short_message: &[u8],
    ) -> Option<String> {
        if esm_class & ESM_CLASS_UDHI == 0 {
            return Some(decode(data_coding, short_message));
        }
        let ((reference, total, n), payload) = concat_header(short_message)?;
        let text = decode(data_coding, payload);
        if total <= 1 || n == 0 || n > total {
            return Some(text);
        }
        let key = (from.to_string(), reference);
        if !self.waiting.contains_key(&key) {
            if self.order.len() >= Self::KEPT
                && let Some(oldest) = self.order.pop_front()
            {
                self.waiting.remove(&oldest);
            }
            self.order.push_back(key.clone());
        }
        let parts = self
            .waiting
            .entry(key.clone())
            .or_insert_with(|| vec![None; usize::from(total)]);
        if let Some(slot) = parts.get_mut(usize::from(n) - 1) {
            *slot = Some(text);
        }
        if parts.iter().all(Option::is_some) {
            let whole = self.waiting.remove(&key)?.into_iter().flatten().collect();
            self.order.retain(|k| k != &key);
            return Some(whole);
        }
        None
    }

    pub fn pending(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm_text_is_one_octet_a_septet_and_escapes_the_extension() {
        let parts = encode("Hi @£ [x] €5", 1).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].data_coding, DATA_CODING_DEFAULT);
        assert_eq!(
            parts[0].short_message,
            [
                b'H', b'i', b' ', 0x00, 0x01, b' ', 0x1b, 0x3c, b'x', 0x1b, 0x3e, b' ', 0x1b, 0x65,
                b'5'
            ]
        );
        assert_eq!(decode(0, &parts[0].short_message), "Hi @£ [x] €5");
    }

    #[test]
    fn text_outside_the_alphabet_goes_as_ucs2() {
        let parts = encode("Grüße 😀 Привет", 1).unwrap();
        assert_eq!(parts[0].data_coding, DATA_CODING_UCS2);
        assert_eq!(&parts[0].short_message[..4], &[0, b'G', 0, b'r']);
        assert_eq!(decode(8, &parts[0].short_message), "Grüße 😀 Привет");
    }

    #[test]
    fn limits_of_one_sms_and_of_the_parts() {
        assert_eq!(encode(&"a".repeat(160), 0).unwrap().len(), 1);
        let parts = encode(&"a".repeat(161), 7).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(&parts[0].short_message[..6], &[5, 0, 3, 7, 2, 1]);
        assert_eq!(parts[0].short_message.len(), 6 + 153);
        assert_eq!(parts[1].esm_class, ESM_CLASS_UDHI);
        // An escape pair is never cut in two.
        let text = format!("{}€", "a".repeat(152));
        let parts = encode(&format!("{text}{}", "b".repeat(10)), 0).unwrap();
        assert_eq!(parts[0].short_message.len(), 6 + 152);
        assert_eq!(encode(&"ж".repeat(70), 0).unwrap().len(), 1);
        let parts = encode(&"ж".repeat(71), 0).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].short_message.len(), 6 + 134);
        // A surrogate pair stays in one part.
        let parts = encode(&format!("{}😀x", "ж".repeat(66)), 0).unwrap();
        assert_eq!(parts[0].short_message.len(), 6 + 132);
        assert_eq!(encode(&"a".repeat(153 * 256), 0), Err(TooLong(256)));
    }

    #[test]
    fn parts_come_back_together_in_any_order() {
        let text = format!("sms-canary long {} end", "é".repeat(300));
        let parts = encode(&text, 42).unwrap();
        assert!(parts.len() > 1);
        let mut r = Reassembly::default();
        let mut got = None;
        for p in parts.iter().rev() {
            assert!(got.is_none());
            got = r.add("+1555", p.esm_class, p.data_coding, &p.short_message);
        }
        assert_eq!(got.as_deref(), Some(text.as_str()));
        assert_eq!(r.pending(), 0);
        for i in 0..(Reassembly::KEPT as u16 + 10) {
            r.add("+1", ESM_CLASS_UDHI, 0, &[5, 0, 3, i as u8, 2, 1, b'x']);
            r.add("+2", ESM_CLASS_UDHI, 0, &[6, 8, 4, 0, i as u8, 2, 1, b'x']);
        }
        assert_eq!(r.pending(), Reassembly::KEPT);
        // Nonsense headers give text or nothing, never a panic.
        for bytes in [&[][..], &[9, 0], &[3, 0, 3, 1], &[5, 0, 3, 1, 0, 0]] {
            let _ = r.add("+3", ESM_CLASS_UDHI, 0, bytes);
        }
        assert_eq!(decode(0, &[0x80, 0x1b]), "\u{fffd} ");
        assert_eq!(decode(8, &[0, b'a', 0]), "a\0");
    }
}
