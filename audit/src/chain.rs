//! The per-tenant hash chain: `hash = SHA-256(prev_hash || chain_seq || canonical(envelope))`,
//! where the canonical encoding is JSON with object keys sorted and no whitespace, written here
//! explicitly so no serializer setting can change what was hashed. The first link's `prev_hash`
//! is 32 zero bytes.

use serde_json::Value;
use sha2::{Digest, Sha256};

pub const GENESIS: [u8; 32] = [0; 32];

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
