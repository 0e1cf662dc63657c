//! The subset of SPDY/3.1 that kubectl's port-forward needs from a server (what Go's
//! `moby/spdystream` speaks): frame parsing and writing, SYN_STREAM header blocks (zlib with
//! SPDY's preset dictionary) in, SYN_REPLY out, DATA both ways with FIN, PING echoed,
//! RST_STREAM and GOAWAY understood. No server push, priorities or flow control (spdystream
//! does not enforce windows either).

use std::collections::HashMap;
use std::sync::OnceLock;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

pub const FLAG_FIN: u8 = 0x01;
const VERSION: u16 = 3;

pub const SYN_STREAM: u16 = 1;
pub const SYN_REPLY: u16 = 2;
pub const RST_STREAM: u16 = 3;
pub const PING: u16 = 6;
pub const GOAWAY: u16 = 7;

/// The largest DATA payload written at once (the length field has 24 bits).
pub const MAX_DATA: usize = 32 * 1024;

#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    Control { kind: u16, flags: u8, data: Vec<u8> },
    Data { stream: u32, flags: u8, data: Vec<u8> },
}

/// Most bytes a header block may inflate to: kubectl's are a few hundred; a block that
/// inflates further is refused rather than allowed to grow memory (a compression bomb).
const MAX_HEADER_BLOCK: usize = 64 * 1024;

/// Takes one whole frame off the front of `buf`, if there is one.
pub fn parse(buf: &mut Vec<u8>) -> Result<Option<Frame>, String> {
    if buf.len() < 8 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]) as usize;
    if buf.len() < 8 + len {
        return Ok(None);
    }
    let flags = buf[4];
    let data = buf[8..8 + len].to_vec();
    let head = [buf[0], buf[1], buf[2], buf[3]];
    buf.drain(..8 + len);
    if head[0] & 0x80 != 0 {
        let version = u16::from_be_bytes([head[0] & 0x7f, head[1]]);
        if version != VERSION {
            return Err(format!("SPDY version {version} is not supported"));
        }
        Ok(Some(Frame::Control { kind: u16::from_be_bytes([head[2], head[3]]), flags, data }))
    } else {
        Ok(Some(Frame::Data { stream: u32::from_be_bytes(head) & 0x7fff_ffff, flags, data }))
    }
}

pub fn control(kind: u16, flags: u8, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + data.len());
    v.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    v.extend_from_slice(&kind.to_be_bytes());
    v.push(flags);
    v.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
    v.extend_from_slice(data);
    v
}

pub fn data(stream: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + payload.len());
    v.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    v.push(flags);
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    v.extend_from_slice(payload);
    v
}

pub fn stream_id(data: &[u8]) -> Option<u32> {
    data.get(..4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff)
}

/// SPDY/3's header compression dictionary (draft-mbelshe-httpbis-spdy-00, 2.6.10.1): 1423
/// bytes, length-prefixed header names and values, then common value text.
pub fn dictionary() -> &'static [u8] {
    static DICT: OnceLock<Vec<u8>> = OnceLock::new();
    DICT.get_or_init(|| {
        #[rustfmt::skip]
        const WORDS: &[&str] = &[
            "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset", "accept-encoding",
            "accept-language", "accept-ranges", "age", "allow", "authorization", "cache-control", "connection",
            "content-base", "content-encoding", "content-language", "content-length", "content-location",
            "content-md5", "content-range", "content-type", "date", "etag", "expect", "expires", "from", "host",
            "if-match", "if-modified-since", "if-none-match", "if-range", "if-unmodified-since", "last-modified",
            "location", "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer",
            "retry-after", "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "vary", "via",
            "warning", "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1", "url",
            "public", "set-cookie", "keep-alive", "origin",
        ];
        const TAIL: &[&str] = &[
            "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
            "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized",
            "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable",
            "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT",
            "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,",
            "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
        ];
        let mut d = Vec::with_capacity(1423);
        for w in WORDS {
            d.extend_from_slice(&(w.len() as u32).to_be_bytes());
            d.extend_from_slice(w.as_bytes());
        }
        for t in TAIL {
            d.extend_from_slice(t.as_bytes());
        }
        d
    })
}

/// One direction's header compression context (it spans the whole session).
pub struct Headers {
    inflate: Decompress,
    deflate: Compress,
    deflate_started: bool,
}

impl Default for Headers {
    fn default() -> Self {
        Headers {
            inflate: Decompress::new(true),
            deflate: Compress::new(Compression::default(), true),
            deflate_started: false,
        }
    }
}

