//! strongSwan's VICI wire format: packets framed by a 4-byte big-endian length, a type
//! byte, an optional name (1-byte length) and, for requests, responses and events, a
//! message of sections, key/values and lists. Decoding never panics: every length is
//! checked against what is left, names must be UTF-8 and nesting is bounded.

use std::fmt;

/// Largest packet (after the length prefix) either side accepts: charon's own
/// `VICI_MESSAGE_SIZE_MAX`, so every message charon's tools send fits.
pub const MAX_PACKET: usize = 512 * 1024;
/// Deepest nesting of sections and lists accepted; charon's messages nest 4 deep.
pub const MAX_DEPTH: usize = 16;

const CMD_REQUEST: u8 = 0;
const CMD_RESPONSE: u8 = 1;
const CMD_UNKNOWN: u8 = 2;
const EVENT_REGISTER: u8 = 3;
const EVENT_UNREGISTER: u8 = 4;
const EVENT_CONFIRM: u8 = 5;
const EVENT_UNKNOWN: u8 = 6;
const EVENT: u8 = 7;

const SECTION_START: u8 = 1;
const SECTION_END: u8 = 2;
const KEY_VALUE: u8 = 3;
const LIST_START: u8 = 4;
const LIST_ITEM: u8 = 5;
const LIST_END: u8 = 6;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Element {
    Section(String, Message),
    KeyValue(String, Vec<u8>),
    List(String, Vec<Vec<u8>>),
}

/// A VICI message: elements in order (charon's tools read them in order).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message(pub Vec<Element>);

impl Message {
    pub fn new() -> Self {
        Message::default()
    }

    /// Adds `key = value` (the value's text form).
    pub fn kv(mut self, key: &str, value: impl fmt::Display) -> Self {
        (self.0).push(Element::KeyValue(
            key.into(),
            value.to_string().into_bytes(),
        ));
        self
    }

    pub fn section(mut self, name: &str, inner: Message) -> Self {
        self.0.push(Element::Section(name.into(), inner));
        self
    }

    pub fn list<T: fmt::Display>(mut self, name: &str, items: impl IntoIterator<Item = T>) -> Self {
        let items = items.into_iter().map(|i| i.to_string().into_bytes());
        self.0.push(Element::List(name.into(), items.collect()));
        self
    }

