//! A bounds-checked cursor: every read checks the remaining length and reports the field,
//! so decoders never index slices directly and cannot panic on hostile input.

use super::error::{DecodeError, ErrorKind, Expected, Location};

#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf[0]` in the outermost buffer, for error messages.
    base: usize,
    location: Location,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], location: Location) -> Self {
        Reader {
            buf,
            pos: 0,
            base: 0,
            location,
        }
    }

    pub(crate) fn set_location(&mut self, location: Location) {
        self.location = location;
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Absolute offset of the next unread octet.
    pub(crate) fn offset(&self) -> usize {
        self.base.saturating_add(self.pos)
    }

    pub(crate) fn error(&self, field: &'static str, kind: ErrorKind) -> DecodeError {
        self.error_at(self.offset(), field, kind)
    }

    pub(crate) fn error_at(
        &self,
        offset: usize,
        field: &'static str,
        kind: ErrorKind,
    ) -> DecodeError {
        DecodeError {
            location: self.location,
            field,
            offset,
            kind,
        }
    }

    pub(crate) fn bad_length(
        &self,
        field: &'static str,
        expected: Expected,
        got: usize,
    ) -> DecodeError {
        self.error(field, ErrorKind::BadLength { expected, got })
    }

    pub(crate) fn bytes(
        &mut self,
        len: usize,
        field: &'static str,
    ) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(len);
        match end.and_then(|end| Some((self.buf.get(self.pos..end)?, end))) {
            Some((slice, end)) => {
                self.pos = end;
                Ok(slice)
            }
            None => Err(self.error(
                field,
                ErrorKind::Truncated {
                    needed: len,
                    available: self.remaining(),
                },
            )),
        }
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N, field)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// Skips reserved octets; their content is ignored on receipt (RFC 7296 section 3).
    pub(crate) fn skip(&mut self, len: usize, field: &'static str) -> Result<(), DecodeError> {
        self.bytes(len, field).map(|_| ())
    }

    /// Everything that is left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        self.pos = self.buf.len();
        rest
    }

    /// Splits off the next `len` octets as a cursor of their own, for a substructure whose
    /// length field says how far it extends.
    pub(crate) fn sub(
        &mut self,
        len: usize,
        field: &'static str,
    ) -> Result<Reader<'a>, DecodeError> {
        let base = self.offset();
        let buf = self.bytes(len, field)?;
        Ok(Reader {
            buf,
            pos: 0,
            base,
            location: self.location,
        })
    }

    /// Reads a length field that counts its own `header` octets, and returns the cursor over
    /// the rest of the structure. The length must cover the header and fit what remains.
    pub(crate) fn framed(
        &mut self,
        start: usize,
        header: usize,
        declared: usize,
        field: &'static str,
    ) -> Result<Reader<'a>, DecodeError> {
        let Some(body) = declared.checked_sub(header) else {
            return Err(self.error_at(
                start,
                field,
                ErrorKind::BadLength {
                    expected: Expected::AtLeast(header),
                    got: declared,
                },
            ));
        };
        if body > self.remaining() {
            return Err(self.error_at(
                start,
                field,
                ErrorKind::BadLength {
                    expected: Expected::Between(header, header.saturating_add(self.remaining())),
                    got: declared,
                },
            ));
        }
        self.sub(body, field)
    }

    /// Fails when octets are left that no field accounts for.
    pub(crate) fn finish(&self, field: &'static str) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(self.error(field, ErrorKind::TrailingBytes { count })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_big_endian_and_reports_truncation() {
        let mut r = Reader::new(&[1, 2, 3, 4, 5], Location::Header);
        assert_eq!(r.u16("a").unwrap(), 0x0102);
        assert_eq!(r.offset(), 2);
        let e = r.u32("b").unwrap_err();
        assert_eq!(e.field, "b");
        assert_eq!(e.offset, 2);
        assert_eq!(
            e.kind,
            ErrorKind::Truncated {
                needed: 4,
                available: 3
            }
        );
        // A failed read consumes nothing.
        assert_eq!(r.remaining(), 3);
        assert_eq!(r.bytes(usize::MAX, "huge").unwrap_err().offset, 2);
    }

    #[test]
    fn sub_cursor_keeps_absolute_offsets() {
        let mut r = Reader::new(&[0, 0, 9, 8, 7], Location::Header);
        r.skip(2, "pad").unwrap();
        let mut sub = r.sub(2, "s").unwrap();
        assert_eq!(sub.u8("x").unwrap(), 9);
        assert_eq!(sub.offset(), 3);
        assert!(sub.finish("s").is_err());
        assert_eq!(r.rest(), &[7]);
        assert!(r.is_empty());
    }

    #[test]
    fn framed_checks_both_bounds() {
        let mut r = Reader::new(&[0; 6], Location::Header);
        assert!(matches!(
            r.framed(0, 4, 3, "len").unwrap_err().kind,
            ErrorKind::BadLength {
                expected: Expected::AtLeast(4),
                got: 3
            }
        ));
        assert!(matches!(
            r.framed(0, 4, 11, "len").unwrap_err().kind,
            ErrorKind::BadLength {
                expected: Expected::Between(4, 10),
                got: 11
            }
        ));
        assert_eq!(r.framed(0, 4, 10, "len").unwrap().remaining(), 6);
    }
}
