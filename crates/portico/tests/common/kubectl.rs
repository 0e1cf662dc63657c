//! kubectl helpers shared by the test files: each run uses a discovery cache private to its
//! server and reports stdout and stderr when an expectation fails.

use super::Server;
use std::process::Output;

/// A discovery cache private to this server, so a port reused from an earlier run never
/// answers from a stale cache.
pub fn cache_dir(s: &Server) -> String {
    s.data_dir().join("kubectl-cache").to_str().expect("utf-8 path").to_string()
}

pub fn run(s: &Server, args: &[&str], stdin: Option<&str>) -> Output {
    let cache = cache_dir(s);
    let mut full: Vec<&str> = vec!["--cache-dir", &cache];
    full.extend_from_slice(args);
    s.kubectl_stdin(&full, stdin)
}

pub fn show(args: &[&str], out: &Output) -> String {
    format!(
        "kubectl {args:?} exited {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs kubectl, which must succeed; returns stdout.
pub fn ok(s: &Server, args: &[&str]) -> String {
    ok_in(s, args, None)
}

pub fn ok_in(s: &Server, args: &[&str], stdin: Option<&str>) -> String {
    let out = run(s, args, stdin);
    assert!(out.status.success(), "{}", show(args, &out));
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Runs kubectl, which must fail; returns stderr.
pub fn fails(s: &Server, args: &[&str], stdin: Option<&str>) -> String {
    let out = run(s, args, stdin);
    assert!(!out.status.success(), "expected kubectl to fail: {}", show(args, &out));
    String::from_utf8(out.stderr).expect("utf-8 stderr")
}

pub fn apply(s: &Server, manifest: &str) -> String {
    ok_in(s, &["apply", "-f", "-"], Some(manifest))
}
