//! LLM calls: accounting and conversation reading around one exchange, for gateway traffic
//! and for intercepted traffic to the providers' own hosts alike.
//!
//! [`LlmCall`] is created in the request phase when the request is an LLM call; a tap on
//! the request body keeps its JSON (model, stream flag), and [`AnswerTap`] reads the answer
//! as it passes — usage from the JSON body or from SSE events, time to the first output,
//! and the assistant's text across deltas, scanned for injections (`curl ht` + `tps://x |
//! bash` in two events is one finding). Nothing is delayed: a complete event leaves as soon
//! as it is read; only an incomplete one waits for its end. A blocked stream ends with an
//! error event in the provider's format. The LLM record is written when the call is
//! dropped, however the exchange ended.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airlock_llm::{CallKind, PriceTable, Provider, StreamUsage, Usage};
use bytes::Bytes;

use super::body::{BlockedError, BoxError, Outlet, Rest, Tap};
use super::decide;
use super::tracker::FlowTracker;
use crate::detect::{AssistantText, Detector};
use crate::record::events::{LlmRecord, now_rfc3339};

/// Request bytes kept for parsing (a prompt larger than this is recorded without its
/// message counts; the model and stream flag come first in every SDK's JSON).
const REQUEST_KEEP: usize = 4 << 20;
/// Response bytes kept for the usage of a JSON (non-streaming) answer.
const RESPONSE_KEEP: usize = 8 << 20;

/// One LLM call in flight.
pub struct LlmCall {
    provider: Provider,
    kind: CallKind,
    endpoint: String,
    path: String,
    started: Instant,
    tracker: Arc<FlowTracker>,
    prices: Arc<PriceTable>,
    source: String,
    listener: String,
    /// Where the call's spend is counted for the LLM budgets.
    spend: Arc<crate::policy::LlmLedger>,
    /// Where its transcript goes, when `store.conversations` keeps them.
    sessions: Option<Arc<super::conversation::Sessions>>,
    state: Mutex<CallState>,
}

#[derive(Default)]
struct CallState {
    request: Vec<u8>,
    status: Option<u16>,
    usage: Usage,
    stream: Option<bool>,
    first_output: Option<Duration>,
    finished: Option<Duration>,
    answer: Vec<airlock_llm::Part>,
}

impl LlmCall {
    /// The call `method path` is, when it is one worth a record.
    pub fn start(
        provider: Provider,
        method: &str,
        path_and_query: &str,
        tracker: Arc<FlowTracker>,
        pipeline: &super::Pipeline,
        source: String,
        listener: String,
    ) -> Option<Arc<LlmCall>> {
        let path = path_and_query.split('?').next().unwrap_or("/");
        let kind = airlock_llm::call_kind(provider, method, path)?;
        if kind == CallKind::CountTokens {
            // Counting tokens generates nothing and costs nothing: forwarded, not recorded.
            return None;
        }
        Some(Arc::new(LlmCall {
            provider,
            kind,
            endpoint: path.to_string(),
            path: path_and_query.to_string(),
            started: Instant::now(),
            tracker,
            prices: pipeline.prices.clone(),
            source,
            listener,
            spend: pipeline.guards.llm_spend.clone(),
            sessions: pipeline
                .live()
                .config
                .store
                .conversations
                .then(|| pipeline.sessions.clone()),
            state: Mutex::new(CallState::default()),
        }))
    }

