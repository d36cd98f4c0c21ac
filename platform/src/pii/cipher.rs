//! Field sealing with a subject's data key: AES-256-GCM, a random 96-bit nonce per value, and
//! associated data that binds the ciphertext to its tenant, subject and column. A ciphertext
//! copied to another row, column, subject or tenant fails authentication instead of opening.
//!
//! Stored format (bytes): `[format version = 1][nonce: 12][ciphertext || tag: 16]`. The leading
//! version byte lets the format evolve without guessing.

use aes_gcm::{
    Aes256Gcm, Nonce,
    aead::{Aead, AeadInOut, Generate, Key, KeyInit, Payload},
};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::id::TenantId;

use super::SubjectId;

pub const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
pub const DEK_LEN: usize = 32;

/// A subject's plaintext data key. Zeroed when dropped; never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Dek([u8; DEK_LEN]);

impl Dek {
    /// A fresh random key (OS randomness).
    pub fn generate() -> Self {
        Self(Key::<Aes256Gcm>::generate().into())
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let array: [u8; DEK_LEN] = bytes.try_into().ok()?;
        Some(Self(array))
    }

    pub fn as_bytes(&self) -> &[u8; DEK_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for Dek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dek([redacted])")
    }
}

/// A subject's key, expanded for AES-256-GCM once and reused for every field (expanding the key
/// schedule costs more than sealing a short field). Round keys are zeroed when dropped.
pub struct SubjectCipher(Aes256Gcm);

impl SubjectCipher {
    pub fn new(dek: &Dek) -> Self {
        Self(Aes256Gcm::new(dek.as_bytes().into()))
    }
}

impl std::fmt::Debug for SubjectCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubjectCipher([redacted])")
    }
}

/// Where a sealed value lives; authenticated with it.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    pub tenant: TenantId,
    pub subject: SubjectId,
    /// `table.column`, e.g. `customers.email`.
    pub field: &'a str,
}

impl Binding<'_> {
    fn aad(&self) -> Vec<u8> {
        let mut aad = Vec::with_capacity(8 + 16 + 16 + self.field.len());
        aad.extend_from_slice(b"warung/1");
        aad.extend_from_slice(self.tenant.0.as_bytes());
        aad.extend_from_slice(self.subject.0.as_bytes());
        aad.extend_from_slice(self.field.as_bytes());
        aad
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Wrong key, wrong binding, or tampered bytes: AES-GCM cannot tell them apart.
    #[error("ciphertext does not authenticate")]
    Authentication,
    #[error("unknown ciphertext format")]
    Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("sealing failed")]
pub struct SealError;

pub fn seal(
    cipher: &SubjectCipher,
    binding: Binding<'_>,
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    // Nonces from the thread-local CSPRNG (ChaCha, seeded and periodically reseeded from the
    // OS): as unpredictable as the OS source without a system call per field.
    let Ok(nonce) = Nonce::try_generate_from_rng(&mut rand::rng());
    let aad = binding.aad();
    let mut out = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + TAG_LEN);
    out.push(FORMAT_V1);
    out.extend_from_slice(nonce.as_slice());
    out.extend_from_slice(plaintext);
    // In place over the plaintext copy: one allocation per sealed value.
    let tag = cipher
        .0
        .encrypt_inout_detached(&nonce, &aad, (&mut out[1 + NONCE_LEN..]).into())
        .map_err(|_| SealError)?;
    out.extend_from_slice(tag.as_slice());
    Ok(out)
}

pub fn open(
    cipher: &SubjectCipher,
    binding: Binding<'_>,
    sealed: &[u8],
) -> Result<Vec<u8>, OpenError> {
    let Some((&FORMAT_V1, rest)) = sealed.split_first() else {
        return Err(OpenError::Format);
    };
    if rest.len() < NONCE_LEN + TAG_LEN {
        return Err(OpenError::Format);
    }
    let (nonce, body) = rest.split_at(NONCE_LEN);
    let nonce = Nonce::try_from(nonce).map_err(|_| OpenError::Format)?;
    let aad = binding.aad();
    cipher
        .0
        .decrypt(
            &nonce,
            Payload {
                msg: body,
                aad: &aad,
            },
        )
        .map_err(|_| OpenError::Authentication)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dek(byte: u8) -> SubjectCipher {
        SubjectCipher::new(&Dek([byte; DEK_LEN]))
    }

    fn binding(tenant: TenantId, subject: SubjectId, field: &str) -> Binding<'_> {
        Binding {
            tenant,
            subject,
            field,
        }
    }

    #[test]
    fn round_trip_and_fresh_nonce_each_time() {
        let (t, s) = (TenantId::new(), SubjectId::new());
        let b = binding(t, s, "customers.email");
        let a = seal(&dek(1), b, b"budi@example.id").unwrap();
        let c = seal(&dek(1), b, b"budi@example.id").unwrap();
        assert_ne!(a, c, "same plaintext must not give the same ciphertext");
        assert_eq!(a[0], FORMAT_V1);
        assert_eq!(open(&dek(1), b, &a).unwrap(), b"budi@example.id");
        assert!(
            !a.windows(4).any(|w| w == b"budi"),
            "plaintext visible in ciphertext"
        );
    }

    #[test]
    fn moved_ciphertext_fails_to_open() {
        let (t, s) = (TenantId::new(), SubjectId::new());
        let sealed = seal(&dek(1), binding(t, s, "customers.email"), b"x@example.id").unwrap();
        let wrong = [
            binding(t, s, "customers.phone"),
            binding(t, SubjectId::new(), "customers.email"),
            binding(TenantId::new(), s, "customers.email"),
        ];
        for b in wrong {
            assert_eq!(
                open(&dek(1), b, &sealed),
                Err(OpenError::Authentication),
                "{b:?}"
            );
        }
        assert_eq!(
            open(&dek(2), binding(t, s, "customers.email"), &sealed),
            Err(OpenError::Authentication)
        );
    }

    #[test]
    fn tampering_and_unknown_formats_are_refused() {
        let (t, s) = (TenantId::new(), SubjectId::new());
        let b = binding(t, s, "users.full_name");
        let mut sealed = seal(&dek(3), b, b"Budi").unwrap();
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(open(&dek(3), b, &sealed), Err(OpenError::Authentication));
        assert_eq!(open(&dek(3), b, &[2, 0, 0]), Err(OpenError::Format));
        assert_eq!(open(&dek(3), b, &[]), Err(OpenError::Format));
        assert_eq!(
            open(&dek(3), b, &[FORMAT_V1, 1, 2, 3]),
            Err(OpenError::Format)
        );
    }

    #[test]
    fn key_debug_is_redacted() {
        assert_eq!(format!("{:?}", Dek([7; DEK_LEN])), "Dek([redacted])");
        assert_eq!(format!("{:?}", dek(7)), "SubjectCipher([redacted])");
    }
}
