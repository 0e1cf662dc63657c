use std::collections::HashSet;

use serde_json::json;

use super::schema::{self, Message, Mode, T};
use super::*;

/// A protobuf encoder for tests, writing fields the way gogoproto does.
#[derive(Default, Clone)]
struct Pb(Vec<u8>);

impl Pb {
    fn new() -> Self {
        Pb::default()
    }

    fn raw_varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn tag(&mut self, number: u32, wire_type: u8) {
        self.raw_varint((u64::from(number) << 3) | u64::from(wire_type));
    }

    fn int(mut self, number: u32, v: i64) -> Self {
        self.tag(number, 0);
        self.raw_varint(v as u64);
        self
    }

    fn bool(self, number: u32, b: bool) -> Self {
        self.int(number, i64::from(b))
    }

    fn bytes(mut self, number: u32, b: &[u8]) -> Self {
        self.tag(number, 2);
        self.raw_varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }

    fn str(self, number: u32, s: &str) -> Self {
        self.bytes(number, s.as_bytes())
    }

    fn msg(self, number: u32, m: Pb) -> Self {
        self.bytes(number, &m.0)
    }

    fn entry(self, number: u32, key: &str, value: &str) -> Self {
        self.msg(number, Pb::new().str(1, key).str(2, value))
    }

    fn entry_bytes(self, number: u32, key: &str, value: &[u8]) -> Self {
        self.msg(number, Pb::new().str(1, key).bytes(2, value))
    }

    /// A map<string, Quantity> entry.
    fn quantity(self, number: u32, key: &str, value: &str) -> Self {
        self.msg(number, Pb::new().str(1, key).msg(2, Pb::new().str(1, value)))
    }
}

/// `k8s\0` + runtime.Unknown, as the Go protobuf serializer writes it.
fn body(api_version: &str, kind: &str, object: Pb) -> Vec<u8> {
    let unknown = Pb::new().msg(1, Pb::new().str(1, api_version).str(2, kind)).msg(2, object).str(3, "").str(4, "");
    [MAGIC, &unknown.0].concat()
}

/// ObjectMeta with every Go value field written, as gogoproto does: empty strings, zero generation and the
/// zero creationTimestamp (an empty message).
fn meta(name: &str, namespace: &str) -> Pb {
    Pb::new().str(1, name).str(2, "").str(3, namespace).str(4, "").str(5, "").str(6, "").int(7, 0).msg(8, Pb::new())
}

fn intstr_int(v: i64) -> Pb {
    Pb::new().int(1, 0).int(2, v).str(3, "")
}

fn intstr_str(s: &str) -> Pb {
    Pb::new().int(1, 1).int(2, 0).str(3, s)
}

#[test]
fn config_map() {
    let object = Pb::new()
        .msg(1, meta("cm", "ns").entry(11, "b", "2").entry(11, "a", "1"))
        .entry(2, "k", "v")
        .entry(2, "empty", "")
        .entry_bytes(3, "bin", &[0, 1, 2]);
    assert_eq!(
        decode_object(&body("v1", "ConfigMap", object)).unwrap(),
        json!({
            "kind": "ConfigMap",
            "apiVersion": "v1",
            "metadata": {"name": "cm", "namespace": "ns", "labels": {"a": "1", "b": "2"}},
            "data": {"empty": "", "k": "v"},
            "binaryData": {"bin": "AAEC"},
        })
    );
}

