//! Pod sandboxes and the container supervisor process (the role containerd-shim plays).
