//! The LLM parsers on arbitrary bodies: request (model, stream flag, …), response usage,
//! SSE events one at a time, the prompt and the answer (whole, or rebuilt from stream
//! documents). Nothing may panic on a body cut short or malformed; the transcript caps
//! hold (`TEXT_CAP` per prompt part, `ANSWER_CAP` per answer); and events read in one call
//! give what they give one call each (the documented contract of `StreamUsage::on_event`).
#![no_main]

use airlock_fuzz::Input;
use airlock_llm::{
    ANSWER_CAP, AnswerBuilder, CallKind, Part, StreamUsage, TEXT_CAP, parse_answer, parse_prompt,
    parse_request, parse_response,
};
use libfuzzer_sys::fuzz_target;

const KINDS: [CallKind; 8] = [
    CallKind::Messages,
    CallKind::CountTokens,
    CallKind::ChatCompletions,
    CallKind::Completions,
    CallKind::Responses,
    CallKind::Embeddings,
    CallKind::GenerateContent,
    CallKind::StreamGenerateContent,
];
/// What a cut text ends with (`…[cut]`).
const CUT_LEN: usize = "…[cut]".len();

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let flags = input.byte();
    let kind = KINDS[usize::from(flags % 8)];
    let provider = kind.provider();
    let body = input.rest();
    let path = match kind {
        CallKind::GenerateContent => "/v1beta/models/gemini-2.5-flash:generateContent",
        CallKind::StreamGenerateContent => {
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        }
        _ => "/v1/x",
    };

    let _ = parse_request(provider, kind, path, body);
    let _ = parse_response(provider, kind, body);
    if let Some(prompt) = parse_prompt(provider, kind, body) {
        for m in &prompt.messages {
            for p in &m.parts {
                assert!(
                    p.text.len() <= TEXT_CAP + CUT_LEN,
                    "{kind:?} prompt part of {}",
                    p.text.len()
                );
            }
        }
    }
    check_answer(kind, &parse_answer(provider, kind, body));

    // SSE: the body in one call, and split at its blank lines into one call per event.
    let mut whole = StreamUsage::new(provider, kind);
    whole.keep_answer();
    let info = whole.on_event(body);
    let mut each = StreamUsage::new(provider, kind);
    each.keep_answer();
    let mut text = String::new();
    let mut output = false;
    let events: Vec<&[u8]> = split_events(body);
    // A byte-order mark is stripped at the start of a call only (of a stream, by design).
    let comparable = events
        .iter()
        .skip(1)
        .all(|e| !e.starts_with(b"\xEF\xBB\xBF"));
    for event in &events {
        let i = each.on_event(event);
        if let Some(t) = i.text {
            text.push_str(&t);
        }
        output |= i.output;
    }
    if comparable {
        assert_eq!(whole.usage(), each.usage(), "{kind:?}: usage differs");
        assert_eq!(
            whole.completed(),
            each.completed(),
            "{kind:?}: completion differs"
        );
        assert_eq!(whole.error(), each.error(), "{kind:?}: error differs");
        assert_eq!(
            info.text.unwrap_or_default(),
            text,
            "{kind:?}: text differs"
        );
        assert_eq!(info.output, output, "{kind:?}: output flag differs");
        let (a, b) = (whole.take_answer().unwrap(), each.take_answer().unwrap());
        check_answer(kind, &a);
        assert_eq!(a, b, "{kind:?}: answer differs");
    }
    let _ = whole.error_event("fuzz");

    // The answer rebuilt from documents, one per line (an event name from the flags).
    let mut builder = AnswerBuilder::new(provider, kind);
    let event = [
        "message_start",
        "content_block_delta",
        "response.output_text.delta",
    ]
    .get(usize::from(flags >> 3 & 3));
    for line in body.split(|&b| b == b'\n') {
        if let Ok(doc) = serde_json::from_slice::<serde_json::Value>(line) {
            builder.on_doc(event.copied(), &doc);
        }
    }
    check_answer(kind, &builder.finish());
});

/// The body cut at each `\n\n` (the blank line that ends an event).
fn split_events(body: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(i) = rest.windows(2).position(|w| w == b"\n\n") {
        out.push(&rest[..i]);
        rest = &rest[i + 2..];
    }
    out.push(rest);
    out
}

fn check_answer(kind: CallKind, parts: &[Part]) {
    let total: usize = parts.iter().map(|p| p.text.len()).sum();
    assert!(
        total <= ANSWER_CAP + CUT_LEN,
        "{kind:?}: answer of {total} bytes"
    );
}
