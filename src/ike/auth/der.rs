//! The few DER pieces signature AlgorithmIdentifiers need: reading tag-length-value
//! elements without panicking on hostile input, and writing them.

pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const OID: u8 = 0x06;
pub(crate) const NULL: u8 = 0x05;
pub(crate) const INTEGER: u8 = 0x02;

/// A cursor over DER elements.
pub(crate) struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Der(buf)
    }

    pub(crate) fn peek_tag(&self) -> Option<u8> {
        self.0.first().copied()
    }

    /// What has not been read.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.0
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The content of the next element if it has tag `tag`; `None` if it has another tag or
    /// does not fit. Lengths of up to two octets (65535) are enough for what we parse.
    pub(crate) fn read(&mut self, tag: u8) -> Option<&'a [u8]> {
        let (&found, rest) = self.0.split_first()?;
        if found != tag {
            return None;
        }
        let (len, rest) = match rest {
            [n, rest @ ..] if *n < 0x80 => (usize::from(*n), rest),
            [0x81, n, rest @ ..] if *n >= 0x80 => (usize::from(*n), rest),
            [0x82, hi, lo, rest @ ..] if *hi != 0 => {
                (usize::from(u16::from_be_bytes([*hi, *lo])), rest)
            }
            _ => return None,
        };
        let content = rest.get(..len)?;
        self.0 = rest.get(len..)?;
        Some(content)
    }

    /// Reads an element that must be the only thing left.
    pub(crate) fn read_last(mut self, tag: u8) -> Option<&'a [u8]> {
        let content = self.read(tag)?;
        self.is_empty().then_some(content)
    }
}

/// One DER element (contents up to 65535 octets, all we build).
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match u8::try_from(content.len()) {
        Ok(n) if n < 0x80 => out.push(n),
        Ok(n) => out.extend_from_slice(&[0x81, n]),
        Err(_) => {
            out.push(0x82);
            out.extend_from_slice(
                &u16::try_from(content.len())
                    .unwrap_or(u16::MAX)
                    .to_be_bytes(),
            );
        }
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_forms_round_trip() {
        for len in [0, 1, 127, 128, 255, 256, 1000] {
            let content = vec![7u8; len];
            let der = tlv(SEQUENCE, &content);
            assert_eq!(Der::new(&der).read_last(SEQUENCE), Some(content.as_slice()));
        }
    }

    #[test]
    fn hostile_input_is_refused() {
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x05, 0],
            &[0x30, 0x81, 0x05, 0, 0, 0, 0, 0],
            &[0x30, 0x83, 0, 0, 1, 0],
            &[0x30, 0x80],
        ] {
            assert_eq!(Der::new(bad).read(SEQUENCE), None, "{bad:?}");
        }
        assert_eq!(Der::new(&[0x05, 0]).read(SEQUENCE), None);
        assert_eq!(Der::new(&[0x05, 0, 1]).read_last(NULL), None);
    }
}