#[test]
fn namespace_as_kubectl_creates_it() {
    let object = Pb::new().msg(1, meta("foo", "")).msg(2, Pb::new()).msg(3, Pb::new().str(1, ""));
    assert_eq!(
        decode_object(&body("v1", "Namespace", object)).unwrap(),
        json!({"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "foo"}, "spec": {}, "status": {}})
    );
}

#[test]
fn secret_bytes() {
    let object = Pb::new()
        .msg(1, meta("s", "default"))
        .entry_bytes(2, "password", b"s3cr\xff")
        .entry_bytes(2, "empty", b"")
        .str(3, "Opaque");
    assert_eq!(
        decode_object(&body("v1", "Secret", object)).unwrap(),
        json!({
            "kind": "Secret",
            "apiVersion": "v1",
            "metadata": {"name": "s", "namespace": "default"},
            "data": {"empty": "", "password": "czNjcv8="},
            "type": "Opaque",
        })
    );
}

fn container_port(port: i64) -> Pb {
    Pb::new().str(1, "").int(2, 0).int(3, port).str(4, "").str(5, "")
}

#[test]
fn deployment() {
    let labels = |m: Pb| m.entry(11, "app", "web");
    let container = Pb::new()
        .str(1, "web")
        .str(2, "nginx")
        .str(5, "")
        .msg(6, container_port(80))
        .msg(8, Pb::new().quantity(2, "cpu", "100m").quantity(2, "memory", "64Mi"))
        .str(13, "")
        .str(20, "")
        .str(14, "")
        .bool(16, false)
        .bool(17, false)
        .bool(18, false);
    let pod_spec = Pb::new().msg(2, container).str(3, "").str(6, "").str(8, "").str(9, "").str(10, "").str(19, "");
    let template = Pb::new().msg(1, labels(meta("", ""))).msg(2, pod_spec);
    let spec = Pb::new()
        .int(1, 0)
        .msg(2, Pb::new().entry(1, "app", "web"))
        .msg(3, template)
        .msg(4, Pb::new().str(1, ""))
        .int(5, 0)
        .bool(7, false);
    let status = Pb::new().int(1, 0).int(2, 0).int(3, 0).int(7, 0).int(4, 0).int(5, 0);
    let object = Pb::new().msg(1, labels(meta("web", "default"))).msg(2, spec).msg(3, status);
    assert_eq!(
        decode_object(&body("apps/v1", "Deployment", object)).unwrap(),
        json!({
            "kind": "Deployment",
            "apiVersion": "apps/v1",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {
                // A pointer field: an explicit zero stays.
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{
                        "name": "web",
                        "image": "nginx",
                        "ports": [{"containerPort": 80}],
                        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                    }]},
                },
                "strategy": {},
            },
            "status": {},
        })
    );
}

#[test]
fn service_ports() {
    let port = |name: &str, port: i64, target: Pb, node_port: i64| {
        Pb::new().str(1, name).str(2, "TCP").int(3, port).msg(4, target).int(5, node_port)
    };
    let spec = Pb::new()
        .msg(1, port("http", 80, intstr_str("web"), 30080))
        .msg(1, port("metrics", 9090, intstr_int(9091), 0))
        .msg(1, port("", 53, intstr_int(0), 0))
        .entry(2, "app", "web")
        .str(3, "")
        .str(4, "NodePort")
        .str(7, "")
        .str(8, "")
        .str(10, "")
        .str(11, "")
        .int(12, 0)
        .bool(13, false);
    let status = Pb::new().msg(1, Pb::new());
    let object = Pb::new().msg(1, meta("web", "default")).msg(2, spec).msg(3, status);
    assert_eq!(
        decode_object(&body("v1", "Service", object)).unwrap(),
        json!({
            "kind": "Service",
            "apiVersion": "v1",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "ports": [
                    {"name": "http", "protocol": "TCP", "port": 80, "targetPort": "web", "nodePort": 30080},
                    {"name": "metrics", "protocol": "TCP", "port": 9090, "targetPort": 9091},
                    {"protocol": "TCP", "port": 53},
                ],
                "selector": {"app": "web"},
                "type": "NodePort",
            },
            "status": {"loadBalancer": {}},
        })
    );
}

#[test]
fn ingress() {
    let backend = Pb::new().msg(4, Pb::new().str(1, "web").msg(2, Pb::new().str(1, "").int(2, 80)));
    let path = Pb::new().str(1, "/").str(3, "Prefix").msg(2, backend);
    let rule = Pb::new().str(1, "example.com").msg(2, Pb::new().msg(1, Pb::new().msg(1, path)));
    let tls = Pb::new().str(1, "example.com").str(2, "tls");
    let spec = Pb::new().str(4, "nginx").msg(2, tls).msg(3, rule);
    let object = Pb::new().msg(1, meta("web", "default")).msg(2, spec).msg(3, Pb::new().msg(1, Pb::new()));
    assert_eq!(
        decode_object(&body("networking.k8s.io/v1", "Ingress", object)).unwrap(),
        json!({
            "kind": "Ingress",
            "apiVersion": "networking.k8s.io/v1",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "ingressClassName": "nginx",
                "tls": [{"hosts": ["example.com"], "secretName": "tls"}],
                "rules": [{
                    "host": "example.com",
                    "http": {"paths": [{
                        "path": "/",
                        "pathType": "Prefix",
                        "backend": {"service": {"name": "web", "port": {"number": 80}}},
                    }]},
                }],
            },
            "status": {"loadBalancer": {}},
        })
    );
}

