//! Which provider a request talks to, and which kind of call it is.
//!
//! Two ways in: intercepted traffic names the provider by its API host
//! ([`provider_for_host`]); the LLM gateway has only the path ([`provider_for_gateway_path`],
//! SPEC 9). Either way [`call_kind`] then says whether the request is a call worth an LLM
//! record. Paths are compared without their query string.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    Anthropic,
    OpenAi,
    Google,
}

impl Provider {
    /// The name in records: `anthropic`, `openai`, `google`.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Anthropic => "anthropic",
            Provider::OpenAi => "openai",
            Provider::Google => "google",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The provider whose own API host this is: `api.anthropic.com`, `api.openai.com`,
/// `generativelanguage.googleapis.com` (case-insensitive, exact host; a trailing dot is the
/// same host).
pub fn provider_for_host(host: &str) -> Option<Provider> {
    let host = host.strip_suffix('.').unwrap_or(host);
    [
        ("api.anthropic.com", Provider::Anthropic),
        ("api.openai.com", Provider::OpenAi),
        ("generativelanguage.googleapis.com", Provider::Google),
    ]
    .into_iter()
    .find(|(name, _)| host.eq_ignore_ascii_case(name))
    .map(|(_, provider)| provider)
}

/// SPEC 9 gateway routing by path: `/v1/messages*` → anthropic; `/v1/chat/completions`,
/// `/v1/completions`, `/v1/responses*`, `/v1/embeddings`, `/v1/models*` → openai;
/// `/v1beta/*` → google. A query string is ignored.
pub fn provider_for_gateway_path(path: &str) -> Option<Provider> {
    let path = path_only(path);
    if path.starts_with("/v1/messages") {
        Some(Provider::Anthropic)
    } else if matches!(
        path,
        "/v1/chat/completions" | "/v1/completions" | "/v1/embeddings"
    ) || path.starts_with("/v1/responses")
        || path.starts_with("/v1/models")
    {
        Some(Provider::OpenAi)
    } else if path.starts_with("/v1beta/") {
        Some(Provider::Google)
    } else {
        None
    }
}

/// What kind of call a request is, when it is an LLM call worth a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// Anthropic `POST /v1/messages`.
    Messages,
    /// Anthropic `POST /v1/messages/count_tokens`.
    CountTokens,
    /// OpenAI `POST /v1/chat/completions`.
    ChatCompletions,
    /// OpenAI `POST /v1/completions` (legacy).
    Completions,
    /// OpenAI `POST /v1/responses`.
    Responses,
    /// OpenAI `POST /v1/embeddings`.
    Embeddings,
    /// Google `POST /v1beta/models/{model}:generateContent`.
    GenerateContent,
    /// Google `POST /v1beta/models/{model}:streamGenerateContent`.
    StreamGenerateContent,
}

impl CallKind {
    /// A short name for the call (`messages`, `count_tokens`, `chat.completions`,
    /// `completions`, `responses`, `embeddings`, `generateContent`, `streamGenerateContent`).
    pub fn as_str(self) -> &'static str {
        match self {
            CallKind::Messages => "messages",
            CallKind::CountTokens => "count_tokens",
            CallKind::ChatCompletions => "chat.completions",
            CallKind::Completions => "completions",
            CallKind::Responses => "responses",
            CallKind::Embeddings => "embeddings",
            CallKind::GenerateContent => "generateContent",
            CallKind::StreamGenerateContent => "streamGenerateContent",
        }
    }

    /// The provider whose API has this call.
    pub fn provider(self) -> Provider {
        match self {
            CallKind::Messages | CallKind::CountTokens => Provider::Anthropic,
            CallKind::ChatCompletions
            | CallKind::Completions
            | CallKind::Responses
            | CallKind::Embeddings => Provider::OpenAi,
            CallKind::GenerateContent | CallKind::StreamGenerateContent => Provider::Google,
        }
    }
}

