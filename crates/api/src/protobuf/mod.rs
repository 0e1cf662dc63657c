//! Kubernetes protobuf (`application/vnd.kubernetes.protobuf`) request bodies, decoded to the JSON that
//! kube-apiserver's Go types would serialise.
//!
//! kubectl's typed generators (`kubectl create namespace|secret|configmap|deployment|service ...`) send
//! protobuf. The body is the magic `k8s\0` and a `runtime.Unknown` envelope whose `raw` bytes are the
//! object's own message. Messages are decoded against the schemas in `schema`; unknown fields are skipped,
//! as protobuf requires.
//!
//! Kubernetes protos are proto2 as gogoproto writes them: Go value fields are always on the wire, even when
//! empty, and pointer fields exactly when set. The JSON follows the Go struct tags: zero values of
//! `omitempty` value fields are dropped, pointer fields keep whatever was sent (`replicas: 0`), and fields
//! without `omitempty` are always present.

mod schema;
mod wire;

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use serde_json::{Map, Value};

use schema::{Message, Mode, T};
use wire::{Reader, Wire, WireError};

/// The prefix of every Kubernetes protobuf body.
pub(crate) const MAGIC: &[u8] = b"k8s\0";

/// The media type of Kubernetes protobuf bodies.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// How deep messages (and objects embedded in `RawExtension`s) may nest.
const MAX_DEPTH: usize = 100;

/// Why a protobuf body could not be decoded. `path` is the JSON path of the field being read
/// (`spec.template.spec.containers[0].ports[1].containerPort`), empty for the object itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the protobuf body does not start with the Kubernetes magic prefix \"k8s\\0\"")]
    BadMagic,
    #[error("truncated protobuf input at {}", show(path))]
    Truncated { path: String },
    #[error("invalid protobuf varint (longer than 10 bytes) at {}", show(path))]
    VarintOverflow { path: String },
    #[error("invalid protobuf field number at {}", show(path))]
    InvalidTag { path: String },
    #[error("unsupported protobuf wire type {wire_type} at {}", show(path))]
    UnsupportedWireType { path: String, wire_type: u8 },
    #[error("protobuf wire type mismatch at {}: expected {expected}, found {found}", show(path))]
    WireTypeMismatch { path: String, expected: &'static str, found: &'static str },
    #[error("unknown kind \"{kind}\" of apiVersion \"{api_version}\"")]
    UnknownKind { api_version: String, kind: String },
    #[error("unsupported protobuf content encoding \"{0}\"")]
    ContentEncoding(String),
    #[error("invalid value at {}: {reason}", show(path))]
    InvalidValue { path: String, reason: String },
    #[error("protobuf messages nested too deeply at {}", show(path))]
    TooDeep { path: String },
}

fn show(path: &str) -> &str {
    if path.is_empty() { "the top level" } else { path }
}

/// Decodes a `application/vnd.kubernetes.protobuf` request body: the 4-byte magic `k8s\0`, then a
/// `runtime.Unknown` message `{ typeMeta = 1 { apiVersion = 1, kind = 2 }, raw = 2, contentEncoding = 3,
/// contentType = 4 }` whose `raw` is the object's own protobuf message. Returns the object as Kubernetes
/// JSON with `kind` and `apiVersion` set.
pub fn decode_object(body: &[u8]) -> Result<Value, DecodeError> {
    decode_envelope(body, &Path::Root, 0)
}

/// Whether a `Content-Type` header value names Kubernetes protobuf (parameters ignored).
pub fn is_protobuf_content_type(content_type: &str) -> bool {
    content_type.split(';').next().is_some_and(|media| media.trim().eq_ignore_ascii_case(CONTENT_TYPE))
}

