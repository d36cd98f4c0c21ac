//! Blind indexes: equality lookup over encrypted values. `HMAC-SHA256(tenant index key,
//! kind || normalized value)`. The index key is per tenant and stored only wrapped by the KEK.
//!
//! Leakage, by design: equal values in one tenant have equal indexes, so someone with database
//! access learns *which rows share* an email or phone (and how many), never the value itself;
//! indexes of different tenants are unrelated. Values from a small space (phone numbers) could
//! be brute-forced by someone who also holds the index key, which lives only in Vault-wrapped
//! form and in process memory.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::cipher::Dek;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    Email,
    Phone,
    /// Consent evidence: the client address and user agent, kept only as keyed hashes.
    ClientAddress,
    UserAgent,
    /// The fingerprint of a request kept with its `Idempotency-Key`: the body may carry a
    /// person's data, so it is kept only as a keyed hash, like the other indexes.
    Request,
}

impl IndexKind {
    fn tag(self) -> &'static [u8] {
        match self {
            Self::Email => b"email",
            Self::Phone => b"phone",
            Self::ClientAddress => b"client-address",
            Self::UserAgent => b"user-agent",
            Self::Request => b"request",
        }
    }

    /// Case, surrounding and inner whitespace never matter for email; for phones only `+`
    /// and digits count (`+62 812-3456-789` == `+628123456789`).
    pub fn normalize(self, value: &str) -> String {
        match self {
            Self::Email => value.split_whitespace().collect::<String>().to_lowercase(),
            Self::Phone => value
                .chars()
                .filter(|c| c.is_ascii_digit() || *c == '+')
                .collect(),
            Self::ClientAddress | Self::UserAgent => value.trim().to_owned(),
            Self::Request => value.to_owned(),
        }
    }
}

/// 32 bytes stored in a `bytea` column next to the sealed value.
#[derive(Clone, PartialEq, Eq)]
pub struct BlindIndex(pub Vec<u8>);

impl std::fmt::Debug for BlindIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlindIndex(..)")
    }
}

/// `None` only if HMAC refused the key, which a 32-byte key cannot cause.
pub fn compute(key: &Dek, kind: IndexKind, value: &str) -> Option<BlindIndex> {
    let normalized = kind.normalize(value);
    let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes()).ok()?;
    let digest = mac
        .chain_update(b"warung-bi/1")
        .chain_update(kind.tag())
        .chain_update([0])
        .chain_update(normalized.as_bytes())
        .finalize();
    Some(BlindIndex(digest.into_bytes().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_makes_equal_what_users_consider_equal() {
        let key = Dek::from_slice(&[1; 32]).unwrap();
        let a = compute(&key, IndexKind::Email, "  Budi@Example.ID ").unwrap();
        let b = compute(&key, IndexKind::Email, "budi@example.id").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.0.len(), 32);
        assert_ne!(
            a,
            compute(&key, IndexKind::Email, "budi2@example.id").unwrap()
        );
        assert_eq!(
            compute(&key, IndexKind::Phone, "+62 812-3456-789").unwrap(),
            compute(&key, IndexKind::Phone, "+628123456789").unwrap()
        );
    }

    #[test]
    fn kinds_and_keys_separate_indexes() {
        let key = Dek::from_slice(&[1; 32]).unwrap();
        let other = Dek::from_slice(&[2; 32]).unwrap();
        assert_ne!(
            compute(&key, IndexKind::Email, "123").unwrap(),
            compute(&key, IndexKind::Phone, "123").unwrap()
        );
        assert_ne!(
            compute(&key, IndexKind::Email, "a@b.c").unwrap(),
            compute(&other, IndexKind::Email, "a@b.c").unwrap()
        );
    }
}
