//! The node going away with the process that ran it (`portico up` on Ctrl-C). Once begun, no
//! container starts and no pod network is attached any more, so pod workers still running
//! cannot undo the teardown.

use std::sync::atomic::{AtomicBool, Ordering};

static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);

pub fn begin() {
    SHUTTING_DOWN.store(true, Ordering::SeqCst);
}

pub fn is_set() -> bool {
    SHUTTING_DOWN.load(Ordering::SeqCst)
}
