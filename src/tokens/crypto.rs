//! Encryption of tokens at rest: AES-256-GCM with a random 96-bit nonce per encryption, stored as
//! `nonce ‖ ciphertext ‖ tag`. The associated data binds every ciphertext to its row and field
//! (`lightspeed-sync/v1|account=<id>|key=<version>|field=<access|refresh>`), so a ciphertext copied to
//! another account or field, or re-labelled with another key version, fails to decrypt.
//!
//! Keys carry a version (the configured key is version [`CURRENT_KEY_VERSION`]); a [`Keyring`] holds the
//! current key and may hold older ones, which is what a later key rotation needs: decrypt with the
//! row's version, re-encrypt with the current one.

use std::fmt;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use base64::Engine;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};

use crate::config::SecuritySettings;

/// The version of the key configured in `security.token_key`.
pub const CURRENT_KEY_VERSION: i32 = 1;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// A new random 32-byte key, base64 (standard alphabet, padded).
pub fn generate_key_base64() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    base64::engine::general_purpose::STANDARD.encode(key)
}

/// Which token of a row a ciphertext holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenField {
    /// `access_token_enc`
    Access,
    /// `refresh_token_enc`
    Refresh,
}

impl TokenField {
    fn name(self) -> &'static str {
        match self {
            TokenField::Access => "access",
            TokenField::Refresh => "refresh",
        }
    }
}

/// The key is missing or malformed; the message names the setting and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Neither `security.token_key` nor `security.token_key_file` is set.
    #[error(
        "no token-encryption key: set `security.token_key` (or `security.token_key_file`, or \
         LSSYNC__SECURITY__TOKEN_KEY); `lightspeed-sync keygen` prints one. Tokens are never stored unencrypted"
    )]
    Missing,
    /// The key is set but is not base64 of 32 bytes, or its file cannot be read.
    #[error("`security.token_key` is not usable: {0}")]
    Invalid(String),
}

/// A stored ciphertext could not be decrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    /// Authentication failed: another key, or the bytes (or their row binding) were changed.
    #[error(
        "cannot decrypt the tokens of account {account_id}: wrong security.token_key or tampered data"
    )]
    WrongKeyOrTampered {
        /// The account of the row.
        account_id: u64,
    },
    /// The row names a key version this process does not have.
    #[error(
        "cannot decrypt the tokens of account {account_id}: they were encrypted with key version {version}, \
         which is not configured (the current key is version {current})"
    )]
    UnknownKeyVersion {
        /// The account of the row.
        account_id: u64,
        /// The row's key version.
        version: i32,
        /// The current key's version.
        current: i32,
    },
}

/// One AES-256-GCM key with its version.
pub struct TokenKey {
    version: i32,
    cipher: Aes256Gcm,
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKey")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl TokenKey {
    /// A key from its base64 text (32 bytes; standard or URL-safe alphabet, padding optional).
    pub fn from_base64(text: &SecretString, version: i32) -> Result<Self, KeyError> {
        let text = text.expose_secret().trim();
        let bytes = [
            &base64::engine::general_purpose::STANDARD,
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            &base64::engine::general_purpose::URL_SAFE,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .ok_or_else(|| KeyError::Invalid("not base64 (expected base64 of 32 random bytes, as printed by `lightspeed-sync keygen`)".into()))?;
        let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| {
            KeyError::Invalid(format!(
                "decodes to {} bytes, expected 32 (`lightspeed-sync keygen` prints a valid key)",
                bytes.len()
            ))
        })?;
        Ok(Self { version, cipher })
    }

    /// The key's version.
    pub fn version(&self) -> i32 {
        self.version
    }
}

/// The current key plus any older ones still needed to read existing rows.
#[derive(Debug)]
pub struct Keyring {
    current: TokenKey,
    older: Vec<TokenKey>,
}

impl Keyring {
    /// A keyring with one key.
    pub fn new(current: TokenKey) -> Self {
        Self {
            current,
            older: Vec::new(),
        }
    }

    /// Add an older key (for reading rows not yet re-encrypted after a rotation).
    pub fn with_older(mut self, key: TokenKey) -> Self {
        self.older.push(key);
        self
    }

    /// The key from `security.token_key` / `security.token_key_file`, as version 1.
    pub fn from_settings(settings: &SecuritySettings) -> Result<Self, KeyError> {
        let inline = settings
            .token_key
            .as_ref()
            .is_some_and(|k| !k.expose_secret().trim().is_empty());
        let file = settings
            .token_key_file
            .as_ref()
            .is_some_and(|p| !p.as_os_str().is_empty());
        if !inline && !file {
            return Err(KeyError::Missing);
        }
        let text = settings
            .token_key()
            .map_err(|e| KeyError::Invalid(e.to_string()))?;
        Ok(Self::new(TokenKey::from_base64(
            &text,
            CURRENT_KEY_VERSION,
        )?))
    }

    /// The version new ciphertexts are written with.
    pub fn current_version(&self) -> i32 {
        self.current.version
    }

