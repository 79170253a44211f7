//! Encoding helpers: big-endian writes and length fields patched once the body is known.

use super::error::EncodeError;

pub(crate) fn put_u16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_be_bytes());
}

/// Converts a count or length to the width of its wire field, or says which field overflowed.
pub(crate) fn fit<T: TryFrom<usize>>(value: usize, field: &'static str) -> Result<T, EncodeError> {
    T::try_from(value).map_err(|_| EncodeError::TooLong {
        field,
        got: value,
        max: max_of::<T>(),
    })
}

fn max_of<T>() -> usize {
    match std::mem::size_of::<T>() {
        1 => u8::MAX.into(),
        2 => u16::MAX.into(),
        _ => u32::MAX as usize,
    }
}

/// A 16-bit length field written as zero and filled in by [`LengthSlot::close`] with the
/// number of octets from `start` (the beginning of the structure) to the current end.
pub(crate) struct LengthSlot {
    start: usize,
    at: usize,
    field: &'static str,
}

impl LengthSlot {
    /// Reserves the length field at the current end of `out`; `start` is where the structure
    /// that the length covers begins.
    pub(crate) fn reserve(out: &mut Vec<u8>, start: usize, field: &'static str) -> Self {
        let at = out.len();
        out.extend_from_slice(&[0, 0]);
        LengthSlot { start, at, field }
    }

    pub(crate) fn close(self, out: &mut [u8]) -> Result<(), EncodeError> {
        let len: u16 = fit(out.len().saturating_sub(self.start), self.field)?;
        if let Some(slot) = out.get_mut(self.at..self.at.saturating_add(2)) {
            slot.copy_from_slice(&len.to_be_bytes());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_slot_counts_from_structure_start() {
        let mut out = vec![0xAA];
        let slot = LengthSlot::reserve(&mut out, 1, "len");
        out.extend_from_slice(&[1, 2, 3]);
        slot.close(&mut out).unwrap();
        assert_eq!(out, [0xAA, 0, 5, 1, 2, 3]);
    }

    #[test]
    fn oversized_structure_is_an_error() {
        let mut out = vec![];
        let slot = LengthSlot::reserve(&mut out, 0, "len");
        out.resize(70_000, 0);
        assert_eq!(
            slot.close(&mut out),
            Err(EncodeError::TooLong {
                field: "len",
                got: 70_000,
                max: 65_535
            })
        );
        assert_eq!(
            fit::<u8>(256, "n"),
            Err(EncodeError::TooLong {
                field: "n",
                got: 256,
                max: 255
            })
        );
    }
}