fn decode_envelope(body: &[u8], path: &Path<'_>, depth: usize) -> Result<Value, DecodeError> {
    let Some(unknown) = body.strip_prefix(MAGIC) else {
        return Err(if MAGIC.starts_with(body) {
            DecodeError::Truncated { path: path.to_string() }
        } else {
            DecodeError::BadMagic
        });
    };
    if depth > MAX_DEPTH {
        return Err(DecodeError::TooDeep { path: path.to_string() });
    }
    let (mut api_version, mut kind, mut raw, mut encoding) = (String::new(), String::new(), &[][..], String::new());
    let mut reader = Reader::new(unknown);
    while let Some(field) = reader.field() {
        let (number, value) = field.map_err(|e| wire_error(e, path))?;
        match number {
            1 => {
                let type_meta = Path::Field(path, "typeMeta");
                let mut meta = Reader::new(expect_bytes(value, &type_meta)?);
                while let Some(field) = meta.field() {
                    let (number, value) = field.map_err(|e| wire_error(e, &type_meta))?;
                    match number {
                        1 => api_version = string(expect_bytes(value, &Path::Field(&type_meta, "apiVersion"))?),
                        2 => kind = string(expect_bytes(value, &Path::Field(&type_meta, "kind"))?),
                        _ => {}
                    }
                }
            }
            2 => raw = expect_bytes(value, &Path::Field(path, "raw"))?,
            3 => encoding = string(expect_bytes(value, &Path::Field(path, "contentEncoding"))?),
            4 => {
                expect_bytes(value, &Path::Field(path, "contentType"))?;
            }
            _ => {}
        }
    }
    if !encoding.is_empty() {
        return Err(DecodeError::ContentEncoding(encoding));
    }
    let Some(message) = schema::lookup(&api_version, &kind) else {
        return Err(DecodeError::UnknownKind { api_version, kind });
    };
    let mut object = Map::new();
    object.insert("kind".into(), Value::String(kind));
    object.insert("apiVersion".into(), Value::String(api_version));
    decode_message(&[raw], message, path, depth + 1, &mut object)?;
    Ok(Value::Object(object))
}

/// A field's JSON path, built only when an error needs it.
enum Path<'p> {
    Root,
    Field(&'p Path<'p>, &'static str),
    Index(&'p Path<'p>, usize),
    Key(&'p Path<'p>, &'p str),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Field(Path::Root, name) => f.write_str(name),
            Path::Field(parent, name) => write!(f, "{parent}.{name}"),
            Path::Index(parent, index) => write!(f, "{parent}[{index}]"),
            Path::Key(parent, key) => write!(f, "{parent}[{key}]"),
        }
    }
}

fn wire_error(error: WireError, path: &Path<'_>) -> DecodeError {
    let path = path.to_string();
    match error {
        WireError::Truncated => DecodeError::Truncated { path },
        WireError::VarintOverflow => DecodeError::VarintOverflow { path },
        WireError::InvalidTag => DecodeError::InvalidTag { path },
        WireError::UnsupportedWireType(wire_type) => DecodeError::UnsupportedWireType { path, wire_type },
    }
}

fn mismatch(expected: &'static str, found: Wire<'_>, path: &Path<'_>) -> DecodeError {
    DecodeError::WireTypeMismatch { path: path.to_string(), expected, found: found.type_name() }
}

fn invalid(path: &Path<'_>, reason: impl Into<String>) -> DecodeError {
    DecodeError::InvalidValue { path: path.to_string(), reason: reason.into() }
}

fn expect_bytes<'a>(value: Wire<'a>, path: &Path<'_>) -> Result<&'a [u8], DecodeError> {
    match value {
        Wire::Bytes(bytes) => Ok(bytes),
        other => Err(mismatch("length-delimited", other, path)),
    }
}

fn expect_varint(value: Wire<'_>, path: &Path<'_>) -> Result<u64, DecodeError> {
    match value {
        Wire::Varint(v) => Ok(v),
        other => Err(mismatch("varint", other, path)),
    }
}

