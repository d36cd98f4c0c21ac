//! Access-token signing and verification: Ed25519 (`EdDSA`) through `jsonwebtoken`, the
//! algorithm pinned on verify, `iss`/`aud`/`exp`/`sub` required. The current key signs; retired
//! keys (public halves only) still verify until their tokens have expired. All of them are
//! published as a JWKS so other services can verify our tokens offline.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::{
    SigningKey, VerifyingKey,
    pkcs8::{DecodePrivateKey, DecodePublicKey},
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use platform::{
    Role,
    config::AuthConfig,
    id::{SessionId, TenantId, UserId},
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The claims of a Warung access token.
/// Clock skew allowed on a token's expiry.
const EXPIRY_LEEWAY_SECS: i64 = 5;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: UserId,
    pub tid: TenantId,
    pub role: Role,
    pub sid: SessionId,
    pub iat: i64,
    pub exp: i64,
}

struct Verifier {
    kid: String,
    key: DecodingKey,
    x: String,
}

pub struct Keys {
    kid: String,
    signing: EncodingKey,
    verifiers: Vec<Verifier>,
    validation: Validation,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A key id derived from the public key, so every process agrees on it without configuration.
fn kid(public: &VerifyingKey) -> String {
    let digest = Sha256::digest(public.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..12])
}

fn verifier(public: &VerifyingKey) -> anyhow::Result<Verifier> {
    let x = URL_SAFE_NO_PAD.encode(public.as_bytes());
    Ok(Verifier {
        kid: kid(public),
        key: DecodingKey::from_ed_components(&x)?,
        x,
    })
}

impl Keys {
    pub fn from_config(config: &AuthConfig) -> anyhow::Result<Self> {
        let pem = config.signing_key.expose_secret();
        let signing = SigningKey::from_pkcs8_pem(pem).map_err(|_| {
            anyhow::anyhow!("auth.signing_key is not an Ed25519 private key in PKCS#8 PEM")
        })?;
        let public = signing.verifying_key();
        let mut verifiers = vec![verifier(&public)?];
        for (i, pem) in config.previous_public_keys.iter().enumerate() {
            let key = VerifyingKey::from_public_key_pem(pem).map_err(|_| {
                anyhow::anyhow!("auth.previous_public_keys[{i}] is not an Ed25519 public key PEM")
            })?;
            verifiers.push(verifier(&key)?);
        }
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Expiry is checked against the injected clock in `verify`, not the system's.
        validation.validate_exp = false;
        Ok(Self {
            kid: kid(&public),
            signing: EncodingKey::from_ed_pem(pem.as_bytes())?,
            verifiers,
            validation,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    pub fn sign(&self, claims: &Claims) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.signing)?)
    }

    /// Verifies signature (EdDSA only, by `kid`), issuer, audience and expiry at `now` (unix
    /// seconds, from the injected clock), with five seconds of leeway.
    pub fn verify(&self, token: &str, now: i64) -> Option<Claims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.alg != Algorithm::EdDSA {
            return None;
        }
        let kid = header.kid?;
        let verifier = self.verifiers.iter().find(|v| v.kid == kid)?;
        jsonwebtoken::decode::<Claims>(token, &verifier.key, &self.validation)
            .ok()
            .map(|data| data.claims)
            .filter(|claims| claims.exp + EXPIRY_LEEWAY_SECS >= now)
    }

    /// The JWKS document (`/.well-known/jwks.json`).
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<_> = self
            .verifiers
            .iter()
            .map(|v| {
                serde_json::json!({
                    "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
                    "kid": v.kid, "x": v.x,
                })
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding};
    use secrecy::SecretString;

    fn pem() -> (String, String) {
        let key = SigningKey::from_bytes(&rand_bytes());
        (
            key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
            key.verifying_key()
                .to_public_key_pem(LineEnding::LF)
                .unwrap(),
        )
    }

    fn rand_bytes() -> [u8; 32] {
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&Sha256::digest(uuid::Uuid::now_v7().as_bytes()));
        bytes
    }

    fn config(signing: &str, previous: Vec<String>) -> AuthConfig {
        AuthConfig {
            issuer: "warung".into(),
            audience: "warung-api".into(),
            signing_key: SecretString::from(signing.to_owned()),
            previous_public_keys: previous,
            access_ttl_secs: 900,
            session_ttl_days: 30,
            session_cache_ms: 1000,
            hash_concurrency: 1,
            max_failures_per_account: 5,
            max_failures_per_ip: 50,
            failure_window_secs: 900,
            email_verification_ttl_hours: 48,
            password_reset_ttl_minutes: 30,
            invitation_ttl_hours: 72,
        }
    }

    const NOW: i64 = 1_800_000_000;

    fn claims(exp_in: i64) -> Claims {
        let now = NOW;
        Claims {
            iss: "warung".into(),
            aud: "warung-api".into(),
            sub: UserId::new(),
            tid: TenantId::new(),
            role: Role::Cashier,
            sid: SessionId::new(),
            iat: now,
            exp: now + exp_in,
        }
    }

    #[test]
    fn signs_and_verifies_and_retired_keys_still_verify() {
        let (old_private, old_public) = pem();
        let (new_private, _) = pem();
        let old = Keys::from_config(&config(&old_private, vec![])).unwrap();
        let new = Keys::from_config(&config(&new_private, vec![old_public])).unwrap();
        let c = claims(900);
        assert_eq!(new.verify(&new.sign(&c).unwrap(), NOW), Some(c.clone()));
        assert_eq!(new.verify(&old.sign(&c).unwrap(), NOW), Some(c.clone()));
        assert_eq!(new.jwks()["keys"].as_array().unwrap().len(), 2);
        // The old key alone does not know the new one.
        assert_eq!(old.verify(&new.sign(&c).unwrap(), NOW), None);
    }

    #[test]
    fn expired_wrong_audience_and_tampered_tokens_fail() {
        let (private, _) = pem();
        let keys = Keys::from_config(&config(&private, vec![])).unwrap();
        assert_eq!(keys.verify(&keys.sign(&claims(-60)).unwrap(), NOW), None);
        // Expiry follows the clock it is given, not the system's: a token that ended an hour
        // ago by that clock fails, one that is still live by it passes.
        let live = claims(900);
        assert_eq!(keys.verify(&keys.sign(&live).unwrap(), NOW + 3_600), None);
        assert_eq!(
            keys.verify(&keys.sign(&live).unwrap(), NOW + 900),
            Some(live)
        );
        let mut other = claims(900);
        other.aud = "someone-else".into();
        assert_eq!(keys.verify(&keys.sign(&other).unwrap(), NOW), None);
        let token = keys.sign(&claims(900)).unwrap();
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut payload: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
        payload["role"] = "owner".into();
        parts[1] = URL_SAFE_NO_PAD.encode(payload.to_string());
        assert_eq!(keys.verify(&parts.join("."), NOW), None);
    }
}
