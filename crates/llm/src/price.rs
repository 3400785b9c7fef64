//! What a call cost: the shipped price table (`prices.yaml`), the config's `prices:` on top,
//! and the cost formula of each provider family.
//!
//! A model is priced by the longest table entry that is a prefix of the name the provider
//! reports, so a dated snapshot (`claude-sonnet-4-5-20250929`, `gpt-4o-2024-08-06`) takes
//! its family's price and a sibling with its own entry (`gpt-4o-mini`) is never priced as
//! its shorter cousin (`gpt-4o`). A model no entry covers has no cost (never a guess).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::provider::Provider;
use crate::usage::Usage;

/// A model's price in USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    #[serde(default)]
    pub cache_read: f64,
    #[serde(default)]
    pub cache_write: f64,
}

impl Price {
    /// The cost in USD of `usage` at this price, each part priced separately.
    ///
    /// Anthropic's `input_tokens` excludes the cache tokens:
    /// `input·in + output·out + cache_read·cr + cache_write·cw`. OpenAI and Google count the
    /// cached tokens inside the input: `(input − cache_read)·in + cache_read·cr + output·out
    /// (+ cache_write·cw)`. Missing counts are 0.
    pub fn cost(&self, provider: Provider, usage: &Usage) -> f64 {
        let input = usage.input_tokens.unwrap_or(0);
        let output = usage.output_tokens.unwrap_or(0);
        let cache_read = usage.cache_read_tokens.unwrap_or(0);
        let cache_write = usage.cache_write_tokens.unwrap_or(0);
        let uncached_input = match provider {
            Provider::Anthropic => input,
            Provider::OpenAi | Provider::Google => input.saturating_sub(cache_read),
        };
        (uncached_input as f64 * self.input
            + output as f64 * self.output
            + cache_read as f64 * self.cache_read
            + cache_write as f64 * self.cache_write)
            / 1e6
    }