/// `None` for anything that is not one of the calls of [`CallKind`] (`GET /v1/models`, other
/// methods, unknown paths, a path of another provider). Only `POST` counts.
pub fn call_kind(provider: Provider, method: &str, path: &str) -> Option<CallKind> {
    if !method.eq_ignore_ascii_case("POST") {
        return None;
    }
    let path = path_only(path);
    match provider {
        Provider::Anthropic => match path {
            "/v1/messages" => Some(CallKind::Messages),
            "/v1/messages/count_tokens" => Some(CallKind::CountTokens),
            _ => None,
        },
        Provider::OpenAi => match path {
            "/v1/chat/completions" => Some(CallKind::ChatCompletions),
            "/v1/completions" => Some(CallKind::Completions),
            "/v1/responses" => Some(CallKind::Responses),
            "/v1/embeddings" => Some(CallKind::Embeddings),
            _ => None,
        },
        Provider::Google => {
            let (_, method) = gemini_model_and_method(path)?;
            match method.as_str() {
                "generateContent" => Some(CallKind::GenerateContent),
                "streamGenerateContent" => Some(CallKind::StreamGenerateContent),
                _ => None,
            }
        }
    }
}

/// The path without its query string or fragment.
pub(crate) fn path_only(path: &str) -> &str {
    path.split(['?', '#']).next().unwrap_or(path)
}

/// `/v1beta/models/{model}:{method}` (also `/v1/…`, and `tunedModels/`): the model and the
/// method, with a percent-encoded `:` (`%3A`) understood.
pub(crate) fn gemini_model_and_method(path: &str) -> Option<(String, String)> {
    let path = path_only(path);
    let rest = path
        .strip_prefix("/v1beta/")
        .or_else(|| path.strip_prefix("/v1/"))?;
    let spec = rest
        .strip_prefix("models/")
        .or_else(|| rest.strip_prefix("tunedModels/"))?;
    let spec = percent_decode(spec);
    let (model, method) = spec.rsplit_once(':')?;
    if model.is_empty() || model.contains('/') || method.is_empty() {
        return None;
    }
    Some((model.to_string(), method.to_string()))
}