#[test]
fn pod_inline_structs_probes_and_env() {
    let probe = Pb::new()
        .msg(1, Pb::new().msg(2, Pb::new().str(1, "/healthz").msg(2, intstr_int(8080)).str(3, "").str(4, "")))
        .int(2, 5)
        .int(3, 0);
    let env = Pb::new()
        .str(1, "MODE")
        .str(2, "")
        .msg(3, Pb::new().msg(3, Pb::new().msg(1, Pb::new().str(1, "settings")).str(2, "mode")));
    let container = Pb::new()
        .str(1, "app")
        .str(2, "busybox")
        .str(3, "sh")
        .str(3, "-c")
        .msg(7, env)
        .msg(8, Pb::new())
        .msg(9, Pb::new().str(1, "cfg").bool(2, true).str(3, "/etc/cfg"))
        .msg(10, probe);
    let volumes = [
        Pb::new().str(1, "cfg").msg(2, Pb::new().msg(19, Pb::new().msg(1, Pb::new().str(1, "settings")).int(3, 420))),
        Pb::new().str(1, "scratch").msg(2, Pb::new().msg(2, Pb::new().str(1, ""))),
    ];
    let spec = Pb::new()
        .msg(1, volumes[0].clone())
        .msg(1, volumes[1].clone())
        .msg(2, container)
        .str(3, "Always")
        .int(4, 0)
        .bool(21, false);
    let object = Pb::new().msg(1, meta("p", "default")).msg(2, spec);
    assert_eq!(
        decode_object(&body("v1", "Pod", object)).unwrap(),
        json!({
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {
                "volumes": [
                    {"name": "cfg", "configMap": {"name": "settings", "defaultMode": 420}},
                    {"name": "scratch", "emptyDir": {}},
                ],
                "containers": [{
                    "name": "app",
                    "image": "busybox",
                    "command": ["sh", "-c"],
                    "env": [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}}],
                    "resources": {},
                    "volumeMounts": [{"name": "cfg", "readOnly": true, "mountPath": "/etc/cfg"}],
                    "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "initialDelaySeconds": 5},
                }],
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 0,
                "automountServiceAccountToken": false,
            },
        })
    );
}

