//! The proxy: listen (`listener`, `http1`) → identify (`identify`: CONNECT, absolute-form
//! URL, a gateway's route) → intercept TLS (`tunnel`, `intercept`) → forward (`forward`,
//! `upstream`; the upgrade bridge in `upgrade` and `websocket`). Each exchange runs through
//! the pipeline; requests addressed to airlock itself are answered by `local`. A jail's
//! redirected connections come in through `transparent` (its DNS through `dns`) and join the
//! same interception.

pub mod context;
pub mod dns;
pub mod forward;
pub mod gateway;
pub mod http1;
pub mod identify;
pub mod idle;
pub mod intercept;
pub mod listener;
pub mod local;
pub mod prefixed;
pub mod socket_owner;
pub mod splice;
pub mod transparent;
pub mod tunnel;
pub mod upgrade;
pub mod upstream;
pub mod websocket;

pub use context::{LOCAL_HOST, ProxyContext};
