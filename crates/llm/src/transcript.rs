//! What was said in one LLM call, in one shape for every provider: the request's system
//! prompt, messages and tool names ([`parse_prompt`]), and the assistant's answer, from a
//! JSON body ([`parse_answer`]) or reassembled from SSE events ([`AnswerBuilder`]).
//!
//! Nothing here masks: the caller masks every text before it is stored. Text is capped
//! ([`TEXT_CAP`] per part, [`ANSWER_CAP`] per answer) so that one huge tool result or a
//! runaway stream cannot make a record of any size; a cut part ends with `…[cut]`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::provider::{CallKind, Provider};

/// Characters kept of one part (a message's text, a tool call's input, a tool result).
pub const TEXT_CAP: usize = 16 * 1024;
/// Characters kept of a whole answer.
pub const ANSWER_CAP: usize = 64 * 1024;
const CUT: &str = "…[cut]";

/// One piece of a message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// `text`, `thinking`, `tool_call`, `tool_result`, `image`, `refusal`, or the
    /// provider's own type for anything else.
    pub kind: String,
    /// The tool's name (`tool_call`, `tool_result` when the provider names it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The text; a tool call's input as JSON text.
    #[serde(default)]
    pub text: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `user`, `assistant` (Gemini's `model` too), `tool`, `system`, `developer`.
    pub role: String,
    pub parts: Vec<Part>,
}

/// What the request asked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    pub messages: Vec<Message>,
    /// The names of the tools offered (a built-in tool by its type: `web_search`).
    #[serde(default)]
    pub tools: Vec<String>,
}

/// Reads a request body's conversation; `None` when it is not a whole JSON object (a body
/// larger than what was kept, or not JSON) or the call kind has none (embeddings).
pub fn parse_prompt(provider: Provider, kind: CallKind, body: &[u8]) -> Option<Prompt> {
    if matches!(kind, CallKind::Embeddings | CallKind::CountTokens) {
        return None;
    }
    let doc: Value = serde_json::from_slice(body).ok()?;
    let doc = doc.as_object()?;
    let mut prompt = Prompt::default();
    match provider {
        Provider::Anthropic => {
            prompt.system = doc.get("system").map(joined_text).filter(|s| !s.is_empty());
            for m in array(doc.get("messages")) {
                prompt.messages.push(Message {
                    role: role(m),
                    parts: anthropic_parts(m.get("content")),
                });
            }
            prompt.tools = tool_names(doc.get("tools"), &["/name", "/type"]);
        }
        Provider::OpenAi => {
            let mut system = Vec::new();
            if let Some(i) = doc.get("instructions").map(joined_text) {
                system.push(i);
            }
            let items = if kind == CallKind::Responses {
                match doc.get("input") {
                    Some(Value::String(s)) => {
                        prompt.messages.push(text_message("user", s));
                        &[][..]
                    }
                    other => array(other),
                }
            } else {
                array(doc.get("messages"))
            };
            for m in items {
                let message = openai_message(m);
                if matches!(message.role.as_str(), "system" | "developer") {
                    system.push(joined(&message.parts));
                }
                prompt.messages.push(message);
            }
            system.retain(|s| !s.is_empty());
            prompt.system = (!system.is_empty()).then(|| cap(system.join("\n\n")));
            let mut tools = tool_names(doc.get("tools"), &["/function/name", "/name", "/type"]);
            tools.extend(tool_names(doc.get("functions"), &["/name"]));
            prompt.tools = tools;
        }
        Provider::Google => {
            prompt.system = doc
                .get("systemInstruction")
                .or_else(|| doc.get("system_instruction"))
                .map(|s| joined(&gemini_parts(s.get("parts"))))
                .filter(|s| !s.is_empty());
            for m in array(doc.get("contents")) {
                prompt.messages.push(Message {
                    role: match m.get("role").and_then(Value::as_str) {
                        Some("model") => "assistant".into(),
                        Some(r) => r.into(),
                        None => "user".into(),
                    },
                    parts: gemini_parts(m.get("parts")),
                });
            }
            for tool in array(doc.get("tools")) {
                let declared = tool
                    .get("functionDeclarations")
                    .or_else(|| tool.get("function_declarations"));
                match declared {
                    Some(d) => prompt.tools.extend(tool_names(Some(d), &["/name"])),
                    None => prompt
                        .tools
                        .extend(tool.as_object().into_iter().flat_map(|o| o.keys().cloned())),
                }
            }
        }
    }
    Some(prompt)
}