#[test]
fn times() {
    let spec = Pb::new()
        .str(1, "holder")
        .msg(3, Pb::new().int(1, 1_700_000_000).int(2, 123_456_789))
        .msg(4, Pb::new().int(1, -1).int(2, 1_500_000_000));
    let metadata = Pb::new().str(1, "l").msg(8, Pb::new().int(1, 1_700_000_000).int(2, 5)).msg(
        17,
        Pb::new().str(1, "kubectl").msg(4, Pb::new().int(1, 0)).msg(7, Pb::new().bytes(1, br#"{"f:spec":{}}"#)),
    );
    let object = Pb::new().msg(1, metadata).msg(2, spec);
    assert_eq!(
        decode_object(&body("coordination.k8s.io/v1", "Lease", object)).unwrap(),
        json!({
            "kind": "Lease",
            "apiVersion": "coordination.k8s.io/v1",
            "metadata": {
                "name": "l",
                "creationTimestamp": "2023-11-14T22:13:20Z",
                "managedFields": [{"manager": "kubectl", "time": "1970-01-01T00:00:00Z", "fieldsV1": {"f:spec": {}}}],
            },
            "spec": {
                "holderIdentity": "holder",
                "acquireTime": "2023-11-14T22:13:20.123456Z",
                "renewTime": "1970-01-01T00:00:00.500000Z",
            },
        })
    );
    // Go's zero time.Time, however it is written, serialises as null and is left out.
    for zero in [Pb::new(), Pb::new().int(1, ZERO_TIME_SECONDS)] {
        let object = Pb::new().msg(1, Pb::new().str(1, "x").msg(8, zero));
        let decoded = decode_object(&body("v1", "ConfigMap", object)).unwrap();
        assert_eq!(decoded["metadata"], json!({"name": "x"}));
    }
    let far = Pb::new().msg(1, Pb::new().msg(8, Pb::new().int(1, MAX_SECONDS + 1)));
    assert!(matches!(decode_object(&body("v1", "ConfigMap", far)), Err(DecodeError::InvalidValue { .. })));
    let last = Pb::new().msg(1, Pb::new().msg(8, Pb::new().int(1, MAX_SECONDS)));
    let decoded = decode_object(&body("v1", "ConfigMap", last)).unwrap();
    assert_eq!(decoded["metadata"]["creationTimestamp"], "9999-12-31T23:59:59Z");
    let first = Pb::new().msg(1, Pb::new().msg(8, Pb::new().int(1, MIN_SECONDS)));
    let decoded = decode_object(&body("v1", "ConfigMap", first)).unwrap();
    assert_eq!(decoded["metadata"]["creationTimestamp"], "0000-01-01T00:00:00Z");
    let leap = Pb::new().msg(1, Pb::new().msg(8, Pb::new().int(1, 951_825_600)));
    let decoded = decode_object(&body("v1", "ConfigMap", leap)).unwrap();
    assert_eq!(decoded["metadata"]["creationTimestamp"], "2000-02-29T12:00:00Z");
}

#[test]
fn delete_options_in_any_group_version() {
    let object = Pb::new().int(1, 0).str(4, "Foreground").str(5, "All");
    for api_version in ["v1", "apps/v1", "meta.k8s.io/v1"] {
        assert_eq!(
            decode_object(&body(api_version, "DeleteOptions", object.clone())).unwrap(),
            json!({
                "kind": "DeleteOptions",
                "apiVersion": api_version,
                "gracePeriodSeconds": 0,
                "propagationPolicy": "Foreground",
                "dryRun": ["All"],
            })
        );
    }
}

#[test]
fn unknown_fields_are_skipped_and_messages_merge() {
    let object = Pb::new()
        .int(999, 7)
        .bytes(1000, b"\xff\xff")
        .msg(1, Pb::new().str(1, "first").str(3, "ns").msg(999, Pb::new().int(1, 1)))
        .msg(1, Pb::new().str(1, "cm").entry(11, "a", "1"))
        .entry(2, "k", "old")
        .entry(2, "k", "new");
    let mut unknown = Pb::new().int(5, 1).msg(1, Pb::new().str(1, "v1").str(2, "ConfigMap").str(3, "x"));
    unknown = unknown.msg(2, object).str(4, CONTENT_TYPE);
    assert_eq!(
        decode_object(&[MAGIC, &unknown.0].concat()).unwrap(),
        json!({
            "kind": "ConfigMap",
            "apiVersion": "v1",
            "metadata": {"name": "cm", "namespace": "ns", "labels": {"a": "1"}},
            "data": {"k": "new"},
        })
    );
}

#[test]
fn negative_int32_and_int64() {
    let object = Pb::new().msg(1, Pb::new().str(1, "d").int(7, -3)).msg(2, Pb::new().int(1, -1).int(5, -2));
    let decoded = decode_object(&body("apps/v1", "Deployment", object)).unwrap();
    assert_eq!(decoded["metadata"]["generation"], -3);
    assert_eq!(decoded["spec"]["replicas"], -1);
    assert_eq!(decoded["spec"]["minReadySeconds"], -2);
}

#[test]
fn embedded_protobuf_object_in_raw_json() {
    // fieldsV1 holding a nested Kubernetes protobuf object decodes it.
    let nested = body("v1", "Namespace", Pb::new().msg(1, Pb::new().str(1, "inner")));
    let entry = Pb::new().msg(7, Pb::new().bytes(1, &nested));
    let object = Pb::new().msg(1, Pb::new().str(1, "x").msg(17, entry));
    let decoded = decode_object(&body("v1", "ConfigMap", object)).unwrap();
    assert_eq!(
        decoded["metadata"]["managedFields"][0]["fieldsV1"],
        json!({"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "inner"}})
    );
}

#[test]
fn errors() {
    assert_eq!(decode_object(b"{\"kind\":\"ConfigMap\"}"), Err(DecodeError::BadMagic));
    assert_eq!(decode_object(b"k8s"), Err(DecodeError::Truncated { path: String::new() }));
    assert_eq!(decode_object(b""), Err(DecodeError::Truncated { path: String::new() }));
    let unknown = decode_object(&body("v1", "Widget", Pb::new())).unwrap_err();
    assert_eq!(unknown.to_string(), "unknown kind \"Widget\" of apiVersion \"v1\"");
    assert_eq!(
        decode_object(&body("apps/v1", "ConfigMap", Pb::new())).unwrap_err(),
        DecodeError::UnknownKind { api_version: "apps/v1".into(), kind: "ConfigMap".into() }
    );

    let port = Pb::new().str(3, "80");
    let container = Pb::new().str(1, "c").msg(6, Pb::new()).msg(6, port);
    let template = Pb::new().msg(2, Pb::new().msg(2, Pb::new()).msg(2, container));
    let object = Pb::new().msg(2, Pb::new().msg(3, template));
    let error = decode_object(&body("apps/v1", "Deployment", object)).unwrap_err();
    assert_eq!(
        error,
        DecodeError::WireTypeMismatch {
            path: "spec.template.spec.containers[1].ports[1].containerPort".into(),
            expected: "varint",
            found: "length-delimited",
        }
    );
    assert_eq!(
        error.to_string(),
        "protobuf wire type mismatch at spec.template.spec.containers[1].ports[1].containerPort: \
         expected varint, found length-delimited"
    );

    let truncated = [&body("v1", "ConfigMap", Pb::new())[..], &[0x0a, 0x05, b'a']].concat();
    assert!(matches!(decode_object(&truncated), Err(DecodeError::Truncated { .. })));

    let mut encoded = body("v1", "ConfigMap", Pb::new());
    encoded.extend_from_slice(&Pb::new().str(3, "gzip").0);
    assert_eq!(decode_object(&encoded), Err(DecodeError::ContentEncoding("gzip".into())));

    let bad_intstr = Pb::new().msg(2, Pb::new().msg(1, Pb::new().int(3, 80).msg(4, Pb::new().int(1, 7))));
    let error = decode_object(&body("v1", "Service", bad_intstr)).unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid value at spec.ports[0].targetPort: IntOrString type 7 is neither 0 (int) nor 1 (string)"
    );

    let not_json = Pb::new().msg(1, Pb::new().msg(17, Pb::new().msg(7, Pb::new().bytes(1, b"{nope"))));
    let error = decode_object(&body("v1", "ConfigMap", not_json)).unwrap_err();
    assert!(error.to_string().starts_with("invalid value at metadata.managedFields[0].fieldsV1: embedded object"));
}

#[test]
fn nested_envelopes_are_bounded() {
    let mut inner = body("v1", "Namespace", Pb::new());
    for _ in 0..200 {
        let object = Pb::new().msg(1, Pb::new().msg(17, Pb::new().msg(7, Pb::new().bytes(1, &inner))));
        inner = body("v1", "ConfigMap", object);
    }
    assert!(matches!(decode_object(&inner), Err(DecodeError::TooDeep { .. })));
}

/// xorshift64*, so the fuzz test is deterministic without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn never_panics_on_garbage() {
    let deployment = {
        let container = Pb::new().str(1, "web").str(2, "nginx").msg(6, container_port(80));
        let pod = Pb::new().msg(1, meta("", "").entry(11, "app", "web")).msg(2, Pb::new().msg(2, container));
        let spec = Pb::new().int(1, 3).msg(2, Pb::new().entry(1, "app", "web")).msg(3, pod);
        body("apps/v1", "Deployment", Pb::new().msg(1, meta("web", "default")).msg(2, spec))
    };
    let service = {
        let port = Pb::new().str(1, "http").int(3, 80).msg(4, intstr_str("web"));
        body("v1", "Service", Pb::new().msg(1, meta("s", "default")).msg(2, Pb::new().msg(1, port)))
    };
    let seeds = [deployment, service];

    // Every prefix of a valid body.
    for seed in &seeds {
        for len in 0..seed.len() {
            let _ = decode_object(&seed[..len]);
        }
    }

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..20_000 {
        let mut input = seeds[round % seeds.len()].clone();
        match round % 3 {
            // Random bytes after the magic.
            0 => {
                let len = rng.below(64);
                input = MAGIC.iter().copied().chain((0..len).map(|_| rng.next() as u8)).collect();
            }
            // A few bytes of a valid body flipped.
            1 => {
                for _ in 0..=rng.below(4) {
                    let i = rng.below(input.len());
                    input[i] = rng.next() as u8;
                }
            }
            // A valid body cut short and garbage appended.
            _ => {
                input.truncate(rng.below(input.len()));
                input.extend((0..rng.below(8)).map(|_| rng.next() as u8));
            }
        }
        let _ = decode_object(&input);
    }
}

/// Walks every message reachable from the kinds table.
fn reachable() -> Vec<&'static Message> {
    fn visit(message: &'static Message, seen: &mut HashSet<&'static str>, out: &mut Vec<&'static Message>) {
        if !seen.insert(message.name) {
            return;
        }
        out.push(message);
        for field in message.fields {
            let mut ty = &field.ty;
            if let T::Map(value) = ty {
                ty = value;
            }
            if let T::Message(inner) = ty {
                visit(inner, seen, out);
            }
        }
    }
    let (mut seen, mut out) = (HashSet::new(), Vec::new());
    for (_, _, message) in schema::kinds() {
        visit(message, &mut seen, &mut out);
    }
    out
}

#[test]
fn schemas_are_consistent() {
    let messages = reachable();
    assert!(messages.len() > 200, "{} messages", messages.len());
    for message in messages {
        let mut numbers = HashSet::new();
        let mut names = HashSet::new();
        let mut stack = vec![message];
        while let Some(m) = stack.pop() {
            for field in m.fields {
                if m.name == message.name {
                    assert!(numbers.insert(field.number), "{}: field {} twice", m.name, field.number);
                }
                if field.mode == Mode::Inline {
                    let T::Message(inner) = &field.ty else { panic!("{}: inline non-message", m.name) };
                    stack.push(inner);
                } else {
                    assert!(!field.name.is_empty(), "{}: field {} unnamed", m.name, field.number);
                    assert!(names.insert(field.name), "{}: JSON key {} twice", message.name, field.name);
                }
            }
        }
    }
}

#[test]
fn every_kind_decodes_an_empty_object() {
    for (api_version, kind, _) in schema::kinds() {
        let decoded = decode_object(&body(api_version, kind, Pb::new())).unwrap();
        assert_eq!(decoded["kind"], kind);
        assert_eq!(decoded["apiVersion"], api_version);
    }
}

#[test]
fn content_type() {
    assert!(is_protobuf_content_type("application/vnd.kubernetes.protobuf"));
    assert!(is_protobuf_content_type("application/vnd.kubernetes.protobuf; charset=utf-8"));
    assert!(!is_protobuf_content_type("application/json"));
    assert!(is_protobuf_content_type("Application/Vnd.Kubernetes.Protobuf;stream=watch"));
}

/// Bodies kubectl 1.32 POSTed for `kubectl create ...` (captured from a stub server), and the JSON
/// `kubectl create ... --dry-run=client -o json` prints for the same object, without its `null`s.
#[test]
fn real_kubectl_bodies() {
    macro_rules! fixtures {
        ($($name:literal),* $(,)?) => {
            [$(($name, &include_bytes!(concat!("testdata/", $name, ".pb"))[..], include_str!(concat!("testdata/", $name, ".json")))),*]
        };
    }
    let fixtures = fixtures![
        "configmap",
        "namespace",
        "secret_generic",
        "secret_tls",
        "secret_docker",
        "deployment",
        "deployment_multi",
        "deployment_cmd",
        "service_nodeport",
        "service_clusterip",
        "service_headless",
        "service_lb",
        "service_externalname",
        "serviceaccount",
        "ingress",
    ];
    for (name, body, expected) in fixtures {
        let expected: Value = serde_json::from_str(expected).unwrap();
        assert_eq!(decode_object(body).unwrap(), expected, "{name}");
    }
}
