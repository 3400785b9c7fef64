//! The per-request pipeline shared by every listener: the exchange's identity and flow
//! record, the body wrappers, and the one place a failure becomes a response.

pub mod body;
pub mod decide;
pub mod exchange;
pub mod respond;

pub use body::{MeteredBody, ProxyBody};
pub use exchange::{BlockInfo, Exchange, FlowTracker, Scheme, Side};
