//! What a policy expression sees about one request (SPEC 7). Filled in by the pipeline,
//! read by both evaluators (`cel` and its native fast path).

/// What an expression can see about one request.
#[derive(Debug, Clone)]
pub struct Facts {
    pub method: String,
    pub scheme: String,
    pub host: String,
    pub port: u16,
    pub path: String,
    pub query: String,
    pub url: String,
    /// Lower-case names; repeated headers joined with ", ".
    pub headers: Vec<(String, String)>,
    /// -1 when unknown.
    pub body_size: i64,
    pub source_ip: String,
    pub listener: String,
}
