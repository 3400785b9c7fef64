//! Tolerant JSON reading for bodies the proxy may hold only in part.
//!
//! A request body can be cut short (only `max_hold_bytes` were kept) and a response body
//! can end early (the upstream hung up), so a body is read one top-level member at a time:
//! every member that arrived whole is used, the first incomplete one ends the reading. A
//! member is parsed into the small shape the caller asks for, and big members (the
//! conversation, embedding vectors) are walked without being built in memory.
//!
//! The helper types here accept any JSON value: a field of an unexpected type is simply
//! not counted, it never makes the rest of the body unreadable.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// The members of a top-level JSON object, read one at a time.
pub(crate) struct Members<'a> {
    body: &'a [u8],
    pos: usize,
    first: bool,
    done: bool,
}

impl<'a> Members<'a> {
    pub(crate) fn new(body: &'a [u8]) -> Self {
        let mut m = Members {
            body,
            pos: 0,
            first: true,
            done: false,
        };
        if m.body.starts_with(b"\xEF\xBB\xBF") {
            m.pos = 3;
        }
        m.skip_ws();
        if m.peek() == Some(b'{') {
            m.pos += 1;
        } else {
            m.done = true;
        }
        m
    }

    /// The next member's key; the caller must then read its value with [`Members::value`]
    /// or [`Members::skip`].
    pub(crate) fn next_key(&mut self) -> Option<String> {
        if self.done {
            return None;
        }
        self.skip_ws();
        if !self.first {
            if self.peek() != Some(b',') {
                self.done = true;
                return None;
            }
            self.pos += 1;
            self.skip_ws();
        }
        if self.peek() != Some(b'"') {
            // `}` (the end) or something that is not JSON
            self.done = true;
            return None;
        }
        self.first = false;
        let key: String = self.value()?;
        self.skip_ws();
        if self.peek() != Some(b':') {
            self.done = true;
            return None;
        }
        self.pos += 1;
        Some(key)
    }

    /// The current member's value as `T`; `None` (and the end of the reading) when the
    /// value is incomplete or not valid JSON.
    pub(crate) fn value<T: Deserialize<'a>>(&mut self) -> Option<T> {
        if self.done {
            return None;
        }
        let mut values =
            serde_json::Deserializer::from_slice(&self.body[self.pos..]).into_iter::<T>();
        match values.next() {
            Some(Ok(value)) => {
                self.pos += values.byte_offset();
                Some(value)
            }
            _ => {
                self.done = true;
                None
            }
        }
    }

    /// Skips the current member's value.
    pub(crate) fn skip(&mut self) {
        let _ = self.value::<IgnoredAny>();
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\r' | b'\n') = self.peek() {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.body.get(self.pos).copied()
    }
}

/// The elements of a top-level JSON array (Gemini's `streamGenerateContent` without
/// `alt=sse`), each read as a [`Value`]; stops at the first incomplete one.
pub(crate) fn array_elements(body: &[u8]) -> Vec<Value> {
    let mut out = Vec::new();
    let mut pos = 0;
    if body.starts_with(b"\xEF\xBB\xBF") {
        pos = 3;
    }
    let skip_ws = |pos: &mut usize| {
        while let Some(b' ' | b'\t' | b'\r' | b'\n') = body.get(*pos) {
            *pos += 1;
        }
    };
    skip_ws(&mut pos);
    if body.get(pos) != Some(&b'[') {
        return out;
    }
    pos += 1;
    loop {
        skip_ws(&mut pos);
        if !out.is_empty() {
            if body.get(pos) != Some(&b',') {
                return out;
            }
            pos += 1;
        }
        let mut values = serde_json::Deserializer::from_slice(&body[pos..]).into_iter::<Value>();
        match values.next() {
            Some(Ok(value)) => {
                pos += values.byte_offset();
                out.push(value);
            }
            _ => return out,
        }
    }
}

