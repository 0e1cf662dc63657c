//! Bad input gets the Status kube-apiserver would answer with, stores nothing, and leaves
//! the server up.

mod common;

use common::Server;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Sends raw bytes; returns the HTTP code and the body (parsed as JSON when it is JSON).
async fn raw(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<Vec<u8>>,
) -> (u16, Value) {
    let mut builder = http::Request::builder().method(method).uri(path);
    if let Some(ct) = content_type {
        builder = builder.header(http::header::CONTENT_TYPE, ct);
    }
    let req = builder.body(kube::client::Body::from(body.into())).unwrap();
    let resp = client.send(req).await.unwrap_or_else(|e| panic!("{method} {path}: {e:?}"));
    let code = resp.status().as_u16();
    let bytes = resp.into_body().collect_bytes().await.expect("response body");
    let value =
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (code, value)
}

async fn get(client: &kube::Client, path: &str) -> (u16, Value) {
    raw(client, "GET", path, None, Vec::new()).await
}

/// Asserts a metav1.Status failure with this code (and reason, if given); returns it.
#[track_caller]
fn assert_status(what: &str, got: &(u16, Value), code: u16, reason: Option<&str>) -> Value {
    let (http_code, body) = got;
    assert_eq!(*http_code, code, "{what}: HTTP code (body {body})");
    assert_eq!(body["kind"], "Status", "{what}: body is a Status: {body}");
    assert_eq!(body["apiVersion"], "v1", "{what}: {body}");
    assert_eq!(body["status"], "Failure", "{what}: {body}");
    assert_eq!(body["code"], code, "{what}: Status code: {body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: Status has a message: {body}");
    if let Some(reason) = reason {
        assert_eq!(body["reason"], reason, "{what}: reason: {body}");
    }
    body.clone()
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";

/// The server still answers health checks and real requests.
async fn assert_up(client: &kube::Client) {
    let (code, body) = get(client, "/readyz").await;
    assert_eq!((code, body), (200, Value::String("ok".into())));
    let (code, body) = get(client, "/api/v1/namespaces/default").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["metadata"]["name"], "default");
}

/// Names of the ConfigMaps in `default`.
async fn stored_config_maps(client: &kube::Client) -> Vec<String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    api.list(&ListParams::default()).await.unwrap().items.into_iter().map(|cm| cm.metadata.name.unwrap()).collect()
}