    fn check(&self) -> Result<(), String> {
        for (field, value) in [
            ("input", self.input),
            ("output", self.output),
            ("cache_read", self.cache_read),
            ("cache_write", self.cache_write),
        ] {
            if !value.is_finite() || value < 0.0 {
                return Err(format!(
                    "{field} must be a non-negative number, not {value}"
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    #[error("price table is not valid YAML: {0}")]
    Syntax(String),
    #[error("price of {model}: {message}")]
    Invalid { model: String, message: String },
}

/// The shipped table's text.
pub const BUILTIN_PRICES_YAML: &str = include_str!("../prices.yaml");

/// Model name prefix → price.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PriceTable {
    entries: BTreeMap<String, Price>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceFile {
    prices: BTreeMap<String, Price>,
}

impl PriceTable {
    /// The shipped table, from `crates/llm/prices.yaml`, parsed once.
    pub fn builtin() -> PriceTable {
        static BUILTIN: OnceLock<PriceTable> = OnceLock::new();
        BUILTIN
            .get_or_init(|| {
                PriceTable::from_yaml(BUILTIN_PRICES_YAML)
                    .unwrap_or_else(|e| panic!("the shipped prices.yaml is broken: {e}"))
            })
            .clone()
    }

    /// The shipped table plus `overrides` (config `prices:`): an entry with the same name
    /// replaces the shipped one; new names are added.
    pub fn with_overrides(overrides: impl IntoIterator<Item = (String, Price)>) -> PriceTable {
        let mut table = PriceTable::builtin();
        for (model, price) in overrides {
            table.insert(model, price);
        }
        table
    }

    /// A table in the format of `prices.yaml` (`prices: {model: {input, output,
    /// cache_read, cache_write}}`), every price checked to be non-negative.
    pub fn from_yaml(text: &str) -> Result<PriceTable, PriceError> {
        let file: PriceFile =
            serde_saphyr::from_str(text).map_err(|e| PriceError::Syntax(e.to_string()))?;
        for (model, price) in &file.prices {
            if model.trim().is_empty() {
                return Err(PriceError::Invalid {
                    model: format!("{model:?}"),
                    message: "a model name cannot be empty".into(),
                });
            }
            price.check().map_err(|message| PriceError::Invalid {
                model: model.clone(),
                message,
            })?;
        }
        Ok(PriceTable {
            entries: file.prices,
        })
    }

    /// Adds an entry, or replaces the one with the same name.
    pub fn insert(&mut self, model: String, price: Price) {
        self.entries.insert(model, price);
    }

    /// The entries, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Price)> {
        self.entries
            .iter()
            .map(|(name, price)| (name.as_str(), *price))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The price of `model` by the longest entry that is a prefix of it (so
    /// `claude-sonnet-4-5-20250929` matches `claude-sonnet-4-5`), with the entry's name.
    /// ASCII case is ignored, and so is a leading `models/` (Gemini's resource name).
    ///
    /// A prefix must end where a name part ends, and an entry that ends in a version number
    /// does not cover a longer version: `gpt-4` is no prefix of `gpt-4o`, `claude-opus-4`
    /// none of `claude-opus-4-6`, `gpt-5` none of `gpt-5.4-mini`; a date or a build number
    /// (`-20250514`, `-2024-08-06`, `-001`) and a named variant (`-preview`, `@20250929`)
    /// are covered. So a model newer than the table has no price rather than its
    /// predecessor's. `None` when no entry covers the model.
    pub fn lookup(&self, model: &str) -> Option<(&str, Price)> {
        let model = model.trim();
        let model = model.strip_prefix("models/").unwrap_or(model);
        if model.is_empty() {
            return None;
        }
        self.entries
            .iter()
            .filter(|(name, _)| covers(name, model))
            .max_by_key(|(name, _)| name.len())
            .map(|(name, price)| (name.as_str(), *price))
    }

    /// The cost in USD of a call by the model `usage` names (see [`Price::cost`] for the
    /// formulas); `None` when the model is missing or unknown.
    pub fn cost(&self, provider: Provider, usage: &Usage) -> Option<f64> {
        self.cost_for_model(provider, usage.model.as_deref()?, usage)
    }

    /// Like [`PriceTable::cost`] with the model given (say, the requested one when the
    /// response named none).
    pub fn cost_for_model(&self, provider: Provider, model: &str, usage: &Usage) -> Option<f64> {
        let (_, price) = self.lookup(model)?;
        Some(price.cost(provider, usage))
    }
}

/// The prices in a LiteLLM `model_prices_and_context_window.json` (`prices_file`): an object
/// of model name → `{input_cost_per_token, output_cost_per_token,
/// cache_read_input_token_cost, cache_creation_input_token_cost, litellm_provider, …}`, in
/// USD per token (turned into USD per million here).
///
/// A key with a provider prefix (`anthropic/claude-…`, `openrouter/openai/gpt-4o`) also
/// prices the bare name after its last `/`, unless the file has the bare name itself or a
/// prefix that names the provider that serves the model (`anthropic/`, `openai/`, `gemini/`)
/// gave it already: a reseller's price never replaces the provider's own. Entries without
/// both per-token prices (images, audio by the second, the `sample_spec` example) are
/// skipped; a missing cache price is the input price (no discount is assumed).
pub fn litellm_prices(text: &str) -> Result<Vec<(String, Price)>, PriceError> {
    let file: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|e| PriceError::Syntax(e.to_string()))?;
    // Bare name → (rank of the key it came from, price): 0 the bare key, 1 a provider's own
    // prefix, 2 any other prefix.
    let mut bare: BTreeMap<String, (u8, Price)> = BTreeMap::new();
    let mut out = Vec::new();
    for (key, entry) in &file {
        if key == "sample_spec" {
            continue;
        }
        let per_token = |field: &str| entry.get(field).and_then(serde_json::Value::as_f64);
        let (Some(input), Some(output)) = (
            per_token("input_cost_per_token"),
            per_token("output_cost_per_token"),
        ) else {
            continue;
        };
        let price = Price {
            input: input * 1e6,
            output: output * 1e6,
            cache_read: per_token("cache_read_input_token_cost").unwrap_or(input) * 1e6,
            cache_write: per_token("cache_creation_input_token_cost").unwrap_or(input) * 1e6,
        };
        let model = key.trim();
        if model.is_empty() {
            continue;
        }
        price.check().map_err(|message| PriceError::Invalid {
            model: key.clone(),
            message,
        })?;
        out.push((model.to_string(), price));
        let (rank, name) = match model.rsplit_once('/') {
            None => (0, model),
            Some((prefix, name)) => {
                let own = matches!(prefix, "anthropic" | "openai" | "gemini");
                (if own { 1 } else { 2 }, name)
            }
        };
        if name.is_empty() || rank == 0 {
            continue;
        }
        match bare.get(name) {
            Some((have, _)) if *have <= rank => {}
            _ => {
                bare.insert(name.to_string(), (rank, price));
            }
        }
    }
    for (name, (_, price)) in bare {
        if !file.contains_key(&name) {
            out.push((name, price));
        }
    }
    Ok(out)
}

/// Whether the entry `name` covers `model` (see [`PriceTable::lookup`]).
fn covers(name: &str, model: &str) -> bool {
    let (name, model) = (name.as_bytes(), model.as_bytes());
    if name.is_empty()
        || model.len() < name.len()
        || !model[..name.len()].eq_ignore_ascii_case(name)
    {
        return false;
    }
    let rest = &model[name.len()..];
    let Some(&next) = rest.first() else {
        return true;
    };
    let last = name[name.len() - 1];
    if last.is_ascii_alphanumeric() && next.is_ascii_alphanumeric() {
        // `gpt-4` and `gpt-4o`, `gpt-4.1` and `gpt-4.10`: another name
        return false;
    }
    if last.is_ascii_digit() && matches!(next, b'-' | b'.' | b'_') {
        // `claude-opus-4` and `claude-opus-4-6`, `gpt-5` and `gpt-5.4`: another version;
        // a longer number is a date or a build (`-20250514`, `-2024-08-06`, `-001`)
        let digits = rest[1..].iter().take_while(|b| b.is_ascii_digit()).count();
        let after = rest.get(1 + digits).copied();
        let ends_a_part = after.is_none_or(|b| !b.is_ascii_alphanumeric());
        if (1..=2).contains(&digits) && ends_a_part {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn litellm_file_prices_per_million_with_bare_names() {
        let text = r#"{
            "sample_spec": {"max_tokens": "LEGACY", "input_cost_per_token": 0.0, "output_cost_per_token": 0.0, "litellm_provider": "one of https://docs.litellm.ai/docs/providers"},
            "gpt-4o": {"input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05, "cache_read_input_token_cost": 1.25e-06, "litellm_provider": "openai", "mode": "chat"},
            "openrouter/anthropic/claude-x-1": {"input_cost_per_token": 9e-06, "output_cost_per_token": 9e-05},
            "anthropic/claude-x-1": {"input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05, "cache_creation_input_token_cost": 3.75e-06, "cache_read_input_token_cost": 3e-07},
            "openrouter/acme/only-here": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06},
            "dall-e-3": {"output_cost_per_image": 0.04, "litellm_provider": "openai"},
            "tts-1": {"input_cost_per_character": 1.5e-05}
        }"#;
        let prices: BTreeMap<String, Price> = litellm_prices(text).unwrap().into_iter().collect();
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        let gpt = prices["gpt-4o"];
        assert!(close(gpt.input, 2.5) && close(gpt.output, 10.0) && close(gpt.cache_read, 1.25));
        assert!(
            close(gpt.cache_write, 2.5),
            "no cache write price: the input price"
        );
        // The provider's own prefix wins over a reseller's for the bare name.
        let claude = prices["claude-x-1"];
        assert!(close(claude.input, 3.0) && close(claude.cache_write, 3.75));
        assert!(close(prices["openrouter/anthropic/claude-x-1"].input, 9.0));
        assert!(close(prices["only-here"].output, 2.0));
        assert!(!prices.contains_key("dall-e-3") && !prices.contains_key("tts-1"));
        assert!(!prices.contains_key("sample_spec"));
        let table = PriceTable::with_overrides(prices);
        assert_eq!(table.lookup("claude-x-1-20260101").unwrap().0, "claude-x-1");
    }

    #[test]
    fn litellm_file_errors_are_clear() {
        assert!(matches!(
            litellm_prices("not json"),
            Err(PriceError::Syntax(_))
        ));
        let negative = r#"{"m": {"input_cost_per_token": -1, "output_cost_per_token": 1}}"#;
        let e = litellm_prices(negative).unwrap_err().to_string();
        assert!(
            e.contains("price of m") && e.contains("non-negative"),
            "{e}"
        );
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    fn usage(model: &str, i: u64, o: u64, cr: u64, cw: u64) -> Usage {
        Usage {
            model: Some(model.into()),
            input_tokens: Some(i),
            output_tokens: Some(o),
            cache_read_tokens: Some(cr),
            cache_write_tokens: Some(cw),
        }
    }

    #[test]
    fn the_shipped_table_parses_and_every_price_is_positive() {
        let table = PriceTable::builtin();
        assert!(table.len() >= 30, "{} entries", table.len());
        for (name, p) in table.iter() {
            assert!(p.input > 0.0, "{name}");
            if name.starts_with("text-embedding-") {
                assert_eq!(p.output, 0.0, "{name}");
            } else {
                assert!(p.output > p.input, "{name}: output costs more than input");
                assert!(p.cache_read > 0.0 && p.cache_read <= p.input, "{name}");
            }
            if name.starts_with("claude-") {
                assert!(
                    close(p.cache_write, p.input * 1.25),
                    "{name}: cache write 1.25x"
                );
                assert!(
                    close(p.cache_read, p.input * 0.1),
                    "{name}: cache read 0.1x"
                );
            } else {
                assert_eq!(p.cache_write, 0.0, "{name}");
            }
        }
    }

    #[test]
    fn the_models_the_e2e_tests_use_have_a_price() {
        let table = PriceTable::builtin();
        for model in [
            "claude-sonnet-4-5-20250929",
            "claude-opus-4-1-20250805",
            "gpt-4o-2024-08-06",
            "gpt-4.1-mini-2025-04-14",
            "gemini-2.5-flash",
            "gemini-2.5-pro",
        ] {
            let (_, price) = table.lookup(model).unwrap_or_else(|| panic!("{model}"));
            assert!(price.input > 0.0 && price.output > 0.0, "{model}");
        }
    }

    #[test]
    fn longest_prefix_wins() {
        let table = PriceTable::builtin();
        for (model, entry) in [
            ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
            ("claude-sonnet-4-20250514", "claude-sonnet-4"),
            ("claude-opus-4-1-20250805", "claude-opus-4-1"),
            ("claude-opus-4-20250514", "claude-opus-4"),
            ("claude-opus-4-0", "claude-opus-4-0"),
            ("claude-sonnet-4-0", "claude-sonnet-4-0"),
            ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
            ("claude-opus-4-5-20251101", "claude-opus-4-5"),
            ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
            ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
            ("claude-3-7-sonnet-20250219", "claude-3-7-sonnet"),
            ("gpt-4o-2024-08-06", "gpt-4o"),
            ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),
            ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
            ("gpt-4.1-2025-04-14", "gpt-4.1"),
            ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
            ("gpt-4.1-nano", "gpt-4.1-nano"),
            ("gpt-5-2025-08-07", "gpt-5"),
            ("gpt-5-mini-2025-08-07", "gpt-5-mini"),
            ("gpt-5-nano", "gpt-5-nano"),
            ("o3-2025-04-16", "o3"),
            ("o3-mini-2025-01-31", "o3-mini"),
            ("o4-mini-2025-04-16", "o4-mini"),
            ("o1-2024-12-17", "o1"),
            ("text-embedding-3-small", "text-embedding-3-small"),
            ("gemini-2.5-flash", "gemini-2.5-flash"),
            ("gemini-2.5-flash-lite", "gemini-2.5-flash-lite"),
            ("gemini-2.5-flash-preview-09-2025", "gemini-2.5-flash"),
            ("models/gemini-2.5-pro", "gemini-2.5-pro"),
            ("gemini-2.0-flash-001", "gemini-2.0-flash"),
            ("GPT-4o-Mini", "gpt-4o-mini"),
            ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
            ("gpt-5-codex", "gpt-5"),
            ("gpt-5-chat-latest", "gpt-5"),
            ("gpt-4o-audio-preview-2024-12-17", "gpt-4o"),
        ] {
            assert_eq!(
                table.lookup(model).map(|(name, _)| name),
                Some(entry),
                "{model}"
            );
        }
        let small = PriceTable::from_yaml(
            "prices: {gpt-4o: {input: 2.5, output: 10}, gpt-4o-mini: {input: 0.15, output: 0.6}}",
        )
        .unwrap();
        assert_eq!(
            small.lookup("gpt-4o-mini-2024-07-18").unwrap().1.input,
            0.15
        );
        assert_eq!(small.lookup("gpt-4o-2024-08-06").unwrap().1.input, 2.5);
    }

    #[test]
    fn a_prefix_ends_where_a_name_part_ends() {
        for (name, model, want) in [
            ("gpt-4o", "gpt-4o", true),
            ("gpt-4o", "gpt-4o-2024-08-06", true),
            ("gpt-4", "gpt-4o", false),
            ("gpt-4", "gpt-4-0613", true),
            ("gpt-4", "gpt-4.1", false),
            ("claude-opus-4", "claude-opus-4-20250514", true),
            ("claude-opus-4", "claude-opus-4-1-20250805", false),
            ("claude-opus-4", "claude-opus-4-6", false),
            ("claude-opus-4", "claude-opus-4-0", false),
            ("gemini-2.0-flash", "gemini-2.0-flash-001", true),
            ("gemini-2.5-pro", "gemini-2.5-pro-preview-06-05", true),
            ("claude", "claude-opus-4-6", true),
            ("claude-opus", "claude-opus-4-6", true),
            ("claude-", "claude-x", true),
            ("llama3", "llama3:8b", true),
            ("llama3", "llama3.1", false),
            ("my-local-model", "my-local-model:7b", true),
            ("o3", "o3-mini", true),
            ("o3", "o3", true),
            ("o3", "o", false),
            ("", "x", false),
        ] {
            assert_eq!(covers(name, model), want, "{name} covers {model}");
        }
    }

    #[test]
    fn unknown_models_have_no_price() {
        let table = PriceTable::builtin();
        for model in [
            "",
            "gpt",
            "llama-3-70b",
            "claude",
            "mistral-large",
            "models/",
            "gemini-1",
            // models newer than the table are not priced as their predecessors
            "claude-opus-4-6",
            "claude-opus-4-8-20260301",
            "claude-sonnet-4-6",
            "claude-opus-5",
            "gpt-5.4-mini",
            "gpt-5.2-pro-2025-12-11",
            "gpt-5.1",
            "o3x",
            "gpt-4.10",
            "gemini-3.5-flash",
        ] {
            assert_eq!(table.lookup(model), None, "{model}");
        }
        assert_eq!(
            table.cost(Provider::OpenAi, &usage("my-local-model", 10, 10, 0, 0)),
            None
        );
        assert_eq!(
            table.cost(
                Provider::OpenAi,
                &Usage {
                    input_tokens: Some(10),
                    ..Usage::default()
                }
            ),
            None,
            "no model, no cost"
        );
    }

    #[test]
    fn anthropic_cost_adds_the_cache_tokens() {
        let table = PriceTable::builtin();
        // sonnet 4.5: 3 in, 15 out, 0.3 cache read, 3.75 cache write
        let u = usage("claude-sonnet-4-5-20250929", 1000, 500, 2000, 100);
        let cost = table.cost(Provider::Anthropic, &u).unwrap();
        let want = (1000.0 * 3.0 + 500.0 * 15.0 + 2000.0 * 0.3 + 100.0 * 3.75) / 1e6;
        assert!(close(cost, want), "{cost} != {want}");
        assert!(close(cost, 0.011475));
        // opus 4.1: 15 in, 75 out
        let u = usage("claude-opus-4-1-20250805", 12, 7, 0, 0);
        assert!(close(
            table.cost(Provider::Anthropic, &u).unwrap(),
            0.000705
        ));
    }

    #[test]
    fn openai_and_google_cost_take_the_cache_out_of_the_input() {
        let table = PriceTable::builtin();
        // gpt-4o: 2.5 in, 1.25 cached, 10 out
        let u = usage("gpt-4o-2024-08-06", 1000, 200, 400, 0);
        let cost = table.cost(Provider::OpenAi, &u).unwrap();
        assert!(
            close(cost, (600.0 * 2.5 + 400.0 * 1.25 + 200.0 * 10.0) / 1e6),
            "{cost}"
        );
        assert!(close(cost, 0.004));
        // gemini-2.5-flash: 0.3 in, 0.03 cached, 2.5 out
        let u = usage("gemini-2.5-flash", 1000, 100, 500, 0);
        let cost = table.cost(Provider::Google, &u).unwrap();
        assert!(
            close(cost, (500.0 * 0.3 + 500.0 * 0.03 + 100.0 * 2.5) / 1e6),
            "{cost}"
        );
        // more cached than input (a provider's quirk) never goes negative
        let u = usage("gpt-4o", 10, 0, 50, 0);
        assert!(table.cost(Provider::OpenAi, &u).unwrap() > 0.0);
        // missing counts are 0; embeddings have no output price
        let u = Usage {
            model: Some("text-embedding-3-small".into()),
            input_tokens: Some(1_000_000),
            ..Usage::default()
        };
        assert!(close(table.cost(Provider::OpenAi, &u).unwrap(), 0.02));
    }

    #[test]
    fn a_price_prices_each_part() {
        let p = Price {
            input: 1.0,
            output: 2.0,
            cache_read: 0.5,
            cache_write: 4.0,
        };
        let u = usage("x", 100, 10, 40, 5);
        assert!(close(
            p.cost(Provider::Anthropic, &u),
            (100.0 + 20.0 + 20.0 + 20.0) / 1e6
        ));
        assert!(close(
            p.cost(Provider::OpenAi, &u),
            (60.0 + 20.0 + 20.0 + 20.0) / 1e6
        ));
        assert_eq!(p.cost(Provider::Google, &Usage::default()), 0.0);
    }

    #[test]
    fn overrides_replace_and_add() {
        let cheap = Price {
            input: 1.0,
            output: 1.0,
            cache_read: 0.0,
            cache_write: 0.0,
        };
        let table = PriceTable::with_overrides([
            ("claude-sonnet-4-5".to_string(), cheap),
            ("my-local-model".to_string(), cheap),
        ]);
        assert_eq!(table.len(), PriceTable::builtin().len() + 1);
        assert_eq!(
            table.lookup("claude-sonnet-4-5-20250929"),
            Some(("claude-sonnet-4-5", cheap))
        );
        assert_eq!(
            table.lookup("my-local-model:7b").map(|(n, _)| n),
            Some("my-local-model")
        );
        let u = usage("claude-sonnet-4-5-20250929", 1_000_000, 1_000_000, 0, 0);
        assert!(close(table.cost(Provider::Anthropic, &u).unwrap(), 2.0));
        // the rest of the shipped table is untouched
        assert_eq!(
            table.lookup("claude-sonnet-4-20250514"),
            PriceTable::builtin().lookup("claude-sonnet-4")
        );
        // a more specific override beats the shipped family entry
        let table = PriceTable::with_overrides([("gpt-4o-2024-08-06".to_string(), cheap)]);
        assert_eq!(table.lookup("gpt-4o-2024-08-06").unwrap().1, cheap);
        assert_ne!(table.lookup("gpt-4o-2024-11-20").unwrap().1, cheap);
    }

    #[test]
    fn bad_tables_are_refused() {
        assert!(matches!(
            PriceTable::from_yaml("prices: ["),
            Err(PriceError::Syntax(_))
        ));
        assert!(matches!(
            PriceTable::from_yaml("prices: {m: {input: 1, output: 2, cached: 1}}"),
            Err(PriceError::Syntax(_))
        ));
        assert!(matches!(
            PriceTable::from_yaml("prices: {m: {input: 1}}"),
            Err(PriceError::Syntax(_))
        ));
        let err = PriceTable::from_yaml("prices: {m: {input: -1, output: 2}}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "price of m: input must be a non-negative number, not -1"
        );
        assert!(PriceTable::from_yaml("prices: {'': {input: 1, output: 2}}").is_err());
        assert!(PriceTable::from_yaml("prices: {}").unwrap().is_empty());
    }
}
