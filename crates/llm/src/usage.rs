//! Token usage as the provider reports it, from a complete JSON response.
//!
//! The fields are kept exactly as each provider counts them (SPEC 9): Anthropic's
//! `input_tokens` excludes the cache tokens, OpenAI's and Gemini's input counts include the
//! cached part. [`crate::PriceTable::cost`] knows the difference. The same field readers
//! serve the streams ([`crate::StreamUsage`]).

use serde_json::Value;

use crate::json::{Members, array_elements, count, string};
use crate::provider::{CallKind, Provider};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    /// The model the provider reports (a dated snapshot such as
    /// `claude-sonnet-4-5-20250929`; Gemini: `modelVersion`).
    pub model: Option<String>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cache_read_tokens: Option<u64>,
    pub cache_write_tokens: Option<u64>,
}

/// The usage of a complete JSON (non-streaming) response body. Field mapping, as the
/// provider reports it:
///
/// * Anthropic: `usage.input_tokens`, `output_tokens`, `cache_read_input_tokens`,
///   `cache_creation_input_tokens`; `count_tokens`: `{"input_tokens": N}`.
/// * OpenAI chat, completions, embeddings: `usage.prompt_tokens` → input,
///   `completion_tokens` → output (embeddings: 0), `prompt_tokens_details.cached_tokens` →
///   cache read, cache write 0. Responses API: `usage.input_tokens`, `output_tokens`,
///   `input_tokens_details.cached_tokens`.
/// * Google: `usageMetadata.promptTokenCount` → input, `candidatesTokenCount` (plus
///   `thoughtsTokenCount`) → output, `cachedContentTokenCount` → cache read, cache write 0;
///   model = `modelVersion`. A `streamGenerateContent` answer without `alt=sse` (a JSON
///   array) gives the model and the counts of its last element that has them.
///
/// Fields the response does not carry stay `None`; a body cut short gives what arrived
/// whole.
pub fn parse_response(provider: Provider, kind: CallKind, body: &[u8]) -> Usage {
    let mut usage = Usage::default();
    match provider {
        Provider::Google => {
            let first = body.iter().find(|b| !b" \t\r\n".contains(b)).copied();
            if first == Some(b'[') {
                for doc in array_elements(body) {
                    apply_gemini_doc(&doc, &mut usage);
                }
            } else {
                let mut members = Members::new(body);
                while let Some(key) = members.next_key() {
                    match key.as_str() {
                        "modelVersion" => set_model(&mut usage, members.value::<Value>()),
                        "usageMetadata" => {
                            if let Some(u) = members.value::<Value>() {
                                apply_gemini_usage(&u, &mut usage);
                            }
                        }
                        _ => members.skip(),
                    }
                }
            }
        }
        Provider::Anthropic | Provider::OpenAi => {
            let mut members = Members::new(body);
            while let Some(key) = members.next_key() {
                match key.as_str() {
                    "model" => set_model(&mut usage, members.value::<Value>()),
                    "usage" => {
                        if let Some(u) = members.value::<Value>() {
                            match provider {
                                Provider::Anthropic => apply_anthropic_usage(&u, &mut usage),
                                _ => apply_openai_usage(kind, &u, &mut usage),
                            }
                        }
                    }
                    "input_tokens" if kind == CallKind::CountTokens => {
                        if let Some(n) = count(members.value::<Value>().as_ref()) {
                            usage.input_tokens = Some(n);
                        }
                    }
                    _ => members.skip(),
                }
            }
        }
    }
    usage
}

fn set_model(usage: &mut Usage, value: Option<Value>) {
    if let Some(model) = string(value.as_ref()) {
        usage.model = Some(model.to_string());
    }
}

/// Sets `field` when the value is a count; a missing or `null` value leaves it alone.
fn replace(field: &mut Option<u64>, value: Option<&Value>) {
    if let Some(n) = count(value) {
        *field = Some(n);
    }
}

/// Anthropic `usage` (a JSON response, `message_start`'s `message.usage`, or a
/// `message_delta`'s cumulative `usage`): each count present replaces the one held.
pub(crate) fn apply_anthropic_usage(u: &Value, usage: &mut Usage) {
    if !u.is_object() {
        return;
    }
    replace(&mut usage.input_tokens, u.get("input_tokens"));
    replace(&mut usage.output_tokens, u.get("output_tokens"));
    replace(
        &mut usage.cache_read_tokens,
        u.get("cache_read_input_tokens"),
    );
    replace(
        &mut usage.cache_write_tokens,
        u.get("cache_creation_input_tokens"),
    );
}

