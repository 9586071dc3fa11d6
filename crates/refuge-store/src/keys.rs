//! The instance keyring: the instance key (key-encryption key, never stored in the database)
//! and the blind-index key (stored wrapped by the instance key).
//!
//! `instance_meta` holds: `key_check` (HMAC check value of the instance key, so a wrong key
//! is told apart from a damaged record), `key_id`, `index_key` (wrapped), and for passphrase
//! unlock `kdf` (Argon2id parameters) and `kdf_salt`.

use crate::error::{Result, StoreError};
use crate::rows::MetaRow;
use refuge_crypto::{
    CryptoError, DataKey, Entropy, IndexKey, InstanceKey, KdfParams, SecretString,
};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

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

/// The unlocked keys: the blind-index key, and the instance keys. The current instance key
/// wraps new data keys; data keys are unwrapped with whichever known instance key opens them,
/// so that a key rotation (see [`crate::rotate_key`]) never stops a running store.
pub(crate) struct Keyring {
    pub index: IndexKey,
    instance: RwLock<InstanceKeys>,
}

struct InstanceKeys {
    current: Arc<InstanceKey>,
    /// Earlier (or, during a rotation, not yet current) keys, for unwrapping only.
    others: Vec<Arc<InstanceKey>>,
}

impl Keyring {
    pub(crate) fn new(instance: InstanceKey, index: IndexKey) -> Self {
        Self {
            index,
            instance: RwLock::new(InstanceKeys {
                current: Arc::new(instance),
                others: Vec::new(),
            }),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, InstanceKeys> {
        self.instance.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The key that wraps new data keys.
    pub(crate) fn current(&self) -> Arc<InstanceKey> {
        self.read().current.clone()
    }

    /// Wrap a data key under the current instance key.
    pub(crate) fn wrap_data_key(
        &self,
        key: &DataKey,
        owner: &[u8],
        e: &dyn Entropy,
    ) -> std::result::Result<Vec<u8>, CryptoError> {
        self.current().wrap_data_key(key, owner, e)
    }

    /// Unwrap a data key with the current instance key, or else any other known one.
    pub(crate) fn unwrap_data_key(
        &self,
        wrapped: &[u8],
        owner: &[u8],
    ) -> std::result::Result<DataKey, CryptoError> {
        let k = self.read();
        match k.current.unwrap_data_key(wrapped, owner) {
            Ok(dk) => Ok(dk),
            Err(first) => k
                .others
                .iter()
                .find_map(|o| o.unwrap_data_key(wrapped, owner).ok())
                .ok_or(first),
        }
    }

    /// Make `key` the current key (wrapping from now on); the current one is kept for
    /// unwrapping. Adopting a key already current does nothing.
    pub(crate) fn adopt(&self, key: InstanceKey) {
        let mut k = self.instance.write().unwrap_or_else(|p| p.into_inner());
        if k.current.key_id() == key.key_id() {
            return;
        }
        k.others.retain(|o| o.key_id() != key.key_id());
        let old = std::mem::replace(&mut k.current, Arc::new(key));
        k.others.push(old);
    }

    /// Keep `key` for unwrapping only.
    pub(crate) fn keep(&self, key: InstanceKey) {
        let mut k = self.instance.write().unwrap_or_else(|p| p.into_inner());
        let id = key.key_id();
        if k.current.key_id() != id && k.others.iter().all(|o| o.key_id() != id) {
            k.others.push(Arc::new(key));
        }
    }
}

/// Where a rotation puts the next key, beside the key file: `<key file>.next`.
pub(crate) fn next_key_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".next");
    PathBuf::from(p)
}

/// Where a rotation moves the key it replaced: `<key file>.retired-<key id>`.
pub(crate) fn retired_key_path(path: &Path, id: [u8; 8]) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(format!(".retired-{}", hex::encode(id)));
    PathBuf::from(p)
}

/// Retired key files beside `path`, for unwrapping data keys a rotation has not reached.
fn retired_keys(path: &Path) -> Vec<InstanceKey> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Vec::new();
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!("{}.retired-", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .filter_map(|e| InstanceKey::read_key_file(&e.path()).ok())
        .collect()
}

/// During a rotation (`key_next_check` in the meta), the next key from `<key file>.next`, if it
/// is there and is the one the rotation announced.
pub(crate) fn announced_next_key(source: &KeySource, meta: &[MetaRow]) -> Option<InstanceKey> {
    let KeySource::KeyFile(path) = source else {
        return None;
    };
    let check = get(meta, "key_next_check")?;
    let key = InstanceKey::read_key_file(&next_key_path(path)).ok()?;
    key.verify_check_value(check).ok()?;
    Some(key)
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
    Ok((Keyring::new(instance, index), meta))
}

/// Unlock an existing instance with the key from `source`, checking it against the stored
/// check value. A key file's retired keys (`<key file>.retired-*`) and, during a rotation, its
/// announced next key (`<key file>.next`) join the keyring; if a rotation was interrupted
/// after the database had switched to the next key, that key is the one that unlocks.
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
    let (current, previous) = match instance.verify_check_value(check) {
        Ok(()) => (instance, None),
        Err(_) => {
            // A rotation that stopped between switching the database and renaming the files.
            let next = match source {
                KeySource::KeyFile(path) => InstanceKey::read_key_file(&next_key_path(path)).ok(),
                KeySource::Passphrase(_) => None,
            };
            match next.filter(|n| n.verify_check_value(check).is_ok()) {
                Some(next) => (next, Some(instance)),
                None => return Err(StoreError::WrongKey),
            }
        }
    };
    let wrapped = get(meta, "index_key").ok_or(StoreError::NotInitialised)?;
    let index = current
        .unwrap_index_key(wrapped, INDEX_KEY_OWNER)
        .map_err(|_| StoreError::Corrupt {
            what: "instance key",
            id: "index_key".into(),
        })?;
    let ring = Keyring::new(current, index);
    if let Some(p) = previous {
        ring.keep(p);
    }
    if let KeySource::KeyFile(path) = source {
        for k in retired_keys(path) {
            ring.keep(k);
        }
    }
    if let Some(next) = announced_next_key(source, meta) {
        ring.adopt(next);
    }
    Ok(ring)
}

/// The meta rows that make `key` the instance key: its check value and id, and the index key
/// wrapped under it.
pub(crate) fn meta_for(
    key: &InstanceKey,
    index: &IndexKey,
    e: &dyn Entropy,
) -> Result<Vec<MetaRow>> {
    Ok(vec![
        MetaRow {
            key: "key_check".into(),
            value: key.check_value().to_vec(),
        },
        MetaRow {
            key: "key_id".into(),
            value: key.key_id().to_vec(),
        },
        MetaRow {
            key: "index_key".into(),
            value: key.wrap_index_key(index, INDEX_KEY_OWNER, e)?,
        },
    ])
}
