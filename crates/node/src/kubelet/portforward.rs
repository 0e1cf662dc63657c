//! `portForward`: not yet served.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::{Body, Kubelet, text};

pub async fn serve(_k: &Kubelet, _ns: &str, _pod: &str, _req: Request<Incoming>) -> Response<Body> {
    text(StatusCode::NOT_IMPLEMENTED, "port-forward is not served yet")
}
