//! A destination's CEL `filter` over `ev` (the event's object), as in ngrok's event
//! subscriptions: compiled once at start, evaluated per event.

use cel::{Context, Env, Program, Value};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

/// The CEL standard library; filters need nothing of ngrok's policy functions.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

/// Why a filter expression does not compile: cel's parse errors, one per line.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct FilterError(#[from] cel::ParseErrors);

/// A compiled filter expression.
pub struct EventFilter {
    program: Program,
}

impl EventFilter {
    /// Compiles `expr`; the error says what is wrong with it.
    pub fn compile(expr: &str) -> Result<Self, FilterError> {
        let program = ENV.compile(expr)?;
        Ok(Self { program })
    }

    /// Whether the event passes. Anything but `true` (including an evaluation error, such as a
    /// field missing from this event) means the event is not sent to this destination.
    pub fn accepts(&self, ev: &Value) -> bool {
        let mut ctx = Context::with_env(ENV.clone());
        ctx.add_variable_from_value("ev", ev.clone());
        matches!(self.program.execute(&ctx), Ok(Value::Bool(true)))
    }
}

/// JSON as a CEL value: integers as `int` (so `ev.http.response.status_code >= 500` compares
/// like with like), other numbers as `double`.
pub fn to_cel(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(Value::Int)
            .unwrap_or_else(|| Value::Float(n.as_f64().unwrap_or_default())),
        serde_json::Value::String(s) => Value::from(s.clone()),
        serde_json::Value::Array(items) => {
            Value::from(items.iter().map(to_cel).collect::<Vec<_>>())
        }
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), to_cel(v)))
            .collect::<HashMap<_, _>>()
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_see_the_object_as_ev() {
        let ev = to_cel(
            &json!({"http": {"response": {"status_code": 503}}, "conn": {"server_port": 80}}),
        );
        let f = EventFilter::compile("ev.http.response.status_code >= 500").expect("compiles");
        assert!(f.accepts(&ev));
        let f = EventFilter::compile("ev.conn.server_port == 443").expect("compiles");
        assert!(!f.accepts(&ev));
        let f = EventFilter::compile("ev.missing.field == 1").expect("compiles");
        assert!(!f.accepts(&ev), "an error means no");
        assert!(EventFilter::compile("ev.http.(").is_err());
    }
}
