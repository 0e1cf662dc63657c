//! kube-controller-manager's jobs that make Services route to the right pods. Each
//! controller is split as the rest of Portico is: a pure reconcile function from observed
//! objects to desired objects (unit-tested by tables), and a thin kube-rs loop that feeds it
//! from watches and writes its result through the API.

pub mod endpoints;
pub mod mirroring;

pub mod endpointslice;
pub mod lbipam;
pub mod nodelifecycle;
pub mod run;
pub mod scheduler;
pub mod workloads;
