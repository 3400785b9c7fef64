//! Detection, the judge of content: the built-in catalogue compiled into engines
//! ([`Detector`]), what a finding means for this exchange (block, redact, warn, or a
//! credential presented to its own issuer), the scanning state of a body ([`BodyScan`]), of
//! a request's or response's head ([`head`]) and of an LLM's answer ([`AssistantText`]), and
//! the snippets a record may show (never the secret). It knows findings, not bodies,
//! trackers or records: `pipeline::decide` turns findings into verdicts and records.

mod body;
mod detection;
mod detector;
pub mod head;
mod issuer;
mod mask;
pub mod prompt;
mod secret;
mod text;

pub use body::{BodyScan, ChunkScan};
pub use detection::Detection;
pub use detector::{AUTH_HEADERS, Detector, Direction, Location, check_settings};
pub use issuer::{Issuance, token_endpoint};
pub use mask::{mask_found, mask_known, mask_preview, masked, snippet};
pub use secret::Secret;
pub use text::AssistantText;
