//! libsodium `crypto_box_seal` of a value for a GitHub public key. Knows bytes and keys only.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use crypto_box::aead::OsRng;
use curve25519_dalek::montgomery::MontgomeryPoint;
use thiserror::Error;

/// A recipient public key as GitHub hands it out (`key_id` + base64 X25519 key).
#[derive(Clone)]
pub struct PublicKey {
    /// GitHub's id of the key, sent back with the encrypted value.
    pub key_id: String,
    key: crypto_box::PublicKey,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// A public key from the server that cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum KeyError {
    /// Not standard base64.
    #[error("the public key is not valid base64")]
    Base64,
    /// Decodes, but not to the 32 bytes of an X25519 key.
    #[error("the public key is {0} bytes long, expected 32")]
    Length(usize),
    /// `key_id` empty.
    #[error("the public key has an empty key_id")]
    EmptyId,
    /// A point of small order (e.g. all zeros): the shared secret would be known to anyone,
    /// so a box sealed for it opens without the private key. libsodium refuses such keys.
    #[error(
        "the public key is a low-order point that anyone could decrypt for (libsodium refuses it)"
    )]
    LowOrder,
}

impl PublicKey {
    /// Parses GitHub's `{"key_id","key"}` pair.
    pub fn from_github(key_id: &str, key_b64: &str) -> Result<Self, KeyError> {
        if key_id.is_empty() {
            return Err(KeyError::EmptyId);
        }
        let bytes = STANDARD
            .decode(key_b64.trim())
            .map_err(|_| KeyError::Base64)?;
        let arr: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::Length(bytes.len()))?;
        if has_small_order(&arr) {
            return Err(KeyError::LowOrder);
        }
        Ok(Self {
            key_id: key_id.to_string(),
            key: crypto_box::PublicKey::from(arr),
        })
    }
}

/// Whether X25519 with this public key gives the all-zero shared secret, which is what
/// libsodium's `crypto_scalarmult` (and so `crypto_box_seal`) refuses: exactly the points of
/// small order, in any encoding (the top bit is ignored and `u` is reduced mod p, as X25519
/// does). Any clamped scalar tells, since clamping makes it a multiple of the cofactor 8.
fn has_small_order(key: &[u8; 32]) -> bool {
    MontgomeryPoint(*key).mul_clamped([0x5a; 32]).to_bytes() == [0u8; 32]
}

/// Seals `plaintext` for `key` and returns standard base64 (with padding), the form GitHub's
/// `encrypted_value` wants. Each call uses a fresh ephemeral key pair.
pub fn seal(plaintext: &[u8], key: &PublicKey) -> String {
    let sealed = key
        .key
        .seal(&mut OsRng, plaintext)
        .expect("crypto_box_seal cannot fail for an in-memory buffer");
    STANDARD.encode(sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // libsodium reference vector for crypto_box_seal, as shipped by PyNaCl
    // (tests/data/sealed_box_ref.txt): RFC 7748 "Alice" key pair, ciphertext made by libsodium.
    const SK: &str = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
    const PK: &str = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
    const PT: &str = "be075fc53c81f2d5cf141316ebeb0c7b5228c52a4c62cbd44b66849b64244ffce5ecbaaf33bd751a1ac728d45e6c61296cdc3c01233561f41db66cce314adb310e3be8250c46f06dceea3a7fa1348057e2f6556ad6b1318a024a838f21af1fde048977eb48f59ffd4924ca1c60902e52f0a089bc76897040e082f937763848645e0705";
    const CT: &str = "199c808806a62c1be56951023ad3396b0ce0ef2c5b9ca688ac96d2d06ca43f65d314400cc9bbefb23dd26f824c9cb553f81e8c894ea9a553f4d777c77b66d5a6925da3f5961c5f7147172db5597ac14210066ee3ee13e6230a9a9610e9cddbf24094f54fbbf6694c08a436cec39ff5a373656d9584f4df9dd8c817e2e597540628d0ee21a6524a3fcf3eabdc0968390bd260a47366ead7f71cc2e774d411d96f3497c7e10291937bc16dc46a111686b85a8c86";

    fn alice() -> crypto_box::SecretKey {
        crypto_box::SecretKey::from(<[u8; 32]>::try_from(hex(SK)).unwrap())
    }

    #[test]
    fn crypto_box_opens_the_libsodium_reference_ciphertext() {
        // The same construction (X25519, XSalsa20-Poly1305, BLAKE2b nonce) as libsodium.
        let sk = alice();
        assert_eq!(sk.public_key().as_bytes().as_slice(), hex(PK).as_slice());
        assert_eq!(sk.unseal(&hex(CT)).unwrap(), hex(PT));
    }

    #[test]
    fn our_seal_opens_with_the_reference_secret_key() {
        let key = PublicKey::from_github("kid", &STANDARD.encode(hex(PK))).unwrap();
        let b64 = seal(&hex(PT), &key);
        let sealed = STANDARD.decode(&b64).unwrap();
        // 32-byte ephemeral public key + 16-byte MAC overhead.
        assert_eq!(sealed.len(), hex(PT).len() + 48);
        assert_eq!(alice().unseal(&sealed).unwrap(), hex(PT));
        // Fresh ephemeral key each time.
        assert_ne!(seal(&hex(PT), &key), b64);
    }

    #[test]
    fn tampered_or_misaddressed_boxes_do_not_open() {
        let key = PublicKey::from_github("kid", &STANDARD.encode(hex(PK))).unwrap();
        let mut sealed = STANDARD.decode(seal(b"value", &key)).unwrap();
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(alice().unseal(&sealed).is_err());
        let other = crypto_box::SecretKey::from([7u8; 32]);
        let sealed = STANDARD.decode(seal(b"value", &key)).unwrap();
        assert!(other.unseal(&sealed).is_err());
    }

    // Issue 9, defect 6: a key of 32 zero bytes was used, and the box was then readable
    // without any private key. libsodium's blacklist (ed25519_ref10.c `has_small_order`),
    // each also with the top bit set, which X25519 ignores.
    #[test]
    fn low_order_keys_are_refused_like_libsodium() {
        let blacklist = [
            "0000000000000000000000000000000000000000000000000000000000000000",
            "0100000000000000000000000000000000000000000000000000000000000000",
            "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
            "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        ];
        for hexkey in blacklist {
            for top in [0u8, 0x80] {
                let mut k = hex(hexkey);
                k[31] |= top;
                assert_eq!(
                    PublicKey::from_github("k", &STANDARD.encode(&k)).unwrap_err(),
                    KeyError::LowOrder,
                    "{hexkey} top bit {top:#x}"
                );
            }
        }
        // Ordinary keys pass: the reference key, and random ones.
        PublicKey::from_github("k", &STANDARD.encode(hex(PK))).unwrap();
        for _ in 0..200 {
            let pk = crypto_box::SecretKey::generate(&mut OsRng).public_key();
            PublicKey::from_github("k", &STANDARD.encode(pk.as_bytes())).unwrap();
        }
    }

    #[test]
    fn malformed_keys_are_rejected() {
        assert_eq!(
            PublicKey::from_github("k", "not base64!").unwrap_err(),
            KeyError::Base64
        );
        assert_eq!(
            PublicKey::from_github("k", &STANDARD.encode([1u8; 31])).unwrap_err(),
            KeyError::Length(31)
        );
        assert_eq!(
            PublicKey::from_github("", &STANDARD.encode([1u8; 32])).unwrap_err(),
            KeyError::EmptyId
        );
    }
}
