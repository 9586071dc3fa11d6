//! Rotating the instance key without stopping the stores that use it.
//!
//! The protocol, for an instance unlocked by a key file `K` (see docs/operators.md):
//!
//! 1. The next key is written to `K.next` and announced in the database (`key_next_check`,
//!    its check value). Running stores look for an announced next key every
//!    [`StoreConfig::key_watch`]; once they find it, they wrap new data keys with it and keep
//!    the old one for unwrapping. The rotation waits `grace` for them.
//! 2. Every wrapped data key (persons, users) not yet under the next key is unwrapped and
//!    wrapped again under it, page by page, each row replaced only if it has not changed since
//!    it was read. Nothing else is re-encrypted.
//! 3. The database switches to the next key in one write: check value, key id, the blind-index
//!    key wrapped anew, and an `instance_key_rotated` event. A last pass re-wraps anything a
//!    store wrapped under the old key meanwhile.
//! 4. The old key is copied to `K.retired-<key id>` (backups made before still need it), and
//!    `K.next` is renamed over `K`.
//!
//! Every step can be interrupted and the rotation run again: an announced `K.next` is reused,
//! and a store opened between steps 3 and 4 unlocks with `K.next`.
//!
//! A passphrase instance rotates the same way to a key derived from a new passphrase, but a
//! running store cannot learn that passphrase: stop the stores first.

use super::*;
use crate::backend::KeyTable;
use crate::keys::{announced_next_key, meta_for, next_key_path, retired_key_path};
use refuge_crypto::InstanceKey;
use std::time::Duration;

/// Wrapped keys read and re-wrapped per write.
const PAGE: i64 = 1_000;

/// What a rotation did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RotationReport {
    /// Public id (hex) of the key replaced.
    pub old_key_id: String,
    /// Public id (hex) of the key now in use.
    pub new_key_id: String,
    /// Persons whose data key was re-wrapped.
    pub persons: u64,
    /// Staff users whose data key was re-wrapped.
    pub users: u64,
    /// Where the replaced key was kept (key-file instances).
    pub retired_key_file: Option<std::path::PathBuf>,
}

/// How a rotation runs.
pub struct Rotation {
    /// For a passphrase instance: the new passphrase.
    pub new_passphrase: Option<SecretString>,
    /// How long running stores get to notice the announced next key before the re-wrapping
    /// starts (key-file instances; at least twice their `key_watch`).
    pub grace: Duration,
}

