//! Kubernetes resource semantics as pure functions. Nothing in this crate does IO.

pub mod field;
pub mod resources;

pub use field::{ErrorList, ErrorType, FieldError};
pub use resources::{RESOURCES, ResourceType};