/// OpenAI `usage`: chat and completions (`prompt_tokens`, `completion_tokens`,
/// `prompt_tokens_details.cached_tokens`), embeddings (`prompt_tokens` only) and the
/// Responses API (`input_tokens`, `output_tokens`, `input_tokens_details.cached_tokens`).
/// Either naming is understood whatever the call, since compatible servers mix them.
pub(crate) fn apply_openai_usage(kind: CallKind, u: &Value, usage: &mut Usage) {
    if !u.is_object() {
        return;
    }
    let input = count(u.get("prompt_tokens")).or_else(|| count(u.get("input_tokens")));
    let output = count(u.get("completion_tokens")).or_else(|| count(u.get("output_tokens")));
    let cached = count(u.pointer("/prompt_tokens_details/cached_tokens"))
        .or_else(|| count(u.pointer("/input_tokens_details/cached_tokens")));
    if input.is_some() {
        usage.input_tokens = input;
    }
    if output.is_some() {
        usage.output_tokens = output;
    } else if kind == CallKind::Embeddings {
        usage.output_tokens = Some(0);
    }
    if cached.is_some() {
        usage.cache_read_tokens = cached;
    }
    usage.cache_write_tokens = Some(0);
}

/// Gemini `usageMetadata`: running totals in a stream, so each count present replaces the
/// one held. Output is `candidatesTokenCount` plus `thoughtsTokenCount` (thinking tokens
/// are billed as output).
pub(crate) fn apply_gemini_usage(u: &Value, usage: &mut Usage) {
    if !u.is_object() {
        return;
    }
    replace(&mut usage.input_tokens, u.get("promptTokenCount"));
    let candidates = count(u.get("candidatesTokenCount"));
    let thoughts = count(u.get("thoughtsTokenCount"));
    if candidates.is_some() || thoughts.is_some() {
        usage.output_tokens = Some(candidates.unwrap_or(0) + thoughts.unwrap_or(0));
    }
    replace(
        &mut usage.cache_read_tokens,
        u.get("cachedContentTokenCount"),
    );
    usage.cache_write_tokens = Some(0);
}

