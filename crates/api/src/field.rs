//! Field errors in the shape of k8s.io/apimachinery/pkg/util/validation/field:
//! every validation error carries the path of the field it is about, and renders
//! the same message text kube-apiserver does.

use std::fmt;

/// The kind of a field error; `reason()` is the metav1.CauseType that goes into a Status cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    NotFound,
    Required,
    Duplicate,
    Invalid,
    NotSupported,
    Forbidden,
    TooLong,
    TooMany,
    Internal,
}

impl ErrorType {
    pub fn reason(self) -> &'static str {
        match self {
            ErrorType::NotFound => "FieldValueNotFound",
            ErrorType::Required => "FieldValueRequired",
            ErrorType::Duplicate => "FieldValueDuplicate",
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::NotSupported => "FieldValueNotSupported",
            ErrorType::Forbidden => "FieldValueForbidden",
            ErrorType::TooLong => "FieldValueTooLong",
            ErrorType::TooMany => "FieldValueTooMany",
            ErrorType::Internal => "InternalError",
        }
    }

    fn label(self) -> &'static str {
        match self {
            ErrorType::NotFound => "Not found",
            ErrorType::Required => "Required value",
            ErrorType::Duplicate => "Duplicate value",
            ErrorType::Invalid => "Invalid value",
            ErrorType::NotSupported => "Unsupported value",
            ErrorType::Forbidden => "Forbidden",
            ErrorType::TooLong => "Too long",
            ErrorType::TooMany => "Too many",
            ErrorType::Internal => "Internal error",
        }
    }
}

/// One validation error at a field path such as `spec.ports[0].port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub kind: ErrorType,
    pub field: String,
    /// The offending value, already rendered the way Go's `%#v` would (strings quoted).
    pub value: Option<String>,
    pub detail: String,
}

pub type ErrorList = Vec<FieldError>;

impl FieldError {
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError { kind: ErrorType::Required, field: field.into(), value: None, detail: detail.into() }
    }

    pub fn invalid(field: impl Into<String>, value: impl fmt::Display, detail: impl Into<String>) -> Self {
        FieldError {
            kind: ErrorType::Invalid,
            field: field.into(),
            value: Some(value.to_string()),
            detail: detail.into(),
        }
    }

    /// An invalid string value; rendered quoted as Kubernetes does.
    pub(crate) fn invalid_str(field: impl Into<String>, value: &str, detail: impl Into<String>) -> Self {
        Self::invalid(field, format!("{value:?}"), detail)
    }

    pub fn duplicate(field: impl Into<String>, value: impl fmt::Display) -> Self {
        FieldError {
            kind: ErrorType::Duplicate,
            field: field.into(),
            value: Some(value.to_string()),
            detail: String::new(),
        }
    }

    pub(crate) fn not_supported(field: impl Into<String>, value: &str, supported: &[&str]) -> Self {
        let list = supported.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
        FieldError {
            kind: ErrorType::NotSupported,
            field: field.into(),
            value: Some(format!("{value:?}")),
            detail: if list.is_empty() { String::new() } else { format!("supported values: {list}") },
        }
    }

    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError { kind: ErrorType::Forbidden, field: field.into(), value: None, detail: detail.into() }
    }

    pub(crate) fn too_long(field: impl Into<String>, max: usize) -> Self {
        FieldError {
            kind: ErrorType::TooLong,
            field: field.into(),
            value: None,
            detail: format!("may not be more than {max} bytes"),
        }
    }

    pub fn not_found(field: impl Into<String>, value: impl fmt::Display) -> Self {
        FieldError {
            kind: ErrorType::NotFound,
            field: field.into(),
            value: Some(value.to_string()),
            detail: String::new(),
        }
    }

    /// The message without the field path, as put in a Status cause.
    pub fn body(&self) -> String {
        let mut s = self.kind.label().to_string();
        match (self.kind, &self.value) {
            (ErrorType::Required | ErrorType::Forbidden | ErrorType::TooLong | ErrorType::Internal, _) => {}
            (_, Some(v)) => {
                s.push_str(": ");
                s.push_str(v);
            }
            (_, None) => {}
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() { write!(f, "{}", self.body()) } else { write!(f, "{}: {}", self.field, self.body()) }
    }
}

/// Renders a list the way `ErrorList.ToAggregate().Error()` does: one error bare, more in brackets.
pub fn aggregate_message(errors: &[FieldError]) -> String {
    match errors {
        [one] => one.to_string(),
        many => format!("[{}]", many.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")),
    }
}

/// Builds child paths: `Path::new("spec").child("ports").index(0)` renders `spec.ports[0]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Path(String);

impl Path {
    pub fn new(root: &str) -> Self {
        Path(root.to_string())
    }
    pub fn child(&self, name: &str) -> Self {
        if self.0.is_empty() { Path(name.to_string()) } else { Path(format!("{}.{}", self.0, name)) }
    }
    pub fn index(&self, i: usize) -> Self {
        Path(format!("{}[{}]", self.0, i))
    }
    pub fn key(&self, k: &str) -> Self {
        Path(format!("{}[{}]", self.0, k))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Path> for String {
    fn from(p: Path) -> String {
        p.0
    }
}

impl From<&Path> for String {
    fn from(p: &Path) -> String {
        p.0.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_value_renders_like_kubernetes() {
        let e = FieldError::invalid("spec.ports[0].port", 0, "must be between 1 and 65535, inclusive");
        assert_eq!(e.to_string(), "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive");
    }

    #[test]
    fn unsupported_value_lists_choices() {
        let e = FieldError::not_supported("spec.type", "Foo", &["ClusterIP", "NodePort"]);
        assert_eq!(e.to_string(), r#"spec.type: Unsupported value: "Foo": supported values: "ClusterIP", "NodePort""#);
    }

    #[test]
    fn several_errors_are_bracketed() {
        let errs = vec![FieldError::required("a", ""), FieldError::required("b", "")];
        assert_eq!(aggregate_message(&errs), "[a: Required value, b: Required value]");
    }

    #[test]
    fn paths_compose() {
        assert_eq!(Path::new("spec").child("ports").index(2).child("name").as_str(), "spec.ports[2].name");
        assert_eq!(Path::new("metadata").child("labels").key("app").as_str(), "metadata.labels[app]");
    }
}
