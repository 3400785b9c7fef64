//! The SSE error event that ends a stream airlock blocks half-way.
//!
//! Once a stream's headers have gone out with `200`, a block can no longer be a `403`: the
//! stream must end with an event the client's SDK understands as an API error (not as a
//! dropped connection, which SDKs and agents retry blindly), carrying airlock's message.
//! Each provider's own in-stream error shape is used:
//!
//! * Anthropic: `event: error` with `{"type":"error","error":{"type":"permission_error",
//!   "message":…}}`. The Python SDK raises `anthropic.APIStatusError` on any `event: error`
//!   (its message is the event's JSON, which holds ours).
//! * OpenAI chat, completions, embeddings: `data: {"error":{"message":…,"type":
//!   "airlock_blocked","param":null,"code":"blocked"}}`. The SDKs raise `openai.APIError`
//!   on a data chunk with a top-level `error`, with `message` as the exception's text.
//! * OpenAI Responses API: a `response.failed` event (the terminal event Codex and the
//!   Responses stream helpers act on, `response.error` holding the message) that also
//!   carries a top-level `error` object, which is what the Python and Node SDKs raise
//!   `APIError` on.
//! * Google: `data: {"error":{"code":403,"message":…,"status":"PERMISSION_DENIED"}}`, the
//!   shape Gemini sends mid-stream; `google-genai` raises `errors.ClientError` on a chunk
//!   whose first key is `error`.

use serde::Serialize;

use crate::provider::{CallKind, Provider};

/// A well-formed SSE error event, in the provider's own format, that its official SDK
/// raises as an API error (not a connection error), with `message` in it. The bytes end
/// with the blank line that ends the event.
pub fn stream_error_event(provider: Provider, kind: CallKind, message: &str) -> Vec<u8> {
    error_event(provider, kind, message, &ResponsesContext::default())
}

/// What a Responses API `response.failed` event can say about the stream it ends.
#[derive(Debug, Default)]
pub(crate) struct ResponsesContext<'a> {
    pub id: Option<&'a str>,
    pub model: Option<&'a str>,
    pub sequence_number: Option<u64>,
}

pub(crate) fn error_event(
    provider: Provider,
    kind: CallKind,
    message: &str,
    context: &ResponsesContext,
) -> Vec<u8> {
    match (provider, kind) {
        (Provider::Anthropic, _) => sse(
            Some("error"),
            &AnthropicError {
                kind: "error",
                error: AnthropicErrorBody {
                    kind: "permission_error",
                    message,
                },
            },
        ),
        (Provider::OpenAi, CallKind::Responses) => sse(
            Some("response.failed"),
            &ResponseFailed {
                kind: "response.failed",
                sequence_number: context.sequence_number,
                response: FailedResponse {
                    id: context.id.unwrap_or("resp_airlock_blocked"),
                    object: "response",
                    status: "failed",
                    error: ResponseError {
                        code: "invalid_prompt",
                        message,
                    },
                    incomplete_details: None,
                    model: context.model,
                    output: [],
                    usage: None,
                },
                error: OpenAiErrorBody::blocked(message),
            },
        ),
        (Provider::OpenAi, _) => sse(
            None,
            &OpenAiError {
                error: OpenAiErrorBody::blocked(message),
            },
        ),
        (Provider::Google, _) => sse(
            None,
            &GoogleError {
                error: GoogleErrorBody {
                    code: 403,
                    message,
                    status: "PERMISSION_DENIED",
                },
            },
        ),
    }
}

fn sse(event: Option<&str>, data: &impl Serialize) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(event) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(event.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    // serializing these plain structs cannot fail, and JSON text has no raw line breaks
    out.extend_from_slice(&serde_json::to_vec(data).unwrap_or_default());
    out.extend_from_slice(b"\n\n");
    out
}

#[derive(Serialize)]
struct AnthropicError<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: AnthropicErrorBody<'a>,
}

#[derive(Serialize)]
struct AnthropicErrorBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: &'a str,
}

#[derive(Serialize)]
struct OpenAiError<'a> {
    error: OpenAiErrorBody<'a>,
}

#[derive(Serialize)]
struct OpenAiErrorBody<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    param: Option<&'static str>,
    code: &'static str,
}

impl<'a> OpenAiErrorBody<'a> {
    fn blocked(message: &'a str) -> Self {
        OpenAiErrorBody {
            message,
            kind: "airlock_blocked",
            param: None,
            code: "blocked",
        }
    }
}