    /// The value of the top-level key `key`, when it is text.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.0.iter().find_map(|e| match e {
            Element::KeyValue(k, v) if k == key => std::str::from_utf8(v).ok(),
            _ => None,
        })
    }

    /// This message's elements followed by `other`'s.
    pub fn merged(mut self, other: Message) -> Self {
        self.0.extend(other.0);
        self
    }

    pub fn get_section(&self, name: &str) -> Option<&Message> {
        self.0.iter().find_map(|e| match e {
            Element::Section(k, m) if k == name => Some(m),
            _ => None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Packet {
    Request {
        command: String,
        message: Message,
    },
    Response(Message),
    /// The command is not known.
    Unknown,
    Register(String),
    Unregister(String),
    Confirm,
    /// The event is not known.
    EventUnknown,
    Event {
        name: String,
        message: Message,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated at byte {0}")]
    Truncated(usize),
    #[error("unexpected bytes from byte {0} on")]
    Trailing(usize),
    #[error("unknown packet type {0}")]
    PacketType(u8),
    #[error("unknown element type {kind} at byte {at}")]
    ElementType { kind: u8, at: usize },
    #[error("a name at byte {0} is not UTF-8")]
    Name(usize),
    #[error("an end at byte {0} closes nothing open")]
    UnbalancedEnd(usize),
    #[error("{0} section(s) or list(s) are not closed")]
    Unclosed(usize),
    #[error("nested deeper than {MAX_DEPTH} at byte {0}")]
    TooDeep(usize),
    #[error("a list at byte {0} holds something other than items")]
    NotAnItem(usize),
    #[error("an item at byte {0} is outside any list")]
    StrayItem(usize),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("name of {0} bytes (at most 255)")]
    Name(usize),
    #[error("value of {0} bytes (at most 65535)")]
    Value(usize),
    #[error("packet of {0} bytes (at most {MAX_PACKET})")]
    TooLarge(usize),
    #[error("nested deeper than {MAX_DEPTH}")]
    TooDeep,
}

/// Decodes a packet's body (what follows the 4-byte length).
pub fn decode_packet(body: &[u8]) -> Result<Packet, DecodeError> {
    let mut r = Reader { bytes: body, at: 0 };
    let kind = r.u8()?;
    let packet = match kind {
        CMD_REQUEST => Packet::Request {
            command: r.name()?,
            message: decode_from(&mut r)?,
        },
        CMD_RESPONSE => Packet::Response(decode_from(&mut r)?),
        CMD_UNKNOWN => Packet::Unknown,
        EVENT_REGISTER => Packet::Register(r.name()?),
        EVENT_UNREGISTER => Packet::Unregister(r.name()?),
        EVENT_CONFIRM => Packet::Confirm,
        EVENT_UNKNOWN => Packet::EventUnknown,
        EVENT => Packet::Event {
            name: r.name()?,
            message: decode_from(&mut r)?,
        },
        other => return Err(DecodeError::PacketType(other)),
    };
    // Messages run to the end; nothing may follow a name or a bare type.
    if !r.done() {
        return Err(DecodeError::Trailing(r.at));
    }
    Ok(packet)
}

/// Encodes a packet with its length prefix.
pub fn encode_packet(packet: &Packet) -> Result<Vec<u8>, EncodeError> {
    let mut out = vec![0; 4];
    let (kind, name, message) = match packet {
        Packet::Request { command, message } => (CMD_REQUEST, Some(command), Some(message)),
        Packet::Response(m) => (CMD_RESPONSE, None, Some(m)),
        Packet::Unknown => (CMD_UNKNOWN, None, None),
        Packet::Register(n) => (EVENT_REGISTER, Some(n), None),
        Packet::Unregister(n) => (EVENT_UNREGISTER, Some(n), None),
        Packet::Confirm => (EVENT_CONFIRM, None, None),
        Packet::EventUnknown => (EVENT_UNKNOWN, None, None),
        Packet::Event { name, message } => (EVENT, Some(name), Some(message)),
    };
    out.push(kind);
    if let Some(name) = name {
        put_name(&mut out, name)?;
    }
    if let Some(message) = message {
        encode_into(message, &mut out, 0)?;
    }
    let body = out.len() - 4;
    if body > MAX_PACKET {
        return Err(EncodeError::TooLarge(body));
    }
    let length = u32::try_from(body).map_err(|_| EncodeError::TooLarge(body))?;
    out[..4].copy_from_slice(&length.to_be_bytes());
    Ok(out)
}

/// Decodes a whole message (a packet's tail).
pub fn decode_message(bytes: &[u8]) -> Result<Message, DecodeError> {
    decode_from(&mut Reader { bytes, at: 0 })
}

pub fn encode_message(message: &Message) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    encode_into(message, &mut out, 0)?;
    Ok(out)
}

/// The invariants on untrusted input, for the fuzz target and the proptests: decoding
/// never panics, and what decodes encodes back to the same bytes.
pub fn check_decode(data: &[u8]) {
    if let Ok(packet) = decode_packet(data) {
        let framed = encode_packet(&packet).expect("a decoded packet encodes");
        assert_eq!(&framed[4..], data, "packet round trip");
    }
    if let Ok(message) = decode_message(data) {
        let bytes = encode_message(&message).expect("a decoded message encodes");
        assert_eq!(bytes, data, "message round trip");
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or(DecodeError::Truncated(self.at))?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn name(&mut self) -> Result<String, DecodeError> {
        let at = self.at;
        let len = usize::from(self.u8()?);
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::Name(at))
    }

    fn value(&mut self) -> Result<Vec<u8>, DecodeError> {
        let len = self.take(2)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        Ok(self.take(len)?.to_vec())
    }

    fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }
}

/// Reads elements to the end of the input, with an explicit stack instead of recursion.
fn decode_from(r: &mut Reader<'_>) -> Result<Message, DecodeError> {
    let mut open: Vec<(String, Message)> = Vec::new();
    let mut current = Message::new();
    while !r.done() {
        let at = r.at;
        match r.u8()? {
            SECTION_START => {
                if open.len() >= MAX_DEPTH {
                    return Err(DecodeError::TooDeep(at));
                }
                let name = r.name()?;
                open.push((name, std::mem::take(&mut current)));
            }
            SECTION_END => {
                let (name, parent) = open.pop().ok_or(DecodeError::UnbalancedEnd(at))?;
                let section = std::mem::replace(&mut current, parent);
                current.0.push(Element::Section(name, section));
            }
            KEY_VALUE => {
                let name = r.name()?;
                let value = r.value()?;
                current.0.push(Element::KeyValue(name, value));
            }
            LIST_START => {
                if open.len() >= MAX_DEPTH {
                    return Err(DecodeError::TooDeep(at));
                }
                let name = r.name()?;
                let mut items = Vec::new();
                loop {
                    let at = r.at;
                    match r.u8()? {
                        LIST_ITEM => items.push(r.value()?),
                        LIST_END => break,
                        _ => return Err(DecodeError::NotAnItem(at)),
                    }
                }
                current.0.push(Element::List(name, items));
            }
            LIST_ITEM => return Err(DecodeError::StrayItem(at)),
            LIST_END => return Err(DecodeError::UnbalancedEnd(at)),
            kind => return Err(DecodeError::ElementType { kind, at }),
        }
    }
    if !open.is_empty() {
        return Err(DecodeError::Unclosed(open.len()));
    }
    Ok(current)
}

fn put_name(out: &mut Vec<u8>, name: &str) -> Result<(), EncodeError> {
    let len = u8::try_from(name.len()).map_err(|_| EncodeError::Name(name.len()))?;
    out.push(len);
    out.extend_from_slice(name.as_bytes());
    Ok(())
}

fn put_value(out: &mut Vec<u8>, value: &[u8]) -> Result<(), EncodeError> {
    let len = u16::try_from(value.len()).map_err(|_| EncodeError::Value(value.len()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(value);
    Ok(())
}

fn encode_into(message: &Message, out: &mut Vec<u8>, depth: usize) -> Result<(), EncodeError> {
    for element in &message.0 {
        if out.len() > MAX_PACKET + 4 {
            return Err(EncodeError::TooLarge(out.len()));
        }
        match element {
            Element::Section(name, inner) => {
                if depth >= MAX_DEPTH {
                    return Err(EncodeError::TooDeep);
                }
                out.push(SECTION_START);
                put_name(out, name)?;
                encode_into(inner, out, depth + 1)?;
                out.push(SECTION_END);
            }
            Element::KeyValue(name, value) => {
                out.push(KEY_VALUE);
                put_name(out, name)?;
                put_value(out, value)?;
            }
            Element::List(name, items) => {
                if depth >= MAX_DEPTH {
                    return Err(EncodeError::TooDeep);
                }
                out.push(LIST_START);
                put_name(out, name)?;
                for item in items {
                    out.push(LIST_ITEM);
                    put_value(out, item)?;
                }
                out.push(LIST_END);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
