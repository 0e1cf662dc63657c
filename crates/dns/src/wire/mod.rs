//! The DNS wire format (RFC 1035, EDNS0 from RFC 6891), as far as a cluster DNS server needs:
//! parse a query, build a response with name compression, read the records of an upstream's
//! answer, and patch a cached answer's ID and TTLs in place. Every read is bounds-checked and
//! every malformed input is an error, never a panic (the fuzz test holds this to account).

mod message;
mod name;

pub use message::{
    Edns, Header, Message, Query, QueryError, Record, RecordData, ResponseBuilder, Section, build_query, min_ttl,
    parse_message, patch_cached, truncated_copy,
};
pub use name::Name;

/// Record types this server knows by name.
pub mod rtype {
    pub const A: u16 = 1;
    pub const NS: u16 = 2;
    pub const CNAME: u16 = 5;
    pub const SOA: u16 = 6;
    pub const PTR: u16 = 12;
    pub const HINFO: u16 = 13;
    pub const MX: u16 = 15;
    pub const TXT: u16 = 16;
    pub const AAAA: u16 = 28;
    pub const SRV: u16 = 33;
    pub const OPT: u16 = 41;
    pub const IXFR: u16 = 251;
    pub const AXFR: u16 = 252;
    pub const ANY: u16 = 255;
}

pub const CLASS_IN: u16 = 1;

/// Response codes (RFC 1035 §4.1.1).
pub mod rcode {
    pub const NOERROR: u8 = 0;
    pub const FORMERR: u8 = 1;
    pub const SERVFAIL: u8 = 2;
    pub const NXDOMAIN: u8 = 3;
    pub const NOTIMP: u8 = 4;
    pub const REFUSED: u8 = 5;

    pub fn name(code: u8) -> &'static str {
        match code {
            NOERROR => "NOERROR",
            FORMERR => "FORMERR",
            SERVFAIL => "SERVFAIL",
            NXDOMAIN => "NXDOMAIN",
            NOTIMP => "NOTIMP",
            REFUSED => "REFUSED",
            _ => "OTHER",
        }
    }
}

/// The UDP payload size a response may use when the query carries no EDNS0 record.
pub const CLASSIC_UDP_SIZE: usize = 512;
/// The UDP payload size this server advertises in its own OPT record (the DNS flag day 2020 value).
pub const ADVERTISED_UDP_SIZE: u16 = 1232;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("message ends early")]
    Truncated,
    #[error("bad name: {0}")]
    BadName(&'static str),
    #[error("bad message: {0}")]
    Malformed(&'static str),
}

pub type Result<T> = std::result::Result<T, WireError>;

/// A bounds-checked reader over a message.
#[derive(Clone)]
pub(crate) struct Cursor<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }
    pub(crate) fn u8(&mut self) -> Result<u8> {
        let b = *self.buf.get(self.pos).ok_or(WireError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }
    pub(crate) fn u16(&mut self) -> Result<u16> {
        let s = self.take(2)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }
    pub(crate) fn u32(&mut self) -> Result<u32> {
        let s = self.take(4)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(WireError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(WireError::Truncated)?;
        self.pos = end;
        Ok(s)
    }
}
