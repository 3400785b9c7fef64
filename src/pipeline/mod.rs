//! The pipeline: one exchange from its identity to its record, the same for every listener
//! (forward proxy, intercepted tunnel, gateway).
//!
//! `request::phase` opens the flow record (`tracker`) and runs the request's verdicts and
//! taps; the proxy sends the request upstream; `response::phase` taps the answer. `decide`
//! is where anything is refused and every refusal written down; bodies pass through taps
//! (`body::TapBody` with `meter`, `scanning`, `llm`); `respond` makes airlock's own
//! responses; `live` holds the settings a reload swaps; `pending` the requests `ask` rules
//! hold for a person's decision.

pub mod body;
pub mod conversation;
pub mod decide;
pub mod exchange;
pub mod live;
pub mod llm;
pub mod meter;
pub mod pending;
pub mod prompt;
pub mod request;
pub mod respond;
pub mod response;
pub mod scanning;
pub mod tracker;

pub use body::{BoxError, ProxyBody};
pub use exchange::{BlockInfo, Exchange, Scheme, Side};
pub use live::{Guards, Live, Pipeline};
pub use tracker::FlowTracker;
