//! Node registration, Lease heartbeat, and the pod sync loop (status, probes, lifecycle).