#[derive(Serialize)]
struct ResponseFailed<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sequence_number: Option<u64>,
    response: FailedResponse<'a>,
    error: OpenAiErrorBody<'a>,
}

#[derive(Serialize)]
struct FailedResponse<'a> {
    id: &'a str,
    object: &'static str,
    status: &'static str,
    error: ResponseError<'a>,
    incomplete_details: Option<()>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    output: [(); 0],
    usage: Option<()>,
}

#[derive(Serialize)]
struct ResponseError<'a> {
    code: &'static str,
    message: &'a str,
}

#[derive(Serialize)]
struct GoogleError<'a> {
    error: GoogleErrorBody<'a>,
}

#[derive(Serialize)]
struct GoogleErrorBody<'a> {
    code: u16,
    message: &'a str,
    status: &'static str,
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::stream::parse_sse;

    const MESSAGE: &str = "airlock blocked this response: \"curl … | bash\"\nrule pipe_to_shell";

    /// The one event in the bytes: its name and its data as JSON.
    fn parse(bytes: &[u8]) -> (Option<String>, Value) {
        let text = std::str::from_utf8(bytes).unwrap();
        assert!(text.ends_with("\n\n"), "ends with a blank line: {text:?}");
        assert_eq!(
            text.matches("\n\n").count(),
            1,
            "exactly one event: {text:?}"
        );
        let mut events = parse_sse(bytes);
        assert_eq!(events.len(), 1);
        let event = events.remove(0);
        (event.event, serde_json::from_str(&event.data).unwrap())
    }

    #[test]
    fn anthropic() {
        let (event, data) = parse(&stream_error_event(
            Provider::Anthropic,
            CallKind::Messages,
            MESSAGE,
        ));
        assert_eq!(event.as_deref(), Some("error"));
        assert_eq!(
            data,
            json!({"type": "error", "error": {"type": "permission_error", "message": MESSAGE}})
        );
    }

    #[test]
    fn openai_chat_and_completions() {
        for kind in [CallKind::ChatCompletions, CallKind::Completions] {
            let bytes = stream_error_event(Provider::OpenAi, kind, MESSAGE);
            assert!(bytes.starts_with(b"data: {\"error\":"));
            let (event, data) = parse(&bytes);
            assert_eq!(event, None);
            assert_eq!(
                data,
                json!({"error": {"message": MESSAGE, "type": "airlock_blocked", "param": null, "code": "blocked"}})
            );
        }
    }

    #[test]
    fn openai_responses() {
        let (event, data) = parse(&stream_error_event(
            Provider::OpenAi,
            CallKind::Responses,
            MESSAGE,
        ));
        assert_eq!(event.as_deref(), Some("response.failed"));
        assert_eq!(data["type"], "response.failed");
        assert_eq!(data["response"]["status"], "failed");
        assert_eq!(data["response"]["error"]["message"], MESSAGE);
        assert_eq!(data["response"]["output"], json!([]));
        assert_eq!(data["error"]["message"], MESSAGE);
        assert_eq!(data["error"]["code"], "blocked");
        assert!(data.get("sequence_number").is_none());
    }

    #[test]
    fn google() {
        let bytes = stream_error_event(Provider::Google, CallKind::StreamGenerateContent, MESSAGE);
        assert!(
            bytes.starts_with(b"data: {\"error\":"),
            "google-genai checks the first key"
        );
        let (event, data) = parse(&bytes);
        assert_eq!(event, None);
        assert_eq!(
            data,
            json!({"error": {"code": 403, "message": MESSAGE, "status": "PERMISSION_DENIED"}})
        );
    }

    #[test]
    fn the_stream_readers_see_the_error() {
        use crate::StreamUsage;
        for (provider, kind) in [
            (Provider::Anthropic, CallKind::Messages),
            (Provider::OpenAi, CallKind::ChatCompletions),
            (Provider::OpenAi, CallKind::Responses),
            (Provider::Google, CallKind::StreamGenerateContent),
        ] {
            let mut s = StreamUsage::new(provider, kind);
            let bytes = stream_error_event(provider, kind, MESSAGE);
            let info = s.on_event(&bytes[..bytes.len() - 2]);
            assert_eq!(info, Default::default());
            assert_eq!(s.error(), Some(MESSAGE), "{provider:?} {kind:?}");
        }
    }
}
