//! Messages: the header, a parsed query, records, and the response builder.

use super::name::Name;
use super::{CLASS_IN, Cursor, Result, WireError, rtype};
use std::net::{Ipv4Addr, Ipv6Addr};

const HEADER_LEN: usize = 12;
const OPT_RECORD_LEN: usize = 11;
const FLAG_QR: u16 = 0x8000;
const FLAG_AA: u16 = 0x0400;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;
const FLAG_RA: u16 = 0x0080;
const EDNS_DO: u16 = 0x8000;
const BADVERS: u16 = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub id: u16,
    pub flags: u16,
    pub qdcount: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
}

impl Header {
    pub(crate) fn read(cur: &mut Cursor<'_>) -> Result<Header> {
        Ok(Header {
            id: cur.u16()?,
            flags: cur.u16()?,
            qdcount: cur.u16()?,
            ancount: cur.u16()?,
            nscount: cur.u16()?,
            arcount: cur.u16()?,
        })
    }
    pub fn is_response(&self) -> bool {
        self.flags & FLAG_QR != 0
    }
    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0xF) as u8
    }
    pub fn rcode(&self) -> u8 {
        (self.flags & 0xF) as u8
    }
    pub fn authoritative(&self) -> bool {
        self.flags & FLAG_AA != 0
    }
    pub fn truncated(&self) -> bool {
        self.flags & FLAG_TC != 0
    }
    pub fn recursion_desired(&self) -> bool {
        self.flags & FLAG_RD != 0
    }
    pub fn recursion_available(&self) -> bool {
        self.flags & FLAG_RA != 0
    }
}

/// The EDNS0 OPT pseudo-record of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    pub udp_size: u16,
    pub version: u8,
    pub dnssec_ok: bool,
}

/// A query as this server reads it: one question, and the EDNS0 record if present.
#[derive(Debug, Clone)]
pub struct Query {
    pub header: Header,
    /// The question name as the client wrote it (its case is kept for the answer).
    pub name: Name,
    pub qtype: u16,
    pub qclass: u16,
    pub edns: Option<Edns>,
}

/// Why a packet is not a query this server can answer.
#[derive(Debug, PartialEq, Eq)]
pub enum QueryError {
    /// Not even a header, or a response: nothing to answer.
    Drop,
    /// A header but a bad body: answer FORMERR with this header.
    FormErr(Header),
}

impl Query {
    pub fn parse(buf: &[u8]) -> std::result::Result<Query, QueryError> {
        let mut cur = Cursor::new(buf);
        let header = Header::read(&mut cur).map_err(|_| QueryError::Drop)?;
        if header.is_response() {
            return Err(QueryError::Drop);
        }
        let formerr = |_| QueryError::FormErr(header);
        if header.qdcount != 1 {
            return Err(QueryError::FormErr(header));
        }
        let name = Name::read(&mut cur).map_err(formerr)?;
        let qtype = cur.u16().map_err(formerr)?;
        let qclass = cur.u16().map_err(formerr)?;
        for _ in 0..(header.ancount as u32 + header.nscount as u32) {
            skip_record(&mut cur).map_err(formerr)?;
        }
        let mut edns = None;
        for _ in 0..header.arcount {
            let rec = Record::read(&mut cur).map_err(formerr)?;
            if rec.rtype() == rtype::OPT {
                if edns.is_some() || !rec.name.is_root() {
                    return Err(QueryError::FormErr(header));
                }
                edns = Some(Edns {
                    udp_size: rec.class,
                    version: (rec.ttl >> 16) as u8,
                    dnssec_ok: (rec.ttl as u16) & EDNS_DO != 0,
                });
            }
        }
        Ok(Query { header, name, qtype, qclass, edns })
    }

    /// Largest response this query allows over UDP (RFC 6891 §6.2.5: never below 512).
    pub fn udp_limit(&self) -> usize {
        match self.edns {
            Some(e) => (e.udp_size as usize).max(super::CLASSIC_UDP_SIZE),
            None => super::CLASSIC_UDP_SIZE,
        }
    }
}

