//! Portico's ingress controller: Ingress v1 routing by host and path, TLS from Secrets chosen
//! by SNI, and a reverse proxy straight to ready endpoints, reconfigured without reloads.

pub mod annotations;
pub mod body;
pub mod certs;
pub mod config;
pub mod metrics;
pub mod proxy;
pub mod run;
pub mod server;
pub mod table;
pub mod tls;
pub mod upstream;

pub use run::{CONTROLLER, DEFAULT_CLASS_ANNOTATION, Error, Options, run};
