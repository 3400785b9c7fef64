//! CEL expressions over a request (SPEC 7), with the `cel` crate. It has no type checker:
//! a rule is checked when loaded by the variables it names and by one evaluation against a
//! made-up request, so a typo is a config error rather than a block at run time.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use cel::common::ast::{Expr, LiteralValue};
use cel::common::types::{CelInt, CelMap, CelMapKey, CelString};
use cel::common::value::Val;
use cel::objects::Value;
use cel::{Context, Env, ExecutionError, IdedExpr, Program};

use super::facts::Facts;
use super::native::Native;

/// The standard environment, built once (building it per request would dominate).
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

const VARIABLES: &[&str] = &["request", "source", "listener", "attrs"];

/// The variables of one request, bound once and shared by every rule evaluated on it. The
/// values borrow the facts: binding copies no string.
pub struct Bound<'f> {
    context: Context<'f, 'f>,
}

type Entries<'f> = HashMap<CelMapKey<'f>, Box<dyn Val + 'f>>;

fn text<'f>(value: &'f str) -> Box<dyn Val + 'f> {
    Box::new(CelString::from(value))
}

fn key(name: &'static str) -> CelMapKey<'static> {
    CelMapKey::String(CelString::from(name))
}

fn map<'f>(entries: Entries<'f>) -> Box<dyn Val + 'f> {
    Box::new(CelMap::from(entries))
}

impl Facts {
    /// Binds the facts for evaluation (once per request).
    pub fn bind_all(&self) -> Bound<'_> {
        let mut headers: Entries<'_> = HashMap::with_capacity(self.headers.len());
        for (name, value) in &self.headers {
            headers.insert(
                CelMapKey::String(CelString::from(name.as_str())),
                text(value),
            );
        }
        let mut request: Entries<'_> = HashMap::with_capacity(9);
        request.insert(key("method"), text(&self.method));
        request.insert(key("scheme"), text(&self.scheme));
        request.insert(key("host"), text(&self.host));
        request.insert(key("port"), Box::new(CelInt::from(i64::from(self.port))));
        request.insert(key("path"), text(&self.path));
        request.insert(key("query"), text(&self.query));
        request.insert(key("url"), text(&self.url));
        request.insert(key("headers"), map(headers));
        request.insert(key("body_size"), Box::new(CelInt::from(self.body_size)));
        let mut source: Entries<'_> = HashMap::with_capacity(1);
        source.insert(key("ip"), text(&self.source_ip));
        let mut attrs: Entries<'_> = HashMap::with_capacity(2);
        attrs.insert(
            key("tool.name"),
            Box::new(CelString::from(self.tool_name())),
        );
        attrs.insert(key("http.url"), text(&self.url));
        let mut context = Context::with_env(ENV.clone());
        context.add_variable_as_val("request", map(request));
        context.add_variable_as_val("source", map(source));
        context.add_variable_as_val("listener", text(&self.listener));
        context.add_variable_as_val("attrs", map(attrs));
        Bound { context }
    }

    /// `attrs["tool.name"]`: `http.` and the lower-case method.
    fn tool_name(&self) -> String {
        format!("http.{}", self.method.to_ascii_lowercase())
    }

    /// [`Facts::tool_name`] without allocating, for the usual methods.
    pub fn tool_name_ref(&self) -> Option<&'static str> {
        Some(match self.method.as_str() {
            "GET" => "http.get",
            "POST" => "http.post",
            "PUT" => "http.put",
            "PATCH" => "http.patch",
            "DELETE" => "http.delete",
            "HEAD" => "http.head",
            "OPTIONS" => "http.options",
            "CONNECT" => "http.connect",
            _ => return None,
        })
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

/// A test on `request.host` that a rule's expression requires (`request.host == "x" && …`):
/// checked natively first, so a rule about another host costs a string comparison.
#[derive(Debug, Clone, PartialEq)]
enum HostGuard {
    Equals(String),
    EndsWith(String),
    StartsWith(String),
    Contains(String),
    OneOf(Vec<String>),
}

impl HostGuard {
    fn admits(&self, host: &str) -> bool {
        match self {
            HostGuard::Equals(s) => host == s,
            HostGuard::EndsWith(s) => host.ends_with(s.as_str()),
            HostGuard::StartsWith(s) => host.starts_with(s.as_str()),
            HostGuard::Contains(s) => host.contains(s.as_str()),
            HostGuard::OneOf(list) => list.iter().any(|s| s == host),
        }
    }

