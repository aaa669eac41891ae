//! A destination's field selection: only the listed dotted paths of the event's object are
//! sent (a path naming a subtree keeps all of it); the envelope is always whole.

use serde_json::{Map, Value};

/// Keeps only `paths` (e.g. `conn.client_ip`, `http.request`) of `object`.
pub fn select(object: &Value, paths: &[String]) -> Value {
    let mut out = Value::Object(Map::new());
    for path in paths {
        let parts: Vec<&str> = path.split('.').collect();
        if let Some(found) = lookup(object, &parts) {
            insert(&mut out, &parts, found.clone());
        }
    }
    out
}

fn lookup<'v>(v: &'v Value, parts: &[&str]) -> Option<&'v Value> {
    parts.iter().try_fold(v, |v, p| v.get(p))
}

fn insert(out: &mut Value, parts: &[&str], value: Value) {
    let Some((last, parents)) = parts.split_last() else {
        return;
    };
    let mut node = out;
    for p in parents {
        let Value::Object(map) = node else { return };
        node = map
            .entry(p.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if let Value::Object(map) = node {
        map.insert(last.to_string(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_only_selected_paths() {
        let obj = json!({"conn": {"client_ip": "1.2.3.4", "server_port": 80}, "http": {"request": {"method": "get"}}});
        let picked = select(
            &obj,
            &["conn.client_ip".into(), "http".into(), "nope.x".into()],
        );
        assert_eq!(
            picked,
            json!({"conn": {"client_ip": "1.2.3.4"}, "http": {"request": {"method": "get"}}})
        );
    }
}
