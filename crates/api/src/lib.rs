//! Kubernetes resource semantics as pure functions. Nothing in this crate does IO.

pub mod apply;
pub mod defaults;
pub mod discovery;
pub mod field;
pub mod json;
pub mod net;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod resources;
pub mod selector;
pub mod service;
pub mod strategy;
pub mod table;
pub mod validation;

pub use field::{ErrorList, ErrorType, FieldError};
pub use resources::{RESOURCES, ResourceType};
pub use strategy::Strategy;