fn cm_json(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_and_mistyped_bodies_are_400_and_store_nothing() {
    let server = Server::start();
    let client = server.client().await;
    let json_ct = Some("application/json");
    let deep = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"deep"}},"data":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"broken""#.to_vec()),
        ("trailing garbage", br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"broken"}} xyz"#.to_vec()),
        (
            "not UTF-8",
            b"{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"broken\xff\xfe\"}}".to_vec(),
        ),
        ("empty", Vec::new()),
        ("YAML, not JSON", b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: broken\n".to_vec()),
        ("an array", br#"[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"broken"}}]"#.to_vec()),
        ("null", b"null".to_vec()),
        ("a string", br#""ConfigMap""#.to_vec()),
        ("nested 100000 deep", deep.into_bytes()),
        (
            "wrong field type",
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"broken"},"data":{"k":1}}"#.to_vec(),
        ),
        ("metadata not an object", br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":"broken"}"#.to_vec()),
    ];
    for (what, body) in cases {
        let got = raw(&client, "POST", CMS, json_ct, body).await;
        assert_status(what, &got, 400, Some("BadRequest"));
    }

    // Type metadata that names another kind or version.
    let mut wrong_version = cm_json("broken");
    wrong_version["apiVersion"] = json!("apps/v1");
    let got = raw(&client, "POST", CMS, json_ct, wrong_version.to_string()).await;
    assert_status("wrong apiVersion", &got, 400, Some("BadRequest"));
    let mut wrong_kind = cm_json("broken");
    wrong_kind["kind"] = json!("Secret");
    let got = raw(&client, "POST", CMS, json_ct, wrong_kind.to_string()).await;
    assert_status("wrong kind", &got, 400, Some("BadRequest"));
    let mut nonsense_version = cm_json("broken");
    nonsense_version["apiVersion"] = json!("v999");
    let got = raw(&client, "POST", CMS, json_ct, nonsense_version.to_string()).await;
    assert_status("unknown apiVersion", &got, 400, Some("BadRequest"));

    // A body for another namespace than the URL's.
    let mut other_ns = cm_json("broken");
    other_ns["metadata"]["namespace"] = json!("kube-system");
    let got = raw(&client, "POST", CMS, json_ct, other_ns.to_string()).await;
    assert_status("namespace mismatch", &got, 400, Some("BadRequest"));

    assert_eq!(stored_config_maps(&client).await, Vec::<String>::new(), "nothing was stored");
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    assert!(api.get_opt("broken").await.unwrap().is_none());

    // A PUT whose body names another object than the URL.
    let got = raw(&client, "POST", CMS, json_ct, cm_json("real").to_string()).await;
    assert_eq!(got.0, 201, "{}", got.1);
    let got = raw(&client, "PUT", &format!("{CMS}/real"), json_ct, cm_json("other").to_string()).await;
    assert_status("name mismatch on PUT", &got, 400, Some("BadRequest"));
    let got = raw(&client, "PUT", &format!("{CMS}/real"), json_ct, b"{not json".to_vec()).await;
    assert_status("malformed PUT", &got, 400, Some("BadRequest"));
    assert_eq!(stored_config_maps(&client).await, ["real"]);
    let (_, real) = get(&client, &format!("{CMS}/real")).await;
    assert_eq!(real["data"], json!({"k": "v"}), "the failed PUTs changed nothing");

    assert_up(&client).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_bodies_are_413_and_unknown_media_types_415() {
    let server = Server::start();
    let client = server.client().await;

    // 3.5 MiB of valid JSON: over kube-apiserver's 3 MiB request limit.
    let mut big = cm_json("big");
    big["data"]["k"] = json!("x".repeat(3 * 1024 * 1024 + 512 * 1024));
    let got = raw(&client, "POST", CMS, Some("application/json"), big.to_string()).await;
    assert_status("3.5 MiB body", &got, 413, Some("RequestEntityTooLarge"));
    // Just over the limit, and as a PUT and a PATCH.
    let just_over = vec![b' '; 3 * 1024 * 1024 + 1];
    let got = raw(&client, "POST", CMS, Some("application/json"), just_over.clone()).await;
    assert_status("3 MiB + 1 byte", &got, 413, Some("RequestEntityTooLarge"));
    let got = raw(&client, "PUT", &format!("{CMS}/big"), Some("application/json"), just_over.clone()).await;
    assert_status("3 MiB + 1 byte PUT", &got, 413, Some("RequestEntityTooLarge"));
    let got = raw(&client, "PATCH", &format!("{CMS}/big"), Some("application/merge-patch+json"), just_over).await;
    assert_status("3 MiB + 1 byte PATCH", &got, 413, Some("RequestEntityTooLarge"));
    assert_eq!(stored_config_maps(&client).await, Vec::<String>::new());

    // Unsupported media types.
    let body = cm_json("typed").to_string();
    for ct in ["text/plain", "application/xml", "application/x-www-form-urlencoded"] {
        let got = raw(&client, "POST", CMS, Some(ct), body.clone()).await;
        assert_status(ct, &got, 415, Some("UnsupportedMediaType"));
    }
    assert_eq!(stored_config_maps(&client).await, Vec::<String>::new());

    // A patch must say which kind of patch it is.
    let got = raw(&client, "POST", CMS, Some("application/json"), body.clone()).await;
    assert_eq!(got.0, 201, "{}", got.1);
    for ct in ["application/json", "text/plain"] {
        let got = raw(&client, "PATCH", &format!("{CMS}/typed"), Some(ct), r#"{"data":{"k":"patched"}}"#).await;
        assert_status(&format!("PATCH as {ct}"), &got, 415, Some("UnsupportedMediaType"));
    }
    let (_, typed) = get(&client, &format!("{CMS}/typed")).await;
    assert_eq!(typed["data"]["k"], "v");

    assert_up(&client).await;
}

/// Asserts a 422 Invalid whose causes include `field`.
#[track_caller]
fn assert_invalid(what: &str, got: &(u16, Value), kind: &str, name: &str, field: &str) {
    let body = assert_status(what, got, 422, Some("Invalid"));
    assert_eq!(body["details"]["kind"], kind, "{what}: {body}");
    assert_eq!(body["details"]["name"], name, "{what}: {body}");
    let causes = body["details"]["causes"].as_array().unwrap_or_else(|| panic!("{what}: causes: {body}"));
    assert!(causes.iter().any(|c| c["field"] == field), "{what}: a cause for {field}: {body}");
    assert!(causes.iter().all(|c| c["reason"].as_str().is_some_and(|r| r.starts_with("Field"))), "{what}: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_names_are_422_with_a_metadata_name_cause() {
    let server = Server::start();
    let client = server.client().await;
    let json_ct = Some("application/json");

    let long = "a".repeat(254);
    for bad in ["Bad_Name", "-leading-dash", "has space", long.as_str()] {
        let got = raw(&client, "POST", CMS, json_ct, cm_json(bad).to_string()).await;
        assert_invalid(&format!("ConfigMap {bad:?}"), &got, "ConfigMap", bad, "metadata.name");
    }
    // A name that is fine for a ConfigMap (a DNS subdomain) but not for a Service (a DNS label).
    let svc = |name: &str| {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
               "spec": {"ports": [{"port": 80}], "selector": {"app": "x"}}})
    };
    let svcs = "/api/v1/namespaces/default/services";
    for bad in ["MyService", "my.service", "1abc"] {
        let got = raw(&client, "POST", svcs, json_ct, svc(bad).to_string()).await;
        assert_invalid(&format!("Service {bad:?}"), &got, "Service", bad, "metadata.name");
    }
    let got = raw(&client, "POST", CMS, json_ct, cm_json("my.config").to_string()).await;
    assert_eq!(got.0, 201, "a dotted ConfigMap name is valid: {}", got.1);
    // No name at all.
    let got = raw(&client, "POST", CMS, json_ct, json!({"apiVersion": "v1", "kind": "ConfigMap"}).to_string()).await;
    assert_invalid("no name", &got, "ConfigMap", "", "metadata.name");

    // kube-rs sees the same as a typed error.
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm = ConfigMap {
        metadata: ObjectMeta { name: Some("Bad_Name".into()), ..Default::default() },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &cm).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
            let causes = s.details.expect("details").causes;
            assert!(causes.iter().any(|c| c.field == "metadata.name"), "{causes:?}");
        }
        other => panic!("expected 422, got {other:?}"),
    }

    assert_eq!(stored_config_maps(&client).await, ["my.config"]);
    let (code, body) = get(&client, svcs).await;
    assert_eq!(code, 200);
    let services: Vec<&Value> = body["items"].as_array().unwrap().iter().collect();
    assert!(services.iter().all(|s| s["metadata"]["name"] == "kubernetes"), "no invalid Service stored: {body}");

    assert_up(&client).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_queries_and_paths() {
    let server = Server::start();
    let client = server.client().await;

    for sel in ["app in (x", "=bad", "a b c", "app in x", "!", "a=b=c"] {
        let q = format!("{CMS}?labelSelector={}", encode(sel));
        assert_status(&format!("labelSelector {sel:?}"), &get(&client, &q).await, 400, Some("BadRequest"));
        let q = format!("{CMS}?watch=true&labelSelector={}", encode(sel));
        assert_status(&format!("watch labelSelector {sel:?}"), &get(&client, &q).await, 400, Some("BadRequest"));
    }
    for sel in ["spec.nope=x", "metadata.name", "status.phase=Running"] {
        let q = format!("{CMS}?fieldSelector={}", encode(sel));
        assert_status(&format!("fieldSelector {sel:?}"), &get(&client, &q).await, 400, Some("BadRequest"));
    }
    assert_status("limit", &get(&client, &format!("{CMS}?limit=abc")).await, 400, Some("BadRequest"));

    // kube-rs surfaces a bad selector as a 400 error.
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    match api.list(&ListParams::default().labels("app in (x")).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 400),
        other => panic!("expected 400, got {other:?}"),
    }

    for path in [
        "/api/v1/namespaces/default/widgets",
        "/api/v1/widgets",
        "/apis/nosuch.example.com/v1/things",
        "/apis/nosuch.example.com/v1/namespaces/default/things/x",
        "/apis/apps/v1/widgets",
        "/apis/apps/v9/deployments",
        "/api/v9/pods",
        "/api/v1/namespaces/default/configmaps/x/nosuchsub",
        "/nope",
        "/api/v1/namespaces/default/configmaps/a/b/c/d",
    ] {
        assert_status(path, &get(&client, path).await, 404, Some("NotFound"));
    }
    let got = raw(&client, "POST", "/api/v1/namespaces/default/widgets", Some("application/json"), "{}").await;
    assert_status("POST to an unknown resource", &got, 404, Some("NotFound"));

    // A missing object: NotFound with details naming it.
    let body =
        assert_status("missing ConfigMap", &get(&client, &format!("{CMS}/missing")).await, 404, Some("NotFound"));
    assert_eq!(body["details"]["name"], "missing", "{body}");
    assert_eq!(body["details"]["kind"], "configmaps", "{body}");
    assert_eq!(body["message"], r#"configmaps "missing" not found"#);
    let body = assert_status(
        "missing Deployment",
        &get(&client, "/apis/apps/v1/namespaces/default/deployments/missing").await,
        404,
        Some("NotFound"),
    );
    assert_eq!(body["details"], json!({"name": "missing", "group": "apps", "kind": "deployments"}), "{body}");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    match deployments.get("missing").await {
        Err(kube::Error::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (404, "NotFound"));
            let d = s.details.expect("details");
            assert_eq!((d.name.as_str(), d.group.as_str(), d.kind.as_str()), ("missing", "apps", "deployments"));
        }
        other => panic!("expected 404, got {other:?}"),
    }
    let body = assert_status(
        "DELETE missing",
        &raw(&client, "DELETE", &format!("{CMS}/missing"), None, Vec::new()).await,
        404,
        Some("NotFound"),
    );
    assert_eq!(body["details"]["name"], "missing");

    assert_up(&client).await;
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn client_with_token(server: &Server, token: &str) -> kube::Client {
    let mut kubeconfig = kube::config::Kubeconfig::read_from(server.kubeconfig()).unwrap();
    for a in &mut kubeconfig.auth_infos {
        if let Some(info) = a.auth_info.as_mut() {
            info.token = Some(token.to_string().into());
        }
    }
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
    kube::Client::try_from(config).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_without_a_valid_token_are_401() {
    let server = Server::start();
    let anonymous = server.anonymous_client().await;
    let wrong = client_with_token(&server, "not-the-token").await;
    let empty = client_with_token(&server, "").await;
    for (who, client) in [("anonymous", &anonymous), ("wrong token", &wrong), ("empty token", &empty)] {
        for path in ["/api/v1/namespaces", CMS, "/api", "/apis", "/openapi/v3", "/metrics"] {
            assert_status(&format!("{who} GET {path}"), &get(client, path).await, 401, Some("Unauthorized"));
        }
        let got = raw(client, "POST", CMS, Some("application/json"), cm_json("sneaky").to_string()).await;
        assert_status(&format!("{who} POST"), &got, 401, Some("Unauthorized"));
        let got = raw(client, "GET", &format!("{CMS}?watch=true"), None, Vec::new()).await;
        assert_status(&format!("{who} watch"), &got, 401, Some("Unauthorized"));
        // Health and version are public, as with kube-apiserver's system:public-info-viewer.
        assert_eq!(get(client, "/readyz").await.0, 200, "{who}");
        assert_eq!(get(client, "/livez").await.0, 200, "{who}");
        let (code, version) = get(client, "/version").await;
        assert_eq!(code, 200, "{who}");
        assert_eq!(version["major"], "1");
    }
    let api: Api<ConfigMap> = Api::namespaced(anonymous.clone(), "default");
    match api.list(&ListParams::default()).await {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (401, "Unauthorized")),
        other => panic!("expected 401, got {other:?}"),
    }

    let client = server.client().await;
    assert_eq!(stored_config_maps(&client).await, Vec::<String>::new(), "unauthenticated writes stored nothing");
    assert_up(&client).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn conflicts_and_bad_patches() {
    let server = Server::start();
    let client = server.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm = |name: &str, v: &str| ConfigMap {
        metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
        data: Some(BTreeMap::from([("k".to_string(), v.to_string())])),
        ..Default::default()
    };
    let first = api.create(&PostParams::default(), &cm("c", "1")).await.unwrap();

    // Creating it again: 409 AlreadyExists.
    let got = raw(&client, "POST", CMS, Some("application/json"), cm_json("c").to_string()).await;
    let body = assert_status("duplicate create", &got, 409, Some("AlreadyExists"));
    assert_eq!(body["details"]["name"], "c");

    // A PUT carrying a resourceVersion that is no longer current: 409 Conflict.
    let mut second = first.clone();
    second.data = Some(BTreeMap::from([("k".to_string(), "2".to_string())]));
    let second = api.replace("c", &PostParams::default(), &second).await.unwrap();
    let mut stale = first.clone();
    stale.data = Some(BTreeMap::from([("k".to_string(), "stale".to_string())]));
    match api.replace("c", &PostParams::default(), &stale).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"), "{s:?}");
            let d = s.details.expect("details");
            assert_eq!((d.name.as_str(), d.kind.as_str()), ("c", "configmaps"));
        }
        other => panic!("expected 409 Conflict, got {other:?}"),
    }
    let got =
        raw(&client, "PUT", &format!("{CMS}/c"), Some("application/json"), serde_json::to_vec(&stale).unwrap()).await;
    assert_status("stale PUT (raw)", &got, 409, Some("Conflict"));
    // A malformed resourceVersion is not a match either.
    let mut garbage_rv = serde_json::to_value(&second).unwrap();
    garbage_rv["metadata"]["resourceVersion"] = json!("not-a-number");
    let got = raw(&client, "PUT", &format!("{CMS}/c"), Some("application/json"), garbage_rv.to_string()).await;
    assert!(matches!(got.0, 400 | 409 | 422), "garbage resourceVersion: {got:?}");
    assert_eq!(got.1["kind"], "Status");

    // JSON patches that are not arrays, or not JSON.
    let path = format!("{CMS}/c");
    let jp = Some("application/json-patch+json");
    for (what, body) in [
        ("an object", r#"{"op":"replace","path":"/data/k","value":"p"}"#),
        ("a string", r#""replace""#),
        ("not JSON", r#"[{"op":"replace","#),
    ] {
        assert_status(
            &format!("JSON patch that is {what}"),
            &raw(&client, "PATCH", &path, jp, body).await,
            400,
            Some("BadRequest"),
        );
    }
    // Operations that cannot be applied are refused as the client's fault.
    for (what, body) in [
        ("an unknown op", r#"[{"op":"frobnicate","path":"/data/k","value":"p"}]"#),
        ("a missing path", r#"[{"op":"replace","path":"/data/nope/deeper","value":"p"}]"#),
        (
            "a failing test",
            r#"[{"op":"test","path":"/data/k","value":"wrong"},{"op":"replace","path":"/data/k","value":"p"}]"#,
        ),
    ] {
        let (code, body) = raw(&client, "PATCH", &path, jp, body).await;
        assert!((400..500).contains(&code), "JSON patch with {what}: {code} {body}");
        assert_eq!(body["kind"], "Status", "{body}");
        assert_eq!(body["code"], code);
    }
    // Merge and strategic patches must be objects.
    for ct in ["application/merge-patch+json", "application/strategic-merge-patch+json"] {
        let got = raw(&client, "PATCH", &path, Some(ct), r#"{"data":"#).await;
        assert_status(&format!("{ct} not JSON"), &got, 400, Some("BadRequest"));
    }
    // Patching something that does not exist.
    let got =
        raw(&client, "PATCH", &format!("{CMS}/missing"), Some("application/merge-patch+json"), r#"{"data":{"a":"b"}}"#)
            .await;
    assert_status("patch missing", &got, 404, Some("NotFound"));

    let now = api.get("c").await.unwrap();
    assert_eq!(now.metadata.resource_version, second.metadata.resource_version, "no failed write changed the object");
    assert_eq!(now.data.unwrap()["k"], "2");
    // A good patch still works.
    let got = raw(&client, "PATCH", &path, jp, r#"[{"op":"replace","path":"/data/k","value":"3"}]"#).await;
    assert_eq!(got.0, 200, "{}", got.1);
    let patched = api.patch("c", &PatchParams::default(), &Patch::Merge(json!({"data": {"k": "4"}}))).await.unwrap();
    assert_eq!(patched.data.unwrap()["k"], "4");

    assert_up(&client).await;
}
