//! Encryption of tokens at rest.

use base64::Engine;
use rand::RngCore;

/// A new random 32-byte key, base64 (standard alphabet, padded).
pub fn generate_key_base64() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    base64::engine::general_purpose::STANDARD.encode(key)
}
