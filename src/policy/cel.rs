//! CEL expressions over a request (SPEC 7), with the `cel` crate. It has no type checker:
//! a rule is checked when loaded by the variables it names and by one evaluation against a
//! made-up request, so a typo is a config error rather than a block at run time.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use cel::objects::{Key, Map, Value};
use cel::{Context, Env, ExecutionError, Program};

/// The standard environment, built once (building it per request would dominate).
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

const VARIABLES: &[&str] = &["request", "source", "listener", "attrs"];

/// What an expression can see about one request.
#[derive(Debug, Clone)]
pub struct Facts {
    pub method: String,
    pub scheme: String,
    pub host: String,
    pub port: u16,
    pub path: String,
    pub query: String,
    pub url: String,
    /// Lower-case names; repeated headers joined with ", ".
    pub headers: Vec<(String, String)>,
    /// -1 when unknown.
    pub body_size: i64,
    pub source_ip: String,
    pub listener: String,
}

impl Facts {
    fn bind(&self, context: &mut Context<'_, '_>) {
        let mut headers: HashMap<Key, Value> = HashMap::new();
        for (name, value) in &self.headers {
            headers.insert(Key::from(name.clone()), Value::from(value.clone()));
        }
        let mut request: HashMap<Key, Value> = HashMap::new();
        let s = |v: &str| Value::String(Arc::new(v.to_string()));
        request.insert(Key::from("method"), s(&self.method));
        request.insert(Key::from("scheme"), s(&self.scheme));
        request.insert(Key::from("host"), s(&self.host));
        request.insert(Key::from("port"), Value::Int(i64::from(self.port)));
        request.insert(Key::from("path"), s(&self.path));
        request.insert(Key::from("query"), s(&self.query));
        request.insert(Key::from("url"), s(&self.url));
        request.insert(
            Key::from("headers"),
            Value::Map(Map {
                map: Arc::new(headers),
            }),
        );
        request.insert(Key::from("body_size"), Value::Int(self.body_size));
        let mut source: HashMap<Key, Value> = HashMap::new();
        source.insert(Key::from("ip"), s(&self.source_ip));
        let mut attrs: HashMap<Key, Value> = HashMap::new();
        attrs.insert(
            Key::from("tool.name"),
            s(&format!("http.{}", self.method.to_ascii_lowercase())),
        );
        attrs.insert(Key::from("http.url"), s(&self.url));
        context.add_variable_from_value(
            "request",
            Value::Map(Map {
                map: Arc::new(request),
            }),
        );
        context.add_variable_from_value(
            "source",
            Value::Map(Map {
                map: Arc::new(source),
            }),
        );
        context.add_variable_from_value("listener", s(&self.listener));
        context.add_variable_from_value(
            "attrs",
            Value::Map(Map {
                map: Arc::new(attrs),
            }),
        );
    }

    /// The request a rule is tried on when it is loaded.
    fn sample() -> Facts {
        Facts {
            method: "POST".into(),
            scheme: "https".into(),
            host: "api.example.com".into(),
            port: 443,
            path: "/v1/items".into(),
            query: "a=1".into(),
            url: "https://api.example.com/v1/items?a=1".into(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("user-agent".into(), "airlock-check".into()),
            ],
            body_size: 2,
            source_ip: "127.0.0.1".into(),
            listener: "proxy".into(),
        }
    }
}

/// One compiled `match` expression.
pub struct CelRule {
    program: Program,
}

impl std::fmt::Debug for CelRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CelRule")
    }
}

impl CelRule {
    /// Compiles and checks `expr`; the error is one line for the config message.
    pub fn compile(expr: &str) -> Result<CelRule, String> {
        let program = ENV.compile(expr).map_err(|e| {
            format!(
                "does not compile: {}",
                e.to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        })?;
        let references = program.references();
        for name in references.variables() {
            if !VARIABLES.contains(&name) {
                return Err(format!(
                    "unknown name {name:?} (an expression sees request, source, listener and attrs)"
                ));
            }
        }
        let rule = CelRule { program };
        match rule.run(&Facts::sample()) {
            Ok(_) => Ok(rule),
            // A header or attribute missing from the made-up request proves nothing.
            Err(ExecutionError::NoSuchKey(_)) => Ok(rule),
            Err(ExecutionError::UnexpectedType { got, want }) if want == "bool" => {
                Err(format!("must be a boolean expression (it gives a {got})"))
            }
            Err(e) => Err(format!("cannot be evaluated: {e}")),
        }
    }

    /// Whether the expression holds for `facts`; an error blocks (fail closed).
    pub fn matches(&self, facts: &Facts) -> Result<bool, String> {
        self.run(facts).map_err(|e| e.to_string())
    }

    fn run(&self, facts: &Facts) -> Result<bool, ExecutionError> {
        let mut context = Context::with_env(ENV.clone());
        facts.bind(&mut context);
        match self.program.execute(&context)? {
            Value::Bool(b) => Ok(b),
            other => Err(ExecutionError::UnexpectedType {
                got: format!("{:?}", other.type_of()),
                want: "bool".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            method: "POST".into(),
            scheme: "https".into(),
            host: "gist.github.com".into(),
            port: 443,
            path: "/gists".into(),
            query: String::new(),
            url: "https://gist.github.com/gists".into(),
            headers: vec![("x-tool".into(), "curl".into())],
            body_size: 10,
            source_ip: "127.0.0.1".into(),
            listener: "proxy".into(),
        }
    }

    #[test]
    fn the_spec_attributes_are_there() {
        for (expr, want) in [
            (
                r#"request.method == "POST" && request.host.endsWith("github.com")"#,
                true,
            ),
            (r#"attrs["tool.name"] == "http.post""#, true),
            (r#"attrs["http.url"].startsWith("https://gist.")"#, true),
            (r#"request.port == 443 && request.body_size > 5"#, true),
            (r#"request.headers["x-tool"] == "curl""#, true),
            (r#"listener == "proxy" && source.ip == "127.0.0.1""#, true),
            (r#"request.path.startsWith("/admin")"#, false),
        ] {
            let rule = CelRule::compile(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
            assert_eq!(rule.matches(&facts()).unwrap(), want, "{expr}");
        }
    }

    #[test]
    fn mistakes_are_caught_when_loaded_and_failures_at_run_time() {
        assert!(CelRule::compile("request.method ==").is_err());
        assert!(CelRule::compile(r#"reqest.host == "x""#).is_err());
        assert!(CelRule::compile("request.port + 1").is_err());
        let missing = CelRule::compile(r#"request.headers["x-missing"] == "a""#).unwrap();
        assert!(missing.matches(&facts()).is_err());
    }
}
