//! The README's walkthroughs, run as written: every ```sh block after a `<!-- walkthrough -->`
//! marker runs with bash (`set -euo pipefail`) from the repository's root, against a fresh
//! `portico up` in a lab node (`<!-- walkthrough nodes=3 -->`: `portico up --nodes 3`), in the
//! README's order. The block must exit 0, and its output (stdout and stderr) must match each
//! `<!-- expect: REGEX -->` after it, and have at least / exactly N distinct matches of each
//! `<!-- expect-distinct: REGEX >= N -->` (`== N`; the first capture group when there is one).
//! Needs root; under CI=true a lab that cannot be built fails the test.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::cluster::Cluster;

const BLOCK_TIMEOUT: Duration = Duration::from_secs(150);

#[derive(Debug)]
struct Block {
    /// The README line the block starts on, for messages.
    line: usize,
    nodes: usize,
    script: String,
    expects: Vec<Expect>,
}

#[derive(Debug)]
enum Expect {
    Matches(regex::Regex),
    Distinct { re: regex::Regex, at_least: bool, n: usize },
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// The marked blocks of `readme`, in order.
fn blocks(readme: &str) -> Vec<Block> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut out = vec![];
    let mut i = 0;
    while i < lines.len() {
        let Some(marker) = lines[i].trim().strip_prefix("<!-- walkthrough").and_then(|r| r.strip_suffix("-->")) else {
            i += 1;
            continue;
        };
        let nodes = marker.trim().strip_prefix("nodes=").map(|n| n.trim().parse().unwrap()).unwrap_or(1);
        i += 1;
        assert_eq!(
            lines.get(i).map(|l| l.trim()),
            Some("```sh"),
            "README line {}: a ```sh block after the marker",
            i + 1
        );
        let start = i + 2;
        i += 1;
        let mut script = String::new();
        while lines[i].trim() != "```" {
            script.push_str(lines[i]);
            script.push('\n');
            i += 1;
        }
        i += 1;
        let mut expects = vec![];
        while let Some(l) = lines.get(i).map(|l| l.trim()) {
            if let Some(re) = l.strip_prefix("<!-- expect:").and_then(|r| r.strip_suffix("-->")) {
                expects.push(Expect::Matches(regex::Regex::new(re.trim()).expect("an expect regex")));
            } else if let Some(spec) = l.strip_prefix("<!-- expect-distinct:").and_then(|r| r.strip_suffix("-->")) {
                let spec = spec.trim();
                let (re, at_least, n) = if let Some((re, n)) = spec.rsplit_once(" >= ") {
                    (re, true, n)
                } else {
                    let (re, n) = spec.rsplit_once(" == ").expect("expect-distinct: REGEX >= N or == N");
                    (re, false, n)
                };
                expects.push(Expect::Distinct { re: regex::Regex::new(re).unwrap(), at_least, n: n.parse().unwrap() });
            } else if !l.is_empty() {
                break;
            }
            i += 1;
        }
        out.push(Block { line: start, nodes, script, expects });
    }
    out
}

/// Where a block's output falls short of its expectations.
fn check(block: &Block, output: &str) -> Vec<String> {
    let mut problems = vec![];
    for e in &block.expects {
        match e {
            Expect::Matches(re) if !re.is_match(output) => problems.push(format!("no match for /{re}/")),
            Expect::Distinct { re, at_least, n } => {
                let found: std::collections::BTreeSet<&str> =
                    re.captures_iter(output).map(|c| c.get(1).unwrap_or_else(|| c.get(0).unwrap()).as_str()).collect();
                let ok = if *at_least { found.len() >= *n } else { found.len() == *n };
                if !ok {
                    let op = if *at_least { ">=" } else { "==" };
                    problems.push(format!("/{re}/: {} distinct ({found:?}), want {op} {n}", found.len()));
                }
            }
            Expect::Matches(_) => {}
        }
    }
    problems
}

