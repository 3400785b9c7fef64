//! Transcripts of LLM calls (`store.conversations`): which session a call belongs to, and
//! what of it the session has not seen yet.
//!
//! An agent resends its whole history on every call, so a session is known by how it
//! starts: the client, the provider, the system prompt and the first user message. Each turn
//! keeps only the messages after those the session's previous call carried (its answer
//! comes back as the next call's last assistant message, so that one is skipped), which
//! keeps a long session's storage linear rather than quadratic. After a restart the first
//! call of an ongoing session keeps its whole history once.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use airlock_llm::{Message, Part, Prompt};

use super::tracker::FlowTracker;
use crate::record::events::{LlmRecord, TurnRecord};

/// Sessions remembered (the oldest is forgotten first).
const SESSIONS_KEPT: usize = 4096;

/// What the calls of each recent session carried.
#[derive(Default)]
pub struct Sessions {
    seen: Mutex<SeenSessions>,
}

#[derive(Default)]
struct SeenSessions {
    by_id: HashMap<String, Seen>,
    order: VecDeque<String>,
}

#[derive(Clone, Copy)]
struct Seen {
    messages: usize,
    system: u64,
    tools: u64,
}

impl Sessions {
    /// Updates what `session` has seen and returns what it had seen before.
    fn swap(&self, session: &str, now: Seen) -> Option<Seen> {
        let mut s = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let before = s.by_id.insert(session.to_string(), now);
        if before.is_none() {
            s.order.push_back(session.to_string());
            while s.order.len() > SESSIONS_KEPT {
                if let Some(old) = s.order.pop_front() {
                    s.by_id.remove(&old);
                }
            }
        }
        before
    }
}

/// The turn `record` is of its session, with every text masked; `prompt` is `None` when
/// the request could not be read whole. Sets `record.session`.
pub fn turn(
    sessions: &Sessions,
    tracker: &FlowTracker,
    record: &mut LlmRecord,
    prompt: Option<Prompt>,
    answer: Vec<Part>,
) -> TurnRecord {
    let mask = |text: &str| {
        if text.is_empty() {
            String::new()
        } else {
            tracker.mask_text(text.as_bytes())
        }
    };
    let mask_parts = |parts: Vec<Part>| -> Vec<Part> {
        parts
            .into_iter()
            .map(|p| Part {
                text: mask(&p.text),
                ..p
            })
            .collect()
    };
    let unreadable = prompt.is_none();
    let prompt = prompt.unwrap_or_default();
    let system = prompt.system.as_deref().map(mask);
    let messages: Vec<Message> = prompt
        .messages
        .into_iter()
        .map(|m| Message {
            role: m.role,
            parts: mask_parts(m.parts),
        })
        .collect();
    let answer = mask_parts(answer);

    // The first user message (OpenAI's history opens with the system message).
    let opening = messages
        .iter()
        .find(|m| m.role == "user")
        .or(messages.first());
    let session = session_id(record, system.as_deref(), opening);
    let now = Seen {
        messages: messages.len(),
        system: hash(&system),
        tools: hash(&prompt.tools),
    };
    let before = if unreadable {
        None
    } else {
        sessions.swap(&session, now)
    };
    let from = match before {
        None => 0,
        Some(b) if messages.len() > b.messages => {
            // The previous call's answer, echoed back as history.
            let echoed = messages.get(b.messages).is_some_and(|m| m.role != "user");
            b.messages + usize::from(echoed && b.messages + 1 < messages.len())
        }
        // The same history again (a retry) or a shorter one (an edit): show its last message.
        Some(_) => messages.len().saturating_sub(1),
    };
    let new_system = before.is_none_or(|b| b.system != now.system);
    let new_tools = before.is_none_or(|b| b.tools != now.tools);
    record.session = Some(session.clone());
    let total = messages.len();
    TurnRecord {
        session,
        timestamp: record.timestamp.clone(),
        flow_id: record.flow_id.clone(),
        provider: record.provider.clone(),
        model: record.model.clone().or(record.requested_model.clone()),
        status: record.status,
        input_tokens: record.input_tokens,
        output_tokens: record.output_tokens,
        cache_read_tokens: record.cache_read_tokens,
        cache_write_tokens: record.cache_write_tokens,
        cost_usd: record.cost_usd,
        latency_ms: record.latency_ms,
        ttft_ms: record.ttft_ms,
        source: record.source.clone(),
        listener: record.listener.clone(),
        messages_from: from as u64,
        messages_total: total as u64,
        system: system.filter(|_| new_system),
        tools: (new_tools && !prompt.tools.is_empty()).then_some(prompt.tools),
        messages: messages.into_iter().skip(from).collect(),
        answer,
        prompt_unreadable: unreadable,
    }
}

/// A session's id: how its conversation starts, hashed (16 hex digits). A request that
/// could not be read is a session of its own.
fn session_id(record: &LlmRecord, system: Option<&str>, first: Option<&Message>) -> String {
    use ring::digest::{Context, SHA256};
    let mut ctx = Context::new(&SHA256);
    for field in [
        record.source.as_str(),
        record.listener.as_str(),
        record.provider.as_str(),
        system.unwrap_or(""),
    ] {
        ctx.update(field.as_bytes());
        ctx.update(&[0]);
    }
    match first {
        Some(m) => {
            ctx.update(m.role.as_bytes());
            for p in &m.parts {
                ctx.update(&[0]);
                ctx.update(p.text.as_bytes());
            }
        }
        None => ctx.update(record.flow_id.as_bytes()),
    }
    let digest = ctx.finish();
    digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn hash(value: &impl Hash) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}