fn skip_record(cur: &mut Cursor<'_>) -> Result<()> {
    Name::read(cur)?;
    cur.take(8)?;
    let rdlen = cur.u16()? as usize;
    cur.take(rdlen)?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordData {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(Name),
    Ptr(Name),
    Ns(Name),
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: Name,
    },
    Txt(Vec<Vec<u8>>),
    Soa {
        mname: Name,
        rname: Name,
        serial: u32,
        refresh: u32,
        retry: u32,
        expire: u32,
        minimum: u32,
    },
    /// Any other type, rdata as received (names inside are not decompressed).
    Other {
        rtype: u16,
        data: Vec<u8>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: Name,
    pub class: u16,
    pub ttl: u32,
    pub data: RecordData,
}

impl Record {
    pub fn new(name: Name, ttl: u32, data: RecordData) -> Record {
        Record { name, class: CLASS_IN, ttl, data }
    }

    pub fn rtype(&self) -> u16 {
        match &self.data {
            RecordData::A(_) => rtype::A,
            RecordData::Aaaa(_) => rtype::AAAA,
            RecordData::Cname(_) => rtype::CNAME,
            RecordData::Ptr(_) => rtype::PTR,
            RecordData::Ns(_) => rtype::NS,
            RecordData::Srv { .. } => rtype::SRV,
            RecordData::Txt(_) => rtype::TXT,
            RecordData::Soa { .. } => rtype::SOA,
            RecordData::Other { rtype, .. } => *rtype,
        }
    }

    pub(crate) fn read(cur: &mut Cursor<'_>) -> Result<Record> {
        let name = Name::read(cur)?;
        let rtype = cur.u16()?;
        let class = cur.u16()?;
        let ttl = cur.u32()?;
        let rdlen = cur.u16()? as usize;
        let start = cur.pos;
        let rdata = cur.take(rdlen)?;
        let end = cur.pos;
        // Names in rdata may point anywhere earlier in the message: read them with a cursor
        // over the whole message, then check they stayed inside the rdata.
        let mut rd = Cursor { buf: &cur.buf[..end], pos: start };
        let data = match rtype {
            rtype::A if rdlen == 4 => RecordData::A(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3])),
            rtype::AAAA if rdlen == 16 => {
                let mut b = [0u8; 16];
                b.copy_from_slice(rdata);
                RecordData::Aaaa(Ipv6Addr::from(b))
            }
            rtype::A | rtype::AAAA => return Err(WireError::Malformed("address of the wrong length")),
            rtype::CNAME => RecordData::Cname(Name::read(&mut rd)?),
            rtype::PTR => RecordData::Ptr(Name::read(&mut rd)?),
            rtype::NS => RecordData::Ns(Name::read(&mut rd)?),
            rtype::SRV => RecordData::Srv {
                priority: rd.u16()?,
                weight: rd.u16()?,
                port: rd.u16()?,
                target: Name::read(&mut rd)?,
            },
            rtype::SOA => RecordData::Soa {
                mname: Name::read(&mut rd)?,
                rname: Name::read(&mut rd)?,
                serial: rd.u32()?,
                refresh: rd.u32()?,
                retry: rd.u32()?,
                expire: rd.u32()?,
                minimum: rd.u32()?,
            },
            rtype::TXT => {
                let mut strings = Vec::new();
                while rd.pos < end {
                    let l = rd.u8()? as usize;
                    strings.push(rd.take(l)?.to_vec());
                }
                RecordData::Txt(strings)
            }
            _ => RecordData::Other { rtype, data: rdata.to_vec() },
        };
        if !matches!(data, RecordData::Other { .. } | RecordData::A(_) | RecordData::Aaaa(_)) && rd.pos != end {
            return Err(WireError::Malformed("rdata length does not match its contents"));
        }
        Ok(Record { name, class, ttl, data })
    }
}

/// A whole message, parsed (upstream answers, and tests).
#[derive(Debug, Clone)]
pub struct Message {
    pub header: Header,
    pub questions: Vec<(Name, u16, u16)>,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    pub additional: Vec<Record>,
}

impl Message {
    /// The OPT record, if any.
    pub fn edns(&self) -> Option<Edns> {
        self.additional.iter().find(|r| r.rtype() == rtype::OPT).map(|r| Edns {
            udp_size: r.class,
            version: (r.ttl >> 16) as u8,
            dnssec_ok: (r.ttl as u16) & EDNS_DO != 0,
        })
    }
}