    /// Encrypt a token for `account_id`'s `field` with the current key: `(key_version, nonce‖ct‖tag)`.
    pub fn encrypt(
        &self,
        account_id: u64,
        field: TokenField,
        plaintext: &SecretString,
    ) -> (i32, Vec<u8>) {
        let key = &self.current;
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let aad = associated_data(account_id, key.version, field);
        let payload = Payload {
            msg: plaintext.expose_secret().as_bytes(),
            aad: aad.as_bytes(),
        };
        let ciphertext = key
            .cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .expect("AES-GCM encryption of a short message cannot fail");
        let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        (key.version, out)
    }

    /// Decrypt a token stored for `account_id`'s `field` under `key_version`.
    pub fn decrypt(
        &self,
        account_id: u64,
        key_version: i32,
        field: TokenField,
        blob: &[u8],
    ) -> Result<SecretString, DecryptError> {
        let key = std::iter::once(&self.current)
            .chain(&self.older)
            .find(|k| k.version == key_version)
            .ok_or(DecryptError::UnknownKeyVersion {
                account_id,
                version: key_version,
                current: self.current.version,
            })?;
        let tampered = DecryptError::WrongKeyOrTampered { account_id };
        if blob.len() < NONCE_LEN + TAG_LEN {
            return Err(tampered);
        }
        let (nonce, ciphertext) = blob.split_at(NONCE_LEN);
        let aad = associated_data(account_id, key_version, field);
        let plain = key
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| tampered.clone())?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| tampered)
    }
}

/// The associated data binding a ciphertext to its row, key version and field.
pub fn associated_data(account_id: u64, key_version: i32, field: TokenField) -> String {
    format!(
        "lightspeed-sync/v1|account={account_id}|key={key_version}|field={}",
        field.name()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring() -> Keyring {
        let key = SecretString::from(generate_key_base64());
        Keyring::new(TokenKey::from_base64(&key, 1).unwrap())
    }

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_string())
    }

    #[test]
    fn round_trip_with_fresh_nonces() {
        let ring = keyring();
        let (v, a) = ring.encrypt(7, TokenField::Access, &secret("token-abc"));
        let (_, b) = ring.encrypt(7, TokenField::Access, &secret("token-abc"));
        assert_eq!(v, 1);
        assert_ne!(a, b, "each encryption uses a new nonce");
        assert!(!a.windows(9).any(|w| w == b"token-abc"));
        assert_eq!(
            ring.decrypt(7, 1, TokenField::Access, &a)
                .unwrap()
                .expose_secret(),
            "token-abc"
        );
    }

    #[test]
    fn wrong_key_is_a_clear_error() {
        let (_, blob) = keyring().encrypt(7, TokenField::Refresh, &secret("r"));
        let err = keyring()
            .decrypt(7, 1, TokenField::Refresh, &blob)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot decrypt the tokens of account 7: wrong security.token_key or tampered data"
        );
    }

    #[test]
    fn tampering_and_moving_fail() {
        let ring = keyring();
        let (_, blob) = ring.encrypt(7, TokenField::Access, &secret("token"));
        let mut flipped = blob.clone();
        flipped[NONCE_LEN + 1] ^= 1;
        assert!(ring.decrypt(7, 1, TokenField::Access, &flipped).is_err());
        assert!(ring.decrypt(7, 1, TokenField::Access, &blob[..10]).is_err());
        assert!(
            ring.decrypt(8, 1, TokenField::Access, &blob).is_err(),
            "bound to the account"
        );
        assert!(
            ring.decrypt(7, 1, TokenField::Refresh, &blob).is_err(),
            "bound to the field"
        );
        assert!(matches!(
            ring.decrypt(7, 2, TokenField::Access, &blob),
            Err(DecryptError::UnknownKeyVersion { version: 2, .. })
        ));
    }

    #[test]
    fn older_keys_still_decrypt() {
        let old_text = secret(&generate_key_base64());
        let old = Keyring::new(TokenKey::from_base64(&old_text, 1).unwrap());
        let (v, blob) = old.encrypt(1, TokenField::Access, &secret("x"));
        let ring = Keyring::new(TokenKey::from_base64(&secret(&generate_key_base64()), 2).unwrap())
            .with_older(TokenKey::from_base64(&old_text, 1).unwrap());
        assert_eq!(
            ring.decrypt(1, v, TokenField::Access, &blob)
                .unwrap()
                .expose_secret(),
            "x"
        );
        assert_eq!(ring.encrypt(1, TokenField::Access, &secret("y")).0, 2);
    }

    #[test]
    fn bad_keys_are_refused_with_the_setting_name() {
        let short = TokenKey::from_base64(&secret("c2hvcnQ="), 1).unwrap_err();
        assert!(short.to_string().contains("security.token_key"));
        assert!(short.to_string().contains("expected 32"));
        assert!(TokenKey::from_base64(&secret("%%%"), 1).is_err());
        let none = SecuritySettings {
            token_key: None,
            token_key_file: None,
        };
        let err = Keyring::from_settings(&none).unwrap_err();
        assert!(err.to_string().contains("security.token_key"), "{err}");
        assert!(err.to_string().contains("keygen"));
    }

    #[test]
    fn debug_shows_no_key() {
        let text = generate_key_base64();
        let ring = Keyring::new(TokenKey::from_base64(&secret(&text), 1).unwrap());
        assert!(!format!("{ring:?}").contains(&text));
    }
}