/// Rotate the instance key (see the module documentation): every data key is wrapped anew
/// under a new instance key; no data is re-encrypted. `progress` is told what is happening and
/// how many keys are done.
pub async fn rotate_key(
    cfg: StoreConfig,
    rotation: Rotation,
    progress: &(dyn Fn(&str, u64) + Send + Sync),
) -> Result<RotationReport> {
    let backend = connect(&cfg.url).await?;
    let meta = backend.meta().await?;
    let ring = keys::unlock(&cfg.key, &meta)?;
    let old = ring.current();
    let (next, mut new_meta) = match &cfg.key {
        KeySource::KeyFile(path) => {
            let next = match announced_next_key(&cfg.key, &meta) {
                // An interrupted rotation: carry on with the key it announced.
                Some(next) => next,
                None => {
                    let next_path = next_key_path(path);
                    if next_path.exists() {
                        // Written but never announced, so never used: replace it.
                        std::fs::remove_file(&next_path).map_err(|e| {
                            StoreError::Database(format!(
                                "cannot remove the unannounced {}: {e}",
                                next_path.display()
                            ))
                        })?;
                    }
                    let next = InstanceKey::generate(&*cfg.entropy)?;
                    next.write_key_file(&next_path)?;
                    next
                }
            };
            (next, Vec::new())
        }
        KeySource::Passphrase(_) => {
            let pass = rotation
                .new_passphrase
                .as_ref()
                .ok_or_else(|| StoreError::Invalid {
                    field: "REFUGE_NEW_PASSPHRASE",
                    message: "a passphrase instance rotates to a key from a new passphrase: set REFUGE_NEW_PASSPHRASE".into(),
                })?;
            let salt = refuge_crypto::generate_salt(&*cfg.entropy)?;
            let next = InstanceKey::derive_from_passphrase(pass, &salt, &cfg.kdf)?;
            let meta = vec![
                MetaRow {
                    key: "kdf".into(),
                    value: cfg.kdf.to_string().into_bytes(),
                },
                MetaRow {
                    key: "kdf_salt".into(),
                    value: salt.to_vec(),
                },
            ];
            (next, meta)
        }
    };
    if next.key_id() == old.key_id() {
        return Err(StoreError::Invalid {
            field: "key",
            message: "the new key is the key in use".into(),
        });
    }
    let store = SqlStore::start(backend, ring, &cfg).await?;
    let result = async {
        // 1. Announce, adopt, give running stores time to adopt too.
        progress("announcing the next key", 0);
        store
            .writer
            .write(Op::SetMeta {
                set: vec![MetaRow {
                    key: "key_next_check".into(),
                    value: next.check_value().to_vec(),
                }],
                remove: Vec::new(),
                event: None,
            })
            .await?;
        store.keys.adopt(next.clone());
        if matches!(cfg.key, KeySource::KeyFile(_)) {
            progress("waiting for running servers to take the next key", 0);
            tokio::time::sleep(rotation.grace).await;
        }
        // 2. Re-wrap.
        let (persons, users) = store.rewrap_all(&next, progress).await?;
        // 3. Switch.
        progress("switching the database to the next key", persons + users);
        new_meta.extend(meta_for(&next, &store.keys.index, &*cfg.entropy)?);
        let mut ev = store.event(
            Actor::Operator,
            OrgId::INSTANCE.0,
            EventKind::InstanceKeyRotated,
            OrgId::INSTANCE.0,
            None,
        )?;
        ev.meta
            .insert("from".into(), hex::encode(old.key_id()).into());
        ev.meta
            .insert("to".into(), hex::encode(next.key_id()).into());
        ev.meta.insert("persons".into(), persons.into());
        ev.meta.insert("users".into(), users.into());
        store
            .writer
            .write(Op::SetMeta {
                set: new_meta,
                remove: vec!["key_next_check".into()],
                event: Some(ev),
            })
            .await?;
        let (late_p, late_u) = store.rewrap_all(&next, progress).await?;
        let left = store.count_not_under(&next).await?;
        if left != 0 {
            return Err(StoreError::Database(format!(
                "{left} wrapped keys are still not under the new key; run the rotation again"
            )));
        }
        Ok((persons + late_p, users + late_u))
    }
    .await;
    store.close().await;
    let (persons, users) = result?;
    // 4. The key files.
    let retired_key_file = match &cfg.key {
        KeySource::KeyFile(path) => {
            let retired = retired_key_path(path, old.key_id());
            if !retired.exists() {
                old.write_key_file(&retired)?;
            }
            std::fs::rename(next_key_path(path), path).map_err(|e| {
                StoreError::Database(format!(
                    "the database uses the new key, but {} could not be renamed to {}: {e}; rename it by hand",
                    next_key_path(path).display(),
                    path.display()
                ))
            })?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
                && let Ok(d) = std::fs::File::open(dir)
            {
                let _ = d.sync_all();
            }
            Some(retired)
        }
        KeySource::Passphrase(_) => None,
    };
    tracing::info!(
        from = %hex::encode(old.key_id()),
        to = %hex::encode(next.key_id()),
        persons,
        users,
        "instance key rotated"
    );
    Ok(RotationReport {
        old_key_id: hex::encode(old.key_id()),
        new_key_id: hex::encode(next.key_id()),
        persons,
        users,
        retired_key_file,
    })
}

/// What a wrapped key of `table` is bound to.
fn owner(table: KeyTable, id: Uuid) -> Vec<u8> {
    match table {
        KeyTable::Persons => person_owner(id),
        KeyTable::Users => user_owner(id),
    }
}

