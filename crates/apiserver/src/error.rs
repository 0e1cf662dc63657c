//! API errors and their one conversion, at the edge, into a metav1.Status response.

use api::FieldError;
use serde_json::{Value, json};

/// An error the API answers with. Each maps to one HTTP code and one Status reason, as
/// kube-apiserver's `k8s.io/apimachinery/pkg/api/errors` constructors do.
#[derive(Debug, Clone)]
pub enum ApiError {
    BadRequest(String),
    Unauthorized,
    Forbidden {
        message: String,
    },
    NotFound {
        resource: String,
        group: String,
        name: String,
    },
    /// A path or resource that is not served.
    NotFoundPath,
    MethodNotSupported {
        resource: String,
        verb: String,
    },
    AlreadyExists {
        resource: String,
        group: String,
        name: String,
    },
    Conflict {
        resource: String,
        group: String,
        name: String,
        message: String,
    },
    /// 409 from server-side apply: fields owned by other managers, as `NewApplyConflict`.
    ApplyConflict {
        message: String,
        causes: Vec<(String, String)>,
    },
    /// 410: the requested resourceVersion left the history window.
    Expired(String),
    RequestEntityTooLarge(String),
    UnsupportedMediaType(String),
    Invalid {
        kind: String,
        group: String,
        name: String,
        causes: Vec<FieldError>,
    },
    Timeout(String),
    Internal(String),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn code(&self) -> u16 {
        match self {
            ApiError::BadRequest(_) => 400,
            ApiError::Unauthorized => 401,
            ApiError::Forbidden { .. } => 403,
            ApiError::NotFound { .. } | ApiError::NotFoundPath => 404,
            ApiError::MethodNotSupported { .. } => 405,
            ApiError::AlreadyExists { .. } | ApiError::Conflict { .. } | ApiError::ApplyConflict { .. } => 409,
            ApiError::Expired(_) => 410,
            ApiError::RequestEntityTooLarge(_) => 413,
            ApiError::UnsupportedMediaType(_) => 415,
            ApiError::Invalid { .. } => 422,
            ApiError::Timeout(_) => 504,
            ApiError::Internal(_) => 500,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Unauthorized => "Unauthorized",
            ApiError::Forbidden { .. } => "Forbidden",
            ApiError::NotFound { .. } | ApiError::NotFoundPath => "NotFound",
            ApiError::MethodNotSupported { .. } => "MethodNotAllowed",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } | ApiError::ApplyConflict { .. } => "Conflict",
            ApiError::Expired(_) => "Expired",
            ApiError::RequestEntityTooLarge(_) => "RequestEntityTooLarge",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::Timeout(_) => "Timeout",
            ApiError::Internal(_) => "InternalError",
        }
    }

    pub fn message(&self) -> String {
        match self {
            ApiError::BadRequest(m)
            | ApiError::Expired(m)
            | ApiError::RequestEntityTooLarge(m)
            | ApiError::UnsupportedMediaType(m)
            | ApiError::Timeout(m) => m.clone(),
            ApiError::Unauthorized => "Unauthorized".into(),
            ApiError::ApplyConflict { message, .. } => message.clone(),
            ApiError::Forbidden { message } => message.clone(),
            ApiError::NotFound { resource, group, name } => {
                format!("{} {name:?} not found", qualified(resource, group))
            }
            ApiError::NotFoundPath => "the server could not find the requested resource".into(),
            ApiError::MethodNotSupported { resource, verb } => {
                format!("{verb} is not supported on resources of kind {resource:?}")
            }
            ApiError::AlreadyExists { resource, group, name } => {
                format!("{} {name:?} already exists", qualified(resource, group))
            }
            ApiError::Conflict { resource, group, name, message } => {
                format!("Operation cannot be fulfilled on {} {name:?}: {message}", qualified(resource, group))
            }
            ApiError::Invalid { kind, group, name, causes } => {
                let gk = if group.is_empty() { kind.clone() } else { format!("{kind}.{group}") };
                format!("{gk} {name:?} is invalid: {}", api::field::aggregate_message(causes))
            }
            ApiError::Internal(m) => format!("Internal error occurred: {m}"),
        }
    }

    fn details(&self) -> Option<Value> {
        match self {
            ApiError::NotFound { resource, group, name }
            | ApiError::AlreadyExists { resource, group, name }
            | ApiError::Conflict { resource, group, name, .. } => {
                let mut d = json!({"name": name, "kind": resource});
                if !group.is_empty() {
                    d["group"] = json!(group);
                }
                Some(d)
            }
            ApiError::Invalid { kind, group, name, causes } => {
                let causes: Vec<Value> = causes
                    .iter()
                    .map(|c| json!({"reason": c.kind.reason(), "message": c.body(), "field": c.field}))
                    .collect();
                let mut d = json!({"name": name, "kind": kind, "causes": causes});
                if !group.is_empty() {
                    d["group"] = json!(group);
                }
                Some(d)
            }
            ApiError::ApplyConflict { causes, .. } => {
                let causes: Vec<Value> = causes
                    .iter()
                    .map(|(field, message)| json!({"reason": "FieldManagerConflict", "message": message, "field": field}))
                    .collect();
                Some(json!({"causes": causes}))
            }
            ApiError::Expired(_) => None,
            _ => None,
        }
    }

    /// The metav1.Status body.
    pub fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message(),
            "reason": self.reason(),
            "code": self.code(),
        });
        if let Some(d) = self.details() {
            s["details"] = d;
        }
        s
    }
}

fn qualified(resource: &str, group: &str) -> String {
    if group.is_empty() { resource.to_string() } else { format!("{resource}.{group}") }
}

impl From<store::Error> for ApiError {
    fn from(e: store::Error) -> Self {
        match e {
            store::Error::Compacted { requested, oldest } => {
                ApiError::Expired(format!("too old resource version: {requested} ({oldest})"))
            }
            store::Error::FutureRevision { requested, current } => {
                ApiError::Timeout(format!("Too large resource version: {requested}, current: {current}"))
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}
