//! Requests addressed to airlock itself: a hello page and the CA for download, instead of a
//! request that would loop back into the proxy.

use http::{HeaderValue, Request, Response, StatusCode, header};

use super::context::ProxyContext;
use crate::pipeline::ProxyBody;
use crate::pipeline::respond::full_body;

pub fn respond<B>(ctx: &ProxyContext, req: &Request<B>) -> Response<ProxyBody> {
    let (status, content_type, body): (StatusCode, &str, String) = match req.uri().path() {
        "/" => (StatusCode::OK, "text/html; charset=utf-8", hello_page(ctx)),
        "/ca.pem" | "/airlock-ca.pem" => (
            StatusCode::OK,
            "application/x-pem-file",
            ctx.tls.ca.cert_pem().to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: this is airlock; see / for what it serves\n".to_string(),
        ),
    };
    let mut resp = Response::new(full_body(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).expect("static"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if req.uri().path() != "/" && status == StatusCode::OK {
        resp.headers_mut().insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment; filename=\"airlock-ca.pem\""),
        );
    }
    resp
}

fn hello_page(ctx: &ProxyContext) -> String {
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>airlock</title></head>\n<body>\n\
<h1>airlock is running</h1>\n\
<p>This is airlock {version}, the egress security proxy for AI agents, listening on {listen}.\n\
Interception is {mitm}.</p>\n\
<p><a href=\"/ca.pem\">Download the airlock CA certificate</a> and trust it to let airlock inspect HTTPS.\n\
The command <code>airlock ca</code> explains how to trust it on macOS, Debian/Ubuntu and RHEL.</p>\n\
</body></html>\n",
        version = env!("CARGO_PKG_VERSION"),
        listen = ctx.listen,
        mitm = if ctx.config.enable_mitm {
            "on"
        } else {
            "off (blind tunnels)"
        },
    )
}
