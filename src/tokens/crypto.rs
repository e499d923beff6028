//! Encryption of tokens at rest: AES-256-GCM with a random 96-bit nonce per encryption, stored as
//! `nonce ‖ ciphertext ‖ tag`. The associated data binds every ciphertext to its row and field
//! (`lightspeed-sync/v1|account=<id>|key=<version>|field=<access|refresh>`), so a ciphertext copied to
//! another account or field, or re-labelled with another key version, fails to decrypt.
//!
//! # Key versions
//!
//! A key's version is derived from the key itself ([`key_version_of`]: 31 bits of
//! SHA-256 over a fixed label and the key), so nobody has to number keys and a rotation never
//! needs re-authorizing: a [`Keyring`] holds the current key (`security.token_key`, the only one
//! ever used to write) and the older ones (`security.previous_token_keys`), and a row is read with
//! the key whose version it names. Version [`LEGACY_KEY_VERSION`] (1) is what releases before
//! derived versions wrote for whatever key was configured then: such a row is tried with every
//! configured key (the GCM tag tells which one is right). Derived versions are never 1.
//!
//! Key bytes live only in zeroizing buffers and in the ciphers, whose key schedules are wiped on drop
//! (the `zeroize` features of `aes`, `ghash` and `polyval`).

use std::fmt;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use base64::Engine;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::config::{ConfigError, SecuritySettings};
use crate::model::AccountId;

/// The version rows carry when written before key versions were derived from the key.
pub const LEGACY_KEY_VERSION: i32 = 1;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const KEY_LEN: usize = 32;
/// Hashed before the key, so the version is a fingerprint for this purpose only.
const VERSION_LABEL: &[u8] = b"lightspeed-sync token key version\0";

/// A new random 32-byte key, base64 (standard alphabet, padded).
pub fn generate_key_base64() -> String {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    rand::rng().fill_bytes(key.as_mut());
    base64::engine::general_purpose::STANDARD.encode(key.as_ref())
}

/// The version of a key: the first 31 bits of `SHA-256(label ‖ key)`, moved past 0 and
/// [`LEGACY_KEY_VERSION`]. It names the key in rows and messages without revealing it.
pub fn key_version_of(key: &[u8]) -> i32 {
    let digest = Sha256::new()
        .chain_update(VERSION_LABEL)
        .chain_update(key)
        .finalize();
    let bits = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) & 0x7fff_ffff;
    let version = i32::try_from(bits).unwrap_or(i32::MAX);
    if version <= LEGACY_KEY_VERSION {
        version + 2
    } else {
        version
    }
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
    /// The key is set but is not base64 of 32 bytes.
    #[error("`security.token_key` is not usable: {0}")]
    Invalid(String),
    /// The key's file cannot be read.
    #[error("`security.token_key` is not usable")]
    Unreadable(#[source] ConfigError),
    /// One of the older keys is not base64 of 32 bytes.
    #[error("`security.previous_token_keys` is not usable: {0}")]
    InvalidPrevious(String),
    /// The older keys' file cannot be read.
    #[error("`security.previous_token_keys` is not usable")]
    UnreadablePrevious(#[source] ConfigError),
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
        account_id: AccountId,
    },
    /// The row names a key version this process does not have.
    #[error(
        "cannot decrypt the tokens of account {account_id}: they were encrypted with key version {version}, \
         which is not configured (security.token_key is version {current}{}); add that key to \
         security.previous_token_keys, or run `lightspeed-sync authorize` again for this account",
        previous_versions(.previous)
    )]
    UnknownKeyVersion {
        /// The account of the row.
        account_id: AccountId,
        /// The row's key version.
        version: i32,
        /// The current key's version.
        current: i32,
        /// The versions of the configured older keys.
        previous: Vec<i32>,
    },
}