pub fn parse_message(buf: &[u8]) -> Result<Message> {
    let mut cur = Cursor::new(buf);
    let header = Header::read(&mut cur)?;
    let mut questions = Vec::with_capacity(header.qdcount.min(4) as usize);
    for _ in 0..header.qdcount {
        let name = Name::read(&mut cur)?;
        questions.push((name, cur.u16()?, cur.u16()?));
    }
    let mut read_section = |n: u16| -> Result<Vec<Record>> {
        let mut v = Vec::with_capacity(n.min(64) as usize);
        for _ in 0..n {
            v.push(Record::read(&mut cur)?);
        }
        Ok(v)
    };
    let answers = read_section(header.ancount)?;
    let authority = read_section(header.nscount)?;
    let additional = read_section(header.arcount)?;
    Ok(Message { header, questions, answers, authority, additional })
}

/// The TTL a cache may keep a response for (RFC 2308): the least TTL of the answer and
/// authority records, where an SOA counts as the lesser of its TTL and its minimum field.
/// `None` when the message has no such records or does not parse.
pub fn min_ttl(buf: &[u8]) -> Option<u32> {
    let msg = parse_message(buf).ok()?;
    msg.answers
        .iter()
        .chain(&msg.authority)
        .map(|r| match r.data {
            RecordData::Soa { minimum, .. } => r.ttl.min(minimum),
            _ => r.ttl,
        })
        .min()
}