    /// The guards among the conjuncts of `expr`.
    fn of(expr: &IdedExpr, out: &mut Vec<HostGuard>) {
        let Expr::Call(call) = &expr.expr else { return };
        if call.func_name == "_&&_" {
            for arg in &call.args {
                HostGuard::of(arg, out);
            }
            return;
        }
        let is_host = |e: &IdedExpr| {
            matches!(&e.expr, Expr::Select(sel)
                if sel.field == "host" && !sel.test
                    && matches!(&sel.operand.expr, Expr::Ident(i) if i == "request"))
        };
        let literal = |e: &IdedExpr| match &e.expr {
            Expr::Literal(LiteralValue::String(s)) => Some(s.inner().to_string()),
            _ => None,
        };
        match (
            call.func_name.as_str(),
            call.target.as_deref(),
            call.args.as_slice(),
        ) {
            ("_==_", None, [a, b]) => {
                if is_host(a)
                    && let Some(s) = literal(b)
                {
                    out.push(HostGuard::Equals(s));
                } else if is_host(b)
                    && let Some(s) = literal(a)
                {
                    out.push(HostGuard::Equals(s));
                }
            }
            ("@in", None, [a, list]) if is_host(a) => {
                if let Expr::List(items) = &list.expr {
                    let values: Option<Vec<String>> = items.elements.iter().map(literal).collect();
                    if let Some(values) = values {
                        out.push(HostGuard::OneOf(values));
                    }
                }
            }
            (name, Some(target), [arg]) if is_host(target) => {
                if let Some(s) = literal(arg) {
                    match name {
                        "endsWith" => out.push(HostGuard::EndsWith(s)),
                        "startsWith" => out.push(HostGuard::StartsWith(s)),
                        "contains" => out.push(HostGuard::Contains(s)),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
}

/// The facts of one request on their way through the rules: bound for the interpreter
/// only when a rule needs it.
pub struct Evaluation<'f> {
    facts: &'f Facts,
    bound: std::cell::OnceCell<Bound<'f>>,
}

impl<'f> Evaluation<'f> {
    pub fn new(facts: &'f Facts) -> Self {
        Evaluation {
            facts,
            bound: std::cell::OnceCell::new(),
        }
    }

    fn bound(&self) -> &Bound<'f> {
        self.bound.get_or_init(|| self.facts.bind_all())
    }
}

/// One compiled `match` expression.
pub struct CelRule {
    program: Program,
    /// Tests on the host the expression cannot be true without.
    guards: Vec<HostGuard>,
    /// The same expression, evaluated without the interpreter (when it is simple enough).
    native: Option<Native>,
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
        let mut guards = Vec::new();
        HostGuard::of(program.expression(), &mut guards);
        let native = Native::compile(program.expression());
        let rule = CelRule {
            program,
            guards,
            native,
        };
        let sample = Facts::sample();
        let bound = sample.bind_all();
        match rule.run(&bound.context) {
            Ok(_) => Ok(rule),
            // A header or attribute missing from the made-up request proves nothing.
            Err(ExecutionError::NoSuchKey(_)) => Ok(rule),
            Err(ExecutionError::UnexpectedType { got, want }) if want == "bool" => {
                Err(format!("must be a boolean expression (it gives a {got})"))
            }
            Err(e) => Err(format!("cannot be evaluated: {e}")),
        }
    }

    /// Whether the expression holds for the request; an error blocks (fail closed).
    pub fn matches(&self, eval: &Evaluation<'_>) -> Result<bool, String> {
        // `false && anything` is false in CEL, errors included: a failed guard decides.
        if !self.guards.iter().all(|g| g.admits(&eval.facts.host)) {
            return Ok(false);
        }
        if let Some(native) = &self.native
            && let Ok(answer) = native.eval(eval.facts)
        {
            return Ok(answer);
        }
        self.run(&eval.bound().context).map_err(|e| e.to_string())
    }

    /// The interpreter's answer alone (for tests comparing it with the native one).
    #[cfg(test)]
    pub fn interpreted(&self, facts: &Facts) -> Result<bool, String> {
        self.run(&facts.bind_all().context)
            .map_err(|e| e.to_string())
    }

    /// Whether the native fast path took the expression (for the differential test).
    #[cfg(test)]
    pub fn has_native(&self) -> bool {
        self.native.is_some()
    }

    /// The native answer alone, where it gives one (no host guards, no interpreter).
    #[cfg(test)]
    pub fn native_only(&self, facts: &Facts) -> Option<bool> {
        self.native.as_ref()?.eval(facts).ok()
    }

    fn run(&self, context: &Context<'_, '_>) -> Result<bool, ExecutionError> {
        match self.program.execute(context)? {
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
            let f = facts();
            assert_eq!(rule.matches(&Evaluation::new(&f)).unwrap(), want, "{expr}");
            assert_eq!(rule.interpreted(&f).unwrap(), want, "{expr} (interpreted)");
        }
    }

    #[test]
    fn mistakes_are_caught_when_loaded_and_failures_at_run_time() {
        assert!(CelRule::compile("request.method ==").is_err());
        assert!(CelRule::compile(r#"reqest.host == "x""#).is_err());
        assert!(CelRule::compile("request.port + 1").is_err());
        let missing = CelRule::compile(r#"request.headers["x-missing"] == "a""#).unwrap();
        assert!(missing.matches(&Evaluation::new(&facts())).is_err());
    }

    #[test]
    fn host_guards_are_read_off_the_conjuncts() {
        let guards = |expr: &str| CelRule::compile(expr).unwrap().guards;
        assert_eq!(
            guards(r#"request.method == "POST" && request.host.endsWith(".github.com")"#),
            vec![HostGuard::EndsWith(".github.com".into())]
        );
        assert_eq!(
            guards(r#""api.x.com" == request.host"#),
            vec![HostGuard::Equals("api.x.com".into())]
        );
        assert_eq!(
            guards(r#"request.host in ["a.com", "b.com"] && request.path.startsWith("/v1")"#),
            vec![HostGuard::OneOf(vec!["a.com".into(), "b.com".into()])]
        );
        // Not a conjunct: no guard (the rule is always evaluated).
        assert!(guards(r#"request.host == "a.com" || request.method == "PUT""#).is_empty());
        assert!(guards(r#"!(request.host == "a.com")"#).is_empty());
        // A guard that fails decides without evaluating, errors included.
        let rule = CelRule::compile(
            r#"request.host == "other.com" && request.headers["x-missing"] == "a""#,
        )
        .unwrap();
        assert_eq!(rule.matches(&Evaluation::new(&facts())), Ok(false));
        let rule = CelRule::compile(
            r#"request.host == "gist.github.com" && request.headers["x-missing"] == "a""#,
        )
        .unwrap();
        assert!(rule.matches(&Evaluation::new(&facts())).is_err());
    }

    /// The native evaluation gives the interpreter's answer, case by case.
    #[test]
    fn native_and_interpreted_agree() {
        let exprs = [
            r#"request.method == "POST" && request.host.endsWith("github.com")"#,
            r#"request.method != "GET" || request.path.startsWith("/admin")"#,
            r#"!(request.host == "gist.github.com")"#,
            r#"request.port == 443 && request.body_size > 5 && request.body_size <= 10"#,
            r#"10 < request.body_size || 443 != request.port"#,
            r#""x-tool" in request.headers && request.headers["x-tool"] == "curl""#,
            r#"request.headers["x-missing"] == "a" || request.method == "POST""#,
            r#"request.headers["x-missing"] == "a" && request.method == "GET""#,
            r#"request.host in ["a.com", "gist.github.com"] && source.ip == "127.0.0.1""#,
            r#"attrs["tool.name"] == "http.post" && attrs["http.url"].contains("gists")"#,
            r#"listener == "proxy" && request.query.contains("x=1")"#,
            r#"request.scheme == "https" && request.url.startsWith("https://gist.")"#,
            "true",
            "false || request.port >= 1000",
        ];
        let mut natives = 0;
        for expr in exprs {
            let rule = CelRule::compile(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
            natives += usize::from(rule.native.is_some());
            for method in ["POST", "GET", "BREW"] {
                let mut f = facts();
                f.method = method.into();
                let native = rule.matches(&Evaluation::new(&f));
                let interpreted = rule.interpreted(&f);
                assert_eq!(native.is_ok(), interpreted.is_ok(), "{expr} {method}");
                if let (Ok(a), Ok(b)) = (native, interpreted) {
                    assert_eq!(a, b, "{expr} {method}");
                }
            }
        }
        assert_eq!(
            natives,
            exprs.len(),
            "every rule here is in the native subset"
        );
    }
}