fn previous_versions(previous: &[i32]) -> String {
    if previous.is_empty() {
        ", and security.previous_token_keys is empty".into()
    } else {
        let list: Vec<String> = previous.iter().map(i32::to_string).collect();
        format!(", security.previous_token_keys are {}", list.join(", "))
    }
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
    /// A key from its base64 text (32 bytes; standard or URL-safe alphabet, padding optional); its
    /// version is [`key_version_of`] the bytes. The problem, if any, is described without the key.
    pub fn from_base64(text: &SecretString) -> Result<Self, KeyError> {
        let text = text.expose_secret().trim();
        let bytes = [
            &base64::engine::general_purpose::STANDARD,
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            &base64::engine::general_purpose::URL_SAFE,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .map(Zeroizing::new)
        .ok_or_else(|| {
            KeyError::Invalid(
                "not base64 (expected base64 of 32 random bytes, as printed by `lightspeed-sync keygen`)"
                    .to_string(),
            )
        })?;
        let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| {
            KeyError::Invalid(format!(
                "decodes to {} bytes, expected 32 (`lightspeed-sync keygen` prints a valid key)",
                bytes.len()
            ))
        })?;
        Ok(Self {
            version: key_version_of(&bytes),
            cipher,
        })
    }

    /// The key's version.
    pub fn version(&self) -> i32 {
        self.version
    }

    fn decrypt(&self, aad: &str, blob: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let (nonce, ciphertext) = blob.split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .ok()
            .map(Zeroizing::new)
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

    /// Add an older key (for reading rows not yet re-encrypted after a rotation). A key already in
    /// the ring is not added twice.
    pub fn with_older(mut self, key: TokenKey) -> Self {
        if !self.keys().any(|k| k.version == key.version) {
            self.older.push(key);
        }
        self
    }

    /// The keys of `security.token_key` / `token_key_file` (current) and
    /// `security.previous_token_keys` / `previous_token_keys_file` (older).
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
        let text = settings.token_key().map_err(KeyError::Unreadable)?;
        let mut ring = Self::new(TokenKey::from_base64(&text)?);
        let previous = settings
            .previous_token_keys()
            .map_err(KeyError::UnreadablePrevious)?;
        for (i, text) in previous.iter().enumerate() {
            let key = TokenKey::from_base64(text).map_err(|e| match e {
                KeyError::Invalid(problem) => KeyError::InvalidPrevious(format!(
                    "key {} of {}: {problem}",
                    i + 1,
                    previous.len()
                )),
                other => other,
            })?;
            ring = ring.with_older(key);
        }
        Ok(ring)
    }

    /// The version new ciphertexts are written with.
    pub fn current_version(&self) -> i32 {
        self.current.version
    }

    /// The versions of the older keys, in configuration order.
    pub fn previous_versions(&self) -> Vec<i32> {
        self.older.iter().map(|k| k.version).collect()
    }

    fn keys(&self) -> impl Iterator<Item = &TokenKey> {
        std::iter::once(&self.current).chain(&self.older)
    }

    /// Encrypt a token for `account_id`'s `field` with the current key: `(key_version, nonce‖ct‖tag)`.
    pub fn encrypt(
        &self,
        account_id: AccountId,
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
        account_id: AccountId,
        key_version: i32,
        field: TokenField,
        blob: &[u8],
    ) -> Result<SecretString, DecryptError> {
        let tampered = DecryptError::WrongKeyOrTampered { account_id };
        let candidates: Vec<&TokenKey> = if key_version == LEGACY_KEY_VERSION {
            self.keys().collect()
        } else {
            self.keys().filter(|k| k.version == key_version).collect()
        };
        if candidates.is_empty() {
            return Err(DecryptError::UnknownKeyVersion {
                account_id,
                version: key_version,
                current: self.current.version,
                previous: self.previous_versions(),
            });
        }
        if blob.len() < NONCE_LEN + TAG_LEN {
            return Err(tampered);
        }
        let aad = associated_data(account_id, key_version, field);
        let mut plain = candidates
            .iter()
            .find_map(|key| key.decrypt(&aad, blob))
            .ok_or_else(|| tampered.clone())?;
        match String::from_utf8(std::mem::take(&mut *plain)) {
            Ok(text) => Ok(SecretString::from(text)),
            Err(e) => {
                drop(Zeroizing::new(e.into_bytes()));
                Err(tampered)
            }
        }
    }
}