/// Go converts `[]byte` to `string` unchecked, and its JSON encoder replaces invalid UTF-8.
fn string(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What has been read of one field of a message.
enum Slot<'a> {
    Absent,
    Scalar(Value),
    /// The occurrences of a message field, merged by decoding them in sequence.
    Segments(Vec<&'a [u8]>),
    List(Vec<Value>),
    Map(BTreeMap<String, Value>),
}

fn decode_message<'a>(
    segments: &[&'a [u8]],
    message: &'static Message,
    path: &Path<'_>,
    depth: usize,
    out: &mut Map<String, Value>,
) -> Result<(), DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError::TooDeep { path: path.to_string() });
    }
    let mut slots: Vec<Slot<'a>> = message.fields.iter().map(|_| Slot::Absent).collect();
    for segment in segments {
        let mut reader = Reader::new(segment);
        while let Some(field) = reader.field() {
            let (number, value) = field.map_err(|e| wire_error(e, path))?;
            let Some(index) = message.fields.iter().position(|f| f.number == number) else { continue };
            let field = &message.fields[index];
            let field_path;
            let field_path = if field.mode == Mode::Inline {
                path
            } else {
                field_path = Path::Field(path, field.name);
                &field_path
            };
            read_field(&mut slots[index], field, value, field_path, depth)?;
        }
    }
    for (field, slot) in message.fields.iter().zip(slots) {
        if field.mode == Mode::Inline {
            let T::Message(inner) = &field.ty else { continue };
            let segments = match slot {
                Slot::Segments(segments) => segments,
                _ => Vec::new(),
            };
            decode_message(&segments, inner, path, depth + 1, out)?;
            continue;
        }
        let field_path = Path::Field(path, field.name);
        if let Some(value) = finish_field(field, slot, &field_path, depth)? {
            out.insert(field.name.to_string(), value);
        }
    }
    Ok(())
}

fn read_field<'a>(
    slot: &mut Slot<'a>,
    field: &schema::Field,
    value: Wire<'a>,
    path: &Path<'_>,
    depth: usize,
) -> Result<(), DecodeError> {
    if field.repeated {
        if !matches!(slot, Slot::List(_)) {
            *slot = Slot::List(Vec::new());
        }
        let Slot::List(list) = slot else { return Ok(()) };
        match (&field.ty, value) {
            // Packed repeated numbers.
            (T::Bool | T::Int32 | T::Int64, Wire::Bytes(packed)) => {
                let mut reader = Reader::new(packed);
                while !reader.is_empty() {
                    let v = reader.varint().map_err(|e| wire_error(e, &Path::Index(path, list.len())))?;
                    list.push(varint_value(&field.ty, v));
                }
            }
            (ty, value) => {
                let element = element(ty, value, &Path::Index(path, list.len()), depth)?;
                list.push(element);
            }
        }
        return Ok(());
    }
    match &field.ty {
        T::Map(value_ty) => {
            let entry = expect_bytes(value, path)?;
            let (key, value) = map_entry(entry, value_ty, path, depth)?;
            if !matches!(slot, Slot::Map(_)) {
                *slot = Slot::Map(BTreeMap::new());
            }
            if let Slot::Map(map) = slot {
                map.insert(key, value);
            }
        }
        T::String | T::Bytes | T::Bool | T::Int32 | T::Int64 => *slot = Slot::Scalar(scalar(&field.ty, value, path)?),
        T::Message(_) | T::Time | T::MicroTime | T::IntOrString | T::Quantity | T::RawJson => {
            let bytes = expect_bytes(value, path)?;
            match slot {
                Slot::Segments(segments) => segments.push(bytes),
                _ => *slot = Slot::Segments(vec![bytes]),
            }
        }
    }
    Ok(())
}

/// The JSON value of a field, or `None` when the Go JSON would omit it.
fn finish_field(
    field: &schema::Field,
    slot: Slot<'_>,
    path: &Path<'_>,
    depth: usize,
) -> Result<Option<Value>, DecodeError> {
    let required = field.mode == Mode::Required;
    if field.repeated {
        let list = match slot {
            Slot::List(list) => list,
            _ => Vec::new(),
        };
        return Ok((required || !list.is_empty()).then_some(Value::Array(list)));
    }
    Ok(match (&field.ty, slot) {
        (T::Map(_), slot) => {
            let map = match slot {
                Slot::Map(map) => map,
                _ => BTreeMap::new(),
            };
            (required || !map.is_empty()).then(|| Value::Object(map.into_iter().collect()))
        }
        (T::String | T::Bytes | T::Bool | T::Int32 | T::Int64, Slot::Scalar(value)) => match field.mode {
            Mode::OmitEmpty if is_zero(&value) => None,
            _ => Some(value),
        },
        (T::String | T::Bytes | T::Bool | T::Int32 | T::Int64, _) => required.then(|| zero(&field.ty)),
        (ty, slot) => {
            let segments = match slot {
                Slot::Segments(segments) => segments,
                _ if required => Vec::new(),
                _ => return Ok(None),
            };
            match message_value(ty, &segments, path, depth + 1)? {
                Value::Null => None,
                // The zero IntOrString means "unset" in Go; a pointer one was set explicitly.
                Value::Number(n)
                    if matches!(ty, T::IntOrString) && field.mode == Mode::OmitEmpty && n.as_i64() == Some(0) =>
                {
                    None
                }
                value => Some(value),
            }
        }
    })
}

