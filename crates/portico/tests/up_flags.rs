//! `portico up` refuses flags that cannot make a working cluster before it starts anything.

use std::process::Command;

fn up(args: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_portico"))
        .args(["up", "--no-agent", "--no-dns", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(args)
        .output()
        .unwrap();
    // Nothing was written: the refusal comes before the store is opened.
    assert!(!dir.path().join("portico.redb").exists() || out.status.success());
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn overlapping_ranges_are_refused_naming_both() {
    let (ok, err) = up(&["--cluster-cidr", "10.96.0.0/16"]);
    assert!(!ok);
    assert!(
        err.contains(
            "the pod range 10.96.0.0/16 (--cluster-cidr) overlaps the service range 10.96.0.0/12 (--service-cluster-ip-range)"
        ),
        "{err}"
    );
    let (ok, err) = up(&["--node-ip", "10.100.0.7"]);
    assert!(!ok);
    assert!(err.contains("the node address 10.100.0.7 (--node-ip) is inside the service range 10.96.0.0/12"), "{err}");
}
