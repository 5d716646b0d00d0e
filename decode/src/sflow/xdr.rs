//! A checked XDR reader (RFC 4506): big-endian 4-byte units, variable-length opaque data as a
//! length and the bytes padded to a multiple of four. Every read returns `None` past the end.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::DecodeError;

/// A cursor over one XDR structure.
#[derive(Clone, Copy, Debug)]
pub(super) struct Xdr<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Xdr<'a> {
    pub(super) fn new(b: &'a [u8]) -> Self {
        Xdr { b, pos: 0 }
    }

    /// Bytes left.
    #[inline]
    pub(super) fn remaining(&self) -> usize {
        self.b.len().saturating_sub(self.pos)
    }

    /// The next `n` bytes.
    #[inline]
    pub(super) fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.b.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    #[inline]
    pub(super) fn u32(&mut self) -> Option<u32> {
        let s = self.bytes(4)?;
        Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    #[inline]
    pub(super) fn u64(&mut self) -> Option<u64> {
        let hi = self.u32()?;
        let lo = self.u32()?;
        Some(u64::from(hi) << 32 | u64::from(lo))
    }

    /// Fixed-length opaque of `n` bytes, padded to four (RFC 4506 §4.9): a 6-byte MAC address
    /// takes 8.
    #[inline]
    pub(super) fn fixed(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.bytes(n)?;
        self.skip_padding(n);
        Some(s)
    }

    /// Variable-length opaque (RFC 4506 §4.10): a length, then that many bytes and padding.
    /// Missing padding at the very end is tolerated (some agents omit it on the last item).
    #[inline]
    pub(super) fn opaque(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.u32()?).ok()?;
        let s = self.bytes(n)?;
        self.skip_padding(n);
        Some(s)
    }

    #[inline]
    fn skip_padding(&mut self, n: usize) {
        let pad = (4 - n % 4) % 4;
        self.pos = self.pos.saturating_add(pad).min(self.b.len());
    }

    /// sFlow `address`: a type (0 unknown, 1 IPv4, 2 IPv6) and the address; `None` for the
    /// unknown type. `what` names the structure in the error.
    pub(super) fn address(&mut self, what: &'static str) -> Result<Option<IpAddr>, DecodeError> {
        match self.u32().ok_or(DecodeError::Truncated(what))? {
            0 => Ok(None),
            1 => {
                let s: [u8; 4] = self.array().ok_or(DecodeError::Truncated(what))?;
                Ok(Some(IpAddr::V4(Ipv4Addr::from(s))))
            }
            2 => {
                let s: [u8; 16] = self.array().ok_or(DecodeError::Truncated(what))?;
                Ok(Some(IpAddr::V6(Ipv6Addr::from(s))))
            }
            // A type sFlow v5 does not define: its length is unknown, so nothing after it
            // can be read.
            _ => Err(DecodeError::InvalidLength(what)),
        }
    }

    /// The next `N` bytes as an array.
    #[inline]
    pub(super) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.bytes(N)?.try_into().ok()
    }
}
