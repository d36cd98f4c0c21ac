//! The per-tenant hash chain: `hash = SHA-256(prev_hash || chain_seq || canonical(envelope))`,
//! where the canonical encoding is JSON with object keys sorted and no whitespace, written here
//! explicitly so no serializer setting can change what was hashed. The first link's `prev_hash`
//! is 32 zero bytes.

use serde_json::Value;
use sha2::{Digest, Sha256};

pub const GENESIS: [u8; 32] = [0; 32];

/// The columns stored (and shown by the audit view) beside each record, all derived from its
/// envelope, which alone is hashed. The sink writes them from here; verification derives them
/// again and reports a record whose columns say something its hashed envelope does not.
#[derive(Debug, Clone, PartialEq)]
pub struct Columns {
    pub event_type: String,
    pub actor: Value,
    pub actor_id: Option<String>,
    pub resource_kind: Option<String>,
    pub resource_id: Option<String>,
    pub request_id: Option<String>,
}

impl Columns {
    pub fn of(envelope: &Value) -> Self {
        let text = |path: &[&str]| {
            path.iter()
                .try_fold(envelope, |v, key| v.get(*key))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Self {
            event_type: text(&["type"]).unwrap_or_default(),
            actor: envelope.get("actor").cloned().unwrap_or(Value::Null),
            actor_id: text(&["actor", "id"]).or_else(|| text(&["actor", "name"])),
            resource_kind: text(&["payload", "resource", "kind"]),
            resource_id: text(&["payload", "resource", "id"]),
            request_id: text(&["request_id"]),
        }
    }
}

/// The `occurred_at` the envelope states, at the database's precision (microseconds).
pub fn occurred_at(envelope: &Value) -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::SubsecRound;
    let text = envelope.get("occurred_at")?.as_str()?;
    Some(
        chrono::DateTime::parse_from_rfc3339(text)
            .ok()?
            .to_utc()
            .trunc_subsecs(6),
    )
}

pub fn link(prev_hash: &[u8], chain_seq: i64, envelope: &Value) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash);
    hasher.update(chain_seq.to_be_bytes());
    let mut canonical = Vec::new();
    write_canonical(envelope, &mut canonical);
    hasher.update(&canonical);
    hasher.finalize().to_vec()
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(&Value::String(key.clone()), out);
                out.push(b':');
                if let Some(v) = map.get(key) {
                    write_canonical(v, out);
                }
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        // Scalars have one compact JSON form.
        scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_does_not_matter_but_every_value_does() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"y":[1,2],"x":"s"}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{ "a": {"x": "s", "y": [1, 2]}, "b": 1 }"#).unwrap();
        assert_eq!(link(&GENESIS, 1, &a), link(&GENESIS, 1, &b));
        let c: Value = serde_json::from_str(r#"{"b":2,"a":{"y":[1,2],"x":"s"}}"#).unwrap();
        assert_ne!(link(&GENESIS, 1, &a), link(&GENESIS, 1, &c));
        assert_ne!(
            link(&GENESIS, 1, &a),
            link(&GENESIS, 2, &a),
            "position is hashed"
        );
        assert_ne!(
            link(&GENESIS, 1, &a),
            link(&[1; 32], 1, &a),
            "the previous link is hashed"
        );
        assert_eq!(link(&GENESIS, 1, &a).len(), 32);
    }
}