/// Rewrites a cached response for a new client: its ID, and every TTL less `age` seconds.
/// Works in place on the wire bytes (no re-encoding); the OPT record's TTL field, which holds
/// EDNS flags, is left alone.
pub fn patch_cached(buf: &mut [u8], id: u16, age: u32) -> Result<()> {
    if buf.len() < HEADER_LEN {
        return Err(WireError::Truncated);
    }
    buf[0..2].copy_from_slice(&id.to_be_bytes());
    let (header, mut pos) = {
        let mut cur = Cursor::new(buf);
        let header = Header::read(&mut cur)?;
        for _ in 0..header.qdcount {
            Name::skip(&mut cur)?;
            cur.take(4)?;
        }
        (header, cur.pos)
    };
    let records = header.ancount as u32 + header.nscount as u32 + header.arcount as u32;
    for _ in 0..records {
        let mut cur = Cursor { buf, pos };
        Name::skip(&mut cur)?;
        let rtype = cur.u16()?;
        cur.u16()?;
        let ttl_at = cur.pos;
        let ttl = cur.u32()?;
        let rdlen = cur.u16()? as usize;
        cur.take(rdlen)?;
        pos = cur.pos;
        if rtype != rtype::OPT {
            buf[ttl_at..ttl_at + 4].copy_from_slice(&ttl.saturating_sub(age).to_be_bytes());
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Answer,
    Authority,
    Additional,
}

/// Builds one response. The question is echoed as the client sent it; names are compressed
/// against everything written before them; a record that would take the message past the
/// size limit is left out, and leaving out an answer or authority record sets TC (as miekg/dns
/// `Truncate` does, which CoreDNS uses: a dropped additional record does not).
pub struct ResponseBuilder {
    buf: Vec<u8>,
    /// Offsets of every label written literally: each starts a suffix later names may point at.
    names: Vec<u16>,
    counts: [u16; 3],
    limit: usize,
    edns: Option<Edns>,
    full: bool,
}

impl ResponseBuilder {
    /// A response to `query` with `rcode`; `authoritative` sets AA, `recursion` RA. `limit` is
    /// the largest message allowed (the OPT record, when the query had one, fits within it).
    pub fn new(query: &Query, rcode: u8, authoritative: bool, recursion: bool, limit: usize) -> ResponseBuilder {
        let mut flags = FLAG_QR | (query.header.flags & (0x7800 | FLAG_RD)) | (rcode as u16 & 0xF);
        if authoritative {
            flags |= FLAG_AA;
        }
        if recursion {
            flags |= FLAG_RA;
        }
        let mut buf = Vec::with_capacity(512);
        buf.extend_from_slice(&query.header.id.to_be_bytes());
        buf.extend_from_slice(&flags.to_be_bytes());
        buf.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        let mut b = ResponseBuilder { buf, names: Vec::new(), counts: [0; 3], limit, edns: None, full: false };
        b.write_name(&query.name, true);
        b.buf.extend_from_slice(&query.qtype.to_be_bytes());
        b.buf.extend_from_slice(&query.qclass.to_be_bytes());
        if let Some(e) = query.edns {
            b.edns = Some(Edns { udp_size: super::ADVERTISED_UDP_SIZE, version: 0, dnssec_ok: e.dnssec_ok });
            b.limit = b.limit.saturating_sub(OPT_RECORD_LEN);
        }
        b
    }

    /// BADVERS (extended RCODE 16, RFC 6891 §6.1.3) for a query with an EDNS version this
    /// server does not speak: the question, and an OPT record of version 0 carrying the code.
    pub fn badvers(query: &Query) -> Vec<u8> {
        let mut b = ResponseBuilder::new(query, 0, false, true, super::CLASSIC_UDP_SIZE);
        b.edns = Some(Edns { udp_size: super::ADVERTISED_UDP_SIZE, version: 0, dnssec_ok: false });
        let mut wire = b.finish();
        // The OPT record is last: its TTL's first byte is the upper 8 bits of the RCODE.
        let ttl_at = wire.len() - 6;
        wire[ttl_at] = (BADVERS >> 4) as u8;
        wire
    }

    /// A header-only error response (FORMERR for a body that did not parse, NOTIMP, ...).
    pub fn error_from_header(header: &Header, rcode: u8) -> Vec<u8> {
        let flags = FLAG_QR | (header.flags & (0x7800 | FLAG_RD)) | (rcode as u16 & 0xF);
        let mut buf = Vec::with_capacity(HEADER_LEN);
        buf.extend_from_slice(&header.id.to_be_bytes());
        buf.extend_from_slice(&flags.to_be_bytes());
        buf.extend_from_slice(&[0; 8]);
        buf
    }

    /// Appends a record to `section` (sections must come in order). Returns false once a
    /// record no longer fits; later calls then add nothing.
    pub fn push(&mut self, section: Section, record: &Record) -> bool {
        if self.full {
            if section != Section::Additional {
                self.set_tc();
            }
            return false;
        }
        let start = self.buf.len();
        let names_before = self.names.len();
        self.write_record(record);
        if self.buf.len() > self.limit || self.counts[section as usize] == u16::MAX {
            self.buf.truncate(start);
            self.names.truncate(names_before);
            self.full = true;
            if section != Section::Additional {
                self.set_tc();
            }
            return false;
        }
        self.counts[section as usize] += 1;
        true
    }

    pub fn push_all(&mut self, section: Section, records: &[Record]) {
        for r in records {
            if !self.push(section, r) && section == Section::Additional {
                break;
            }
        }
    }

    fn set_tc(&mut self) {
        self.buf[2] |= (FLAG_TC >> 8) as u8;
    }

    pub fn finish(mut self) -> Vec<u8> {
        let mut arcount = self.counts[2];
        if let Some(e) = self.edns {
            self.buf.push(0);
            self.buf.extend_from_slice(&rtype::OPT.to_be_bytes());
            self.buf.extend_from_slice(&e.udp_size.to_be_bytes());
            let flags: u16 = if e.dnssec_ok { EDNS_DO } else { 0 };
            self.buf.extend_from_slice(&[0, e.version]);
            self.buf.extend_from_slice(&flags.to_be_bytes());
            self.buf.extend_from_slice(&[0, 0]);
            arcount += 1;
        }
        self.buf[6..8].copy_from_slice(&self.counts[0].to_be_bytes());
        self.buf[8..10].copy_from_slice(&self.counts[1].to_be_bytes());
        self.buf[10..12].copy_from_slice(&arcount.to_be_bytes());
        self.buf
    }

    fn write_record(&mut self, r: &Record) {
        self.write_name(&r.name, true);
        self.buf.extend_from_slice(&r.rtype().to_be_bytes());
        self.buf.extend_from_slice(&r.class.to_be_bytes());
        self.buf.extend_from_slice(&r.ttl.to_be_bytes());
        let len_at = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        match &r.data {
            RecordData::A(ip) => self.buf.extend_from_slice(&ip.octets()),
            RecordData::Aaaa(ip) => self.buf.extend_from_slice(&ip.octets()),
            RecordData::Cname(n) | RecordData::Ptr(n) | RecordData::Ns(n) => self.write_name(n, true),
            RecordData::Srv { priority, weight, port, target } => {
                self.buf.extend_from_slice(&priority.to_be_bytes());
                self.buf.extend_from_slice(&weight.to_be_bytes());
                self.buf.extend_from_slice(&port.to_be_bytes());
                // RFC 2782: the target is not compressed (it may still be pointed at).
                self.write_name(target, false);
            }
            RecordData::Txt(strings) => {
                for s in strings {
                    let s = &s[..s.len().min(255)];
                    self.buf.push(s.len() as u8);
                    self.buf.extend_from_slice(s);
                }
            }
            RecordData::Soa { mname, rname, serial, refresh, retry, expire, minimum } => {
                self.write_name(mname, true);
                self.write_name(rname, true);
                for v in [serial, refresh, retry, expire, minimum] {
                    self.buf.extend_from_slice(&v.to_be_bytes());
                }
            }
            RecordData::Other { data, .. } => self.buf.extend_from_slice(data),
        }
        let rdlen = (self.buf.len() - len_at - 2).min(u16::MAX as usize) as u16;
        self.buf[len_at..len_at + 2].copy_from_slice(&rdlen.to_be_bytes());
    }

    fn write_name(&mut self, name: &Name, compress: bool) {
        let wire = name.wire();
        // Where each label (each suffix) starts within `wire`, the root excluded; a name has
        // at most 127 labels and 255 bytes.
        let mut starts = [0u8; 128];
        let mut count = 0;
        let mut p = 0;
        while wire[p] != 0 {
            starts[count] = p as u8;
            count += 1;
            p += wire[p] as usize + 1;
        }
        let mut pointer = None;
        let mut literal = count;
        if compress {
            'outer: for (i, &s) in starts[..count].iter().enumerate() {
                let suffix = &wire[s as usize..];
                for &off in &self.names {
                    if name_at_eq(&self.buf, off as usize, suffix) {
                        pointer = Some(off);
                        literal = i;
                        break 'outer;
                    }
                }
            }
        }
        let base = self.buf.len();
        for &s in &starts[..literal] {
            let off = base + s as usize;
            if off <= 0x3FFF {
                self.names.push(off as u16);
            }
        }
        match pointer {
            Some(off) => {
                let end = if literal < count { starts[literal] as usize } else { wire.len() - 1 };
                self.buf.extend_from_slice(&wire[..end]);
                self.buf.extend_from_slice(&(0xC000 | off).to_be_bytes());
            }
            None => self.buf.extend_from_slice(wire),
        }
    }
}

/// Whether the name at `off` in `buf` (following compression pointers) is `suffix`
/// (uncompressed wire form), ignoring ASCII case.
fn name_at_eq(buf: &[u8], mut off: usize, suffix: &[u8]) -> bool {
    let mut i = 0;
    for _ in 0..256 {
        let Some(&len) = buf.get(off) else { return false };
        if len & 0xC0 == 0xC0 {
            let Some(&low) = buf.get(off + 1) else { return false };
            off = (((len & 0x3F) as usize) << 8) | low as usize;
            continue;
        }
        if suffix.get(i) != Some(&len) {
            return false;
        }
        if len == 0 {
            return true;
        }
        let l = len as usize;
        match (buf.get(off + 1..off + 1 + l), suffix.get(i + 1..i + 1 + l)) {
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => {}
            _ => return false,
        }
        off += 1 + l;
        i += 1 + l;
    }
    false
}

/// dig-like presentation: `web.default.svc.cluster.local. 5 IN A 10.96.0.7`.
impl std::fmt::Display for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = match self.rtype() {
            rtype::A => "A",
            rtype::AAAA => "AAAA",
            rtype::CNAME => "CNAME",
            rtype::PTR => "PTR",
            rtype::NS => "NS",
            rtype::SRV => "SRV",
            rtype::TXT => "TXT",
            rtype::SOA => "SOA",
            rtype::OPT => "OPT",
            _ => "TYPE",
        };
        write!(f, "{} {} IN {} ", self.name, self.ttl, t)?;
        match &self.data {
            RecordData::A(ip) => write!(f, "{ip}"),
            RecordData::Aaaa(ip) => write!(f, "{ip}"),
            RecordData::Cname(n) | RecordData::Ptr(n) | RecordData::Ns(n) => write!(f, "{n}"),
            RecordData::Srv { priority, weight, port, target } => write!(f, "{priority} {weight} {port} {target}"),
            RecordData::Txt(strings) => {
                let quoted: Vec<String> = strings.iter().map(|s| format!("{:?}", String::from_utf8_lossy(s))).collect();
                write!(f, "{}", quoted.join(" "))
            }
            RecordData::Soa { mname, rname, serial, refresh, retry, expire, minimum } => {
                write!(f, "{mname} {rname} {serial} {refresh} {retry} {expire} {minimum}")
            }
            RecordData::Other { rtype, data } => write!(f, "{rtype} \\# {}", data.len()),
        }
    }
}