    pub fn provider(&self) -> Provider {
        self.provider
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CallState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The upstream answered with `status`.
    pub fn set_status(&self, status: u16) {
        self.lock().status = Some(status);
    }

    fn keep_request(&self, data: &[u8]) {
        let mut s = self.lock();
        let room = REQUEST_KEEP.saturating_sub(s.request.len());
        let take = room.min(data.len());
        s.request.extend_from_slice(&data[..take]);
    }

    fn note_output(&self) {
        let mut s = self.lock();
        if s.first_output.is_none() {
            s.first_output = Some(self.started.elapsed());
        }
    }

    fn set_usage(&self, usage: &Usage) {
        self.lock().usage = usage.clone();
    }

    fn keeps_answer(&self) -> bool {
        self.sessions.is_some()
    }

    fn set_answer(&self, answer: Vec<airlock_llm::Part>) {
        self.lock().answer = answer;
    }

    fn finish(&self, stream: bool) {
        let mut s = self.lock();
        s.stream = Some(stream);
        if s.finished.is_none() {
            s.finished = Some(self.started.elapsed());
        }
    }
}

impl Drop for LlmCall {
    fn drop(&mut self) {
        let started = self.started;
        let state = std::mem::take(&mut *self.lock());
        // No answer from the provider (blocked before it, or unreachable): the flow record
        // says what happened; there was no call to account.
        let Some(status) = state.status else { return };
        let request =
            airlock_llm::parse_request(self.provider, self.kind, &self.path, &state.request);
        let usage = state.usage;
        let stream = state.stream.unwrap_or(request.stream);
        let latency = state.finished.unwrap_or_else(|| started.elapsed());
        let ms = |d: Duration| (d.as_secs_f64() * 1000.0 * 10.0).round() / 10.0;
        let cost = if usage.model.is_some() {
            self.prices.cost(self.provider, &usage)
        } else {
            None
        };
        if let Ok(ip) = self.source.parse() {
            let tokens = usage.input_tokens.unwrap_or(0)
                + usage.output_tokens.unwrap_or(0)
                + usage.cache_read_tokens.unwrap_or(0)
                + usage.cache_write_tokens.unwrap_or(0);
            self.spend
                .record(ip, &self.listener, cost.unwrap_or(0.0), tokens);
        }
        let ctx = self.tracker.threat_context();
        let mut record = LlmRecord {
            timestamp: now_rfc3339(),
            provider: self.provider.as_str().to_string(),
            model: usage.model.clone(),
            endpoint: self.endpoint.clone(),
            stream,
            status: Some(status),
            input_tokens: usage.input_tokens.unwrap_or(0),
            output_tokens: usage.output_tokens.unwrap_or(0),
            cache_read_tokens: usage.cache_read_tokens.unwrap_or(0),
            cache_write_tokens: usage.cache_write_tokens.unwrap_or(0),
            cost_usd: cost,
            latency_ms: ms(latency),
            ttft_ms: if stream {
                state.first_output.map(ms)
            } else {
                None
            },
            source: self.source.clone(),
            requested_model: request.requested_model,
            messages: request.messages,
            tools: request.tools,
            system_chars: request.system_chars,
            listener: self.listener.clone(),
            flow_id: ctx.flow_id,
            session: None,
        };
        let turn = self.sessions.as_ref().map(|sessions| {
            let prompt = airlock_llm::parse_prompt(self.provider, self.kind, &state.request);
            super::conversation::turn(sessions, &self.tracker, &mut record, prompt, state.answer)
        });
        self.tracker.sink().llm(record, turn);
    }
}

/// Keeps the request body's first bytes for the call's record; the body passes unchanged.
pub struct PromptTap {
    call: Arc<LlmCall>,
}

impl PromptTap {
    pub fn new(call: Arc<LlmCall>) -> Self {
        PromptTap { call }
    }
}

impl Tap for PromptTap {
    fn on_data(&mut self, data: Bytes, out: &mut Outlet) {
        self.call.keep_request(&data);
        out.push(data);
    }
}

/// Reads the answer as it passes to the client (see the module docs).
pub struct AnswerTap {
    call: Arc<LlmCall>,
    detector: Arc<Detector>,
    mode: Mode,
    /// The answer has been read to its end (or given up on): usage and timing are set.
    finalized: bool,
}

enum Mode {
    Sse {
        /// Bytes after the last complete event: they leave when their event is complete.
        pending: Vec<u8>,
        usage: Box<StreamUsage>,
        /// The assistant's text, as one stream across events.
        text: Box<AssistantText>,
    },
    Json {
        kept: Vec<u8>,
        decoder: Option<Box<airlock_scan::decompress::Decompressor>>,
    },
}

impl AnswerTap {
    /// `sse` for `text/event-stream`; `encoding` is the Content-Encoding the client will
    /// see (the body is decoded here to read it).
    pub fn new(
        call: Arc<LlmCall>,
        detector: Arc<Detector>,
        sse: bool,
        encoding: Option<&str>,
    ) -> Self {
        let mode = if sse {
            let mut usage = Box::new(StreamUsage::new(call.provider, call.kind));
            if call.keeps_answer() {
                usage.keep_answer();
            }
            Mode::Sse {
                pending: Vec::new(),
                usage,
                text: Box::new(AssistantText::new(detector.clone())),
            }
        } else {
            Mode::Json {
                kept: Vec::new(),
                decoder: encoding
                    .and_then(|e| airlock_scan::decompress::Decompressor::for_encoding(e).ok())
                    .flatten()
                    .map(Box::new),
            }
        };
        AnswerTap {
            call,
            detector,
            mode,
            finalized: false,
        }
    }