/// The answer of a JSON (non-streaming) response body, and of Gemini's
/// `streamGenerateContent` without `alt=sse` (a JSON array of chunks).
pub fn parse_answer(provider: Provider, kind: CallKind, body: &[u8]) -> Vec<Part> {
    let mut builder = AnswerBuilder::new(provider, kind);
    let Ok(doc) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    match (provider, &doc) {
        (Provider::Google, Value::Array(chunks)) => {
            for chunk in chunks {
                builder.on_doc(None, chunk);
            }
        }
        (Provider::Anthropic, _) => {
            for block in array(doc.get("content")) {
                builder.add(anthropic_part(block));
            }
        }
        (Provider::OpenAi, _) if kind == CallKind::Responses => builder.responses_output(&doc),
        (Provider::OpenAi, _) => {
            for choice in array(doc.get("choices")).iter().take(1) {
                if let Some(t) = choice.get("text").and_then(Value::as_str) {
                    builder.add(text_part("text", t));
                }
                if let Some(m) = choice.get("message") {
                    builder.parts.extend(openai_message(m).parts);
                }
            }
        }
        (Provider::Google, _) => builder.on_doc(None, &doc),
    }
    builder.finish()
}

/// Reassembles an answer from a stream's events, as they pass.
#[derive(Debug, Clone)]
pub struct AnswerBuilder {
    provider: Provider,
    kind: CallKind,
    parts: Vec<Part>,
    /// The provider's index of a content block / tool call / output item → its part.
    slots: Vec<(u64, usize)>,
    chars: usize,
    cut: bool,
}

impl AnswerBuilder {
    pub fn new(provider: Provider, kind: CallKind) -> Self {
        AnswerBuilder {
            provider,
            kind,
            parts: Vec::new(),
            slots: Vec::new(),
            chars: 0,
            cut: false,
        }
    }

    /// Reads one SSE event's JSON document (`event` is its `event:` name, if any).
    pub fn on_doc(&mut self, event: Option<&str>, doc: &Value) {
        match (self.provider, self.kind) {
            (Provider::Anthropic, _) => self.anthropic(event, doc),
            (Provider::OpenAi, CallKind::Responses) => self.responses(event, doc),
            (Provider::OpenAi, _) => self.openai_chat(doc),
            (Provider::Google, _) => {
                for candidate in array(doc.get("candidates")).iter().take(1) {
                    for part in gemini_parts(candidate.pointer("/content/parts")) {
                        match self.parts.last_mut() {
                            Some(last) if last.kind == "text" && part.kind == "text" => {
                                let text = part.text;
                                self.append_to_last(&text);
                            }
                            _ => self.add(part),
                        }
                    }
                }
            }
        }
    }

    /// The answer so far (whole once the stream ended); empty parts are left out.
    pub fn finish(mut self) -> Vec<Part> {
        self.parts
            .retain(|p| !p.text.is_empty() || p.name.is_some() || p.kind != "text");
        if self.cut
            && let Some(last) = self.parts.last_mut()
        {
            last.text.push_str(CUT);
        }
        self.parts
    }

    fn anthropic(&mut self, event: Option<&str>, doc: &Value) {
        let kind = doc
            .get("type")
            .and_then(Value::as_str)
            .or(event)
            .unwrap_or("");
        let index = doc.get("index").and_then(Value::as_u64).unwrap_or(0);
        match kind {
            "content_block_start" => {
                let block = doc.get("content_block").unwrap_or(&Value::Null);
                let mut part = anthropic_part(block);
                // A streamed tool_use starts with `input: {}`; its JSON arrives in deltas.
                if part.kind == "tool_call" && part.text == "{}" {
                    part.text.clear();
                }
                self.slot_add(index, part);
            }
            "content_block_delta" => {
                let delta = doc.get("delta").unwrap_or(&Value::Null);
                let text = ["text", "partial_json", "thinking"]
                    .iter()
                    .find_map(|k| delta.get(*k).and_then(Value::as_str));
                if let Some(t) = text {
                    self.slot_append(index, t, "text");
                }
            }
            _ => {}
        }
    }

