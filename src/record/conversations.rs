//! A session's transcript as the dashboard and `airlock logs --llm` show it: its turns in
//! order, each with the threats recorded on its exchange (the detections "where they
//! happened").

use serde_json::Value;

use super::store::{Store, StoreError};

/// `{"session": id, "turns": [turn record + "threats": [threat records]]}`, or `None`
/// when the store holds no turn of `session`.
pub fn session_view(store: &Store, session: &str) -> Result<Option<Value>, StoreError> {
    let rows = store.session_turns(session)?;
    if rows.is_empty() {
        return Ok(None);
    }
    let turns = with_threats(store, rows.iter().map(String::as_str))?;
    Ok(Some(
        serde_json::json!({"session": session, "turns": turns}),
    ))
}

/// Turn records (JSON text) as values, each with its exchange's threats.
pub fn with_threats<'a>(
    store: &Store,
    rows: impl Iterator<Item = &'a str>,
) -> Result<Vec<Value>, StoreError> {
    let mut turns: Vec<Value> = rows
        .filter_map(|r| serde_json::from_str::<Value>(r).ok())
        .collect();
    let ids: Vec<String> = turns
        .iter()
        .filter_map(|t| t.get("flow_id").and_then(Value::as_str).map(str::to_string))
        .collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let threats: Vec<Value> = store
        .threats_of_flows(&refs)?
        .iter()
        .filter_map(|t| serde_json::from_str(t).ok())
        .collect();
    for turn in &mut turns {
        let id = turn.get("flow_id").cloned();
        let mine: Vec<Value> = threats
            .iter()
            .filter(|t| t.get("flow_id").is_some() && t.get("flow_id") == id.as_ref())
            .cloned()
            .collect();
        if let Some(o) = turn.as_object_mut() {
            o.insert("threats".into(), Value::Array(mine));
        }
    }
    Ok(turns)
}