/// One Gemini `GenerateContentResponse` (a JSON answer, an SSE event, an array element).
pub(crate) fn apply_gemini_doc(doc: &Value, usage: &mut Usage) {
    if let Some(model) = string(doc.get("modelVersion")) {
        usage.model = Some(model.to_string());
    }
    if let Some(u) = doc.get("usageMetadata") {
        apply_gemini_usage(u, usage);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(model: &str, i: u64, o: u64, cr: u64, cw: u64) -> Usage {
        Usage {
            model: Some(model.into()),
            input_tokens: Some(i),
            output_tokens: Some(o),
            cache_read_tokens: Some(cr),
            cache_write_tokens: Some(cw),
        }
    }

    // The JSON shapes below are what tests/e2e/llm_upstream.py answers (which copies the
    // real APIs).

    #[test]
    fn anthropic_message() {
        let body = br#"{"id": "msg_5f1c0a9e8d7b6c5a4f3e2d1c", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929", "content": [{"type": "text", "text": "Hello from the fake provider."}], "stop_reason": "end_turn", "stop_sequence": null, "usage": {"input_tokens": 12, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 2000, "output_tokens": 7, "service_tier": "standard"}}"#;
        assert_eq!(
            parse_response(Provider::Anthropic, CallKind::Messages, body),
            usage("claude-sonnet-4-5-20250929", 12, 7, 2000, 100)
        );
    }

    #[test]
    fn anthropic_count_tokens() {
        let got = parse_response(
            Provider::Anthropic,
            CallKind::CountTokens,
            br#"{"input_tokens": 12}"#,
        );
        assert_eq!(
            got,
            Usage {
                input_tokens: Some(12),
                ..Usage::default()
            }
        );
    }

    #[test]
    fn openai_chat_completion() {
        let body = br#"{"id": "chatcmpl-0a1b2c3d4e5f6a7b8c9d0e1f", "object": "chat.completion", "created": 1763900000, "model": "gpt-4o-2024-08-06", "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the fake provider.", "refusal": null, "annotations": []}, "logprobs": null, "finish_reason": "stop"}], "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19, "prompt_tokens_details": {"cached_tokens": 4, "audio_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}, "service_tier": "default", "system_fingerprint": "fp_fake"}"#;
        assert_eq!(
            parse_response(Provider::OpenAi, CallKind::ChatCompletions, body),
            usage("gpt-4o-2024-08-06", 12, 7, 4, 0)
        );
    }

    #[test]
    fn openai_responses() {
        let body = br#"{"id": "resp_0a1b2c3d4e5f6a7b8c9d0e1f", "object": "response", "created_at": 1763900000, "status": "completed", "error": null, "incomplete_details": null, "instructions": null, "max_output_tokens": null, "model": "gpt-4.1-mini-2025-04-14", "output": [{"id": "msg_0a1b2c3d4e5f6a7b8c9d0e1f", "type": "message", "status": "completed", "role": "assistant", "content": [{"type": "output_text", "text": "Hello from the fake provider.", "annotations": [], "logprobs": []}]}], "parallel_tool_calls": true, "previous_response_id": null, "reasoning": {"effort": null, "summary": null}, "store": true, "temperature": 1.0, "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [], "top_p": 1.0, "truncation": "disabled", "usage": {"input_tokens": 12, "input_tokens_details": {"cached_tokens": 3}, "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 19}, "user": null, "metadata": {}}"#;
        assert_eq!(
            parse_response(Provider::OpenAi, CallKind::Responses, body),
            usage("gpt-4.1-mini-2025-04-14", 12, 7, 3, 0)
        );
    }

    #[test]
    fn openai_embeddings() {
        let body = br#"{"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08]}, {"object": "embedding", "index": 1, "embedding": "CtcjPArXozyPwvU8"}], "model": "text-embedding-3-small", "usage": {"prompt_tokens": 12, "total_tokens": 12}}"#;
        assert_eq!(
            parse_response(Provider::OpenAi, CallKind::Embeddings, body),
            Usage {
                model: Some("text-embedding-3-small".into()),
                input_tokens: Some(12),
                output_tokens: Some(0),
                cache_read_tokens: None,
                cache_write_tokens: Some(0),
            }
        );
    }

    #[test]
    fn gemini_generate_content() {
        let body = br#"{"candidates": [{"content": {"parts": [{"text": "Hello from the fake provider."}], "role": "model"}, "index": 0, "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 7, "totalTokenCount": 19, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 12}], "cachedContentTokenCount": 5}, "modelVersion": "gemini-2.5-flash", "responseId": "Zm9vYmFyYmF6cXV4"}"#;
        assert_eq!(
            parse_response(Provider::Google, CallKind::GenerateContent, body),
            usage("gemini-2.5-flash", 12, 7, 5, 0)
        );
        // thinking tokens are output
        let body = br#"{"usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 7, "thoughtsTokenCount": 30}, "modelVersion": "gemini-2.5-pro"}"#;
        let got = parse_response(Provider::Google, CallKind::GenerateContent, body);
        assert_eq!(got.output_tokens, Some(37));
        assert_eq!(got.cache_read_tokens, None);
    }

    #[test]
    fn gemini_stream_as_a_json_array() {
        let body = b"[{\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hello \"}], \"role\": \"model\"}, \"index\": 0}], \"usageMetadata\": {\"promptTokenCount\": 12, \"candidatesTokenCount\": 2, \"totalTokenCount\": 14}, \"modelVersion\": \"gemini-2.5-pro\", \"responseId\": \"x\"},\r\n{\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"world\"}], \"role\": \"model\"}, \"index\": 0, \"finishReason\": \"STOP\"}], \"usageMetadata\": {\"promptTokenCount\": 12, \"candidatesTokenCount\": 7, \"totalTokenCount\": 19}, \"modelVersion\": \"gemini-2.5-pro\", \"responseId\": \"x\"}]";
        assert_eq!(
            parse_response(Provider::Google, CallKind::StreamGenerateContent, body),
            Usage {
                model: Some("gemini-2.5-pro".into()),
                input_tokens: Some(12),
                output_tokens: Some(7),
                cache_read_tokens: None,
                cache_write_tokens: Some(0),
            }
        );
    }

    #[test]
    fn error_documents_and_junk_carry_no_usage() {
        for (provider, kind, body) in [
            (
                Provider::Anthropic,
                CallKind::Messages,
                &br#"{"type": "error", "error": {"type": "api_error", "message": "fake provider error"}}"#[..],
            ),
            (
                Provider::OpenAi,
                CallKind::ChatCompletions,
                br#"{"error": {"message": "x", "type": "server_error", "param": null, "code": "server_error"}}"#,
            ),
            (
                Provider::Google,
                CallKind::GenerateContent,
                br#"{"error": {"code": 500, "message": "x", "status": "INTERNAL"}}"#,
            ),
            (Provider::OpenAi, CallKind::Responses, b""),
            (Provider::Google, CallKind::StreamGenerateContent, b"<html>"),
        ] {
            assert_eq!(parse_response(provider, kind, body), Usage::default());
        }
        // a body cut inside `usage` still gives the model that came before it
        let got = parse_response(
            Provider::Anthropic,
            CallKind::Messages,
            br#"{"model": "claude-opus-4-1-20250805", "usage": {"input_tokens": 1"#,
        );
        assert_eq!(got.model.as_deref(), Some("claude-opus-4-1-20250805"));
        assert_eq!(got.input_tokens, None);
    }
}
