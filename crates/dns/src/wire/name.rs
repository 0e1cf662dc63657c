//! Domain names in wire form: length-prefixed labels ending in the root label, at most 255
//! bytes. Comparison and hashing ignore ASCII case, as DNS does (RFC 4343).

use super::{Cursor, Result, WireError};
use std::fmt;
use std::hash::{Hash, Hasher};

const MAX_NAME: usize = 255;
const MAX_LABEL: usize = 63;

#[derive(Clone)]
pub struct Name(Vec<u8>);

impl Name {
    pub fn root() -> Name {
        Name(vec![0])
    }

    /// Parses presentation form (`web.default.svc.cluster.local`, a trailing dot optional). No
    /// escapes: names that come from Kubernetes objects are plain DNS labels.
    pub fn from_dotted(s: &str) -> Result<Name> {
        let s = s.strip_suffix('.').unwrap_or(s);
        let mut wire = Vec::with_capacity(s.len() + 2);
        if !s.is_empty() {
            for label in s.split('.') {
                if label.is_empty() {
                    return Err(WireError::BadName("empty label"));
                }
                if label.len() > MAX_LABEL {
                    return Err(WireError::BadName("label longer than 63 bytes"));
                }
                wire.push(label.len() as u8);
                wire.extend_from_slice(label.as_bytes());
            }
        }
        wire.push(0);
        if wire.len() > MAX_NAME {
            return Err(WireError::BadName("name longer than 255 bytes"));
        }
        Ok(Name(wire))
    }

    /// A name from uncompressed wire bytes, checked.
    pub fn from_wire(wire: Vec<u8>) -> Option<Name> {
        if wire.is_empty() || wire.len() > MAX_NAME {
            return None;
        }
        let mut p = 0;
        while *wire.get(p)? != 0 {
            let l = wire[p] as usize;
            if l > MAX_LABEL {
                return None;
            }
            p += l + 1;
        }
        (p + 1 == wire.len()).then_some(Name(wire))
    }

    /// `label` in front of `self`.
    pub fn prepend(&self, label: &str) -> Result<Name> {
        if label.is_empty() || label.len() > MAX_LABEL {
            return Err(WireError::BadName("bad label length"));
        }
        let mut wire = Vec::with_capacity(self.0.len() + label.len() + 1);
        wire.push(label.len() as u8);
        wire.extend_from_slice(label.as_bytes());
        wire.extend_from_slice(&self.0);
        if wire.len() > MAX_NAME {
            return Err(WireError::BadName("name longer than 255 bytes"));
        }
        Ok(Name(wire))
    }

    pub fn wire(&self) -> &[u8] {
        &self.0
    }

    pub fn labels(&self) -> Labels<'_> {
        Labels { wire: &self.0, pos: 0 }
    }

    pub fn label_count(&self) -> usize {
        self.labels().count()
    }

    pub fn is_root(&self) -> bool {
        self.0.len() == 1
    }

    pub fn to_lowercase(&self) -> Name {
        Name(self.0.to_ascii_lowercase())
    }

    /// Whether `self` is `zone` or below it, label-aligned.
    pub fn is_subdomain_of(&self, zone: &Name) -> bool {
        let (n, z) = (&self.0, &zone.0);
        if z.len() > n.len() {
            return false;
        }
        let start = n.len() - z.len();
        if !n[start..].eq_ignore_ascii_case(z) {
            return false;
        }
        // The suffix must begin at a label boundary.
        let mut pos = 0;
        while pos < start {
            pos += n[pos] as usize + 1;
        }
        pos == start
    }

    /// The labels of `self` in front of `zone` (which it must be below), leftmost first.
    pub fn labels_before<'a>(&'a self, zone: &Name) -> Vec<&'a [u8]> {
        let keep = self.label_count().saturating_sub(zone.label_count());
        self.labels().take(keep).collect()
    }

    /// Reads a possibly compressed name at the cursor; the cursor ends after the name's bytes
    /// in place (after the first pointer, if any). Pointers must point backwards, so a chain
    /// always ends.
    pub(crate) fn read(cur: &mut Cursor<'_>) -> Result<Name> {
        let msg = cur.buf;
        let mut pos = cur.pos;
        let mut out = Vec::with_capacity(32);
        let mut jumped = false;
        loop {
            let len = *msg.get(pos).ok_or(WireError::Truncated)?;
            match len & 0xC0 {
                0x00 if len == 0 => {
                    out.push(0);
                    if !jumped {
                        cur.pos = pos + 1;
                    }
                    break;
                }
                0x00 => {
                    let l = len as usize;
                    let label = msg.get(pos + 1..pos + 1 + l).ok_or(WireError::Truncated)?;
                    out.push(len);
                    out.extend_from_slice(label);
                    if out.len() >= MAX_NAME {
                        return Err(WireError::BadName("name longer than 255 bytes"));
                    }
                    pos += 1 + l;
                }
                0xC0 => {
                    let low = *msg.get(pos + 1).ok_or(WireError::Truncated)?;
                    let target = (((len & 0x3F) as usize) << 8) | low as usize;
                    if target >= pos {
                        return Err(WireError::BadName("compression pointer does not point backwards"));
                    }
                    if !jumped {
                        cur.pos = pos + 2;
                        jumped = true;
                    }
                    pos = target;
                }
                _ => return Err(WireError::BadName("reserved label type")),
            }
        }
        Ok(Name(out))
    }

    /// Moves the cursor past a name without decoding it (the cached-answer path).
    pub(crate) fn skip(cur: &mut Cursor<'_>) -> Result<()> {
        loop {
            let len = cur.u8()?;
            match len & 0xC0 {
                0x00 if len == 0 => return Ok(()),
                0x00 => {
                    cur.take(len as usize)?;
                }
                0xC0 => {
                    cur.u8()?;
                    return Ok(());
                }
                _ => return Err(WireError::BadName("reserved label type")),
            }
        }
    }

    /// Presentation form with the trailing dot, as dig prints it (`\.` and `\DDD` escapes).
    pub fn to_dotted(&self) -> String {
        if self.is_root() {
            return ".".to_owned();
        }
        let mut s = String::with_capacity(self.0.len());
        for label in self.labels() {
            for &b in label {
                match b {
                    b'.' | b'\\' => {
                        s.push('\\');
                        s.push(b as char);
                    }
                    0x21..=0x7E => s.push(b as char),
                    _ => s.push_str(&format!("\\{b:03}")),
                }
            }
            s.push('.');
        }
        s
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}
impl Eq for Name {}

impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut lower = [0u8; MAX_NAME];
        let n = self.0.len().min(MAX_NAME);
        for (l, b) in lower.iter_mut().zip(&self.0) {
            *l = b.to_ascii_lowercase();
        }
        state.write(&lower[..n]);
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_dotted())
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_dotted())
    }
}

pub struct Labels<'a> {
    wire: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Labels<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let len = *self.wire.get(self.pos)? as usize;
        if len == 0 {
            return None;
        }
        let label = &self.wire[self.pos + 1..self.pos + 1 + len];
        self.pos += 1 + len;
        Some(label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_round_trip_and_case_insensitive_equality() {
        let n = Name::from_dotted("Web.Default.svc.cluster.local.").unwrap();
        assert_eq!(n.to_dotted(), "Web.Default.svc.cluster.local.");
        assert_eq!(n, Name::from_dotted("web.default.svc.cluster.local").unwrap());
        assert_eq!(n.label_count(), 5);
        assert_eq!(Name::from_dotted("").unwrap(), Name::root());
        assert_eq!(Name::root().to_dotted(), ".");
    }

    #[test]
    fn subdomain_is_label_aligned() {
        let zone = Name::from_dotted("cluster.local").unwrap();
        assert!(Name::from_dotted("a.svc.cluster.local").unwrap().is_subdomain_of(&zone));
        assert!(Name::from_dotted("CLUSTER.local").unwrap().is_subdomain_of(&zone));
        assert!(!Name::from_dotted("xcluster.local").unwrap().is_subdomain_of(&zone));
        assert!(!Name::from_dotted("local").unwrap().is_subdomain_of(&zone));
        let before = Name::from_dotted("a.b.cluster.local").unwrap();
        assert_eq!(before.labels_before(&zone), vec![&b"a"[..], &b"b"[..]]);
    }

    #[test]
    fn too_long_names_and_labels_are_refused() {
        assert!(Name::from_dotted(&"a".repeat(64)).is_err());
        let long = vec!["abcdefghi"; 26].join(".");
        assert!(Name::from_dotted(&long).is_err());
        assert!(Name::from_dotted("a..b").is_err());
    }

    #[test]
    fn compression_pointers_must_point_backwards() {
        // A pointer to itself at offset 0.
        let mut c = Cursor::new(&[0xC0, 0x00]);
        assert!(Name::read(&mut c).is_err());
        // "a" at 0, then a pointer to it at 3.
        let buf = [1, b'a', 0, 1, b'b', 0xC0, 0x00];
        let mut c = Cursor::new(&buf);
        c.pos = 3;
        let n = Name::read(&mut c).unwrap();
        assert_eq!(n.to_dotted(), "b.a.");
        assert_eq!(c.pos, 7);
    }
}
