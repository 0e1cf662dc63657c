//! Container logs in the CRI format kubelet reads (`<RFC 3339 time> <stream> <F|P> <line>`),
//! so `kubectl logs` can be served from the file as kubelet serves containerd's.

use jiff::Timestamp;

/// containerd's default maximum line: a longer line is cut into `P` (partial) records, the last
/// piece `F`, so one runaway line cannot hold the whole output in memory.
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Cuts one stream's bytes into log records. A line without its newline waits for more bytes;
/// what is left at the end of the stream is written as a full line (containerd does the same).
#[derive(Debug)]
pub struct CriLines {
    stream: Stream,
    pending: Vec<u8>,
    max_line: usize,
}

impl CriLines {
    pub fn new(stream: Stream) -> CriLines {
        CriLines::with_max_line(stream, MAX_LINE)
    }

    pub fn with_max_line(stream: Stream, max_line: usize) -> CriLines {
        CriLines { stream, pending: Vec::new(), max_line: max_line.max(1) }
    }

    /// Appends to `out` the records completed by `data`.
    pub fn feed(&mut self, mut data: &[u8], now: Timestamp, out: &mut Vec<u8>) {
        while !data.is_empty() {
            let room = self.max_line - self.pending.len();
            // The newline is not content: a line of exactly max_line bytes is still whole.
            match data.iter().take(room + 1).position(|&b| b == b'\n') {
                Some(i) => {
                    self.pending.extend_from_slice(&data[..i]);
                    // Like bufio.ReadLine in containerd, a CRLF ending counts as the line end.
                    if self.pending.last() == Some(&b'\r') {
                        self.pending.pop();
                    }
                    record(out, now, self.stream, false, &self.pending);
                    self.pending.clear();
                    data = &data[i + 1..];
                }
                None if data.len() > room => {
                    self.pending.extend_from_slice(&data[..room]);
                    record(out, now, self.stream, true, &self.pending);
                    self.pending.clear();
                    data = &data[room..];
                }
                None => {
                    self.pending.extend_from_slice(data);
                    data = &[];
                }
            }
        }
    }

    /// The end of the stream: a pending unterminated line becomes a full record.
    pub fn finish(&mut self, now: Timestamp, out: &mut Vec<u8>) {
        if !self.pending.is_empty() {
            record(out, now, self.stream, false, &self.pending);
            self.pending.clear();
        }
    }
}

fn record(out: &mut Vec<u8>, now: Timestamp, stream: Stream, partial: bool, content: &[u8]) {
    let tag = if partial { "P" } else { "F" };
    out.extend_from_slice(format!("{now:.9} {} {tag} ", stream.as_str()).as_bytes());
    out.extend_from_slice(content);
    out.push(b'\n');
}

/// One record of a CRI log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub time: Timestamp,
    pub stream: Stream,
    pub partial: bool,
    pub content: &'a [u8],
}

/// Parses one line of a CRI log (without its newline); `None` if it is not one.
pub fn parse_record(line: &[u8]) -> Option<Record<'_>> {
    let mut parts = line.splitn(4, |&b| b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let stream = match parts.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let partial = match parts.next()? {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    Some(Record { time, stream, partial, content: parts.next().unwrap_or_default() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-12-03T10:00:00.123456789Z".parse().unwrap()
    }

    fn text(out: &[u8]) -> String {
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn full_lines_and_a_line_split_across_reads() {
        let mut lines = CriLines::new(Stream::Stdout);
        let mut out = Vec::new();
        lines.feed(b"hello\nwor", now(), &mut out);
        assert_eq!(text(&out), "2026-12-03T10:00:00.123456789Z stdout F hello\n");
        lines.feed(b"ld\r\n\n", now(), &mut out);
        assert_eq!(
            text(&out),
            "2026-12-03T10:00:00.123456789Z stdout F hello\n\
             2026-12-03T10:00:00.123456789Z stdout F world\n\
             2026-12-03T10:00:00.123456789Z stdout F \n"
        );
    }

    #[test]
    fn time_has_nine_fraction_digits_even_on_a_whole_second() {
        let mut out = Vec::new();
        let t: Timestamp = "2026-12-03T10:00:00Z".parse().unwrap();
        CriLines::new(Stream::Stderr).feed(b"x\n", t, &mut out);
        assert_eq!(text(&out), "2026-12-03T10:00:00.000000000Z stderr F x\n");
    }

    #[test]
    fn long_lines_become_partial_records_and_the_tail_is_full() {
        let mut lines = CriLines::with_max_line(Stream::Stdout, 4);
        let mut out = Vec::new();
        lines.feed(b"abcdefghij", now(), &mut out);
        lines.feed(b"k\nxy", now(), &mut out);
        lines.finish(now(), &mut out);
        let recs: Vec<_> =
            out.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(|l| parse_record(l).unwrap()).collect();
        let got: Vec<(bool, &[u8])> = recs.iter().map(|r| (r.partial, r.content)).collect();
        assert_eq!(got, [(true, &b"abcd"[..]), (true, b"efgh"), (false, b"ijk"), (false, b"xy")]);
        // A line of exactly max_line bytes is full, not partial.
        let mut out = Vec::new();
        CriLines::with_max_line(Stream::Stdout, 4).feed(b"abcd\n", now(), &mut out);
        assert_eq!(text(&out), "2026-12-03T10:00:00.123456789Z stdout F abcd\n");
    }

    #[test]
    fn finish_without_pending_writes_nothing() {
        let mut out = Vec::new();
        let mut lines = CriLines::new(Stream::Stdout);
        lines.feed(b"done\n", now(), &mut out);
        let before = out.len();
        lines.finish(now(), &mut out);
        assert_eq!(out.len(), before);
    }

    #[test]
    fn parse_rejects_other_lines() {
        let r = parse_record(b"2026-12-03T10:00:00.123456789Z stderr P a b").unwrap();
        assert_eq!((r.stream, r.partial, r.content), (Stream::Stderr, true, &b"a b"[..]));
        assert!(parse_record(b"2026-12-03T10:00:00Z stdin F x").is_none());
        assert!(parse_record(b"yesterday stdout F x").is_none());
        assert!(parse_record(b"2026-12-03T10:00:00Z stdout X x").is_none());
    }
}