/// A token count: a non-negative integer (also written as a float or a numeric string).
pub(crate) fn count(value: Option<&Value>) -> Option<u64> {
    match value? {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0 && f.fract() == 0.0)
                .map(|f| f as u64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A non-empty string.
pub(crate) fn string(value: Option<&Value>) -> Option<&str> {
    value?.as_str().filter(|s| !s.is_empty())
}

/// Writes the methods of a visitor that accepts every JSON value, returning `$default`
/// for the kinds the visitor does not handle itself.
macro_rules! accept_scalars {
    ($default:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($default)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($default)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($default)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($default)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($default)
        }
    };
}

macro_rules! drain_map {
    ($map:expr) => {
        while $map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    };
}

/// The number of elements of an array; `None` for any other value.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct Count(pub Option<u64>);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            accept_scalars!(Count(None));
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Count, A::Error> {
                let mut n = 0;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Count(Some(n)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Count, A::Error> {
                drain_map!(map);
                Ok(Count(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// The number of characters of the text in a prompt part: a string; an array of strings or
/// blocks; a block's `text`; a Gemini content's `parts`. `None` when there is no text at all.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct TextChars(pub Option<u64>);

impl TextChars {
    fn add(self, other: TextChars) -> TextChars {
        match (self.0, other.0) {
            (None, None) => TextChars(None),
            (a, b) => TextChars(Some(a.unwrap_or(0) + b.unwrap_or(0))),
        }
    }
}

impl<'de> Deserialize<'de> for TextChars {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TextChars;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            accept_scalars!(TextChars(None));
            fn visit_str<E: de::Error>(self, s: &str) -> Result<TextChars, E> {
                Ok(TextChars(Some(s.chars().count() as u64)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TextChars, A::Error> {
                let mut total = TextChars(None);
                while let Some(part) = seq.next_element::<TextChars>()? {
                    total = total.add(part);
                }
                Ok(total)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TextChars, A::Error> {
                let mut total = TextChars(None);
                while let Some(key) = map.next_key::<Key>()? {
                    match key.0.as_str() {
                        "text" | "parts" => total = total.add(map.next_value::<TextChars>()?),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(total)
            }
        }
        d.deserialize_any(V)
    }
}

/// A map key (owned: keys with escapes cannot be borrowed).
pub(crate) struct Key(pub String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Key)
    }
}

/// An optional string that accepts any JSON value (anything else is `None`).
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct AnyString(pub Option<String>);

impl<'de> Deserialize<'de> for AnyString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AnyString;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            accept_scalars!(AnyString(None));
            fn visit_str<E: de::Error>(self, s: &str) -> Result<AnyString, E> {
                Ok(AnyString(Some(s.to_string())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AnyString, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(AnyString(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AnyString, A::Error> {
                drain_map!(map);
                Ok(AnyString(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A conversation (OpenAI `messages`, Responses `input`): how many items, and the size of
/// the text of the `system` and `developer` items (`None` when there is none).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct Conversation {
    pub items: Option<u64>,
    pub system_chars: Option<u64>,
}

impl<'de> Deserialize<'de> for Conversation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// One item: its role and the size of its text.
        struct Item {
            role: Option<String>,
            chars: TextChars,
        }
        impl<'de> Deserialize<'de> for Item {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = Item;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str("any JSON value")
                    }
                    accept_scalars!(Item {
                        role: None,
                        chars: TextChars(None)
                    });
                    fn visit_str<E: de::Error>(self, _: &str) -> Result<Item, E> {
                        Ok(Item {
                            role: None,
                            chars: TextChars(None),
                        })
                    }
                    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Item, A::Error> {
                        while seq.next_element::<IgnoredAny>()?.is_some() {}
                        Ok(Item {
                            role: None,
                            chars: TextChars(None),
                        })
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
                        let mut item = Item {
                            role: None,
                            chars: TextChars(None),
                        };
                        while let Some(key) = map.next_key::<Key>()? {
                            match key.0.as_str() {
                                "role" => item.role = map.next_value::<AnyString>()?.0,
                                "content" => item.chars = map.next_value::<TextChars>()?,
                                _ => {
                                    map.next_value::<IgnoredAny>()?;
                                }
                            }
                        }
                        Ok(item)
                    }
                }
                d.deserialize_any(V)
            }
        }

        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Conversation;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            accept_scalars!(Conversation::default());
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Conversation, E> {
                // the Responses API's `input` may be one string: one user message
                Ok(Conversation {
                    items: Some(1),
                    system_chars: None,
                })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Conversation, A::Error> {
                let mut conversation = Conversation {
                    items: Some(0),
                    system_chars: None,
                };
                let mut system = TextChars(None);
                while let Some(item) = seq.next_element::<Item>()? {
                    conversation.items = conversation.items.map(|n| n + 1);
                    if matches!(item.role.as_deref(), Some("system" | "developer")) {
                        system = system.add(TextChars(Some(item.chars.0.unwrap_or(0))));
                    }
                }
                conversation.system_chars = system.0;
                Ok(conversation)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Conversation, A::Error> {
                drain_map!(map);
                Ok(Conversation::default())
            }
        }
        d.deserialize_any(V)
    }
}

/// Gemini `tools`: each function declaration counts as one tool, and so does each other
/// tool entry (`googleSearch`, `codeExecution`, …).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct GeminiTools(pub Option<u64>);

impl<'de> Deserialize<'de> for GeminiTools {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Tool(u64);
        impl<'de> Deserialize<'de> for Tool {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = Tool;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str("any JSON value")
                    }
                    accept_scalars!(Tool(0));
                    fn visit_str<E: de::Error>(self, _: &str) -> Result<Tool, E> {
                        Ok(Tool(0))
                    }
                    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tool, A::Error> {
                        while seq.next_element::<IgnoredAny>()?.is_some() {}
                        Ok(Tool(0))
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tool, A::Error> {
                        let mut n = 0;
                        while let Some(key) = map.next_key::<Key>()? {
                            match key.0.as_str() {
                                "functionDeclarations" | "function_declarations" => {
                                    n += map.next_value::<Count>()?.0.unwrap_or(0);
                                }
                                _ => {
                                    map.next_value::<IgnoredAny>()?;
                                    n += 1;
                                }
                            }
                        }
                        Ok(Tool(n))
                    }
                }
                d.deserialize_any(V)
            }
        }

        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = GeminiTools;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            accept_scalars!(GeminiTools(None));
            fn visit_str<E: de::Error>(self, _: &str) -> Result<GeminiTools, E> {
                Ok(GeminiTools(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<GeminiTools, A::Error> {
                let mut n = 0;
                while let Some(tool) = seq.next_element::<Tool>()? {
                    n += tool.0;
                }
                Ok(GeminiTools(Some(n)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<GeminiTools, A::Error> {
                drain_map!(map);
                Ok(GeminiTools(None))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(body: &str) -> Vec<(String, Value)> {
        let mut m = Members::new(body.as_bytes());
        let mut out = Vec::new();
        while let Some(k) = m.next_key() {
            match m.value::<Value>() {
                Some(v) => out.push((k, v)),
                None => break,
            }
        }
        out
    }

    #[test]
    fn members_of_a_whole_and_a_cut_body() {
        let whole = r#" { "model" : "m", "n": 12, "a": [1, {"b": "}"}], "s": "x\"y" } "#;
        let got = keys(whole);
        assert_eq!(got.len(), 4);
        assert_eq!(got[3].1, Value::String("x\"y".into()));
        for cut in 0..whole.len() {
            let got = keys(&whole[..cut]);
            // never a value that did not arrive whole (a number may be cut in its digits)
            for (k, v) in &got {
                match k.as_str() {
                    "model" => assert_eq!(v, "m"),
                    "a" => assert_eq!(v.as_array().unwrap().len(), 2),
                    "s" => assert_eq!(v, "x\"y"),
                    "n" => {}
                    other => panic!("unexpected key {other}"),
                }
            }
        }
        assert!(keys("not json").is_empty());
        assert!(keys("[1,2]").is_empty());
        assert!(keys("{}").is_empty());
    }

    #[test]
    fn lenient_shapes() {
        let c: Count = serde_json::from_str("[1, [2], {\"a\": 3}]").unwrap();
        assert_eq!(c, Count(Some(3)));
        let c: Count = serde_json::from_str("{\"a\": [1]}").unwrap();
        assert_eq!(c, Count(None));
        let t: TextChars =
            serde_json::from_str(r#"[{"type":"text","text":"héllo"},{"type":"image"},"ab"]"#)
                .unwrap();
        assert_eq!(t, TextChars(Some(7)));
        let t: TextChars =
            serde_json::from_str(r#"{"parts":[{"text":"abc"},{"text":"d"}]}"#).unwrap();
        assert_eq!(t, TextChars(Some(4)));
        let t: TextChars = serde_json::from_str("42").unwrap();
        assert_eq!(t, TextChars(None));
    }

    #[test]
    fn arrays() {
        assert_eq!(array_elements(b"[{\"a\":1},\r\n{\"a\":2}]").len(), 2);
        assert_eq!(array_elements(b"[{\"a\":1},\r\n{\"a\":").len(), 1);
        assert_eq!(array_elements(b"{}").len(), 0);
        assert_eq!(array_elements(b"[]").len(), 0);
    }

    #[test]
    fn counts() {
        assert_eq!(count(Some(&serde_json::json!(12))), Some(12));
        assert_eq!(count(Some(&serde_json::json!(12.0))), Some(12));
        assert_eq!(count(Some(&serde_json::json!("12"))), Some(12));
        assert_eq!(count(Some(&serde_json::json!(-1))), None);
        assert_eq!(count(Some(&serde_json::json!(1.5))), None);
        assert_eq!(count(Some(&Value::Null)), None);
        assert_eq!(count(None), None);
    }
}
