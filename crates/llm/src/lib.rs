//! airlock's LLM provider awareness, without I/O: which provider and which call a request
//! is, what it asks for, what it used (from a JSON answer or one SSE event at a time), what
//! it cost, and how to end a stream with an error the client's SDK understands.
//!
//! The proxy records every LLM call (SPEC 9) for gateway traffic and for intercepted
//! traffic to the providers' own hosts alike, so everything here works from the bytes on
//! the wire: request and response bodies may be cut short, streams arrive event by event,
//! and nothing may fail loudly — a body that cannot be read gives what could be read.
//! Token counts are kept as each provider reports them; the price table
//! (`prices.yaml`, plus the config's `prices:`) knows how each provider counts the cache.

mod error_event;
mod json;
mod price;
mod provider;
mod request;
mod stream;
mod transcript;
mod usage;

pub use error_event::stream_error_event;
pub use price::{BUILTIN_PRICES_YAML, Price, PriceError, PriceTable, litellm_prices};
pub use provider::{CallKind, Provider, call_kind, provider_for_gateway_path, provider_for_host};
pub use request::{RequestInfo, parse_request};
pub use stream::{EventInfo, StreamUsage};
pub use transcript::{
    ANSWER_CAP, AnswerBuilder, Message, Part, Prompt, TEXT_CAP, parse_answer, parse_prompt,
};
pub use usage::{Usage, parse_response};
