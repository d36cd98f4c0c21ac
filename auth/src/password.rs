//! Password hashing: argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane), computed on
//! the blocking pool behind a semaphore, so a burst of logins cannot starve the async workers
//! or the machine's memory.

use std::sync::Arc;

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{OnceCell, Semaphore};

#[derive(Debug, Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    /// A real hash of a random password: verifying against it when an account does not exist
    /// makes "no such account" take as long as "wrong password".
    decoy: Arc<OnceCell<String>>,
}

fn argon2() -> Argon2<'static> {
    // m = 19456 KiB, t = 2, p = 1: the OWASP Password Storage Cheat Sheet's first choice.
    let params = Params::new(19_456, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

impl Hasher {
    pub fn new(concurrency: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            decoy: Arc::new(OnceCell::new()),
        }
    }

    pub async fn hash(&self, password: &SecretString) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await?;
        let password = password.clone();
        tokio::task::spawn_blocking(move || {
            argon2()
                .hash_password(password.expose_secret().as_bytes())
                .map(|hash| hash.to_string())
                .map_err(|e| anyhow::anyhow!("password hashing failed: {e}"))
        })
        .await?
    }

    /// Whether `password` matches `hash`. With `None` (no such account) it checks against the
    /// decoy and answers false, taking the same time.
    pub async fn verify(
        &self,
        password: &SecretString,
        hash: Option<&str>,
    ) -> anyhow::Result<bool> {
        let (hash, real) = match hash {
            Some(hash) => (hash.to_owned(), true),
            None => {
                let decoy = self
                    .decoy
                    .get_or_try_init(|| async {
                        self.hash(&SecretString::from(uuid::Uuid::now_v7().to_string()))
                            .await
                    })
                    .await?;
                (decoy.clone(), false)
            }
        };
        let _permit = self.permits.acquire().await?;
        let password = password.clone();
        let matches = tokio::task::spawn_blocking(move || {
            let Ok(parsed) = PasswordHash::new(&hash) else {
                return false;
            };
            argon2()
                .verify_password(password.expose_secret().as_bytes(), &parsed)
                .is_ok()
        })
        .await?;
        Ok(matches && real)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_with_owasp_parameters_and_verify() {
        let hasher = Hasher::new(2);
        let password = SecretString::from("correct horse battery staple".to_owned());
        let hash = hasher.hash(&password).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(hasher.verify(&password, Some(&hash)).await.unwrap());
        let wrong = SecretString::from("correct horse battery stapler".to_owned());
        assert!(!hasher.verify(&wrong, Some(&hash)).await.unwrap());
        // No account: never true, even for the decoy's own password space.
        assert!(!hasher.verify(&password, None).await.unwrap());
    }

    /// "No such account" must cost what "wrong password" costs: the decoy it checks against is
    /// a hash with the very parameters of a real one (compared, not timed).
    #[tokio::test]
    async fn the_decoy_is_hashed_with_the_parameters_of_a_real_password() {
        let hasher = Hasher::new(1);
        let real = hasher
            .hash(&SecretString::from("kopi susu gula aren".to_owned()))
            .await
            .unwrap();
        let guess = SecretString::from("a guess".to_owned());
        assert!(!hasher.verify(&guess, None).await.unwrap());
        let decoy = hasher.decoy.get().expect("the decoy is made on first use");
        let cost = |phc: &str| {
            let parsed = PasswordHash::new(phc).unwrap();
            (
                parsed.algorithm.to_string(),
                parsed.version,
                parsed.params.to_string(),
                parsed.hash.map(|h| h.len()),
            )
        };
        assert_eq!(cost(decoy), cost(&real));
        assert_ne!(decoy, &real);
    }
}