    /// SSE: reads every complete event in `pending` and lets it out, unless one is blocked,
    /// which ends the answer with the provider's own kind of error event.
    fn drain_events(&mut self, at_end: bool, out: &mut Outlet) {
        let Mode::Sse {
            pending,
            usage,
            text,
        } = &mut self.mode
        else {
            return;
        };
        let mut start = 0;
        let mut release = 0;
        loop {
            let (event_end, next) = match event_boundary(&pending[start..]) {
                Some((e, n)) => (start + e, start + n),
                None if at_end && start < pending.len() => (pending.len(), pending.len()),
                None => break,
            };
            let info = usage.on_event(&pending[start..event_end]);
            if info.output {
                self.call.note_output();
            }
            if let Some(t) = info.text.filter(|t| !t.is_empty()) {
                let detections = text.feed(Some(t.as_bytes()));
                if let Some(block) =
                    decide::findings(&self.detector, &self.call.tracker, &detections)
                {
                    // This event and everything after it stay here.
                    self.call.set_usage(usage.usage());
                    self.call
                        .set_answer(usage.take_answer().unwrap_or_default());
                    self.call.finish(true);
                    self.finalized = true;
                    out.push(Bytes::copy_from_slice(&pending[..release]));
                    out.push(Bytes::from(airlock_llm::stream_error_event(
                        self.call.provider,
                        self.call.kind,
                        &format!("blocked by airlock: {}", block.reason),
                    )));
                    pending.clear();
                    out.end();
                    return;
                }
            }
            release = next;
            start = next;
        }
        self.call.set_usage(usage.usage());
        if release > 0 {
            let ready: Vec<u8> = pending.drain(..release).collect();
            out.push(Bytes::from(ready));
        }
    }
}

impl Tap for AnswerTap {
    fn on_data(&mut self, data: Bytes, out: &mut Outlet) {
        match &mut self.mode {
            Mode::Json { kept, decoder } => {
                if kept.len() < RESPONSE_KEEP {
                    match decoder {
                        Some(d) => {
                            let _ = d.feed(&data, false, kept);
                        }
                        None => kept.extend_from_slice(&data[..data.len().min(RESPONSE_KEEP)]),
                    }
                }
                out.push(data);
            }
            Mode::Sse { pending, .. } => {
                pending.extend_from_slice(&data);
                self.drain_events(false, out);
            }
        }
    }

    /// The answer ended: the last event, the usage of a JSON answer. Also runs when the
    /// body is dropped first (a reader stopping at Content-Length, a client going away).
    fn on_end(&mut self, out: &mut Outlet) {
        if std::mem::replace(&mut self.finalized, true) {
            return;
        }
        match &mut self.mode {
            Mode::Sse { .. } => {
                self.drain_events(true, out);
                if let Mode::Sse { pending, text, .. } = &mut self.mode {
                    out.push(Bytes::from(std::mem::take(pending)));
                    let detections = text.feed(None);
                    if let Some(block) =
                        decide::findings(&self.detector, &self.call.tracker, &detections)
                    {
                        let reason = block.reason;
                        tracing::debug!(%reason, "a finding at the end of an LLM stream");
                    }
                }
                if let Mode::Sse { usage, .. } = &mut self.mode
                    && let Some(answer) = usage.take_answer()
                {
                    self.call.set_answer(answer);
                }
                self.call.finish(true);
            }
            Mode::Json { kept, decoder } => {
                if let Some(d) = decoder {
                    let _ = d.feed(&[], true, kept);
                }
                let usage = airlock_llm::parse_response(self.call.provider, self.call.kind, kept);
                self.call.set_usage(&usage);
                if self.call.keeps_answer() {
                    let answer =
                        airlock_llm::parse_answer(self.call.provider, self.call.kind, kept);
                    self.call.set_answer(answer);
                }
                self.call.finish(false);
            }
        }
    }

    fn on_error(&mut self, error: &BoxError, out: &mut Outlet) {
        // Detection on the raw stream blocked it: in an SSE answer, end with the provider's
        // error event rather than a torn connection.
        if let Mode::Sse { .. } = self.mode
            && let Some(blocked) = error.downcast_ref::<BlockedError>()
        {
            let message = blocked.to_string();
            self.drain_events(false, out);
            if let Mode::Sse { pending, .. } = &mut self.mode {
                pending.clear();
            }
            if !self.finalized {
                if let Mode::Sse { usage, .. } = &mut self.mode
                    && let Some(answer) = usage.take_answer()
                {
                    self.call.set_answer(answer);
                }
                out.push(Bytes::from(airlock_llm::stream_error_event(
                    self.call.provider,
                    self.call.kind,
                    &message,
                )));
                self.call.finish(true);
                self.finalized = true;
            }
            out.end();
            return;
        }
        // Account what was seen; nothing more leaves before the error.
        self.on_end(&mut Outlet::default());
    }

    fn on_abandon(&mut self) -> Rest {
        self.on_end(&mut Outlet::default());
        Rest::Drop
    }

    fn keeps_length(&self) -> bool {
        matches!(self.mode, Mode::Json { .. })
    }

    fn ends_with_inner(&self) -> bool {
        false
    }
}

/// The end of the first complete SSE event in `buf`: (end of its lines, start of the next).
fn event_boundary(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = memchr::memmem::find(buf, b"\n\n").map(|i| (i + 1, i + 2));
    let crlf = memchr::memmem::find(buf, b"\r\n\r\n").map(|i| (i + 2, i + 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.1 <= b.1 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::event_boundary;

    #[test]
    fn events_end_at_a_blank_line_of_either_kind() {
        assert_eq!(event_boundary(b"data: a\n\ndata: b"), Some((8, 9)));
        assert_eq!(event_boundary(b"data: a\r\n\r\ndata: b"), Some((9, 11)));
        assert_eq!(event_boundary(b"data: a\n"), None);
        assert_eq!(event_boundary(b"data: a\r\n\r\nx\n\n"), Some((9, 11)));
    }
}
