//! Hands a transaction to the kernel: `nft -f -`, one atomic transaction per call (all of it
//! applies or none does), as kube-proxy does.

use std::io::Write;
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not run nft: {0}")]
    Spawn(std::io::Error),
    #[error("nft rejected the transaction: {0}")]
    Rejected(String),
}

/// Runs the transaction; blocking (callers use a blocking thread).
pub fn run(transaction: &str) -> Result<(), Error> {
    if transaction.is_empty() {
        return Ok(());
    }
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(Error::Spawn)?;
    // A write error shows up as nft's own failure below.
    let _ = child.stdin.take().map(|mut stdin| stdin.write_all(transaction.as_bytes()));
    let out = child.wait_with_output().map_err(Error::Spawn)?;
    if out.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(Error::Rejected(stderr.lines().take(6).collect::<Vec<_>>().join("\n")))
    }
}
