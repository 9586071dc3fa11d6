//! The instance keyring: the instance key (key-encryption key, never stored in the database)
//! and the blind-index key (stored wrapped by the instance key).
//!
//! `instance_meta` holds: `key_check` (HMAC check value of the instance key, so a wrong key
//! is told apart from a damaged record), `key_id`, `index_key` (wrapped), and for passphrase
//! unlock `kdf` (Argon2id parameters) and `kdf_salt`.

use crate::error::{Result, StoreError};
use crate::rows::MetaRow;
use refuge_crypto::{Entropy, IndexKey, InstanceKey, KdfParams, SecretString};
use std::path::PathBuf;

const INDEX_KEY_OWNER: &[u8] = b"instance/index_key";

/// Where the instance key comes from.
#[derive(Clone, Debug)]
pub enum KeySource {
    /// A key file (created 0600 by `refuge init`; may live off the data disk).
    KeyFile(PathBuf),
    /// A passphrase (from `REFUGE_PASSPHRASE`), stretched with Argon2id.
    Passphrase(SecretString),
}

impl KeySource {
    /// Describe the source without revealing it.
    pub fn describe(&self) -> String {
        match self {
            KeySource::KeyFile(p) => format!("key file {}", p.display()),
            KeySource::Passphrase(_) => "passphrase (REFUGE_PASSPHRASE)".into(),
        }
    }
}

/// The unlocked keys.
pub(crate) struct Keyring {
    pub instance: InstanceKey,
    pub index: IndexKey,
}

fn get<'a>(meta: &'a [MetaRow], key: &str) -> Option<&'a [u8]> {
    meta.iter()
        .find(|m| m.key == key)
        .map(|m| m.value.as_slice())
}

/// Whether `meta` belongs to an initialised instance.
pub(crate) fn is_initialised(meta: &[MetaRow]) -> bool {
    get(meta, "key_check").is_some()
}

/// Obtain the instance key for a new instance: generate and write the key file, or derive
/// from the passphrase with fresh salt. Returns the key and the meta rows to store.
pub(crate) fn create(
    source: &KeySource,
    entropy: &dyn Entropy,
    kdf: &KdfParams,
) -> Result<(Keyring, Vec<MetaRow>)> {
    let mut meta = Vec::new();
    let instance = match source {
        KeySource::KeyFile(path) => {
            let key = InstanceKey::generate(entropy)?;
            key.write_key_file(path)?;
            key
        }
        KeySource::Passphrase(pass) => {
            let salt = refuge_crypto::generate_salt(entropy)?;
            meta.push(MetaRow {
                key: "kdf".into(),
                value: kdf.to_string().into_bytes(),
            });
            meta.push(MetaRow {
                key: "kdf_salt".into(),
                value: salt.to_vec(),
            });
            InstanceKey::derive_from_passphrase(pass, &salt, kdf)?
        }
    };
    let index = IndexKey::generate(entropy)?;
    meta.push(MetaRow {
        key: "key_check".into(),
        value: instance.check_value().to_vec(),
    });
    meta.push(MetaRow {
        key: "key_id".into(),
        value: instance.key_id().to_vec(),
    });
    meta.push(MetaRow {
        key: "index_key".into(),
        value: instance.wrap_index_key(&index, INDEX_KEY_OWNER, entropy)?,
    });
    Ok((Keyring { instance, index }, meta))
}

/// Unlock an existing instance with the key from `source`, checking it against the stored
/// check value.
pub(crate) fn unlock(source: &KeySource, meta: &[MetaRow]) -> Result<Keyring> {
    let check = get(meta, "key_check").ok_or(StoreError::NotInitialised)?;
    let instance = match source {
        KeySource::KeyFile(path) => InstanceKey::read_key_file(path)?,
        KeySource::Passphrase(pass) => {
            let (Some(params), Some(salt)) = (get(meta, "kdf"), get(meta, "kdf_salt")) else {
                return Err(StoreError::Invalid {
                    field: "REFUGE_PASSPHRASE",
                    message: "this instance was created with a key file, not a passphrase; unset REFUGE_PASSPHRASE and give --key-file".into(),
                });
            };
            let params = KdfParams::parse(&String::from_utf8_lossy(params))?;
            let salt: [u8; 16] = salt
                .try_into()
                .map_err(|_| crate::error::bad_column("instance_meta.kdf_salt", "length"))?;
            InstanceKey::derive_from_passphrase(pass, &salt, &params)?
        }
    };
    instance
        .verify_check_value(check)
        .map_err(|_| StoreError::WrongKey)?;
    let wrapped = get(meta, "index_key").ok_or(StoreError::NotInitialised)?;
    let index = instance
        .unwrap_index_key(wrapped, INDEX_KEY_OWNER)
        .map_err(|_| StoreError::Corrupt {
            what: "instance key",
            id: "index_key".into(),
        })?;
    Ok(Keyring { instance, index })
}
