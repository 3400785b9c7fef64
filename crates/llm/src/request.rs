//! What a request asks for: the model, whether it streams, and the size of the prompt
//! (messages, tools, system prompt), for the LLM record.
//!
//! Reading never fails: a body that is cut short or not JSON gives what could be read,
//! and Gemini's model comes from the URL path whatever the body holds.

use serde_json::Value;

use crate::json::{AnyString, Conversation, Count, GeminiTools, Members, TextChars};
use crate::provider::{CallKind, Provider, gemini_model_and_method};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestInfo {
    /// The body's `model`; for Google the model in the URL path (`models/{model}:…`).
    pub requested_model: Option<String>,
    /// The body's `"stream": true`; Google: a `streamGenerateContent` call.
    pub stream: bool,
    /// The number of messages (Anthropic, OpenAI chat), input items (Responses API) or
    /// contents (Gemini), when the body has them.
    pub messages: Option<u64>,
    /// The number of tools, when the body has them (Gemini: function declarations, and
    /// each other tool such as `googleSearch`).
    pub tools: Option<u64>,
    /// The size in characters of the system prompt, when there is one: Anthropic `system`
    /// (string or text blocks), OpenAI `system` and `developer` messages (and the Responses
    /// API's `instructions`), Gemini `systemInstruction`.
    pub system_chars: Option<u64>,
}

/// Reads a request body. Never fails: an unparseable or truncated body gives what could be
/// read (for Google, at least the model from the path).
pub fn parse_request(provider: Provider, kind: CallKind, path: &str, body: &[u8]) -> RequestInfo {
    match provider {
        Provider::Anthropic => anthropic(body),
        Provider::OpenAi => openai(kind, body),
        Provider::Google => google(kind, path, body),
    }
}

fn anthropic(body: &[u8]) -> RequestInfo {
    let mut info = RequestInfo::default();
    let mut members = Members::new(body);
    while let Some(key) = members.next_key() {
        match key.as_str() {
            "model" => info.requested_model = read_string(&mut members),
            "stream" => info.stream = read_bool(&mut members),
            "messages" => info.messages = members.value::<Count>().and_then(|c| c.0),
            "tools" => info.tools = members.value::<Count>().and_then(|c| c.0),
            "system" => info.system_chars = members.value::<TextChars>().and_then(|c| c.0),
            _ => members.skip(),
        }
    }
    info
}

fn openai(kind: CallKind, body: &[u8]) -> RequestInfo {
    let mut info = RequestInfo::default();
    let mut functions = None;
    let mut conversation_system = None;
    let mut instructions = None;
    let mut members = Members::new(body);
    while let Some(key) = members.next_key() {
        match (key.as_str(), kind) {
            ("model", _) => info.requested_model = read_string(&mut members),
            ("stream", _) => info.stream = read_bool(&mut members),
            ("messages", CallKind::ChatCompletions) | ("input", CallKind::Responses) => {
                if let Some(c) = members.value::<Conversation>() {
                    info.messages = c.items;
                    conversation_system = c.system_chars;
                }
            }
            ("instructions", CallKind::Responses) => {
                instructions = members.value::<TextChars>().and_then(|c| c.0);
            }
            ("tools", _) => info.tools = members.value::<Count>().and_then(|c| c.0),
            // the deprecated form of `tools` in chat completions
            ("functions", _) => functions = members.value::<Count>().and_then(|c| c.0),
            _ => members.skip(),
        }
    }
    info.tools = info.tools.or(functions);
    info.system_chars = match (instructions, conversation_system) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    };
    info
}

fn google(kind: CallKind, path: &str, body: &[u8]) -> RequestInfo {
    let mut info = RequestInfo {
        requested_model: gemini_model_and_method(path).map(|(model, _)| model),
        stream: kind == CallKind::StreamGenerateContent,
        ..RequestInfo::default()
    };
    let mut members = Members::new(body);
    while let Some(key) = members.next_key() {
        match key.as_str() {
            "contents" => info.messages = members.value::<Count>().and_then(|c| c.0),
            "tools" => info.tools = members.value::<GeminiTools>().and_then(|c| c.0),
            // the REST API takes the proto field names too
            "systemInstruction" | "system_instruction" => {
                info.system_chars = members.value::<TextChars>().and_then(|c| c.0);
            }
            _ => members.skip(),
        }
    }
    info
}

fn read_string(members: &mut Members) -> Option<String> {
    members
        .value::<AnyString>()
        .and_then(|s| s.0)
        .filter(|s| !s.is_empty())
}