/// Decodes `%XX` escapes; anything malformed is kept as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(
            provider_for_host("api.anthropic.com"),
            Some(Provider::Anthropic)
        );
        assert_eq!(provider_for_host("API.OpenAI.com"), Some(Provider::OpenAi));
        assert_eq!(
            provider_for_host("generativelanguage.googleapis.com."),
            Some(Provider::Google)
        );
        assert_eq!(provider_for_host("openai.com"), None);
        assert_eq!(provider_for_host("api.openai.com.evil.test"), None);
        assert_eq!(provider_for_host("xapi.anthropic.com"), None);
        assert_eq!(provider_for_host(""), None);
    }

    #[test]
    fn gateway_paths() {
        use Provider::*;
        for (path, want) in [
            ("/v1/messages", Some(Anthropic)),
            ("/v1/messages?beta=true", Some(Anthropic)),
            ("/v1/messages/count_tokens", Some(Anthropic)),
            ("/v1/messages/batches/x", Some(Anthropic)),
            ("/v1/chat/completions", Some(OpenAi)),
            ("/v1/chat/completions?x=1", Some(OpenAi)),
            ("/v1/completions", Some(OpenAi)),
            ("/v1/responses", Some(OpenAi)),
            ("/v1/responses/resp_1/cancel", Some(OpenAi)),
            ("/v1/embeddings", Some(OpenAi)),
            ("/v1/models", Some(OpenAi)),
            ("/v1/models/gpt-4o", Some(OpenAi)),
            (
                "/v1beta/models/gemini-2.5-flash:generateContent",
                Some(Google),
            ),
            ("/v1beta/models?pageSize=5", Some(Google)),
            ("/v1/chat/completions/x", None),
            ("/v1/embeddings2", None),
            ("/v1beta", None),
            ("/v2/messages", None),
            ("/", None),
            ("", None),
        ] {
            assert_eq!(provider_for_gateway_path(path), want, "{path}");
        }
    }

    #[test]
    fn call_kinds() {
        use CallKind::*;
        use Provider::*;
        for (provider, method, path, want) in [
            (Anthropic, "POST", "/v1/messages", Some(Messages)),
            (Anthropic, "POST", "/v1/messages?beta=true", Some(Messages)),
            (
                Anthropic,
                "POST",
                "/v1/messages/count_tokens",
                Some(CountTokens),
            ),
            (Anthropic, "GET", "/v1/messages", None),
            (Anthropic, "POST", "/v1/messages/batches", None),
            (Anthropic, "GET", "/v1/models", None),
            (Anthropic, "POST", "/v1/chat/completions", None),
            (
                OpenAi,
                "POST",
                "/v1/chat/completions",
                Some(ChatCompletions),
            ),
            (OpenAi, "post", "/v1/completions", Some(Completions)),
            (OpenAi, "POST", "/v1/responses", Some(Responses)),
            (OpenAi, "POST", "/v1/responses?stream=true", Some(Responses)),
            (OpenAi, "POST", "/v1/responses/resp_123", None),
            (OpenAi, "GET", "/v1/responses/resp_123", None),
            (OpenAi, "POST", "/v1/responses/resp_123/cancel", None),
            (OpenAi, "POST", "/v1/embeddings", Some(Embeddings)),
            (OpenAi, "GET", "/v1/models", None),
            (OpenAi, "POST", "/v1/models", None),
            (OpenAi, "POST", "/v1/messages", None),
            (
                Google,
                "POST",
                "/v1beta/models/gemini-2.5-flash:generateContent",
                Some(GenerateContent),
            ),
            (
                Google,
                "POST",
                "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
                Some(StreamGenerateContent),
            ),
            (
                Google,
                "POST",
                "/v1/models/gemini-2.5-pro:generateContent",
                Some(GenerateContent),
            ),
            (
                Google,
                "POST",
                "/v1beta/models/gemini-2.5-flash%3AstreamGenerateContent",
                Some(StreamGenerateContent),
            ),
            (
                Google,
                "POST",
                "/v1beta/models/gemini-2.5-flash:countTokens",
                None,
            ),
            (
                Google,
                "POST",
                "/v1beta/models/gemini-2.5-flash:embedContent",
                None,
            ),
            (Google, "GET", "/v1beta/models/gemini-2.5-flash", None),
            (
                Google,
                "GET",
                "/v1beta/models/gemini-2.5-flash:generateContent",
                None,
            ),
            (Google, "POST", "/v1beta/models/:generateContent", None),
            (Google, "POST", "/v1beta/files/x:generateContent", None),
        ] {
            assert_eq!(
                call_kind(provider, method, path),
                want,
                "{provider} {method} {path}"
            );
        }
    }

    #[test]
    fn kinds_name_their_provider() {
        assert_eq!(CallKind::CountTokens.provider(), Provider::Anthropic);
        assert_eq!(CallKind::Responses.provider(), Provider::OpenAi);
        assert_eq!(CallKind::StreamGenerateContent.provider(), Provider::Google);
        assert_eq!(CallKind::ChatCompletions.as_str(), "chat.completions");
        assert_eq!(Provider::OpenAi.to_string(), "openai");
    }

    #[test]
    fn gemini_path_parts() {
        assert_eq!(
            gemini_model_and_method(
                "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
            ),
            Some(("gemini-2.5-flash".into(), "streamGenerateContent".into()))
        );
        assert_eq!(
            gemini_model_and_method("/v1beta/models/gemini-2.5-flash"),
            None
        );
        assert_eq!(percent_decode("a%3ab%zz%4"), "a:b%zz%4");
    }
}
