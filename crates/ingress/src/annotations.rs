//! Ingress annotations with ingress-nginx's names and meanings, parsed into typed, validated settings.
//!
//! ingress-nginx pastes annotation values into nginx.conf, which is how a crafted value becomes configuration
//! (CVE-2025-1974 and its relatives). Here every value is parsed into a number, an enum, a CIDR or a checked
//! path/URL, and the proxy consumes those types; nothing is ever spliced into a configuration language. The
//! character rules below still refuse what those injections used, so a value that could not mean anything
//! sensible to a user is reported instead of carried around.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use api::net::Cidr;

/// Both prefixes name the same settings, so an Ingress written for ingress-nginx works unchanged; when both
/// spell a key, `portico.dev/` wins.
pub const PREFIXES: [&str; 2] = ["nginx.ingress.kubernetes.io/", "portico.dev/"];

/// The supported keys (without prefix), for the README table and for tests. Every other key under
/// [`PREFIXES`] is reported in [`Parsed::unsupported`].
///
/// `configuration-snippet`, `server-snippet` (and the other `*-snippet` keys) are deliberately never
/// supported: they are raw proxy configuration by design, the very injection surface this module exists to
/// remove.
pub const SUPPORTED: &[&str] = &[
    "rewrite-target",
    "use-regex",
    "ssl-redirect",
    "force-ssl-redirect",
    "backend-protocol",
    "affinity",
    "affinity-mode",
    "session-cookie-name",
    "session-cookie-max-age",
    "session-cookie-expires",
    "session-cookie-path",
    "session-cookie-secure",
    "session-cookie-samesite",
    "proxy-connect-timeout",
    "proxy-read-timeout",
    "proxy-send-timeout",
    "proxy-body-size",
    "whitelist-source-range",
    "allowlist-source-range",
    "permanent-redirect",
    "permanent-redirect-code",
    "temporal-redirect",
    "app-root",
];

/// Second counts (timeouts, cookie lifetimes) stop at the largest signed 32-bit number: far beyond any real
/// use, and small enough that adding one to `Instant::now()` or `SystemTime::now()` can never overflow.
const MAX_SECONDS: u64 = i32::MAX as u64;

const DEFAULT_COOKIE_NAME: &str = "INGRESSCOOKIE";

/// Reasons echo the value; a few dozen characters identify it without flooding an Event.
const SHOWN_VALUE_CHARS: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Annotations {
    /// `rewrite-target`: the upstream path, with `$0`..`$9` standing for the path regex's capture groups.
    pub rewrite_target: Option<String>,
    /// `use-regex`: the Ingress paths are regular expressions.
    pub use_regex: bool,
    /// `ssl-redirect`: redirect HTTP to HTTPS when the host has TLS.
    pub ssl_redirect: bool,
    /// `force-ssl-redirect`: redirect HTTP to HTTPS even when the host has no TLS (TLS ends in front of us).
    pub force_ssl_redirect: bool,
    pub backend_protocol: BackendProtocol,
    /// Set only by `affinity: cookie`.
    pub affinity: Option<CookieAffinity>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub send_timeout: Duration,
    /// `proxy-body-size` in bytes; `None` is unlimited (nginx's `0`).
    pub body_size_limit: Option<u64>,
    /// `allowlist-source-range` (or its old name `whitelist-source-range`); `None` allows every client.
    pub allow_sources: Option<Vec<Cidr>>,
    pub permanent_redirect: Option<Redirect>,
    pub temporal_redirect: Option<Redirect>,
    /// `app-root`: where a request for `/` is redirected.
    pub app_root: Option<String>,
}

impl Default for Annotations {
    fn default() -> Self {
        Annotations {
            rewrite_target: None,
            use_regex: false,
            ssl_redirect: true,
            force_ssl_redirect: false,
            backend_protocol: BackendProtocol::Http,
            affinity: None,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            body_size_limit: Some(1 << 20),
            allow_sources: None,
            permanent_redirect: None,
            temporal_redirect: None,
            app_root: None,
        }
    }
}

impl Annotations {
    /// The redirect to answer with. ingress-nginx evaluates `temporal-redirect` before `permanent-redirect`,
    /// so when both are set the temporal one wins.
    pub fn redirect(&self) -> Option<&Redirect> {
        self.temporal_redirect.as_ref().or(self.permanent_redirect.as_ref())
    }

