//! LLM provider awareness (placeholder while the crate is written).