    fn openai_chat(&mut self, doc: &Value) {
        for choice in array(doc.get("choices")).iter().take(1) {
            if let Some(t) = choice.get("text").and_then(Value::as_str) {
                self.slot_append(u64::MAX, t, "text");
            }
            let Some(delta) = choice.get("delta") else {
                continue;
            };
            for key in ["content", "refusal"] {
                if let Some(t) = delta.get(key).and_then(Value::as_str) {
                    let kind = if key == "content" { "text" } else { "refusal" };
                    self.slot_append(u64::MAX - 1 - u64::from(key != "content"), t, kind);
                }
            }
            for call in array(delta.get("tool_calls")) {
                let index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
                if let Some(name) = call.pointer("/function/name").and_then(Value::as_str) {
                    self.slot_add(
                        index,
                        Part {
                            kind: "tool_call".into(),
                            name: Some(name.into()),
                            text: String::new(),
                        },
                    );
                }
                if let Some(args) = call.pointer("/function/arguments").and_then(Value::as_str) {
                    self.slot_append(index, args, "tool_call");
                }
            }
        }
    }

    fn responses(&mut self, event: Option<&str>, doc: &Value) {
        let kind = doc
            .get("type")
            .and_then(Value::as_str)
            .or(event)
            .unwrap_or("");
        let index = doc.get("output_index").and_then(Value::as_u64).unwrap_or(0);
        match kind {
            "response.output_item.added" => {
                let item = doc.get("item").unwrap_or(&Value::Null);
                if let Some(part) = responses_item(item).into_iter().next() {
                    self.slot_add(index, part);
                }
            }
            "response.output_text.delta"
            | "response.refusal.delta"
            | "response.function_call_arguments.delta"
            | "response.custom_tool_call_input.delta"
            | "response.reasoning_text.delta"
            | "response.reasoning_summary_text.delta" => {
                if let Some(t) = doc.get("delta").and_then(Value::as_str) {
                    self.slot_append(index, t, "text");
                }
            }
            "response.completed" | "response.incomplete" => {
                // The whole output, as the JSON answer has it: better than the deltas.
                let response = doc.get("response").unwrap_or(&Value::Null);
                if !array(response.get("output")).is_empty() {
                    let mut whole = AnswerBuilder::new(self.provider, self.kind);
                    whole.responses_output(response);
                    *self = whole;
                }
            }
            _ => {}
        }
    }

    fn responses_output(&mut self, response: &Value) {
        for item in array(response.get("output")) {
            for part in responses_item(item) {
                self.add(part);
            }
        }
    }

    fn add(&mut self, mut part: Part) {
        let room = ANSWER_CAP.saturating_sub(self.chars);
        if room == 0 {
            self.cut = true;
            return;
        }
        if part.text.len() > room {
            part.text = cut_at(&part.text, room).to_string();
            self.cut = true;
        }
        self.chars += part.text.len();
        self.parts.push(part);
    }

    fn slot_add(&mut self, index: u64, part: Part) {
        self.add(part);
        if !self.cut || self.slots.iter().all(|(i, _)| *i != index) {
            let at = self.parts.len().saturating_sub(1);
            self.slots.retain(|(i, _)| *i != index);
            self.slots.push((index, at));
        }
    }

    fn slot_append(&mut self, index: u64, text: &str, kind: &str) {
        match self.slots.iter().find(|(i, _)| *i == index) {
            Some(&(_, at)) if at < self.parts.len() => self.append_at(at, text),
            _ => self.slot_add(index, text_part(kind, text)),
        }
    }

    fn append_to_last(&mut self, text: &str) {
        if let Some(at) = self.parts.len().checked_sub(1) {
            self.append_at(at, text);
        }
    }

    fn append_at(&mut self, at: usize, text: &str) {
        let room = ANSWER_CAP.saturating_sub(self.chars);
        let take = cut_at(text, room);
        if take.len() < text.len() {
            self.cut = true;
        }
        self.chars += take.len();
        self.parts[at].text.push_str(take);
    }
}