impl Headers {
    /// Decodes a header block into lower-cased names and their values.
    pub fn decode(&mut self, block: &[u8]) -> Result<HashMap<String, String>, String> {
        let mut out: Vec<u8> = Vec::with_capacity(block.len() * 4 + 64);
        let mut input = block;
        loop {
            if out.len() > MAX_HEADER_BLOCK {
                return Err(format!("SPDY header block inflates past {MAX_HEADER_BLOCK} bytes"));
            }
            if out.capacity() - out.len() < 256 {
                out.reserve(out.capacity().max(1024));
            }
            let before = self.inflate.total_in();
            match self.inflate.decompress_vec(input, &mut out, FlushDecompress::Sync) {
                Ok(status) => {
                    input = &input[(self.inflate.total_in() - before) as usize..];
                    if input.is_empty() || status == Status::StreamEnd {
                        break;
                    }
                    if status == Status::BufError && self.inflate.total_in() == before {
                        break;
                    }
                }
                Err(e) if e.needs_dictionary().is_some() => {
                    input = &input[(self.inflate.total_in() - before) as usize..];
                    self.inflate.set_dictionary(dictionary()).map_err(|e| format!("SPDY header dictionary: {e}"))?;
                }
                Err(e) => return Err(format!("SPDY header block: {e}")),
            }
        }
        // A sync-flushed block may leave output pending in the inflater.
        loop {
            if out.len() > MAX_HEADER_BLOCK {
                return Err(format!("SPDY header block inflates past {MAX_HEADER_BLOCK} bytes"));
            }
            if out.capacity() - out.len() < 256 {
                out.reserve(1024);
            }
            let before = out.len();
            let _ = self.inflate.decompress_vec(&[], &mut out, FlushDecompress::Sync);
            if out.len() == before {
                break;
            }
        }
        parse_block(&out)
    }

    /// Encodes headers as a header block.
    pub fn encode(&mut self, headers: &[(&str, &str)]) -> Result<Vec<u8>, String> {
        if !self.deflate_started {
            self.deflate.set_dictionary(dictionary()).map_err(|e| format!("SPDY header dictionary: {e}"))?;
            self.deflate_started = true;
        }
        let mut raw = Vec::new();
        raw.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        for (k, v) in headers {
            raw.extend_from_slice(&(k.len() as u32).to_be_bytes());
            raw.extend_from_slice(k.to_ascii_lowercase().as_bytes());
            raw.extend_from_slice(&(v.len() as u32).to_be_bytes());
            raw.extend_from_slice(v.as_bytes());
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut input = &raw[..];
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(256);
            }
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .map_err(|e| format!("SPDY header block: {e}"))?;
            input = &input[(self.deflate.total_in() - before) as usize..];
            // Done once all input is in and the flush fitted (room left over).
            if input.is_empty() && out.capacity() > out.len() {
                break;
            }
        }
        Ok(out)
    }
}

fn parse_block(b: &[u8]) -> Result<HashMap<String, String>, String> {
    let bad = || "SPDY header block: truncated".to_string();
    let mut pos = 0usize;
    let u32_at = |pos: &mut usize| -> Result<usize, String> {
        let v = b.get(*pos..*pos + 4).ok_or_else(bad)?;
        *pos += 4;
        Ok(u32::from_be_bytes([v[0], v[1], v[2], v[3]]) as usize)
    };
    let n = u32_at(&mut pos)?;
    let mut headers = HashMap::new();
    for _ in 0..n {
        let kl = u32_at(&mut pos)?;
        let k = b.get(pos..pos + kl).ok_or_else(bad)?;
        pos += kl;
        let vl = u32_at(&mut pos)?;
        let v = b.get(pos..pos + vl).ok_or_else(bad)?;
        pos += vl;
        headers.insert(String::from_utf8_lossy(k).to_ascii_lowercase(), String::from_utf8_lossy(v).into_owned());
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_is_spdy3s() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        assert!(d.starts_with(b"\0\0\0\x07options\0\0\0\x04head"));
        assert!(d.ends_with(b"utf-,*,enq=0."));
    }

    #[test]
    fn header_blocks_round_trip_across_frames_with_the_dictionary() {
        let (mut client, mut server) = (Headers::default(), Headers::default());
        let a = client.encode(&[("streamType", "error"), ("port", "8080"), ("requestID", "0")]).unwrap();
        // The zlib header names a preset dictionary (FDICT), as Go's writer does.
        assert_eq!(a[1] & 0x20, 0x20);
        let h = server.decode(&a).unwrap();
        assert_eq!((h["streamtype"].as_str(), h["port"].as_str(), h["requestid"].as_str()), ("error", "8080", "0"));
        let b = client.encode(&[("streamType", "data"), ("port", "8080"), ("requestID", "0")]).unwrap();
        assert_eq!(server.decode(&b).unwrap()["streamtype"], "data");
        let empty = client.encode(&[]).unwrap();
        assert!(server.decode(&empty).unwrap().is_empty());
    }

    #[test]
    fn frames_parse_and_write() {
        let mut buf = control(PING, 0, &7u32.to_be_bytes());
        buf.extend(data(5, FLAG_FIN, b"hi"));
        buf.extend(&data(9, 0, b"partial")[..6]);
        assert_eq!(parse(&mut buf).unwrap(), Some(Frame::Control { kind: PING, flags: 0, data: vec![0, 0, 0, 7] }));
        assert_eq!(parse(&mut buf).unwrap(), Some(Frame::Data { stream: 5, flags: FLAG_FIN, data: b"hi".to_vec() }));
        assert_eq!(parse(&mut buf).unwrap(), None);
        assert_eq!(buf.len(), 6);
    }

    #[test]
    fn a_header_block_that_inflates_too_far_is_refused() {
        let mut client = Headers::default();
        let big = "x".repeat(200 * 1024);
        let block = client.encode(&[("streamtype", &big)]).unwrap();
        assert!(block.len() < 10 * 1024, "compresses well: {}", block.len());
        let mut server = Headers::default();
        let err = server.decode(&block).unwrap_err();
        assert!(err.contains("inflates past"), "{err}");
    }
}