/// One element of a repeated field.
fn element(ty: &T, value: Wire<'_>, path: &Path<'_>, depth: usize) -> Result<Value, DecodeError> {
    match ty {
        T::String | T::Bytes | T::Bool | T::Int32 | T::Int64 => scalar(ty, value, path),
        T::Map(_) => Err(invalid(path, "repeated map")),
        _ => message_value(ty, &[expect_bytes(value, path)?], path, depth + 1),
    }
}

fn map_entry(entry: &[u8], value_ty: &T, path: &Path<'_>, depth: usize) -> Result<(String, Value), DecodeError> {
    let mut key = String::new();
    let mut values: Vec<Wire<'_>> = Vec::new();
    let mut reader = Reader::new(entry);
    while let Some(field) = reader.field() {
        let (number, value) = field.map_err(|e| wire_error(e, path))?;
        match number {
            1 => key = string(expect_bytes(value, &Path::Key(path, &key))?),
            2 => values.push(value),
            _ => {}
        }
    }
    let path = Path::Key(path, &key);
    let value = match value_ty {
        T::String | T::Bytes | T::Bool | T::Int32 | T::Int64 => match values.last() {
            Some(value) => scalar(value_ty, *value, &path)?,
            None => zero(value_ty),
        },
        T::Map(_) => return Err(invalid(&path, "map of maps")),
        _ => {
            let segments = values.into_iter().map(|v| expect_bytes(v, &path)).collect::<Result<Vec<_>, _>>()?;
            message_value(value_ty, &segments, &path, depth + 1)?
        }
    };
    Ok((key, value))
}

fn scalar(ty: &T, value: Wire<'_>, path: &Path<'_>) -> Result<Value, DecodeError> {
    Ok(match ty {
        T::String => Value::String(string(expect_bytes(value, path)?)),
        T::Bytes => Value::String(base64::engine::general_purpose::STANDARD.encode(expect_bytes(value, path)?)),
        _ => varint_value(ty, expect_varint(value, path)?),
    })
}

fn varint_value(ty: &T, v: u64) -> Value {
    match ty {
        T::Bool => Value::Bool(v != 0),
        // int32 is sign-extended to 64 bits on the wire; its low 32 bits are the value.
        T::Int32 => Value::from(v as i32),
        _ => Value::from(v as i64),
    }
}

fn zero(ty: &T) -> Value {
    match ty {
        T::String | T::Bytes => Value::String(String::new()),
        T::Bool => Value::Bool(false),
        _ => Value::from(0),
    }
}

fn is_zero(value: &Value) -> bool {
    match value {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0),
        _ => false,
    }
}

