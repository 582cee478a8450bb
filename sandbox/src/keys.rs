//! Key pairs of the fake GitHub: one X25519 pair per secret scope, identified by a
//! numeric `key_id` like GitHub's. The fake keeps the secret half and opens sealed
//! boxes (libsodium `crypto_box_seal`) with it, so what a test reads back is what a
//! client really encrypted for this key.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use crypto_box::aead::OsRng;
use crypto_box::SecretKey;
use rand::RngCore;

/// A scope's current key pair.
pub(crate) struct KeyPair {
    key_id: String,
    secret: SecretKey,
    public_b64: String,
}

impl KeyPair {
    /// A fresh random key pair with a fresh random `key_id`.
    pub(crate) fn generate() -> KeyPair {
        Self::from_secret(SecretKey::generate(&mut OsRng), random_key_id())
    }

    /// A new pair whose `key_id` differs from this one's, for key rotation.
    pub(crate) fn rotated(&self) -> KeyPair {
        loop {
            let next = Self::generate();
            if next.key_id != self.key_id {
                return next;
            }
        }
    }

    fn from_secret(secret: SecretKey, key_id: String) -> KeyPair {
        let public_b64 = STANDARD.encode(secret.public_key().as_bytes());
        KeyPair {
            key_id,
            secret,
            public_b64,
        }
    }

    /// The identifier clients must send back as `key_id`.
    pub(crate) fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Standard base64 of the 32-byte public key.
    pub(crate) fn public_b64(&self) -> &str {
        &self.public_b64
    }

    /// Opens a sealed box addressed to this key; `None` if it was not sealed for
    /// this key or was tampered with.
    pub(crate) fn open(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        self.secret.unseal(sealed).ok()
    }
}

/// GitHub key ids are 18-digit decimal strings, e.g. `568250167242549743`.
fn random_key_id() -> String {
    let mut rng = rand::rng();
    let mut id = String::with_capacity(18);
    id.push(char::from(b'1' + (rng.next_u32() % 9) as u8));
    for _ in 1..18 {
        id.push(char::from(b'0' + (rng.next_u32() % 10) as u8));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Produced with libsodium 1.0.18 itself (`crypto_scalarmult_base` on the secret
    /// key bytes 1..=32, then `crypto_box_seal`), so the fake's opening is checked
    /// against the reference implementation, not against its own sealing code.
    #[test]
    fn opens_a_libsodium_sealed_box() {
        let secret: [u8; 32] = std::array::from_fn(|i| (i + 1) as u8);
        let pair = KeyPair::from_secret(SecretKey::from_bytes(secret), "1".into());
        assert_eq!(
            pair.public_b64(),
            "B6N8vBQgk8i3VdwbEOhstCY3StFqqFPtC9/AsrhtHHw="
        );
        let sealed = STANDARD
            .decode(
                "EUypdU1fUtZG7+q5zkCehIgYogtmQc6vwW0A38QxBiDM/sfr2kNVMhQh04bgsIaXy8joT3YY\
                 +2xiUxWzTim7FO050ugc4GmS",
            )
            .unwrap();
        assert_eq!(
            pair.open(&sealed).as_deref(),
            Some(&b"sandbox libsodium vector"[..])
        );
        let mut tampered = sealed.clone();
        tampered[40] ^= 1;
        assert_eq!(pair.open(&tampered), None);
        assert_eq!(KeyPair::generate().open(&sealed), None);
    }

    #[test]
    fn key_ids_look_like_githubs_and_rotation_changes_them() {
        let a = KeyPair::generate();
        assert_eq!(a.key_id().len(), 18);
        assert!(a.key_id().bytes().all(|b| b.is_ascii_digit()));
        assert!(!a.key_id().starts_with('0'));
        let b = a.rotated();
        assert_ne!(a.key_id(), b.key_id());
        assert_ne!(a.public_b64(), b.public_b64());
        assert_eq!(STANDARD.decode(b.public_b64()).unwrap().len(), 32);
    }
}
