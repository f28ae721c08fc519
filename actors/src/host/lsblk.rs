//! `lsblk --json` output, shared by the inspector (IPA's columns) and the installer (its
//! own): the document's rows, and column values read leniently, because lsblk prints
//! sizes, flags and sector sizes as JSON numbers, booleans or strings depending on its
//! version and options.

use serde_json::{Map, Value};

/// The rows of an `lsblk --json` document (`blockdevices`), each a JSON object.
pub fn rows(json: &str) -> Result<Vec<Map<String, Value>>, String> {
    let mut doc: Value =
        serde_json::from_str(json).map_err(|e| format!("invalid lsblk JSON: {e}"))?;
    let Some(Value::Array(rows)) = doc.get_mut("blockdevices").map(Value::take) else {
        return Err("lsblk JSON has no blockdevices list".to_string());
    };
    rows.into_iter()
        .map(|row| match row {
            Value::Object(obj) => Ok(obj),
            other => Err(format!("lsblk row is not an object: {other}")),
        })
        .collect()
}

/// A column as text (numbers and flags too); `None` when absent or null.
pub fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "1" } else { "0" }.to_string()),
        _ => None,
    }
}

/// A column as non-empty text.
pub fn non_empty(value: Option<&Value>) -> Option<String> {
    text(value).filter(|s| !s.is_empty())
}

/// A numeric column (`SIZE`, `LOG-SEC`…).
pub fn number(value: Option<&Value>) -> Option<u64> {
    match value? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A flag column (`RO`, `ROTA`): `true`, `1` or `"1"`/`"true"`.
pub fn flag(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0) != 0,
        Some(Value::String(s)) => matches!(s.trim(), "1" | "true" | "True"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_of_every_lsblk_flavour() {
        for (v, n, f) in [
            (json!(512), Some(512), true),
            (json!("4096"), Some(4096), false),
            (json!(" 7 "), Some(7), false),
            (json!(true), None, true),
            (json!("1"), Some(1), true),
            (json!(0), Some(0), false),
        ] {
            assert_eq!(number(Some(&v)), n, "{v}");
            assert_eq!(flag(Some(&v)), f, "{v}");
        }
        assert_eq!(text(Some(&json!(false))).as_deref(), Some("0"));
        assert_eq!(non_empty(Some(&json!(""))), None);
        assert_eq!(text(Some(&json!(""))).as_deref(), Some(""));
        assert_eq!(text(None), None);
        assert!(!flag(None));
    }

    #[test]
    fn rows_need_a_blockdevices_list_of_objects() {
        assert_eq!(
            rows(r#"{"blockdevices": [{"kname": "sda"}]}"#)
                .unwrap()
                .len(),
            1
        );
        assert!(rows("{}").unwrap_err().contains("no blockdevices"));
        assert!(rows(r#"{"blockdevices": [1]}"#)
            .unwrap_err()
            .contains("not an object"));
        assert!(rows("not json").unwrap_err().contains("invalid lsblk JSON"));
    }
}