fn array(value: Option<&Value>) -> &[Value] {
    value
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn role(m: &Value) -> String {
    m.get("role")
        .and_then(Value::as_str)
        .unwrap_or("user")
        .to_string()
}

fn text_part(kind: &str, text: &str) -> Part {
    Part {
        kind: kind.into(),
        name: None,
        text: cap(text.to_string()),
    }
}

fn text_message(role: &str, text: &str) -> Message {
    Message {
        role: role.into(),
        parts: vec![text_part("text", text)],
    }
}

/// A string, or the text of an array of text blocks / parts, joined.
fn joined_text(value: &Value) -> String {
    match value {
        Value::String(s) => cap(s.clone()),
        Value::Array(items) => cap(items
            .iter()
            .filter_map(|b| match b {
                Value::String(s) => Some(s.as_str()),
                _ => b.get("text").and_then(Value::as_str),
            })
            .collect::<Vec<_>>()
            .join("\n")),
        _ => String::new(),
    }
}

fn joined(parts: &[Part]) -> String {
    parts
        .iter()
        .filter(|p| p.kind == "text")
        .map(|p| p.text.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

fn json_text(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => cap(s.clone()),
        Some(v) => cap(v.to_string()),
    }
}

fn anthropic_parts(content: Option<&Value>) -> Vec<Part> {
    match content {
        Some(Value::String(s)) => vec![text_part("text", s)],
        Some(Value::Array(blocks)) => blocks.iter().map(anthropic_part).collect(),
        _ => Vec::new(),
    }
}

fn anthropic_part(block: &Value) -> Part {
    let kind = block.get("type").and_then(Value::as_str).unwrap_or("");
    let name = block
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_string);
    match kind {
        "text" => text_part(
            "text",
            block.get("text").and_then(Value::as_str).unwrap_or(""),
        ),
        "thinking" => text_part(
            "thinking",
            block.get("thinking").and_then(Value::as_str).unwrap_or(""),
        ),
        k if k.ends_with("tool_use") => Part {
            kind: "tool_call".into(),
            name,
            text: json_text(block.get("input")),
        },
        k if k.ends_with("tool_result") => Part {
            kind: "tool_result".into(),
            name,
            text: match block.get("content") {
                Some(c @ Value::Array(_)) => joined_text(c),
                other => json_text(other),
            },
        },
        "image" | "document" => Part {
            kind: kind.into(),
            name: None,
            text: String::new(),
        },
        other => Part {
            kind: other.to_string(),
            name,
            text: String::new(),
        },
    }
}

fn openai_message(m: &Value) -> Message {
    let mut parts = Vec::new();
    // Responses API items that are not messages
    match m.get("type").and_then(Value::as_str) {
        Some("message") | None => {}
        Some(_) => {
            return Message {
                role: match m.get("type").and_then(Value::as_str) {
                    Some(t) if t.ends_with("_output") => "tool".into(),
                    _ => "assistant".into(),
                },
                parts: responses_item(m),
            };
        }
    }
    match m.get("content") {
        Some(Value::String(s)) => parts.push(text_part("text", s)),
        Some(Value::Array(items)) => {
            for item in items {
                let kind = item.get("type").and_then(Value::as_str).unwrap_or("text");
                if let Some(t) = item.get("text").and_then(Value::as_str) {
                    parts.push(text_part("text", t));
                } else if kind.contains("image") || kind.contains("file") || kind.contains("audio")
                {
                    parts.push(Part {
                        kind: "image".into(),
                        name: None,
                        text: String::new(),
                    });
                } else if let Some(t) = item.get("refusal").and_then(Value::as_str) {
                    parts.push(text_part("refusal", t));
                }
            }
        }
        _ => {}
    }
    if let Some(t) = m.get("refusal").and_then(Value::as_str) {
        parts.push(text_part("refusal", t));
    }
    for call in array(m.get("tool_calls")) {
        parts.push(Part {
            kind: "tool_call".into(),
            name: call
                .pointer("/function/name")
                .and_then(Value::as_str)
                .map(str::to_string),
            text: json_text(call.pointer("/function/arguments")),
        });
    }
    if let Some(call) = m.get("function_call") {
        parts.push(Part {
            kind: "tool_call".into(),
            name: call.get("name").and_then(Value::as_str).map(str::to_string),
            text: json_text(call.get("arguments")),
        });
    }
    let role = role(m);
    if role == "tool" || role == "function" {
        parts = vec![Part {
            kind: "tool_result".into(),
            name: m.get("name").and_then(Value::as_str).map(str::to_string),
            text: joined(&parts),
        }];
    }
    Message { role, parts }
}

/// A Responses API output or input item as parts.
fn responses_item(item: &Value) -> Vec<Part> {
    let name = item.get("name").and_then(Value::as_str).map(str::to_string);
    match item.get("type").and_then(Value::as_str).unwrap_or("") {
        "message" => openai_message(&without_type(item)).parts,
        "function_call" | "custom_tool_call" => vec![Part {
            kind: "tool_call".into(),
            name,
            text: json_text(item.get("arguments").or_else(|| item.get("input"))),
        }],
        t if t.ends_with("_output") => vec![Part {
            kind: "tool_result".into(),
            name,
            text: json_text(item.get("output")),
        }],
        "reasoning" => {
            let text = array(item.get("summary"))
                .iter()
                .filter_map(|s| s.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n");
            vec![text_part("thinking", &text)]
        }
        other => vec![Part {
            kind: other.to_string(),
            name,
            text: String::new(),
        }],
    }
}

fn without_type(item: &Value) -> Value {
    let mut copy = item.clone();
    if let Some(o) = copy.as_object_mut() {
        o.remove("type");
    }
    copy
}

fn gemini_parts(parts: Option<&Value>) -> Vec<Part> {
    let list: Vec<&Value> = match parts {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(p @ Value::Object(_)) => vec![p],
        _ => Vec::new(),
    };
    list.into_iter()
        .map(|p| {
            if let Some(t) = p.get("text").and_then(Value::as_str) {
                let thought = p.get("thought").and_then(Value::as_bool) == Some(true);
                text_part(if thought { "thinking" } else { "text" }, t)
            } else if let Some(call) = p.get("functionCall") {
                Part {
                    kind: "tool_call".into(),
                    name: call.get("name").and_then(Value::as_str).map(str::to_string),
                    text: json_text(call.get("args")),
                }
            } else if let Some(r) = p.get("functionResponse") {
                Part {
                    kind: "tool_result".into(),
                    name: r.get("name").and_then(Value::as_str).map(str::to_string),
                    text: json_text(r.get("response")),
                }
            } else if let Some(code) = p.pointer("/executableCode/code") {
                Part {
                    kind: "tool_call".into(),
                    name: Some("code_execution".into()),
                    text: json_text(Some(code)),
                }
            } else if p.get("inlineData").is_some() || p.get("fileData").is_some() {
                Part {
                    kind: "image".into(),
                    name: None,
                    text: String::new(),
                }
            } else {
                Part {
                    kind: p
                        .as_object()
                        .and_then(|o| o.keys().next().cloned())
                        .unwrap_or_default(),
                    name: None,
                    text: String::new(),
                }
            }
        })
        .collect()
}

fn tool_names(tools: Option<&Value>, pointers: &[&str]) -> Vec<String> {
    array(tools)
        .iter()
        .filter_map(|t| {
            pointers
                .iter()
                .find_map(|p| t.pointer(p).and_then(Value::as_str))
                .map(str::to_string)
        })
        .collect()
}

fn cap(mut s: String) -> String {
    if s.len() > TEXT_CAP {
        let keep = cut_at(&s, TEXT_CAP).len();
        s.truncate(keep);
        s.push_str(CUT);
    }
    s
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn cut_at(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(parts: &[Part]) -> Vec<(String, Option<String>, String)> {
        parts
            .iter()
            .map(|p| (p.kind.clone(), p.name.clone(), p.text.clone()))
            .collect()
    }

    #[test]
    fn anthropic_prompt_with_tools_and_results() {
        let body = br#"{"model":"claude-sonnet-4-5","system":[{"type":"text","text":"You are Claude Code."}],
            "messages":[{"role":"user","content":"list files"},
              {"role":"assistant","content":[{"type":"text","text":"Sure."},{"type":"tool_use","id":"t1","name":"Bash","input":{"command":"ls"}}]},
              {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"a.txt"}]}]}],
            "tools":[{"name":"Bash","input_schema":{}},{"type":"web_search_20250305","name":"web_search"}]}"#;
        let p = parse_prompt(Provider::Anthropic, CallKind::Messages, body).unwrap();
        assert_eq!(p.system.as_deref(), Some("You are Claude Code."));
        assert_eq!(p.tools, vec!["Bash", "web_search"]);
        assert_eq!(p.messages.len(), 3);
        assert_eq!(
            texts(&p.messages[1].parts),
            vec![
                ("text".into(), None, "Sure.".into()),
                (
                    "tool_call".into(),
                    Some("Bash".into()),
                    r#"{"command":"ls"}"#.into()
                )
            ]
        );
        assert_eq!(p.messages[2].parts[0].kind, "tool_result");
        assert_eq!(p.messages[2].parts[0].text, "a.txt");
    }

    #[test]
    fn openai_chat_and_responses_prompts() {
        let body = br#"{"model":"gpt-4o","messages":[{"role":"system","content":"Be terse."},
            {"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:"}}]},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"get","arguments":"{\"q\":1}"}}]},
            {"role":"tool","tool_call_id":"c","content":"42"}],
            "tools":[{"type":"function","function":{"name":"get"}}]}"#;
        let p = parse_prompt(Provider::OpenAi, CallKind::ChatCompletions, body).unwrap();
        assert_eq!(p.system.as_deref(), Some("Be terse."));
        assert_eq!(p.tools, vec!["get"]);
        assert_eq!(p.messages[1].parts.len(), 2);
        assert_eq!(p.messages[1].parts[1].kind, "image");
        assert_eq!(p.messages[2].parts[0].name.as_deref(), Some("get"));
        assert_eq!(p.messages[3].parts[0].kind, "tool_result");
        assert_eq!(p.messages[3].parts[0].text, "42");

        let body = br#"{"model":"gpt-5","instructions":"Be kind.","input":[
            {"role":"user","content":[{"type":"input_text","text":"weather?"}]},
            {"type":"function_call","call_id":"c","name":"weather","arguments":"{}"},
            {"type":"function_call_output","call_id":"c","output":"sunny"}],
            "tools":[{"type":"function","name":"weather"},{"type":"web_search"}]}"#;
        let p = parse_prompt(Provider::OpenAi, CallKind::Responses, body).unwrap();
        assert_eq!(p.system.as_deref(), Some("Be kind."));
        assert_eq!(p.tools, vec!["weather", "web_search"]);
        assert_eq!(p.messages[0].parts[0].text, "weather?");
        assert_eq!(p.messages[1].role, "assistant");
        assert_eq!(p.messages[1].parts[0].kind, "tool_call");
        assert_eq!(p.messages[2].role, "tool");
        assert_eq!(p.messages[2].parts[0].text, "sunny");
        let p = parse_prompt(
            Provider::OpenAi,
            CallKind::Responses,
            br#"{"model":"gpt-5","input":"Say hi"}"#,
        )
        .unwrap();
        assert_eq!(p.messages[0].parts[0].text, "Say hi");
    }

    #[test]
    fn gemini_prompt() {
        let body = br#"{"contents":[{"role":"user","parts":[{"text":"hi"}]},
            {"role":"model","parts":[{"functionCall":{"name":"f","args":{"a":1}}}]},
            {"role":"user","parts":[{"functionResponse":{"name":"f","response":{"r":2}}}]}],
            "systemInstruction":{"parts":[{"text":"You are a cat."}]},
            "tools":[{"functionDeclarations":[{"name":"f"}]},{"googleSearch":{}}]}"#;
        let p = parse_prompt(Provider::Google, CallKind::GenerateContent, body).unwrap();
        assert_eq!(p.system.as_deref(), Some("You are a cat."));
        assert_eq!(p.tools, vec!["f", "googleSearch"]);
        assert_eq!(p.messages[1].role, "assistant");
        assert_eq!(p.messages[1].parts[0].text, r#"{"a":1}"#);
        assert_eq!(p.messages[2].parts[0].kind, "tool_result");
    }

    #[test]
    fn no_prompt_from_cut_or_foreign_bodies() {
        for body in [
            &br#"{"messages":[{"role":"user","content":"a"#[..],
            b"",
            b"[1]",
        ] {
            assert_eq!(
                parse_prompt(Provider::Anthropic, CallKind::Messages, body),
                None
            );
        }
        assert_eq!(
            parse_prompt(
                Provider::OpenAi,
                CallKind::Embeddings,
                br#"{"input":"x","model":"e"}"#
            ),
            None
        );
    }

    #[test]
    fn json_answers_of_each_provider() {
        let a = parse_answer(
            Provider::Anthropic,
            CallKind::Messages,
            br#"{"content":[{"type":"text","text":"Hello"},{"type":"tool_use","name":"Read","input":{"path":"x"}}]}"#,
        );
        assert_eq!(a.len(), 2);
        assert_eq!(a[1].name.as_deref(), Some("Read"));
        let a = parse_answer(
            Provider::OpenAi,
            CallKind::ChatCompletions,
            br#"{"choices":[{"message":{"role":"assistant","content":"Hi there"}}]}"#,
        );
        assert_eq!(texts(&a), vec![("text".into(), None, "Hi there".into())]);
        let a = parse_answer(
            Provider::OpenAi,
            CallKind::Responses,
            br#"{"output":[{"type":"message","role":"assistant","content":[{"type":"output_text","text":"Yo"}]}]}"#,
        );
        assert_eq!(texts(&a), vec![("text".into(), None, "Yo".into())]);
        let a = parse_answer(
            Provider::Google,
            CallKind::StreamGenerateContent,
            br#"[{"candidates":[{"content":{"parts":[{"text":"Hel"}]}}]},{"candidates":[{"content":{"parts":[{"text":"lo"}]}}]}]"#,
        );
        assert_eq!(texts(&a), vec![("text".into(), None, "Hello".into())]);
    }

    fn feed(b: &mut AnswerBuilder, events: &[&str]) {
        for e in events {
            b.on_doc(None, &serde_json::from_str(e).unwrap());
        }
    }

    #[test]
    fn streams_are_reassembled() {
        let mut b = AnswerBuilder::new(Provider::Anthropic, CallKind::Messages);
        feed(
            &mut b,
            &[
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Let me "}}"#,
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"look."}}"#,
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","name":"Bash","input":{}}}"#,
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"command\":"}}"#,
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"ls\"}"}}"#,
            ],
        );
        assert_eq!(
            texts(&b.finish()),
            vec![
                ("text".into(), None, "Let me look.".into()),
                (
                    "tool_call".into(),
                    Some("Bash".into()),
                    r#"{"command":"ls"}"#.into()
                )
            ]
        );

        let mut b = AnswerBuilder::new(Provider::OpenAi, CallKind::ChatCompletions);
        feed(
            &mut b,
            &[
                r#"{"choices":[{"delta":{"role":"assistant","content":"Hel"}}]}"#,
                r#"{"choices":[{"delta":{"content":"lo"}}]}"#,
                r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":"{\"a\""}}]}}]}"#,
                r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]}}]}"#,
                r#"{"choices":[],"usage":{"prompt_tokens":1}}"#,
            ],
        );
        assert_eq!(
            texts(&b.finish()),
            vec![
                ("text".into(), None, "Hello".into()),
                ("tool_call".into(), Some("f".into()), r#"{"a":1}"#.into())
            ]
        );

        let mut b = AnswerBuilder::new(Provider::OpenAi, CallKind::Responses);
        feed(
            &mut b,
            &[
                r#"{"type":"response.output_item.added","output_index":0,"item":{"type":"message","content":[]}}"#,
                r#"{"type":"response.output_text.delta","output_index":0,"delta":"Hi "}"#,
                r#"{"type":"response.output_text.delta","output_index":0,"delta":"you"}"#,
            ],
        );
        assert_eq!(
            texts(&b.clone().finish()),
            vec![("text".into(), None, "Hi you".into())]
        );
        feed(
            &mut b,
            &[
                r#"{"type":"response.completed","response":{"output":[{"type":"message","content":[{"type":"output_text","text":"Hi you!"}]}]}}"#,
            ],
        );
        assert_eq!(
            texts(&b.finish()),
            vec![("text".into(), None, "Hi you!".into())]
        );
    }

    #[test]
    fn answers_are_capped() {
        let mut b = AnswerBuilder::new(Provider::OpenAi, CallKind::ChatCompletions);
        let chunk = "x".repeat(1000);
        for _ in 0..200 {
            let doc = serde_json::json!({"choices":[{"delta":{"content": chunk}}]});
            b.on_doc(None, &doc);
        }
        let parts = b.finish();
        assert!(parts[0].text.len() <= ANSWER_CAP + CUT.len());
        assert!(parts[0].text.ends_with(CUT));
        let long = "é".repeat(TEXT_CAP);
        assert!(cap(long).ends_with(CUT));
    }
}