/// The associated data binding a ciphertext to its row, key version and field.
pub fn associated_data(account_id: AccountId, key_version: i32, field: TokenField) -> String {
    format!(
        "lightspeed-sync/v1|account={account_id}|key={key_version}|field={}",
        field.name()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_string())
    }

    fn key(text: &str) -> TokenKey {
        TokenKey::from_base64(&secret(text)).unwrap()
    }

    fn keyring() -> Keyring {
        Keyring::new(key(&generate_key_base64()))
    }

    /// A ring that writes version 1, as releases before derived versions did.
    fn legacy(text: &str) -> Keyring {
        let mut k = key(text);
        k.version = LEGACY_KEY_VERSION;
        Keyring::new(k)
    }

    #[test]
    fn round_trip_with_fresh_nonces() {
        let ring = keyring();
        let (v, a) = ring.encrypt(7.into(), TokenField::Access, &secret("token-abc"));
        let (_, b) = ring.encrypt(7.into(), TokenField::Access, &secret("token-abc"));
        assert_eq!(v, ring.current_version());
        assert_ne!(a, b, "each encryption uses a new nonce");
        assert!(!a.windows(9).any(|w| w == b"token-abc"));
        assert_eq!(
            ring.decrypt(7.into(), v, TokenField::Access, &a)
                .unwrap()
                .expose_secret(),
            "token-abc"
        );
    }

    #[test]
    fn the_version_is_a_stable_fingerprint_of_the_key() {
        let text = generate_key_base64();
        let v = key(&text).version();
        assert_eq!(key(&text).version(), v, "the same key, the same version");
        // The URL-safe spelling of the same bytes is the same key.
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&text)
            .unwrap();
        let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes);
        assert_eq!(key(&url_safe).version(), v);
        assert_eq!(key_version_of(&bytes), v);
        // A fixed key has a fixed version: rows written by one build are read by the next.
        assert_eq!(key_version_of(&[0u8; 32]), key_version_of(&[0u8; 32]));
        let versions: std::collections::BTreeSet<i32> = (0..200)
            .map(|_| key(&generate_key_base64()).version())
            .collect();
        assert_eq!(versions.len(), 200, "distinct keys, distinct versions");
        assert!(versions.iter().all(|&v| v > LEGACY_KEY_VERSION));
    }

    #[test]
    fn wrong_key_is_a_clear_error() {
        let ring = keyring();
        let (v, blob) = ring.encrypt(7.into(), TokenField::Refresh, &secret("r"));
        // Another key that happens to claim the row's version is still refused by the tag.
        let mut other = key(&generate_key_base64());
        other.version = v;
        let err = Keyring::new(other)
            .decrypt(7.into(), v, TokenField::Refresh, &blob)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot decrypt the tokens of account 7: wrong security.token_key or tampered data"
        );
    }

    #[test]
    fn an_unknown_version_names_the_account_and_the_versions() {
        let old = keyring();
        let (v, blob) = old.encrypt(7.into(), TokenField::Access, &secret("t"));
        let ring = keyring().with_older(key(&generate_key_base64()));
        let err = ring
            .decrypt(7.into(), v, TokenField::Access, &blob)
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("account 7"), "{text}");
        assert!(text.contains(&format!("key version {v}")), "{text}");
        assert!(text.contains(&ring.current_version().to_string()), "{text}");
        assert!(text.contains("security.previous_token_keys"), "{text}");
    }

    #[test]
    fn tampering_and_moving_fail() {
        let ring = keyring();
        let (v, blob) = ring.encrypt(7.into(), TokenField::Access, &secret("token"));
        let mut flipped = blob.clone();
        flipped[NONCE_LEN + 1] ^= 1;
        assert!(
            ring.decrypt(7.into(), v, TokenField::Access, &flipped)
                .is_err()
        );
        assert!(
            ring.decrypt(7.into(), v, TokenField::Access, &blob[..10])
                .is_err()
        );
        assert!(
            ring.decrypt(8.into(), v, TokenField::Access, &blob)
                .is_err(),
            "bound to the account"
        );
        assert!(
            ring.decrypt(7.into(), v, TokenField::Refresh, &blob)
                .is_err(),
            "bound to the field"
        );
        assert!(
            ring.decrypt(7.into(), LEGACY_KEY_VERSION, TokenField::Access, &blob)
                .is_err(),
            "bound to the version"
        );
        assert!(matches!(
            ring.decrypt(7.into(), v ^ 1, TokenField::Access, &blob),
            Err(DecryptError::UnknownKeyVersion { .. })
        ));
    }

    #[test]
    fn older_keys_still_decrypt_and_only_the_current_one_writes() {
        let old_text = generate_key_base64();
        let old = Keyring::new(key(&old_text));
        let (v, blob) = old.encrypt(1.into(), TokenField::Access, &secret("x"));
        let ring = keyring().with_older(key(&old_text));
        assert_eq!(ring.previous_versions(), [v]);
        assert_eq!(
            ring.decrypt(1.into(), v, TokenField::Access, &blob)
                .unwrap()
                .expose_secret(),
            "x"
        );
        assert_eq!(
            ring.encrypt(1.into(), TokenField::Access, &secret("y")).0,
            ring.current_version()
        );
    }

    #[test]
    fn legacy_rows_are_read_with_whichever_configured_key_wrote_them() {
        let old_text = generate_key_base64();
        let (v, blob) = legacy(&old_text).encrypt(3.into(), TokenField::Refresh, &secret("legacy"));
        assert_eq!(v, LEGACY_KEY_VERSION);
        for ring in [
            Keyring::new(key(&old_text)),
            keyring().with_older(key(&old_text)),
        ] {
            assert_eq!(
                ring.decrypt(3.into(), v, TokenField::Refresh, &blob)
                    .unwrap()
                    .expose_secret(),
                "legacy"
            );
        }
        assert_eq!(
            keyring()
                .decrypt(3.into(), v, TokenField::Refresh, &blob)
                .unwrap_err(),
            DecryptError::WrongKeyOrTampered {
                account_id: 3.into()
            }
        );
    }

    #[test]
    fn bad_keys_are_refused_with_the_setting_name() {
        let short = TokenKey::from_base64(&secret("c2hvcnQ=")).unwrap_err();
        assert!(short.to_string().contains("security.token_key"), "{short}");
        assert!(short.to_string().contains("expected 32"), "{short}");
        assert!(TokenKey::from_base64(&secret("%%%")).is_err());
        let none = SecuritySettings {
            token_key: None,
            token_key_file: None,
            previous_token_keys: Vec::new(),
            previous_token_keys_file: None,
        };
        let err = Keyring::from_settings(&none).unwrap_err();
        assert!(err.to_string().contains("security.token_key"), "{err}");
        assert!(err.to_string().contains("keygen"));

        let bad_previous = "bm90LWEta2V5LWF0LWFsbA==";
        let settings = SecuritySettings {
            token_key: Some(secret(&generate_key_base64())),
            previous_token_keys: vec![secret(&generate_key_base64()), secret(bad_previous)],
            ..none
        };
        let err = Keyring::from_settings(&settings).unwrap_err().to_string();
        assert!(err.contains("security.previous_token_keys"), "{err}");
        assert!(err.contains("key 2 of 2"), "{err}");
        assert!(!err.contains(bad_previous), "{err}");
    }

    #[test]
    fn debug_shows_no_key() {
        let text = generate_key_base64();
        let old = generate_key_base64();
        let ring = Keyring::new(key(&text)).with_older(key(&old));
        let debug = format!("{ring:?}");
        assert!(!debug.contains(&text) && !debug.contains(&old), "{debug}");
    }
}