fn read_bool(members: &mut Members) -> bool {
    members
        .value::<Value>()
        .is_some_and(|v| v.as_bool() == Some(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_request() {
        let body = br#"{"model":"claude-sonnet-4-5","max_tokens":1024,"stream":true,
            "system":[{"type":"text","text":"You are Claude Code.","cache_control":{"type":"ephemeral"}},
                      {"type":"text","text":"Be brief."}],
            "messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"},
                        {"role":"user","content":[{"type":"text","text":"go"}]}],
            "tools":[{"name":"Bash","input_schema":{}},{"name":"Read","input_schema":{}}]}"#;
        let info = parse_request(
            Provider::Anthropic,
            CallKind::Messages,
            "/v1/messages",
            body,
        );
        assert_eq!(
            info,
            RequestInfo {
                requested_model: Some("claude-sonnet-4-5".into()),
                stream: true,
                messages: Some(3),
                tools: Some(2),
                system_chars: Some(29),
            }
        );
        let info = parse_request(
            Provider::Anthropic,
            CallKind::Messages,
            "/v1/messages",
            br#"{"model":"claude-haiku-4-5","system":"abc","messages":[]}"#,
        );
        assert_eq!(info.system_chars, Some(3));
        assert_eq!(info.messages, Some(0));
        assert!(!info.stream);
        assert_eq!(info.tools, None);
    }

    #[test]
    fn a_cut_body_gives_what_arrived_whole() {
        let body = br#"{"model":"claude-opus-4-1","stream":true,"messages":[{"role":"user","content":"a long prompt"#;
        let info = parse_request(
            Provider::Anthropic,
            CallKind::Messages,
            "/v1/messages",
            body,
        );
        assert_eq!(info.requested_model.as_deref(), Some("claude-opus-4-1"));
        assert!(info.stream);
        assert_eq!(info.messages, None, "an incomplete array is not counted");
        for junk in [
            &b""[..],
            b"\x1f\x8b\x08\x00",
            b"null",
            b"[1,2]",
            b"{\"model\":",
        ] {
            assert_eq!(
                parse_request(
                    Provider::OpenAi,
                    CallKind::ChatCompletions,
                    "/v1/chat/completions",
                    junk
                ),
                RequestInfo::default()
            );
        }
    }

    #[test]
    fn wrong_types_are_not_counted() {
        let body = br#"{"model":7,"stream":"yes","messages":{"a":1},"tools":"x","system":5,"max_tokens":1}"#;
        let info = parse_request(
            Provider::Anthropic,
            CallKind::Messages,
            "/v1/messages",
            body,
        );
        assert_eq!(info, RequestInfo::default());
    }

    #[test]
    fn openai_chat_request_with_system_messages() {
        let body = br#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},
            "messages":[{"role":"system","content":"You are terse."},
                        {"role":"developer","content":[{"type":"text","text":"No emojis."}]},
                        {"role":"user","content":"hi [llmtag-0123456789abcdef]"}],
            "tools":[{"type":"function","function":{"name":"f","parameters":{}}}]}"#;
        let info = parse_request(
            Provider::OpenAi,
            CallKind::ChatCompletions,
            "/v1/chat/completions",
            body,
        );
        assert_eq!(
            info,
            RequestInfo {
                requested_model: Some("gpt-4o".into()),
                stream: true,
                messages: Some(3),
                tools: Some(1),
                system_chars: Some(24),
            }
        );
        let info = parse_request(
            Provider::OpenAi,
            CallKind::ChatCompletions,
            "/v1/chat/completions",
            br#"{"messages":[{"role":"user","content":"x"}],"model":"gpt-4.1-mini","functions":[{},{}]}"#,
        );
        assert_eq!(info.system_chars, None);
        assert_eq!(info.tools, Some(2));
        assert_eq!(info.requested_model.as_deref(), Some("gpt-4.1-mini"));
    }

    #[test]
    fn openai_responses_and_embeddings_requests() {
        let body = br#"{"model":"gpt-5","instructions":"Be kind.","stream":true,
            "input":[{"role":"developer","content":[{"type":"input_text","text":"abc"}]},
                     {"role":"user","content":[{"type":"input_text","text":"hi"}]},
                     {"type":"function_call_output","call_id":"c","output":"ok"}],
            "tools":[{"type":"function","name":"f"},{"type":"web_search"}]}"#;
        let info = parse_request(Provider::OpenAi, CallKind::Responses, "/v1/responses", body);
        assert_eq!(
            info,
            RequestInfo {
                requested_model: Some("gpt-5".into()),
                stream: true,
                messages: Some(3),
                tools: Some(2),
                system_chars: Some(11),
            }
        );
        let info = parse_request(
            Provider::OpenAi,
            CallKind::Responses,
            "/v1/responses",
            br#"{"model":"gpt-4.1","input":"Say hello."}"#,
        );
        assert_eq!(info.messages, Some(1));
        assert_eq!(info.system_chars, None);
        let info = parse_request(
            Provider::OpenAi,
            CallKind::Embeddings,
            "/v1/embeddings",
            br#"{"model":"text-embedding-3-small","input":["a","b"],"encoding_format":"base64"}"#,
        );
        assert_eq!(
            info,
            RequestInfo {
                requested_model: Some("text-embedding-3-small".into()),
                ..RequestInfo::default()
            }
        );
    }

    #[test]
    fn gemini_request_takes_the_model_from_the_path() {
        let path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse";
        let body = br#"{"contents":[{"role":"user","parts":[{"text":"hi"}]},{"role":"model","parts":[{"text":"yo"}]},
            {"role":"user","parts":[{"text":"go"}]}],
            "systemInstruction":{"parts":[{"text":"You are a cat."}]},
            "tools":[{"functionDeclarations":[{"name":"a"},{"name":"b"}]},{"googleSearch":{}}],
            "generationConfig":{"temperature":0.1}}"#;
        let info = parse_request(
            Provider::Google,
            CallKind::StreamGenerateContent,
            path,
            body,
        );
        assert_eq!(
            info,
            RequestInfo {
                requested_model: Some("gemini-2.5-flash".into()),
                stream: true,
                messages: Some(3),
                tools: Some(3),
                system_chars: Some(14),
            }
        );
        let info = parse_request(
            Provider::Google,
            CallKind::GenerateContent,
            "/v1beta/models/gemini-2.5-pro:generateContent",
            b"{\"contents\": [",
        );
        assert_eq!(
            info,
            RequestInfo {
                requested_model: Some("gemini-2.5-pro".into()),
                ..RequestInfo::default()
            }
        );
        let info = parse_request(
            Provider::Google,
            CallKind::GenerateContent,
            "/v1beta/models/gemini-2.0-flash:generateContent",
            br#"{"system_instruction":{"parts":{"text":"abcd"}},"contents":[]}"#,
        );
        assert_eq!(info.system_chars, Some(4));
        assert_eq!(info.messages, Some(0));
    }
}