/// A query for `name`/`qtype` with RD set and an EDNS0 record (what a forwarder sends).
pub fn build_query(id: u16, name: &Name, qtype: u16) -> Vec<u8> {
    let mut b = Vec::with_capacity(name.wire().len() + 32);
    b.extend_from_slice(&id.to_be_bytes());
    b.extend_from_slice(&FLAG_RD.to_be_bytes());
    b.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 1]);
    b.extend_from_slice(name.wire());
    b.extend_from_slice(&qtype.to_be_bytes());
    b.extend_from_slice(&CLASS_IN.to_be_bytes());
    b.push(0);
    b.extend_from_slice(&rtype::OPT.to_be_bytes());
    b.extend_from_slice(&super::ADVERTISED_UDP_SIZE.to_be_bytes());
    b.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    b
}

/// The header and question of `msg` alone, with TC set: what a UDP client gets when the whole
/// answer does not fit, so it retries over TCP.
pub fn truncated_copy(msg: &[u8]) -> Option<Vec<u8>> {
    let mut cur = Cursor::new(msg);
    let header = Header::read(&mut cur).ok()?;
    for _ in 0..header.qdcount {
        Name::read(&mut cur).ok()?;
        cur.take(4).ok()?;
    }
    let mut out = msg[..cur.pos].to_vec();
    out[2] |= (FLAG_TC >> 8) as u8;
    out[6..12].fill(0);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query_bytes(name: &str, qtype: u16, edns: Option<u16>) -> Vec<u8> {
        let mut b = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, if edns.is_some() { 1 } else { 0 }];
        b.extend_from_slice(Name::from_dotted(name).unwrap().wire());
        b.extend_from_slice(&qtype.to_be_bytes());
        b.extend_from_slice(&1u16.to_be_bytes());
        if let Some(size) = edns {
            b.extend_from_slice(&[0, 0, 41]);
            b.extend_from_slice(&size.to_be_bytes());
            b.extend_from_slice(&[0, 0, 0x80, 0, 0, 0]);
        }
        b
    }

    #[test]
    fn query_parses_with_edns() {
        let q = Query::parse(&query_bytes("Web.default.svc.cluster.local", rtype::A, Some(4096))).unwrap();
        assert_eq!(q.header.id, 0x1234);
        assert!(q.header.recursion_desired());
        assert_eq!(q.name.to_dotted(), "Web.default.svc.cluster.local.");
        assert_eq!(q.qtype, rtype::A);
        assert_eq!(q.edns, Some(Edns { udp_size: 4096, version: 0, dnssec_ok: true }));
        assert_eq!(q.udp_limit(), 4096);
    }

    #[test]
    fn bad_queries_are_dropped_or_formerr() {
        assert_eq!(Query::parse(&[1, 2, 3]).unwrap_err(), QueryError::Drop);
        let mut b = query_bytes("a.b", rtype::A, None);
        b[2] |= 0x80; // a response
        assert_eq!(Query::parse(&b).unwrap_err(), QueryError::Drop);
        let mut b = query_bytes("a.b", rtype::A, None);
        b.truncate(b.len() - 3);
        assert!(matches!(Query::parse(&b), Err(QueryError::FormErr(_))));
        let mut b = query_bytes("a.b", rtype::A, None);
        b[5] = 2; // two questions
        assert!(matches!(Query::parse(&b), Err(QueryError::FormErr(_))));
    }

    #[test]
    fn response_round_trips_with_compression() {
        let q = Query::parse(&query_bytes("_HTTP._tcp.web.default.svc.cluster.local", rtype::SRV, Some(1232))).unwrap();
        let target = Name::from_dotted("web.default.svc.cluster.local").unwrap();
        let mut b = ResponseBuilder::new(&q, 0, true, true, 1232);
        b.push(
            Section::Answer,
            &Record::new(
                q.name.clone(),
                5,
                RecordData::Srv { priority: 0, weight: 100, port: 80, target: target.clone() },
            ),
        );
        b.push(Section::Additional, &Record::new(target.clone(), 5, RecordData::A(Ipv4Addr::new(10, 96, 0, 7))));
        let wire = b.finish();
        let m = parse_message(&wire).unwrap();
        assert!(m.header.is_response() && m.header.authoritative() && m.header.recursion_available());
        assert_eq!(m.questions[0].0.to_dotted(), "_HTTP._tcp.web.default.svc.cluster.local.");
        assert_eq!(m.answers.len(), 1);
        // The owner points at the question, so it keeps the client's case.
        assert_eq!(m.answers[0].name.to_dotted(), "_HTTP._tcp.web.default.svc.cluster.local.");
        assert_eq!(m.additional.len(), 2);
        assert_eq!(m.additional[0].data, RecordData::A(Ipv4Addr::new(10, 96, 0, 7)));
        assert_eq!(m.edns().unwrap().udp_size, 1232);
        // Compression made it smaller than the names written out in full.
        assert!(wire.len() < 12 + 3 * 45, "{} bytes", wire.len());
    }

    #[test]
    fn unknown_edns_versions_get_badvers() {
        let mut bytes = query_bytes("a.example", rtype::A, Some(1232));
        let n = bytes.len();
        bytes[n - 5] = 1; // OPT TTL: extended rcode 0, version 1
        let q = Query::parse(&bytes).unwrap();
        assert_eq!(q.edns.unwrap().version, 1);
        let wire = ResponseBuilder::badvers(&q);
        let m = parse_message(&wire).unwrap();
        let opt = m.additional.iter().find(|r| r.rtype() == rtype::OPT).unwrap();
        assert_eq!(m.header.rcode(), 0);
        assert_eq!(opt.ttl >> 24, 1, "extended rcode 16 = 1 << 4");
        assert_eq!((opt.ttl >> 16) & 0xFF, 0, "answered as version 0");
    }

    #[test]
    fn records_past_the_limit_set_tc() {
        let q = Query::parse(&query_bytes("many.default.svc.cluster.local", rtype::A, None)).unwrap();
        let mut b = ResponseBuilder::new(&q, 0, true, true, q.udp_limit());
        for i in 0..100u8 {
            b.push(Section::Answer, &Record::new(q.name.clone(), 5, RecordData::A(Ipv4Addr::new(10, 0, 0, i))));
        }
        let wire = b.finish();
        assert!(wire.len() <= 512);
        let m = parse_message(&wire).unwrap();
        assert!(m.header.truncated());
        assert!(m.answers.len() > 10 && m.answers.len() < 100);
    }

    #[test]
    fn cached_responses_get_a_new_id_and_older_ttls() {
        let q = Query::parse(&query_bytes("example.org", rtype::A, Some(1232))).unwrap();
        let mut b = ResponseBuilder::new(&q, 0, false, true, 1232);
        b.push(Section::Answer, &Record::new(q.name.clone(), 300, RecordData::A(Ipv4Addr::new(192, 0, 2, 1))));
        let mut wire = b.finish();
        assert_eq!(min_ttl(&wire), Some(300));
        patch_cached(&mut wire, 0xBEEF, 100).unwrap();
        let m = parse_message(&wire).unwrap();
        assert_eq!(m.header.id, 0xBEEF);
        assert_eq!(m.answers[0].ttl, 200);
        assert_eq!(m.edns().unwrap().udp_size, 1232);
    }
}
