//! Turns a request's method, path and query into what it asks of the API, as
//! kube-apiserver's RequestInfoFactory does.

use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }
}

/// A request for a resource (as opposed to discovery or health paths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRequest {
    pub verb: Verb,
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub resource: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// What a path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `/api`, `/api/v1`, `/apis`, `/apis/<g>`, `/apis/<g>/<v>`
    Discovery {
        legacy: bool,
        group: Option<String>,
        version: Option<String>,
    },
    Resource(ResourceRequest),
    /// Anything else; served by the non-resource handlers or answered 404.
    Other(String),
}

/// Parses a request target. `watch_param` is true when the query asks for `watch=true`.
pub fn parse(method: &http::Method, path: &str, watch_param: bool) -> Target {
    let parts: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let (legacy, rest) = match parts.first() {
        Some(&"api") => (true, &parts[1..]),
        Some(&"apis") => (false, &parts[1..]),
        _ => return Target::Other(path.to_string()),
    };
    let (group, rest) = if legacy {
        (String::new(), rest)
    } else {
        match rest.first() {
            None => return Target::Discovery { legacy, group: None, version: None },
            Some(g) => (g.to_string(), &rest[1..]),
        }
    };
    let (version, mut rest) = match rest.first() {
        None => {
            let group = if legacy { None } else { Some(group) };
            return Target::Discovery { legacy, group, version: None };
        }
        Some(v) => (v.to_string(), &rest[1..]),
    };
    if rest.is_empty() {
        let group = if legacy { None } else { Some(group) };
        return Target::Discovery { legacy, group, version: Some(version) };
    }

    let mut watch_path = false;
    if rest[0] == "watch" {
        watch_path = true;
        rest = &rest[1..];
    }
    let mut namespace = None;
    if rest.first() == Some(&"namespaces") && rest.len() > 1 {
        namespace = Some(rest[1].to_string());
        if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
            rest = &rest[2..];
        }
    }
    let Some(resource) = rest.first() else { return Target::Other(path.to_string()) };
    let name = rest.get(1).map(|s| s.to_string());
    let subresource = rest.get(2).map(|s| s.to_string());
    if rest.len() > 3 {
        return Target::Other(path.to_string());
    }
    // `/api/v1/namespaces/<name>` addresses the namespace itself.
    if *resource == "namespaces" && namespace.is_some() && rest.len() <= 3 && rest.len() >= 2 {
        namespace = None;
    }
    let verb = match *method {
        http::Method::GET | http::Method::HEAD => {
            if watch_path || watch_param {
                Verb::Watch
            } else if name.is_some() {
                Verb::Get
            } else {
                Verb::List
            }
        }
        http::Method::POST => Verb::Create,
        http::Method::PUT => Verb::Update,
        http::Method::PATCH => Verb::Patch,
        http::Method::DELETE => {
            if name.is_some() {
                Verb::Delete
            } else {
                Verb::DeleteCollection
            }
        }
        _ => return Target::Other(path.to_string()),
    };
    Target::Resource(ResourceRequest {
        verb,
        group,
        version,
        namespace,
        resource: resource.to_string(),
        name,
        subresource,
    })
}

/// Decodes a query string into a map; later keys win.
pub fn query_map(query: Option<&str>) -> HashMap<String, String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn res(method: Method, path: &str) -> ResourceRequest {
        match parse(&method, path, false) {
            Target::Resource(r) => r,
            other => panic!("{path} parsed as {other:?}"),
        }
    }

    #[test]
    fn namespaced_item_with_subresource() {
        let r = res(Method::PUT, "/apis/apps/v1/namespaces/prod/deployments/web/scale");
        assert_eq!(r.verb, Verb::Update);
        assert_eq!((r.group.as_str(), r.version.as_str()), ("apps", "v1"));
        assert_eq!(r.namespace.as_deref(), Some("prod"));
        assert_eq!(r.resource, "deployments");
        assert_eq!(r.name.as_deref(), Some("web"));
        assert_eq!(r.subresource.as_deref(), Some("scale"));
    }

    #[test]
    fn namespace_itself_and_its_status() {
        let r = res(Method::GET, "/api/v1/namespaces/prod");
        assert_eq!((r.resource.as_str(), r.name.as_deref(), r.namespace), ("namespaces", Some("prod"), None));
        let r = res(Method::PUT, "/api/v1/namespaces/prod/finalize");
        assert_eq!(r.subresource.as_deref(), Some("finalize"));
        assert_eq!(r.name.as_deref(), Some("prod"));
    }

    #[test]
    fn collection_verbs() {
        assert_eq!(res(Method::GET, "/api/v1/pods").verb, Verb::List);
        assert_eq!(res(Method::DELETE, "/api/v1/namespaces/a/pods").verb, Verb::DeleteCollection);
        assert_eq!(res(Method::GET, "/api/v1/watch/namespaces/a/pods").verb, Verb::Watch);
        assert!(matches!(
            parse(&Method::GET, "/api/v1/pods", true),
            Target::Resource(ResourceRequest { verb: Verb::Watch, .. })
        ));
    }

    #[test]
    fn discovery_paths() {
        assert_eq!(
            parse(&Method::GET, "/apis", false),
            Target::Discovery { legacy: false, group: None, version: None }
        );
        assert_eq!(
            parse(&Method::GET, "/apis/apps/v1", false),
            Target::Discovery { legacy: false, group: Some("apps".into()), version: Some("v1".into()) }
        );
        assert_eq!(parse(&Method::GET, "/api", false), Target::Discovery { legacy: true, group: None, version: None });
    }

    #[test]
    fn query_is_percent_decoded() {
        let q = query_map(Some("labelSelector=app%3Dweb%2Ctier+in+%28a%29&limit=5"));
        assert_eq!(q["labelSelector"], "app=web,tier in (a)");
        assert_eq!(q["limit"], "5");
    }
}
