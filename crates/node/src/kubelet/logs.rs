//! `GET /containerLogs/{ns}/{pod}/{container}`: a container's CRI log file as kubelet serves
//! it (`follow`, `previous`, `tailLines`, `sinceSeconds`, `sinceTime`, `timestamps`,
//! `limitBytes`).

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use jiff::Timestamp;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{Body, Kubelet, flag, param, query_pairs, text};
use crate::sandbox::log::parse_record;

/// How often a followed log is checked for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Options {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<usize>,
    pub since: Option<Timestamp>,
    pub limit_bytes: Option<usize>,
}

impl Options {
    pub fn parse(q: &[(String, String)], now: Timestamp) -> Result<Options, String> {
        let num = |name: &str| -> Result<Option<i64>, String> {
            param(q, name).map(|v| v.parse::<i64>().map_err(|_| format!("invalid {name} {v:?}"))).transpose()
        };
        let since = match (num("sinceSeconds")?, param(q, "sinceTime")) {
            (Some(_), Some(_)) => return Err("at most one of sinceTime or sinceSeconds may be specified".into()),
            (Some(s), None) if s < 1 => return Err("sinceSeconds must be greater than 0".into()),
            (Some(s), None) => Some(now - jiff::SignedDuration::from_secs(s)),
            (None, Some(t)) => Some(t.parse::<Timestamp>().map_err(|e| format!("invalid sinceTime {t:?}: {e}"))?),
            (None, None) => None,
        };
        Ok(Options {
            follow: flag(q, "follow"),
            previous: flag(q, "previous"),
            timestamps: flag(q, "timestamps"),
            tail_lines: num("tailLines")?.filter(|n| *n >= 0).map(|n| n as usize),
            since,
            limit_bytes: num("limitBytes")?.filter(|n| *n > 0).map(|n| n as usize),
        })
    }
}

pub async fn serve(k: &Kubelet, ns: &str, pod: &str, container: &str, req: Request<Incoming>) -> Response<Body> {
    let q = query_pairs(req.uri().query());
    let opts = match Options::parse(&q, Timestamp::now()) {
        Ok(o) => o,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let st = match k.container(ns, pod, container, opts.previous) {
        Ok(st) => st,
        Err(resp) => return *resp,
    };
    let path = k.sandbox.log_path(&st.id);
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let sandbox = k.sandbox.clone();
    let id = st.id.clone();
    tokio::spawn(async move {
        let ended = move || sandbox.state(&id).is_none_or(|s| s.has_ended());
        if let Err(e) = stream(&path, opts, ended, tx).await {
            tracing::debug!(path = %path.display(), error = %e, "serving a container log ended");
        }
    });
    let body = StreamBody::new(
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) })
            .map(|b| Ok::<_, std::io::Error>(Frame::data(b))),
    );
    let mut resp = Response::new(BodyExt::boxed(body));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
    resp
}

/// Formats the complete records of `data` (whole lines only) into `out`.
pub fn render(data: &[u8], opts: &Options, out: &mut Vec<u8>) {
    let records: Vec<_> = data
        .split(|&b| b == b'\n')
        .filter_map(parse_record)
        .filter(|r| opts.since.is_none_or(|s| r.time >= s))
        .collect();
    let start = match opts.tail_lines {
        None => 0,
        Some(n) => {
            // The start of the n-th last line: a line is partial records and the full one ending it.
            let mut lines = 0;
            let mut start = records.len();
            for (i, r) in records.iter().enumerate().rev() {
                if !r.partial {
                    if lines == n {
                        break;
                    }
                    lines += 1;
                }
                start = i;
            }
            if n == 0 { records.len() } else { start }
        }
    };
    for r in &records[start..] {
        if opts.timestamps {
            out.extend_from_slice(r.time.to_string().as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(r.content);
        if !r.partial {
            out.push(b'\n');
        }
    }
}

async fn stream(
    path: &std::path::Path,
    opts: Options,
    ended: impl Fn() -> bool,
    tx: tokio::sync::mpsc::Sender<Bytes>,
) -> std::io::Result<()> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut pending: Vec<u8> = Vec::new();
    let mut left = opts.limit_bytes.unwrap_or(usize::MAX);
    let mut first = true;
    loop {
        let finished = !opts.follow || ended();
        let mut chunk = Vec::new();
        file.read_to_end(&mut chunk).await?;
        pending.extend_from_slice(&chunk);
        let cut = pending.iter().rposition(|&b| b == b'\n').map(|i| i + 1).unwrap_or(0);
        if cut > 0 || first {
            let mut out = Vec::new();
            let mut o = opts.clone();
            if !first {
                o.tail_lines = None;
            }
            render(&pending[..cut], &o, &mut out);
            pending.drain(..cut);
            first = false;
            if out.len() > left {
                out.truncate(left);
            }
            left -= out.len();
            if !out.is_empty() && tx.send(Bytes::from(out)).await.is_err() {
                return Ok(());
            }
            if left == 0 {
                return Ok(());
            }
        }
        if finished {
            return Ok(());
        }
        tokio::time::sleep(FOLLOW_POLL).await;
        if tx.is_closed() {
            return Ok(());
        }
        // A log replaced under us (not done here, but cheap to notice): start over.
        if let (Ok(meta), Ok(pos)) = (tokio::fs::metadata(path).await, file.stream_position().await)
            && meta.len() < pos
        {
            file = tokio::fs::File::open(path).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "2026-12-03T10:00:00.100000000Z stdout F one\n\
                       2026-12-03T10:00:01.000000000Z stderr P tw\n\
                       2026-12-03T10:00:01.000000000Z stderr F o\n\
                       2026-12-03T10:00:02.000000000Z stdout F three\n";

    fn rendered(opts: Options) -> String {
        let mut out = Vec::new();
        render(LOG.as_bytes(), &opts, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn plain_tail_since_and_timestamps() {
        assert_eq!(rendered(Options::default()), "one\ntwo\nthree\n");
        assert_eq!(rendered(Options { tail_lines: Some(2), ..Default::default() }), "two\nthree\n");
        assert_eq!(rendered(Options { tail_lines: Some(1), ..Default::default() }), "three\n");
        assert_eq!(rendered(Options { tail_lines: Some(0), ..Default::default() }), "");
        assert_eq!(rendered(Options { tail_lines: Some(9), ..Default::default() }), "one\ntwo\nthree\n");
        let since = "2026-12-03T10:00:01Z".parse().ok();
        assert_eq!(rendered(Options { since, ..Default::default() }), "two\nthree\n");
        assert_eq!(
            rendered(Options { timestamps: true, tail_lines: Some(1), ..Default::default() }),
            "2026-12-03T10:00:02Z three\n"
        );
    }

    #[test]
    fn options_parse_like_kubelet() {
        let now: Timestamp = "2026-12-03T10:00:10Z".parse().unwrap();
        let q = |s: &str| super::super::query_pairs(Some(s));
        let o = Options::parse(&q("follow=true&tailLines=5&sinceSeconds=10&limitBytes=7"), now).unwrap();
        assert!(o.follow && !o.previous);
        assert_eq!((o.tail_lines, o.limit_bytes), (Some(5), Some(7)));
        assert_eq!(o.since, "2026-12-03T10:00:00Z".parse().ok());
        assert!(Options::parse(&q("sinceSeconds=1&sinceTime=2026-12-03T10:00:00Z"), now).is_err());
        assert!(Options::parse(&q("tailLines=x"), now).is_err());
    }
}