/// A message-typed value; `Null` when Go's JSON would write `null` (zero times, empty raw JSON).
fn message_value(ty: &T, segments: &[&[u8]], path: &Path<'_>, depth: usize) -> Result<Value, DecodeError> {
    match ty {
        T::Message(message) => {
            let mut object = Map::new();
            decode_message(segments, message, path, depth, &mut object)?;
            Ok(Value::Object(object))
        }
        T::Time | T::MicroTime => {
            let (mut seconds, mut nanos) = (0i64, 0i32);
            if segments.iter().all(|s| s.is_empty()) {
                return Ok(Value::Null);
            }
            for_each_field(segments, path, |number, value| {
                match number {
                    1 => seconds = expect_varint(value, &Path::Field(path, "seconds"))? as i64,
                    2 => nanos = expect_varint(value, &Path::Field(path, "nanos"))? as i32,
                    _ => {}
                }
                Ok(())
            })?;
            format_time(seconds, nanos, matches!(ty, T::MicroTime), path)
        }
        T::IntOrString => {
            let (mut kind, mut int, mut text) = (0i64, 0i32, String::new());
            for_each_field(segments, path, |number, value| {
                match number {
                    1 => kind = expect_varint(value, &Path::Field(path, "type"))? as i64,
                    2 => int = expect_varint(value, &Path::Field(path, "intVal"))? as i32,
                    3 => text = string(expect_bytes(value, &Path::Field(path, "strVal"))?),
                    _ => {}
                }
                Ok(())
            })?;
            match kind {
                0 => Ok(Value::from(int)),
                1 => Ok(Value::String(text)),
                other => Err(invalid(path, format!("IntOrString type {other} is neither 0 (int) nor 1 (string)"))),
            }
        }
        T::Quantity => {
            let mut text = String::new();
            for_each_field(segments, path, |number, value| {
                if number == 1 {
                    text = string(expect_bytes(value, &Path::Field(path, "string"))?);
                }
                Ok(())
            })?;
            // The zero Quantity serialises as "0".
            Ok(Value::String(if text.is_empty() { "0".into() } else { text }))
        }
        T::RawJson => {
            let mut raw: &[u8] = &[];
            for_each_field(segments, path, |number, value| {
                if number == 1 {
                    raw = expect_bytes(value, &Path::Field(path, "raw"))?;
                }
                Ok(())
            })?;
            if raw.is_empty() {
                Ok(Value::Null)
            } else if raw.starts_with(MAGIC) {
                decode_envelope(raw, path, depth + 1)
            } else {
                serde_json::from_slice(raw).map_err(|e| invalid(path, format!("embedded object is not JSON: {e}")))
            }
        }
        T::String | T::Bytes | T::Bool | T::Int32 | T::Int64 | T::Map(_) => Err(invalid(path, "not a message type")),
    }
}

fn for_each_field<'a>(
    segments: &[&'a [u8]],
    path: &Path<'_>,
    mut visit: impl FnMut(u32, Wire<'a>) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    for segment in segments {
        let mut reader = Reader::new(segment);
        while let Some(field) = reader.field() {
            let (number, value) = field.map_err(|e| wire_error(e, path))?;
            visit(number, value)?;
        }
    }
    Ok(())
}

/// `0000-01-01T00:00:00Z`, the earliest time Go's JSON encoder writes.
const MIN_SECONDS: i64 = -62_167_219_200;
/// `9999-12-31T23:59:59Z`, the latest.
const MAX_SECONDS: i64 = 253_402_300_799;
/// Go's zero `time.Time`, `0001-01-01T00:00:00Z`, which serialises as `null`.
const ZERO_TIME_SECONDS: i64 = -62_135_596_800;

/// `meta.v1.Time` as RFC 3339 to the second (Go drops the nanoseconds of `Time` on decode), or
/// `MicroTime` with six fractional digits; `null` for Go's zero time.
fn format_time(seconds: i64, nanos: i32, micro: bool, path: &Path<'_>) -> Result<Value, DecodeError> {
    // time.Unix normalises nanoseconds outside [0, 1e9).
    let (seconds, nanos) = if micro {
        let nanos = i64::from(nanos);
        (seconds.checked_add(nanos.div_euclid(1_000_000_000)), nanos.rem_euclid(1_000_000_000))
    } else {
        (Some(seconds), 0)
    };
    let Some(seconds) = seconds.filter(|s| (MIN_SECONDS..=MAX_SECONDS).contains(s)) else {
        return Err(invalid(path, "time outside the years 0 to 9999"));
    };
    if seconds == ZERO_TIME_SECONDS && nanos == 0 {
        return Ok(Value::Null);
    }
    let (days, secs) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    let mut text = format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if micro {
        text.push_str(&format!(".{:06}", nanos / 1000));
    }
    text.push('Z');
    Ok(Value::String(text))
}

/// The proleptic Gregorian date of a day count from 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests;