impl SqlStore {
    /// Re-wrap every data key not yet under `next`; returns (persons, users) re-wrapped.
    async fn rewrap_all(
        &self,
        next: &InstanceKey,
        progress: &(dyn Fn(&str, u64) + Send + Sync),
    ) -> Result<(u64, u64)> {
        let mut done = [0u64; 2];
        for (i, table) in [KeyTable::Persons, KeyTable::Users].into_iter().enumerate() {
            let mut after = Uuid::nil();
            loop {
                let page = self.backend.wrapped_keys(table, after, PAGE).await?;
                let Some((last, _)) = page.last() else { break };
                after = *last;
                let mut rewraps = Vec::new();
                for (id, wrapped) in page {
                    let owner = owner(table, id);
                    if next.unwrap_data_key(&wrapped, &owner).is_ok() {
                        continue;
                    }
                    let dk = self.keys.unwrap_data_key(&wrapped, &owner).map_err(|_| {
                        StoreError::Corrupt {
                            what: "wrapped key (no known instance key opens it)",
                            id: format!("{}/{id}", table.name()),
                        }
                    })?;
                    rewraps.push(Rewrap {
                        id,
                        new: next.wrap_data_key(&dk, &owner, &*self.entropy)?,
                        old: wrapped,
                        key_id: next.key_id().to_vec(),
                    });
                }
                if rewraps.is_empty() {
                    continue;
                }
                done[i] += rewraps.len() as u64;
                let op = match table {
                    KeyTable::Persons => Op::Rewrap {
                        persons: rewraps,
                        users: Vec::new(),
                    },
                    KeyTable::Users => Op::Rewrap {
                        persons: Vec::new(),
                        users: rewraps,
                    },
                };
                self.writer.write(op).await?;
                progress("re-wrapping data keys", done[0] + done[1]);
            }
        }
        Ok((done[0], done[1]))
    }

    /// How many wrapped data keys `key` does not open.
    async fn count_not_under(&self, key: &InstanceKey) -> Result<u64> {
        let mut left = 0;
        for table in [KeyTable::Persons, KeyTable::Users] {
            let mut after = Uuid::nil();
            loop {
                let page = self.backend.wrapped_keys(table, after, PAGE).await?;
                let Some((last, _)) = page.last() else { break };
                after = *last;
                for (id, wrapped) in page {
                    let owner = owner(table, id);
                    if key.unwrap_data_key(&wrapped, &owner).is_err() {
                        left += 1;
                    }
                }
            }
        }
        Ok(left)
    }
}

/// While a store runs on a key file: every `every`, take up a next key that a rotation has
/// announced (see the module documentation).
pub(super) async fn key_watch_loop(
    backend: Arc<dyn Backend>,
    keys: Arc<Keyring>,
    source: KeySource,
    every: Duration,
) {
    loop {
        tokio::time::sleep(every).await;
        let meta = match backend.meta().await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "key watch: cannot read the instance meta");
                continue;
            }
        };
        if let Some(next) = announced_next_key(&source, &meta) {
            if keys.current().key_id() != next.key_id() {
                tracing::info!(key = %hex::encode(next.key_id()), "taking up the announced next instance key");
                keys.adopt(next);
            }
            continue;
        }
        // A rotation finished without this store noticing: the key file holds the new key.
        let in_use = meta
            .iter()
            .find(|m| m.key == "key_id")
            .map(|m| m.value.clone());
        if let (Some(id), KeySource::KeyFile(path)) = (in_use, &source)
            && id.as_slice() != keys.current().key_id().as_slice()
            && let Some(check) = meta.iter().find(|m| m.key == "key_check")
            && let Ok(key) = InstanceKey::read_key_file(path)
            && key.verify_check_value(&check.value).is_ok()
        {
            tracing::info!(key = %hex::encode(key.key_id()), "taking up the rotated instance key");
            keys.adopt(key);
        }
    }
}