/// Runs `block` in the cluster's lab node as a user would in a shell with KUBECONFIG set.
fn run(c: &Cluster, block: &Block) -> (bool, String) {
    let out_path = c.data_dir.path().join(format!("walkthrough-{}.out", block.line));
    let out = std::fs::File::create(&out_path).unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_portico")).parent().unwrap().to_owned();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let mut cmd = Command::new("bash");
    cmd.args(["-c", &format!("set -euo pipefail\n{}", block.script)])
        .current_dir(repo_root())
        .env("KUBECONFIG", c.kubeconfig())
        .env("PATH", path)
        .env("PORTICO_DATA_DIR", c.data_dir.path())
        .env("PORTICO_NETNS_PREFIX", format!("{}-pod-", c.lab.prefix()))
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    let proc = c.lab.spawn(&c.node, cmd).unwrap();
    let status = proc.wait_timeout(BLOCK_TIMEOUT).unwrap();
    // Whatever the block left running in the background (its process group) ends with it.
    proc.kill().unwrap();
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    let ok = status.is_some_and(|s| s.success());
    let why = match status {
        None => format!("timed out after {BLOCK_TIMEOUT:?}"),
        Some(s) => format!("{s}"),
    };
    (ok, format!("{why}\n{output}"))
}

#[test]
fn the_readme_walkthroughs_work_as_written() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let all = blocks(&readme);
    assert!(all.len() >= 16, "the README has its walkthroughs: {} blocks", all.len());
    let mut failures = vec![];
    for nodes in [1, 3] {
        let mine: Vec<&Block> = all.iter().filter(|b| b.nodes == nodes).collect();
        let name = format!("walk{nodes}");
        let Some(mut c) = Cluster::new(&name, &["--loadbalancer-ip-pool", "192.0.2.100-192.0.2.110"]) else { return };
        c.nodes = nodes;
        // A default route, as a user's machine has: traffic to an externalIP or load balancer
        // IP must be routable before the proxy's output chain can take it to a pod. Here it
        // leads onto the lab's own switch, so nothing can leave the lab.
        c.lab.exec_ok(&c.node, &["ip", "route", "add", "default", "dev", "eth0"]).unwrap();
        c.spawn();
        assert!(common::eventually(Duration::from_secs(90), || c.log().contains("Portico is up")), "{}", c.log());
        for b in mine {
            let started = std::time::Instant::now();
            let (ok, output) = run(&c, b);
            let problems = check(b, &output);
            eprintln!(
                "README line {} ({} node(s)): {:.1} s, {}",
                b.line,
                nodes,
                started.elapsed().as_secs_f64(),
                if ok && problems.is_empty() { "ok" } else { "FAILED" }
            );
            if !ok || !problems.is_empty() {
                failures.push(format!(
                    "README line {} ({} node(s)):\n{}\n--- problems: {problems:?}\n--- output (exit {output}\n",
                    b.line, nodes, b.script
                ));
            }
        }
        if !failures.is_empty() {
            failures.push(format!("--- portico up log:\n{}", c.log()));
            break;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_walkthrough_parser_reads_markers_blocks_and_expectations() {
    let text = "intro\n<!-- walkthrough -->\n```sh\necho a\necho b\n```\n<!-- expect: ^a\\nb -->\n\n<!-- expect-distinct: (x\\d) >= 2 -->\nafter\n```sh\nnot run\n```\n<!-- walkthrough nodes=3 -->\n```sh\ntrue\n```\n";
    let b = blocks(text);
    assert_eq!(b.len(), 2);
    assert_eq!((b[0].line, b[0].nodes, b[0].script.as_str()), (4, 1, "echo a\necho b\n"));
    assert_eq!(b[0].expects.len(), 2);
    assert_eq!(b[1].nodes, 3);
    assert!(check(&b[0], "a\nb\nx1 x2 x1").is_empty());
    assert_eq!(check(&b[0], "a\nb\nx1 x1").len(), 1, "one distinct value is too few");
    assert_eq!(check(&b[0], "b\na\nx1 x2").len(), 1, "the order matters");
}