    /// Whether the paths must be matched as regular expressions: ingress-nginx turns regex matching on for
    /// `rewrite-target` as well, since capture groups need a regex. (ingress-nginx applies this to every path
    /// of the host, across Ingresses; that merge belongs to the caller.)
    pub fn regex_paths(&self) -> bool {
        self.use_regex || self.rewrite_target.is_some()
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BackendProtocol {
    #[default]
    Http,
    Https,
    Grpc,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CookieAffinity {
    /// `session-cookie-name`, default `INGRESSCOOKIE`.
    pub name: String,
    /// `session-cookie-max-age`, seconds.
    pub max_age: Option<u64>,
    /// `session-cookie-expires`, seconds from when the cookie is set.
    pub expires: Option<u64>,
    /// `session-cookie-path`.
    pub path: Option<String>,
    /// `session-cookie-secure`.
    pub secure: bool,
    /// `session-cookie-samesite`.
    pub samesite: Option<SameSite>,
    /// `affinity-mode: persistent`; the default `balanced` lets sessions move when backends are added.
    pub persistent: bool,
}

impl Default for CookieAffinity {
    fn default() -> Self {
        CookieAffinity {
            name: DEFAULT_COOKIE_NAME.to_string(),
            max_age: None,
            expires: None,
            path: None,
            secure: false,
            samesite: None,
            persistent: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SameSite {
    None,
    Lax,
    Strict,
}

impl SameSite {
    /// The attribute value as browsers expect it.
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::None => "None",
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirect {
    /// An absolute http or https URL, checked by [`parse`].
    pub url: String,
    pub code: u16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// The full annotation key as written.
    pub key: String,
    pub value: String,
    /// A sentence for the user, naming the key (without prefix) and the value.
    pub reason: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Invalid {}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub annotations: Annotations,
    /// Full keys under our prefixes that are not supported (reported as Events, never silently ignored).
    pub unsupported: Vec<String>,
}

/// Parses an Ingress's `metadata.annotations`. Any invalid value fails the whole parse with every invalid
/// annotation listed, so the caller keeps serving the previous working route and reports each one.
pub fn parse(annotations: &BTreeMap<String, String>) -> Result<Parsed, Vec<Invalid>> {
    let mut unsupported = Vec::new();
    // name -> (full key, value, whether it came from portico.dev/)
    let mut effective: BTreeMap<&str, (&str, &str, bool)> = BTreeMap::new();
    for (key, value) in annotations {
        let Some((name, ours)) = strip_prefix(key) else { continue };
        if !SUPPORTED.contains(&name) {
            unsupported.push(key.clone());
            continue;
        }
        match effective.get(name) {
            Some(&(_, _, true)) if !ours => {}
            _ => {
                effective.insert(name, (key, value, ours));
            }
        }
    }

    let mut reader = Reader { effective: BTreeMap::new(), invalid: Vec::new() };
    // Every value in effect passes the control character check, even those of keys that end up with no effect
    // (session-cookie-* without cookie affinity), so no stored value can carry a line break.
    for (name, (key, value, _)) in effective {
        if value.chars().any(char::is_control) {
            reader.reject(name, key, value, "contains a control character such as a line break");
        } else {
            reader.effective.insert(name, (key, value));
        }
    }

    let defaults = Annotations::default();
    let mut out = Annotations {
        rewrite_target: reader.get("rewrite-target", rewrite_target),
        use_regex: reader.get("use-regex", boolean).unwrap_or(defaults.use_regex),
        ssl_redirect: reader.get("ssl-redirect", boolean).unwrap_or(defaults.ssl_redirect),
        force_ssl_redirect: reader.get("force-ssl-redirect", boolean).unwrap_or(defaults.force_ssl_redirect),
        backend_protocol: reader.get("backend-protocol", backend_protocol).unwrap_or(defaults.backend_protocol),
        affinity: None,
        connect_timeout: reader.get("proxy-connect-timeout", timeout).unwrap_or(defaults.connect_timeout),
        read_timeout: reader.get("proxy-read-timeout", timeout).unwrap_or(defaults.read_timeout),
        send_timeout: reader.get("proxy-send-timeout", timeout).unwrap_or(defaults.send_timeout),
        body_size_limit: reader.get("proxy-body-size", body_size).unwrap_or(defaults.body_size_limit),
        allow_sources: None,
        permanent_redirect: None,
        temporal_redirect: None,
        app_root: reader.get("app-root", app_root),
    };

    // ingress-nginx reads the new name first and falls back to the old one; the old one is then unused.
    out.allow_sources = match reader.get("allowlist-source-range", source_ranges) {
        Some(ranges) => Some(ranges),
        None if !reader.present("allowlist-source-range") => reader.get("whitelist-source-range", source_ranges),
        None => None,
    };

    // The code is checked even without a permanent-redirect: a wrong code is a mistake worth reporting.
    let code = reader.get("permanent-redirect-code", redirect_code).unwrap_or(301);
    out.permanent_redirect = reader.get("permanent-redirect", redirect_url).map(|url| Redirect { url, code });
    out.temporal_redirect = reader.get("temporal-redirect", redirect_url).map(|url| Redirect { url, code: 302 });

    // Like ingress-nginx, the cookie settings mean nothing without `affinity: cookie`, so they are only
    // validated when an affinity is asked for (a wrongly spelled affinity still gets its cookie keys checked, so
    // one round of fixes is enough).
    if reader.present("affinity") {
        let cookie = reader.get("affinity", affinity_type);
        let defaults = CookieAffinity::default();
        let affinity = CookieAffinity {
            name: reader.get("session-cookie-name", cookie_name).unwrap_or(defaults.name),
            max_age: reader.get("session-cookie-max-age", seconds),
            expires: reader.get("session-cookie-expires", seconds),
            path: reader.get("session-cookie-path", cookie_path),
            secure: reader.get("session-cookie-secure", boolean).unwrap_or(defaults.secure),
            samesite: reader.get("session-cookie-samesite", samesite),
            persistent: reader.get("affinity-mode", affinity_mode).unwrap_or(defaults.persistent),
        };
        out.affinity = cookie.map(|()| affinity);
    }

    if reader.invalid.is_empty() { Ok(Parsed { annotations: out, unsupported }) } else { Err(reader.invalid) }
}

/// The key's name under one of our prefixes, and whether that prefix is `portico.dev/`.
fn strip_prefix(key: &str) -> Option<(&str, bool)> {
    PREFIXES.iter().enumerate().find_map(|(i, prefix)| key.strip_prefix(prefix).map(|name| (name, i == 1)))
}

struct Reader<'a> {
    /// name -> (full key, value) of the values that passed the control character check.
    effective: BTreeMap<&'a str, (&'a str, &'a str)>,
    invalid: Vec<Invalid>,
}

impl<'a> Reader<'a> {
    fn present(&self, name: &str) -> bool {
        self.effective.contains_key(name)
    }

    /// The parsed value of `name`, or None when it is absent or invalid (then recorded).
    fn get<T>(&mut self, name: &str, parse: impl FnOnce(&str) -> Result<T, String>) -> Option<T> {
        let &(key, value) = self.effective.get(name)?;
        let parsed = if value.is_empty() { Err("is empty".to_string()) } else { parse(value) };
        parsed.map_err(|why| self.reject(name, key, value, &why)).ok()
    }

    fn reject(&mut self, name: &str, key: &str, value: &str, why: &str) {
        self.invalid.push(Invalid {
            key: key.to_string(),
            value: value.to_string(),
            reason: format!("{name}: {} {why}", show(value)),
        });
    }
}

/// The value quoted with escapes (so a line break shows as `\n`), cut short if long.
fn show(value: &str) -> String {
    match value.char_indices().nth(SHOWN_VALUE_CHARS) {
        Some((end, _)) => format!("{:?}...", &value[..end]),
        None => format!("{value:?}"),
    }
}

fn boolean(v: &str) -> Result<bool, String> {
    if v.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if v.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(r#"is not "true" or "false""#.to_string())
    }
}

fn backend_protocol(v: &str) -> Result<BackendProtocol, String> {
    match v.to_ascii_uppercase().as_str() {
        "HTTP" => Ok(BackendProtocol::Http),
        "HTTPS" => Ok(BackendProtocol::Https),
        "GRPC" => Ok(BackendProtocol::Grpc),
        "GRPCS" | "AJP" | "FCGI" => Err("is not supported by Portico (supported: HTTP, HTTPS, GRPC)".to_string()),
        _ => Err("is not a backend protocol (supported: HTTP, HTTPS, GRPC)".to_string()),
    }
}

/// Whole seconds, as ingress-nginx takes them ("60"); "60s" is accepted too because nginx's own time syntax
/// allows it and users write it. Other units are refused rather than guessed at.
fn seconds(v: &str) -> Result<u64, String> {
    let digits = v.strip_suffix('s').unwrap_or(v);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("is not a number of seconds".to_string());
    }
    match digits.parse::<u64>() {
        Ok(n) if n <= MAX_SECONDS => Ok(n),
        _ => Err(format!("is more than the maximum of {MAX_SECONDS} seconds")),
    }
}

/// A zero timeout would fail every request at once, which nobody means.
fn timeout(v: &str) -> Result<Duration, String> {
    match seconds(v)? {
        0 => Err("must be at least 1 second".to_string()),
        n => Ok(Duration::from_secs(n)),
    }
}

/// nginx's size syntax (`client_max_body_size`): bytes, or a number with k, m or g (either case); 0 is no limit.
fn body_size(v: &str) -> Result<Option<u64>, String> {
    let (digits, unit) = match v.as_bytes().last() {
        Some(b'k' | b'K') => (&v[..v.len() - 1], 1u64 << 10),
        Some(b'm' | b'M') => (&v[..v.len() - 1], 1 << 20),
        Some(b'g' | b'G') => (&v[..v.len() - 1], 1 << 30),
        _ => (v, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("is not a size (a number of bytes, optionally followed by k, m or g)".to_string());
    }
    let bytes = digits.parse::<u64>().ok().and_then(|n| n.checked_mul(unit)).ok_or("is too large")?;
    Ok((bytes != 0).then_some(bytes))
}

/// Comma separated CIDRs or single addresses, as Go's `net.ParseCIDR` reads them: host bits are masked off
/// ("1.1.1.1/24" is 1.1.1.0/24, ingress-nginx's own example). An empty entry is refused rather than skipped,
/// since for an access list a silent reading of a typo is worse than a reported one.
fn source_ranges(v: &str) -> Result<Vec<Cidr>, String> {
    v.split(',')
        .map(str::trim)
        .map(|entry| {
            if entry.is_empty() {
                return Err("has an empty entry".to_string());
            }
            let cidr = if entry.contains('/') {
                entry.parse::<Cidr>().ok()
            } else {
                entry.parse::<IpAddr>().ok().and_then(|ip| Cidr::new(ip, if ip.is_ipv4() { 32 } else { 128 }))
            };
            cidr.ok_or_else(|| format!("has an entry {} that is neither a CIDR nor an IP address", show(entry)))
        })
        .collect()
}

fn redirect_code(v: &str) -> Result<u16, String> {
    match v.parse::<u16>() {
        Ok(code @ 300..=308) if v.bytes().all(|b| b.is_ascii_digit()) => Ok(code),
        _ => Err("is not a redirect status code (300 to 308)".to_string()),
    }
}

fn affinity_type(v: &str) -> Result<(), String> {
    if v == "cookie" { Ok(()) } else { Err(r#"is not supported (the only affinity is "cookie")"#.to_string()) }
}

fn affinity_mode(v: &str) -> Result<bool, String> {
    match v {
        "balanced" => Ok(false),
        "persistent" => Ok(true),
        _ => Err(r#"is not "balanced" or "persistent""#.to_string()),
    }
}

fn samesite(v: &str) -> Result<SameSite, String> {
    [SameSite::None, SameSite::Lax, SameSite::Strict]
        .into_iter()
        .find(|s| v.eq_ignore_ascii_case(s.as_str()))
        .ok_or_else(|| r#"is not "None", "Lax" or "Strict""#.to_string())
}

/// RFC 6265 cookie-name: an RFC 2616 token.
fn cookie_name(v: &str) -> Result<String, String> {
    let separator = |c: char| "()<>@,;:\\\"/[]?={} \t".contains(c);
    if v.chars().all(|c| c.is_ascii_graphic() && !separator(c)) {
        Ok(v.to_string())
    } else {
        Err("is not a valid cookie name (letters, digits and !#$%&'*+-.^_`|~ only)".to_string())
    }
}

/// RFC 6265 path-value, which must also be ASCII to fit in a header.
fn cookie_path(v: &str) -> Result<String, String> {
    if !v.starts_with('/') {
        Err(r#"must start with "/""#.to_string())
    } else if v.contains(';') {
        Err(r#"must not contain ";""#.to_string())
    } else if !v.is_ascii() {
        Err("must be ASCII (percent-encode other characters)".to_string())
    } else {
        Ok(v.to_string())
    }
}

/// The characters allowed in rewrite targets, app roots and redirect URLs: printable ASCII (they end up in a
/// request line or a Location header), without whitespace and without `;{}'"\`, the characters that closed an
/// nginx directive or string in the known injections.
fn uri_chars(v: &str) -> Result<(), String> {
    for c in v.chars() {
        if !c.is_ascii() {
            return Err("contains a non-ASCII character (percent-encode it)".to_string());
        }
        if c.is_ascii_whitespace() {
            return Err("contains whitespace".to_string());
        }
        if ";{}'\"\\".contains(c) {
            return Err(format!("contains {c:?}, which is not allowed"));
        }
    }
    Ok(())
}

/// `$` was nginx variable syntax; nothing here expands variables, so a `$` in a URL is refused instead of
/// being sent to clients literally.
const NO_VARIABLES: &str = r#"contains "$": nginx variables such as $request_uri are not supported"#;

/// A path whose `$0`..`$9` are the path regex's capture groups. As in nginx a reference is one digit, so
/// `$10` is `$1` followed by `0`.
fn rewrite_target(v: &str) -> Result<String, String> {
    uri_chars(v)?;
    if !v.starts_with(['/', '$']) {
        return Err(r#"must start with "/" or a capture group reference such as "$1""#.to_string());
    }
    let bytes = v.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'$' && !bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
            return Err(
                r#"has a "$" that is not a capture group reference $0 to $9 (nginx variables are not supported)"#
                    .to_string(),
            );
        }
    }
    Ok(v.to_string())
}

/// A path on this host: "//other.example" would be read by browsers as another host, so it is refused too.
fn app_root(v: &str) -> Result<String, String> {
    uri_chars(v)?;
    if !v.starts_with('/') || v.starts_with("//") {
        return Err(r#"must be a path starting with "/" (no scheme or host)"#.to_string());
    }
    if v.contains('$') {
        return Err(NO_VARIABLES.to_string());
    }
    Ok(v.to_string())
}

/// `http(s)://host[:port][/path][?query][#fragment]`. Credentials in the authority are refused: in a redirect
/// they are either a mistake or a way to disguise the real host.
fn redirect_url(v: &str) -> Result<String, String> {
    uri_chars(v)?;
    let not_url = || "is not an absolute http or https URL".to_string();
    let (scheme, rest) = v.split_once("://").ok_or_else(not_url)?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(not_url());
    }
    if v.contains('$') {
        return Err(NO_VARIABLES.to_string());
    }
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.contains('@') {
        return Err("must not contain credentials (user@)".to_string());
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let (ip, after) = bracketed.split_once(']').ok_or_else(not_url)?;
            if ip.parse::<Ipv6Addr>().is_err() {
                return Err("has an invalid IPv6 host".to_string());
            }
            match after {
                "" => (ip, None),
                _ => (ip, Some(after.strip_prefix(':').ok_or_else(not_url)?)),
            }
        }
        None => {
            let (host, port) = match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            };
            if !is_hostname(host) {
                return Err("has no valid host name".to_string());
            }
            (host, port)
        }
    };
    if let Some(port) = port
        && (!port.bytes().all(|b| b.is_ascii_digit()) || !matches!(port.parse::<u16>(), Ok(1..)))
    {
        return Err(format!("has an invalid port for host {host}"));
    }
    Ok(v.to_string())
}

/// Dot-separated labels of letters, digits and hyphens (IPv4 addresses fit too); a final dot is allowed.
fn is_hostname(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: &str = "nginx.ingress.kubernetes.io/";
    const P: &str = "portico.dev/";

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// Parses `name: value` pairs under the nginx prefix.
    fn nginx(pairs: &[(&str, &str)]) -> Result<Parsed, Vec<Invalid>> {
        let prefixed: Vec<(String, &str)> = pairs.iter().map(|(k, v)| (format!("{N}{k}"), *v)).collect();
        parse(&prefixed.iter().map(|(k, v)| (k.clone(), v.to_string())).collect())
    }

    fn ok(pairs: &[(&str, &str)]) -> Annotations {
        match nginx(pairs) {
            Ok(parsed) => parsed.annotations,
            Err(invalid) => panic!("{pairs:?} should parse, got {invalid:?}"),
        }
    }

    /// The reasons, which must all name the key that was wrong.
    fn invalid(pairs: &[(&str, &str)]) -> Vec<String> {
        match nginx(pairs) {
            Ok(parsed) => panic!("{pairs:?} should be invalid, got {parsed:?}"),
            Err(invalid) => invalid.into_iter().map(|i| i.reason).collect(),
        }
    }

    fn reason(key: &str, value: &str) -> String {
        let reasons = invalid(&[(key, value)]);
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(reasons[0].starts_with(&format!("{key}: ")), "{reasons:?}");
        reasons[0].clone()
    }

    #[test]
    fn defaults_from_an_empty_map() {
        let parsed = parse(&BTreeMap::new()).unwrap();
        assert!(parsed.unsupported.is_empty());
        let a = parsed.annotations;
        assert_eq!(a, Annotations::default());
        assert_eq!(a.rewrite_target, None);
        assert!(!a.use_regex && a.ssl_redirect && !a.force_ssl_redirect);
        assert_eq!(a.backend_protocol, BackendProtocol::Http);
        assert_eq!(a.affinity, None);
        assert_eq!(
            (a.connect_timeout, a.read_timeout, a.send_timeout),
            (Duration::from_secs(5), Duration::from_secs(60), Duration::from_secs(60))
        );
        assert_eq!(a.body_size_limit, Some(1_048_576));
        assert_eq!((a.allow_sources, a.permanent_redirect, a.temporal_redirect, a.app_root), (None, None, None, None));
    }

    #[test]
    fn other_prefixes_are_ignored() {
        let parsed = parse(&map(&[
            ("kubectl.kubernetes.io/last-applied-configuration", "{\"x\":\n1}"),
            ("ingress.kubernetes.io/rewrite-target", "/"),
            ("example.com/ssl-redirect", "maybe"),
            ("nginx.org/proxy-body-size", "x"),
            ("ssl-redirect", "false"),
        ]))
        .unwrap();
        assert_eq!(parsed.annotations, Annotations::default());
        assert!(parsed.unsupported.is_empty());
    }

    #[test]
    fn portico_prefix_wins_and_the_shadowed_value_is_not_used() {
        let both = parse(&map(&[
            (&format!("{N}proxy-read-timeout"), "not a number"),
            (&format!("{P}proxy-read-timeout"), "120"),
            (&format!("{N}ssl-redirect"), "true"),
            (&format!("{P}ssl-redirect"), "false"),
            (&format!("{N}use-regex"), "true"),
        ]))
        .unwrap()
        .annotations;
        assert_eq!(both.read_timeout, Duration::from_secs(120));
        assert!(!both.ssl_redirect);
        assert!(both.use_regex);

        let only_portico = parse(&map(&[(&format!("{P}backend-protocol"), "grpc")])).unwrap().annotations;
        assert_eq!(only_portico.backend_protocol, BackendProtocol::Grpc);

        let errors =
            parse(&map(&[(&format!("{N}proxy-read-timeout"), "60"), (&format!("{P}proxy-read-timeout"), "x")]))
                .unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].key, format!("{P}proxy-read-timeout"));
        assert_eq!(errors[0].value, "x");
    }

    #[test]
    fn booleans() {
        for key in ["use-regex", "ssl-redirect", "force-ssl-redirect"] {
            for (value, expected) in
                [("true", true), ("TRUE", true), ("True", true), ("false", false), ("False", false)]
            {
                let a = ok(&[(key, value)]);
                let got = match key {
                    "use-regex" => a.use_regex,
                    "ssl-redirect" => a.ssl_redirect,
                    _ => a.force_ssl_redirect,
                };
                assert_eq!(got, expected, "{key}: {value}");
            }
            for value in ["yes", "1", "t", "on", " true", "true ", ""] {
                reason(key, value);
            }
        }
        assert_eq!(reason("ssl-redirect", "yes"), r#"ssl-redirect: "yes" is not "true" or "false""#);
    }

    #[test]
    fn backend_protocol_is_case_insensitive_and_refuses_what_is_not_implemented() {
        for (value, expected) in [
            ("HTTP", BackendProtocol::Http),
            ("http", BackendProtocol::Http),
            ("HTTPS", BackendProtocol::Https),
            ("Https", BackendProtocol::Https),
            ("GRPC", BackendProtocol::Grpc),
            ("grpc", BackendProtocol::Grpc),
        ] {
            assert_eq!(ok(&[("backend-protocol", value)]).backend_protocol, expected);
        }
        for value in ["GRPCS", "grpcs", "AJP", "FCGI"] {
            assert!(reason("backend-protocol", value).contains("not supported"), "{value}");
        }
        assert_eq!(
            reason("backend-protocol", "h2c"),
            r#"backend-protocol: "h2c" is not a backend protocol (supported: HTTP, HTTPS, GRPC)"#
        );
    }

    #[test]
    fn timeouts_take_seconds_with_an_optional_s() {
        let a = ok(&[("proxy-connect-timeout", "5"), ("proxy-read-timeout", "3600s"), ("proxy-send-timeout", "1")]);
        assert_eq!(a.connect_timeout, Duration::from_secs(5));
        assert_eq!(a.read_timeout, Duration::from_secs(3600));
        assert_eq!(a.send_timeout, Duration::from_secs(1));
        assert_eq!(ok(&[("proxy-connect-timeout", "5s")]).connect_timeout, Duration::from_secs(5));
        assert_eq!(ok(&[("proxy-read-timeout", "2147483647")]).read_timeout, Duration::from_secs(2_147_483_647));

        assert_eq!(reason("proxy-read-timeout", "6o"), r#"proxy-read-timeout: "6o" is not a number of seconds"#);
        for key in ["proxy-connect-timeout", "proxy-read-timeout", "proxy-send-timeout"] {
            for value in ["-1", "abc", "s", "5 s", " 5", "5S", "1m", "1.5", "+5", "5ss", ""] {
                reason(key, value);
            }
        }
        assert!(reason("proxy-send-timeout", "0").ends_with("must be at least 1 second"));
        assert!(reason("proxy-send-timeout", "0s").ends_with("must be at least 1 second"));
        assert!(reason("proxy-read-timeout", "2147483648").contains("maximum"));
        assert!(reason("proxy-read-timeout", "99999999999999999999999").contains("maximum"));
    }

    #[test]
    fn body_size_units() {
        for (value, expected) in [
            ("0", None),
            ("0m", None),
            ("1024", Some(1024)),
            ("8k", Some(8192)),
            ("8K", Some(8192)),
            ("1m", Some(1_048_576)),
            ("1M", Some(1_048_576)),
            ("100m", Some(104_857_600)),
            ("1g", Some(1_073_741_824)),
            ("2G", Some(2_147_483_648)),
        ] {
            assert_eq!(ok(&[("proxy-body-size", value)]).body_size_limit, expected, "{value}");
        }
        for value in ["1.5m", "1mb", "-1", "k", "m", "1t", "1 m", "ten", "", "1m "] {
            reason("proxy-body-size", value);
        }
        assert!(reason("proxy-body-size", "99999999999g").ends_with("is too large"));
        assert!(reason("proxy-body-size", "99999999999999999999999").ends_with("is too large"));
    }

    #[test]
    fn source_ranges_with_spaces_ipv6_and_single_addresses() {
        let a = ok(&[("whitelist-source-range", " 10.0.0.0/24 ,172.10.0.1, 2001:db8::/32 , ::1,1.1.1.1/24")]);
        let ranges = a.allow_sources.unwrap();
        let text: Vec<String> = ranges.iter().map(|c| c.to_string()).collect();
        assert_eq!(text, ["10.0.0.0/24", "172.10.0.1/32", "2001:db8::/32", "::1/128", "1.1.1.0/24"]);
        assert!(ranges[0].contains("10.0.0.77".parse().unwrap()));
        assert!(!ranges[0].contains("10.0.1.1".parse().unwrap()));
        assert!(ranges[2].contains("2001:db8:1::5".parse().unwrap()));

        let new_name = ok(&[("allowlist-source-range", "192.168.0.0/16")]).allow_sources.unwrap();
        assert_eq!(new_name, vec![Cidr::new("192.168.0.0".parse().unwrap(), 16).unwrap()]);

        for value in ["10.0.0.0/33", "10.0.0.0/", "10.0.0", "300.1.1.1", "fe80::1%eth0", "10.0.0.0/8,", ",", "", "a/b"]
        {
            reason("whitelist-source-range", value);
        }
        assert_eq!(
            reason("allowlist-source-range", "10.0.0.0/8, 10.1.0.0/99"),
            r#"allowlist-source-range: "10.0.0.0/8, 10.1.0.0/99" has an entry "10.1.0.0/99" that is neither a CIDR nor an IP address"#
        );
    }

    #[test]
    fn the_new_allowlist_name_wins_over_the_old_one() {
        let a = ok(&[("allowlist-source-range", "10.0.0.0/8"), ("whitelist-source-range", "not checked")]);
        assert_eq!(a.allow_sources.unwrap().len(), 1);
        // An invalid new name is reported, never replaced by the old name.
        assert_eq!(invalid(&[("allowlist-source-range", "bad"), ("whitelist-source-range", "10.0.0.0/8")]).len(), 1);
    }

    #[test]
    fn permanent_and_temporal_redirects() {
        let a = ok(&[("permanent-redirect", "https://www.example.com/new?x=1#top")]);
        assert_eq!(
            a.permanent_redirect,
            Some(Redirect { url: "https://www.example.com/new?x=1#top".into(), code: 301 })
        );
        assert_eq!(a.redirect(), a.permanent_redirect.as_ref());

        let a = ok(&[("permanent-redirect", "http://example.com"), ("permanent-redirect-code", "308")]);
        assert_eq!(a.permanent_redirect.unwrap().code, 308);
        assert_eq!(ok(&[("permanent-redirect-code", "300")]).permanent_redirect, None);

        let a = ok(&[("temporal-redirect", "HTTPS://example.com:8443/x"), ("permanent-redirect", "https://b.example")]);
        assert_eq!(a.temporal_redirect, Some(Redirect { url: "HTTPS://example.com:8443/x".into(), code: 302 }));
        assert_eq!(a.redirect().unwrap().code, 302, "temporal wins, as in ingress-nginx");

        for url in ["http://[2001:db8::1]/", "http://[::1]:8080", "https://10.0.0.1:443/a", "https://example.com."] {
            ok(&[("temporal-redirect", url)]);
        }

        for code in ["299", "309", "200", "abc", "+301", "301.0", "3O1"] {
            assert!(reason("permanent-redirect-code", code).contains("300 to 308"), "{code}");
        }
        for url in [
            "/relative",
            "example.com",
            "ftp://example.com",
            "javascript:alert(1)",
            "https://",
            "https:///path",
            "https://user:pw@example.com/",
            "https://exa mple.com",
            "https://example.com:0/",
            "https://example.com:99999/",
            "https://example.com:/",
            "https://example.com:8a/",
            "https://[::1/",
            "https://[zz::1]/",
            "https://[::1]x/",
            "https://-bad-.com/",
            "https://a..b/",
            "https://example.com/é",
            "https://example.com$request_uri",
        ] {
            reason("permanent-redirect", url);
            reason("temporal-redirect", url);
        }
        assert!(reason("permanent-redirect", "https://example.com$request_uri").contains("nginx variables"));
    }

    #[test]
    fn app_root_is_a_local_path() {
        assert_eq!(ok(&[("app-root", "/app1")]).app_root.as_deref(), Some("/app1"));
        assert_eq!(ok(&[("app-root", "/app/index.html?x=1")]).app_root.as_deref(), Some("/app/index.html?x=1"));
        for value in ["app1", "//evil.example", "/\\evil.example", "http://example.com/app", "/a b", "/$host", "/a;b"] {
            reason("app-root", value);
        }
    }

    #[test]
    fn rewrite_target_references_only_capture_groups() {
        for value in ["/", "/$2", "/$1$2", "/api/$1/x", "$1", "/$0", "/$10", "/new?x=$1"] {
            assert_eq!(ok(&[("rewrite-target", value)]).rewrite_target.as_deref(), Some(value));
        }
        assert!(ok(&[("rewrite-target", "/$2")]).regex_paths());
        assert!(!ok(&[]).regex_paths());
        for value in ["/$", "/$x", "/$host", "/${1}", "foo", "https://example.com/", "/a b", "/a\\b", "/é"] {
            reason("rewrite-target", value);
        }
        assert!(reason("rewrite-target", "/$request_uri").contains("capture group"));
    }

    #[test]
    fn injection_attempts_are_rejected() {
        let r = reason("rewrite-target", "/\n}\nserver {");
        assert_eq!(r, r#"rewrite-target: "/\n}\nserver {" contains a control character such as a line break"#);
        assert_eq!(
            reason("permanent-redirect", "https://x; return 200"),
            r#"permanent-redirect: "https://x; return 200" contains ';', which is not allowed"#
        );
        assert!(reason("permanent-redirect", "https://x/ return 200").contains("whitespace"));
        for value in ["/x}", "/x{", "/x'", "/x\"", "/x\\", "/x;"] {
            reason("rewrite-target", value);
            reason("app-root", value);
            reason("temporal-redirect", &format!("https://example.com{value}"));
        }
        // The admission-webhook exploit's shape, in a key that does nothing but be parsed.
        reason("proxy-body-size", "1m;\nload_module /tmp/x.so;");
        reason("session-cookie-path", "/\r\nSet-Cookie: a=b");
    }

    #[test]
    fn control_characters_are_rejected_for_every_supported_key() {
        for name in SUPPORTED {
            for value in ["true\n", "1\r", "\t/", "/\u{7f}", "/\u{85}", "\0"] {
                let errors = nginx(&[(name, value)]).unwrap_err();
                assert_eq!(errors.len(), 1, "{name}: {value:?}");
                assert_eq!(errors[0].key, format!("{N}{name}"));
                assert!(errors[0].reason.contains("control character"), "{errors:?}");
            }
        }
    }

    #[test]
    fn cookie_affinity_defaults_and_settings() {
        let a = ok(&[("affinity", "cookie")]);
        assert_eq!(a.affinity, Some(CookieAffinity::default()));
        assert_eq!(a.affinity.unwrap().name, "INGRESSCOOKIE");

        let a = ok(&[
            ("affinity", "cookie"),
            ("affinity-mode", "persistent"),
            ("session-cookie-name", "route_v2"),
            ("session-cookie-max-age", "172800"),
            ("session-cookie-expires", "3600s"),
            ("session-cookie-path", "/app"),
            ("session-cookie-secure", "true"),
            ("session-cookie-samesite", "lax"),
        ]);
        assert_eq!(
            a.affinity,
            Some(CookieAffinity {
                name: "route_v2".into(),
                max_age: Some(172_800),
                expires: Some(3600),
                path: Some("/app".into()),
                secure: true,
                samesite: Some(SameSite::Lax),
                persistent: true,
            })
        );
        let balanced =
            ok(&[("affinity", "cookie"), ("affinity-mode", "balanced"), ("session-cookie-samesite", "None")]);
        let cookie = balanced.affinity.unwrap();
        assert!(!cookie.persistent);
        assert_eq!(cookie.samesite.map(SameSite::as_str), Some("None"));
    }

    #[test]
    fn cookie_affinity_invalid_values() {
        for value in ["ip", "Cookie", "none"] {
            assert!(reason("affinity", value).contains(r#"the only affinity is "cookie""#));
        }
        let cookie = |key: &str, value: &str| {
            let reasons = invalid(&[("affinity", "cookie"), (key, value)]);
            assert_eq!(reasons.len(), 1, "{reasons:?}");
            assert!(reasons[0].starts_with(key), "{reasons:?}");
        };
        for name in ["a b", "a;b", "a=b", "a,b", "(x)", "sess/1", "\"q\"", "é"] {
            cookie("session-cookie-name", name);
        }
        for path in ["app", "/a;b", "/é"] {
            cookie("session-cookie-path", path);
        }
        for age in ["-1", "1h", "x", "2147483648"] {
            cookie("session-cookie-max-age", age);
            cookie("session-cookie-expires", age);
        }
        cookie("session-cookie-secure", "yes");
        cookie("session-cookie-samesite", "Relaxed");
        cookie("affinity-mode", "sticky");

        // A misspelt affinity still has its cookie keys checked, so one round of fixes is enough.
        assert_eq!(invalid(&[("affinity", "cookies"), ("session-cookie-name", "a b")]).len(), 2);
    }

    #[test]
    fn cookie_keys_without_cookie_affinity_have_no_effect_and_are_not_unsupported() {
        let parsed = nginx(&[
            ("session-cookie-name", "not a token"),
            ("session-cookie-max-age", "forever"),
            ("session-cookie-path", "relative"),
            ("affinity-mode", "sticky"),
        ])
        .unwrap();
        assert_eq!(parsed.annotations, Annotations::default());
        assert!(parsed.unsupported.is_empty());
    }

    #[test]
    fn every_invalid_annotation_is_reported() {
        let errors = parse(&map(&[
            (&format!("{N}proxy-read-timeout"), "6o"),
            (&format!("{P}proxy-body-size"), "lots"),
            (&format!("{N}backend-protocol"), "AJP"),
            (&format!("{N}ssl-redirect"), "false"),
            (&format!("{N}whitelist-source-range"), "10.0.0.0/8, nope"),
            (&format!("{N}configuration-snippet"), "more_set_headers x;"),
        ]))
        .unwrap_err();
        let mut keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "nginx.ingress.kubernetes.io/backend-protocol",
                "nginx.ingress.kubernetes.io/proxy-read-timeout",
                "nginx.ingress.kubernetes.io/whitelist-source-range",
                "portico.dev/proxy-body-size",
            ]
        );
        let timeout = errors.iter().find(|e| e.key.ends_with("proxy-read-timeout")).unwrap();
        assert_eq!(timeout.value, "6o");
        assert_eq!(timeout.to_string(), r#"proxy-read-timeout: "6o" is not a number of seconds"#);
    }

    #[test]
    fn unsupported_keys_are_listed_in_full() {
        let parsed = parse(&map(&[
            (&format!("{N}configuration-snippet"), "more_set_headers \"x: y\";"),
            (&format!("{P}server-snippet"), "location / {}"),
            (&format!("{N}auth-url"), "https://auth"),
            (&format!("{N}canary"), "true"),
            (&format!("{N}limit-rps"), "10"),
            (&format!("{N}enable-cors"), "true"),
            (&format!("{P}enable-cors"), "true"),
            (&format!("{N}session-cookie-change-on-failure"), "true"),
            (&format!("{N}SSL-Redirect"), "false"),
            (N, "empty name"),
            (&format!("{N}ssl-redirect"), "false"),
        ]))
        .unwrap();
        assert!(!parsed.annotations.ssl_redirect);
        assert_eq!(
            parsed.unsupported,
            [
                "nginx.ingress.kubernetes.io/",
                "nginx.ingress.kubernetes.io/SSL-Redirect",
                "nginx.ingress.kubernetes.io/auth-url",
                "nginx.ingress.kubernetes.io/canary",
                "nginx.ingress.kubernetes.io/configuration-snippet",
                "nginx.ingress.kubernetes.io/enable-cors",
                "nginx.ingress.kubernetes.io/limit-rps",
                "nginx.ingress.kubernetes.io/session-cookie-change-on-failure",
                "portico.dev/enable-cors",
                "portico.dev/server-snippet",
            ]
        );
        assert!(!SUPPORTED.iter().any(|k| k.ends_with("snippet")));
    }

    #[test]
    fn long_values_are_cut_short_in_reasons() {
        let long = "x".repeat(10_000);
        let r = reason("proxy-read-timeout", &long);
        assert!(r.len() < 200, "{r}");
        assert!(r.contains("..."));
        let errors = nginx(&[("proxy-read-timeout", &long)]).unwrap_err();
        assert_eq!(errors[0].value, long, "the value itself is kept whole");
        // Cutting counts characters, never splitting one.
        assert!(reason("proxy-read-timeout", &"é".repeat(100)).contains("..."));
    }

    #[test]
    fn odd_values_never_panic() {
        let values = [
            "",
            " ",
            "$",
            "$$",
            "[",
            "]",
            "[::1",
            "http://[",
            "https://[]",
            "http://:",
            "http://@",
            "https://a:",
            "é",
            "💥",
            "€k",
            "kk",
            "/",
            "//",
            ":",
            "://",
            "0",
            "-0",
            "00000000000000000000000000001",
            ",,,",
            "/32",
            "::/0",
            "0.0.0.0/0",
            "1.2.3.4/",
            "https://a/💥",
            "\u{200b}",
            "1ǵ",
            "https://é.com",
        ];
        for name in SUPPORTED {
            for value in values {
                let _ = nginx(&[(name, value)]);
                let _ = nginx(&[("affinity", "cookie"), (name, value)]);
            }
        }
    }
}
