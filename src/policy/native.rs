//! The common shapes of policy rules — comparisons of request fields with literals,
//! `startsWith` / `endsWith` / `contains`, `in`, joined by `&&`, `||` and `!` — evaluated
//! natively. The CEL interpreter allocates a value tree per request; most rules need none
//! of it. Anything outside this subset, and any case where CEL would raise an error (a
//! missing header), is left to the interpreter, so the answer is always CEL's.

use cel::IdedExpr;
use cel::common::ast::{Expr, LiteralValue};

use super::facts::Facts;

/// A string the rule reads from the request.
#[derive(Debug, Clone, PartialEq)]
pub enum Text {
    Method,
    Scheme,
    Host,
    Path,
    Query,
    Url,
    SourceIp,
    Listener,
    ToolName,
    /// `request.headers["name"]`: missing is an error in CEL, so the interpreter decides.
    Header(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    Port,
    BodySize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Order {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StrTest {
    StartsWith,
    EndsWith,
    Contains,
}

/// A rule in the native subset.
#[derive(Debug, Clone, PartialEq)]
pub enum Native {
    Const(bool),
    And(Box<Native>, Box<Native>),
    Or(Box<Native>, Box<Native>),
    Not(Box<Native>),
    TextEq {
        field: Text,
        value: String,
        equal: bool,
    },
    TextTest {
        field: Text,
        test: StrTest,
        value: String,
    },
    TextIn {
        field: Text,
        values: Vec<String>,
    },
    HasHeader(String),
    Compare {
        field: Number,
        order: Order,
        value: i64,
    },
}

/// The interpreter must answer (CEL would raise an error here).
pub struct Undecided;

impl Native {
    /// The native form of `expr`, when it is in the subset.
    pub fn compile(expr: &IdedExpr) -> Option<Native> {
        match &expr.expr {
            Expr::Literal(LiteralValue::Boolean(b)) => Some(Native::Const(**b)),
            Expr::Call(call) => {
                let args = call.args.as_slice();
                match (call.func_name.as_str(), call.target.as_deref(), args) {
                    ("_&&_", None, [a, b]) => Some(Native::And(
                        Box::new(Native::compile(a)?),
                        Box::new(Native::compile(b)?),
                    )),
                    ("_||_", None, [a, b]) => Some(Native::Or(
                        Box::new(Native::compile(a)?),
                        Box::new(Native::compile(b)?),
                    )),
                    ("!_", None, [a]) => Some(Native::Not(Box::new(Native::compile(a)?))),
                    ("@in", None, [item, container]) => {
                        if is_headers(container) {
                            return string(item).map(Native::HasHeader);
                        }
                        let field = text(item)?;
                        let Expr::List(list) = &container.expr else {
                            return None;
                        };
                        let values = list.elements.iter().map(string).collect::<Option<_>>()?;
                        Some(Native::TextIn { field, values })
                    }
                    (op, None, [a, b]) => {
                        let order = match op {
                            "_==_" => Order::Eq,
                            "_!=_" => Order::Ne,
                            "_<_" => Order::Lt,
                            "_<=_" => Order::Le,
                            "_>_" => Order::Gt,
                            "_>=_" => Order::Ge,
                            _ => return None,
                        };
                        // field OP literal, or literal OP field (the order turned round).
                        if let (Some(field), Some(value)) = (text(a), string(b)) {
                            return text_eq(field, order, value);
                        }
                        if let (Some(value), Some(field)) = (string(a), text(b)) {
                            return text_eq(field, order, value);
                        }
                        if let (Some(field), Some(value)) = (number(a), int(b)) {
                            return Some(Native::Compare {
                                field,
                                order,
                                value,
                            });
                        }
                        if let (Some(value), Some(field)) = (int(a), number(b)) {
                            return Some(Native::Compare {
                                field,
                                order: flip(order),
                                value,
                            });
                        }
                        None
                    }
                    (name, Some(target), [arg]) => {
                        let test = match name {
                            "startsWith" => StrTest::StartsWith,
                            "endsWith" => StrTest::EndsWith,
                            "contains" => StrTest::Contains,
                            _ => return None,
                        };
                        Some(Native::TextTest {
                            field: text(target)?,
                            test,
                            value: string(arg)?,
                        })
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// CEL's answer for `facts`, or [`Undecided`] where CEL would raise an error.
    pub fn eval(&self, facts: &Facts) -> Result<bool, Undecided> {
        Ok(match self {
            Native::Const(b) => *b,
            // CEL's logic absorbs errors where the other side decides: `false && error` is
            // false, `true || error` is true.
            Native::And(a, b) => match (a.eval(facts), b.eval(facts)) {
                (Ok(false), _) | (_, Ok(false)) => false,
                (Ok(true), Ok(true)) => true,
                _ => return Err(Undecided),
            },
            Native::Or(a, b) => match (a.eval(facts), b.eval(facts)) {
                (Ok(true), _) | (_, Ok(true)) => true,
                (Ok(false), Ok(false)) => false,
                _ => return Err(Undecided),
            },
            Native::Not(a) => !a.eval(facts)?,
            Native::TextEq {
                field,
                value,
                equal,
            } => (read(facts, field)? == value.as_str()) == *equal,
            Native::TextTest { field, test, value } => {
                let s = read(facts, field)?;
                match test {
                    StrTest::StartsWith => s.starts_with(value.as_str()),
                    StrTest::EndsWith => s.ends_with(value.as_str()),
                    StrTest::Contains => s.contains(value.as_str()),
                }
            }
            Native::TextIn { field, values } => {
                let s = read(facts, field)?;
                values.iter().any(|v| v == s)
            }
            Native::HasHeader(name) => facts.headers.iter().any(|(n, _)| n == name),
            Native::Compare {
                field,
                order,
                value,
            } => {
                let n = match field {
                    Number::Port => i64::from(facts.port),
                    Number::BodySize => facts.body_size,
                };
                match order {
                    Order::Eq => n == *value,
                    Order::Ne => n != *value,
                    Order::Lt => n < *value,
                    Order::Le => n <= *value,
                    Order::Gt => n > *value,
                    Order::Ge => n >= *value,
                }
            }
        })
    }
}

fn text_eq(field: Text, order: Order, value: String) -> Option<Native> {
    let equal = match order {
        Order::Eq => true,
        Order::Ne => false,
        _ => return None,
    };
    Some(Native::TextEq {
        field,
        value,
        equal,
    })
}

fn flip(order: Order) -> Order {
    match order {
        Order::Lt => Order::Gt,
        Order::Le => Order::Ge,
        Order::Gt => Order::Lt,
        Order::Ge => Order::Le,
        same => same,
    }
}

fn read<'f>(facts: &'f Facts, field: &Text) -> Result<&'f str, Undecided> {
    Ok(match field {
        Text::Method => &facts.method,
        Text::Scheme => &facts.scheme,
        Text::Host => &facts.host,
        Text::Path => &facts.path,
        Text::Query => &facts.query,
        Text::Url => &facts.url,
        Text::SourceIp => &facts.source_ip,
        Text::Listener => &facts.listener,
        Text::ToolName => return facts.tool_name_ref().ok_or(Undecided),
        Text::Header(name) => facts
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .ok_or(Undecided)?,
    })
}

fn string(e: &IdedExpr) -> Option<String> {
    match &e.expr {
        Expr::Literal(LiteralValue::String(s)) => Some(s.inner().to_string()),
        _ => None,
    }
}

fn int(e: &IdedExpr) -> Option<i64> {
    match &e.expr {
        Expr::Literal(LiteralValue::Int(i)) => Some(**i),
        _ => None,
    }
}

/// `root.field`
fn select<'a>(e: &'a IdedExpr, root: &str) -> Option<&'a str> {
    match &e.expr {
        Expr::Select(sel) if !sel.test => match &sel.operand.expr {
            Expr::Ident(i) if i == root => Some(sel.field.as_str()),
            _ => None,
        },
        _ => None,
    }
}

fn is_headers(e: &IdedExpr) -> bool {
    select(e, "request") == Some("headers")
}

fn text(e: &IdedExpr) -> Option<Text> {
    if let Expr::Ident(i) = &e.expr {
        return (i == "listener").then_some(Text::Listener);
    }
    if let Expr::Call(call) = &e.expr
        && call.func_name == "_[_]"
        && call.target.is_none()
        && let [container, key] = call.args.as_slice()
    {
        let key = string(key)?;
        if is_headers(container) {
            return Some(Text::Header(key));
        }
        if matches!(&container.expr, Expr::Ident(i) if i == "attrs") {
            return match key.as_str() {
                "tool.name" => Some(Text::ToolName),
                "http.url" => Some(Text::Url),
                _ => None,
            };
        }
        return None;
    }
    if select(e, "source") == Some("ip") {
        return Some(Text::SourceIp);
    }
    match select(e, "request")? {
        "method" => Some(Text::Method),
        "scheme" => Some(Text::Scheme),
        "host" => Some(Text::Host),
        "path" => Some(Text::Path),
        "query" => Some(Text::Query),
        "url" => Some(Text::Url),
        _ => None,
    }
}

fn number(e: &IdedExpr) -> Option<Number> {
    match select(e, "request")? {
        "port" => Some(Number::Port),
        "body_size" => Some(Number::BodySize),
        _ => None,
    }
}
