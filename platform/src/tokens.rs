//! Opaque bearer secrets handed to people: refresh tokens, email-verification, password-reset
//! and invitation links. The text is `<tenant id>.<256 random bits>`: the tenant part lets the
//! server open the right tenant transaction before it knows anything else; only the SHA-256 of
//! the secret part is stored, so a database leak yields no usable token. (A fast hash is right
//! here: the secret is random, not a password.)

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngExt;
use secrecy::SecretString;
use sha2::{Digest, Sha256};

use crate::id::TenantId;

/// A freshly made token: the text to give out once, and the hash to store.
#[derive(Debug)]
pub struct Issued {
    pub text: SecretString,
    pub hash: TokenHash,
}

/// SHA-256 of a token's secret part, as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenHash(pub Vec<u8>);

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

pub fn issue(tenant: TenantId) -> Issued {
    let secret: [u8; 32] = rand::rng().random();
    let secret = URL_SAFE_NO_PAD.encode(secret);
    let hash = hash(&secret);
    Issued {
        text: SecretString::from(format!("{}.{secret}", tenant.0.simple())),
        hash,
    }
}

/// Splits a token into its tenant and the hash of its secret; `None` for anything malformed.
pub fn parse(text: &str) -> Option<(TenantId, TokenHash)> {
    let (tenant, secret) = text.trim().split_once('.')?;
    let tenant = uuid::Uuid::try_parse(tenant).ok()?;
    let bytes = URL_SAFE_NO_PAD.decode(secret).ok()?;
    (bytes.len() == 32).then(|| (TenantId(tenant), hash(secret)))
}

fn hash(secret: &str) -> TokenHash {
    TokenHash(Sha256::digest(secret.as_bytes()).to_vec())
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn a_token_parses_back_to_its_tenant_and_hash() {
        let tenant = TenantId::new();
        let issued = issue(tenant);
        let (parsed_tenant, hash) = parse(issued.text.expose_secret()).unwrap();
        assert_eq!(parsed_tenant, tenant);
        assert_eq!(hash, issued.hash);
        assert_ne!(issue(tenant).hash, issued.hash);
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let tenant = TenantId::new();
        let text = issue(tenant).text.expose_secret().to_owned();
        for bad in [
            "",
            "nodot",
            &text[..text.len() - 2],
            &format!("not-a-uuid.{}", text.split_once('.').unwrap().1),
            &format!("{}.short", tenant.0.simple()),
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
