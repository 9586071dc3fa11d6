//! Keys: the instance key (file or passphrase), per-person data keys, the blind-index key,
//! and key wrapping.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use argon2::{Algorithm, Argon2, Params, Version};
use hmac::Mac;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::entropy::Entropy;
use crate::envelope::{open_parts, seal_raw, split};
use crate::error::{CryptoError, Result};
use crate::hex::{hex_decode_into, hex_push};
use crate::mac::{hmac_sha256, hmac_sha256_parts, push_prefixed};
use crate::secret::SecretString;

const KEY_FILE_PREFIX: &str = "refuge-instance-key-v1:";
/// Prefix, 64 hex digits, newline.
const KEY_FILE_LEN: usize = KEY_FILE_PREFIX.len() + 64 + 1;
const CHECK_LABEL: &[u8] = b"refuge instance key check v1";
const KEY_ID_LABEL: &[u8] = b"refuge instance key id v1";
const WRAP_DATA_LABEL: &[u8] = b"refuge-wrap-data-key-v1";
const WRAP_INDEX_LABEL: &[u8] = b"refuge-wrap-index-key-v1";

/// Defines a 32-byte secret key type: zeroized on drop, `Debug` redacted, no `Display`.
macro_rules! secret_key {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Zeroize, ZeroizeOnDrop)]
        pub struct $name {
            bytes: [u8; 32],
        }

        impl $name {
            /// A key made of exactly these bytes. Prefer `generate`; this exists for keys
            /// obtained from elsewhere (and for test vectors).
            #[must_use]
            pub fn from_bytes(bytes: [u8; 32]) -> Self {
                Self { bytes }
            }

            /// A fresh random key.
            ///
            /// # Errors
            /// [`CryptoError::Entropy`] if the entropy source fails.
            pub fn generate(e: &dyn Entropy) -> Result<Self> {
                let mut key = Self { bytes: [0u8; 32] };
                e.fill(&mut key.bytes)?;
                Ok(key)
            }

            pub(crate) fn bytes(&self) -> &[u8; 32] {
                &self.bytes
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("[redacted]")
            }
        }
    };
}

secret_key!(
    /// The instance key: wraps every data key and the index key. It is never stored in the
    /// database; it lives in a key file ([`InstanceKey::read_key_file`]) or is derived from a
    /// passphrase ([`InstanceKey::derive_from_passphrase`]).
    InstanceKey
);

secret_key!(
    /// A per-person data key: encrypts that person's fields ([`crate::seal`]). Stored only
    /// wrapped by the instance key; destroying the wrapped copy erases the person
    /// (crypto-shredding).
    DataKey
);

secret_key!(
    /// The blind-index key: keys [`crate::blind_index`]. Stored only wrapped by the instance
    /// key.
    IndexKey
);

/// Argon2id cost parameters for [`InstanceKey::derive_from_passphrase`], storable as text
/// (`argon2id:m=65536,t=3,p=1`) beside the salt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory cost in KiB.
    pub m_cost_kib: u32,
    /// Number of passes.
    pub t_cost: u32,
    /// Degree of parallelism.
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane.
    fn default() -> Self {
        Self {
            m_cost_kib: 65536,
            t_cost: 3,
            p_cost: 1,
        }
    }
}

impl KdfParams {
    /// Parses the form written by `to_string()`: exactly `argon2id:m=<u32>,t=<u32>,p=<u32>`,
    /// decimal without signs or leading zeros, and checks the values are acceptable to Argon2.
    ///
    /// # Errors
    /// [`CryptoError::Kdf`] for any other text or out-of-range values.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || CryptoError::Kdf("expected `argon2id:m=<KiB>,t=<passes>,p=<lanes>`".into());
        let rest = s.strip_prefix("argon2id:").ok_or_else(bad)?;
        let mut parts = rest.split(',');
        let mut field = |name: &str| -> Result<u32> {
            let text = parts
                .next()
                .and_then(|p| p.strip_prefix(name))
                .ok_or_else(bad)?;
            let canonical = !text.is_empty()
                && text.bytes().all(|b| b.is_ascii_digit())
                && (text == "0" || !text.starts_with('0'));
            if !canonical {
                return Err(bad());
            }
            text.parse::<u32>().map_err(|_| bad())
        };
        let params = Self {
            m_cost_kib: field("m=")?,
            t_cost: field("t=")?,
            p_cost: field("p=")?,
        };
        if parts.next().is_some() {
            return Err(bad());
        }
        params.validate()?;
        Ok(params)
    }

    /// Checks the parameters are acceptable to Argon2 (e.g. `t >= 1`, `p >= 1`, `m >= 8p`).
    ///
    /// # Errors
    /// [`CryptoError::Kdf`] naming the problem.
    pub fn validate(&self) -> Result<()> {
        self.argon2_params().map(|_| ())
    }

    pub(crate) fn argon2_params(&self) -> Result<Params> {
        let params = Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(32))
            .map_err(|e| CryptoError::Kdf(e.to_string()))?;
        if u64::from(self.m_cost_kib) < 8 * u64::from(self.p_cost) {
            return Err(CryptoError::Kdf(
                "memory cost must be at least 8 KiB per lane".into(),
            ));
        }
        Ok(params)
    }
}

impl fmt::Display for KdfParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "argon2id:m={},t={},p={}",
            self.m_cost_kib, self.t_cost, self.p_cost
        )
    }
}

impl FromStr for KdfParams {
    type Err = CryptoError;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// A fresh random 16-byte salt for [`InstanceKey::derive_from_passphrase`]. Store it (it is not
/// secret) with the [`KdfParams`].
///
/// # Errors
/// [`CryptoError::Entropy`] if the entropy source fails.
pub fn generate_salt(e: &dyn Entropy) -> Result<[u8; 16]> {
    let mut salt = [0u8; 16];
    e.fill(&mut salt)?;
    Ok(salt)
}

impl InstanceKey {
    /// Reads a key file: exactly one line `refuge-instance-key-v1:<64 hex digits>` followed by a
    /// newline (the final newline may be missing).
    ///
    /// On Unix the file must not be accessible to group or others (mode `0600` or stricter);
    /// otherwise this refuses with [`CryptoError::KeyFilePermissions`] before reading it.
    ///
    /// # Errors
    /// [`CryptoError::KeyFile`] for I/O failures, [`CryptoError::KeyFilePermissions`] for a
    /// group- or world-accessible file, [`CryptoError::KeyFileFormat`] for anything but a
    /// regular file with the expected content.
    pub fn read_key_file(path: &Path) -> Result<Self> {
        let io_err = |source: io::Error| CryptoError::KeyFile {
            path: path.to_path_buf(),
            source,
        };
        let format_err = || CryptoError::KeyFileFormat {
            path: path.to_path_buf(),
        };

        let mut file = File::open(path).map_err(io_err)?;
        // Checked on the open file, so the file judged is the file read.
        let meta = file.metadata().map_err(io_err)?;
        if !meta.is_file() {
            return Err(format_err());
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                return Err(CryptoError::KeyFilePermissions {
                    path: path.to_path_buf(),
                    mode,
                });
            }
        }

        // A fixed, zeroizing buffer: one byte larger than a valid file so overlong files are
        // detected, and no reallocation leaves key copies behind.
        let mut buf = Zeroizing::new([0u8; KEY_FILE_LEN + 1]);
        let mut len = 0;
        loop {
            let Some(dst) = buf.get_mut(len..) else {
                return Err(format_err());
            };
            if dst.is_empty() {
                break;
            }
            match file.read(dst) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err(e)),
            }
        }
        let content = buf.get(..len).ok_or_else(format_err)?;
        let content = content.strip_suffix(b"\n").unwrap_or(content);
        let hex = content
            .strip_prefix(KEY_FILE_PREFIX.as_bytes())
            .ok_or_else(format_err)?;
        let mut key = Self { bytes: [0u8; 32] };
        hex_decode_into(hex, &mut key.bytes).ok_or_else(format_err)?;
        Ok(key)
    }

    /// Writes this key to a new key file (format as in [`InstanceKey::read_key_file`]).
    ///
    /// Never overwrites: the file is created exclusively, on Unix with mode `0600` from the
    /// start. The file and its parent directory are synced before returning. If writing fails
    /// the partial file is removed.
    ///
    /// # Errors
    /// [`CryptoError::KeyFileExists`] if `path` exists; [`CryptoError::KeyFile`] for I/O
    /// failures.
    pub fn write_key_file(&self, path: &Path) -> Result<()> {
        let io_err = |path: &Path, source: io::Error| CryptoError::KeyFile {
            path: path.to_path_buf(),
            source,
        };

        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                CryptoError::KeyFileExists {
                    path: path.to_path_buf(),
                }
            } else {
                io_err(path, e)
            }
        })?;

        let mut line = Zeroizing::new(String::with_capacity(KEY_FILE_LEN));
        line.push_str(KEY_FILE_PREFIX);
        hex_push(&mut line, self.bytes());
        line.push('\n');

        let written = restrict_permissions(&file)
            .and_then(|()| file.write_all(line.as_bytes()))
            .and_then(|()| file.sync_all());
        if let Err(e) = written {
            drop(file);
            // Best effort: leave no partial key file behind. The write error is what matters.
            let _ = std::fs::remove_file(path);
            return Err(io_err(path, e));
        }
        drop(file);
        sync_parent_dir(path).map_err(|(dir, e)| io_err(&dir, e))
    }

    /// Derives the instance key from a passphrase with Argon2id (version 0x13), a 16-byte salt
    /// and the given costs. The same passphrase, salt and parameters always give the same key.
    ///
    /// # Errors
    /// [`CryptoError::Kdf`] for an empty passphrase, invalid parameters or memory exhaustion.
    pub fn derive_from_passphrase(
        pass: &SecretString,
        salt: &[u8; 16],
        params: &KdfParams,
    ) -> Result<Self> {
        if pass.expose().is_empty() {
            return Err(CryptoError::Kdf("the passphrase is empty".into()));
        }
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.argon2_params()?);
        let mut key = Self { bytes: [0u8; 32] };
        argon
            .hash_password_into(pass.expose().as_bytes(), salt, &mut key.bytes)
            .map_err(|e| CryptoError::Kdf(e.to_string()))?;
        Ok(key)
    }

    /// HMAC-SHA256 of the label `refuge instance key check v1` under this key. Store it beside
    /// data encrypted under the key: a mismatch means the wrong key was supplied, whereas a
    /// match followed by a decryption failure means a corrupt record. Reveals nothing about
    /// the key.
    #[must_use]
    pub fn check_value(&self) -> [u8; 32] {
        hmac_sha256_parts(self.bytes(), &[CHECK_LABEL])
    }

    /// Compares this key's [`InstanceKey::check_value`] with a stored one, in constant time.
    ///
    /// # Errors
    /// [`CryptoError::WrongKey`] if they differ.
    pub fn verify_check_value(&self, stored: &[u8]) -> Result<()> {
        let mut mac = hmac_sha256(self.bytes());
        mac.update(CHECK_LABEL);
        mac.verify_slice(stored).map_err(|_| CryptoError::WrongKey)
    }

    /// A short public name for this key: the first 8 bytes of HMAC-SHA256 of the label
    /// `refuge instance key id v1`. Safe to log; reveals nothing about the key.
    #[must_use]
    pub fn key_id(&self) -> [u8; 8] {
        let mac = hmac_sha256_parts(self.bytes(), &[KEY_ID_LABEL]);
        let mut id = [0u8; 8];
        for (d, s) in id.iter_mut().zip(mac) {
            *d = s;
        }
        id
    }

    /// Wraps (encrypts) a data key under this instance key, bound to `owner` (e.g. the person
    /// id). Format: `0x01 || nonce (24) || encrypted key (32) || tag (16)`.
    ///
    /// # Errors
    /// [`CryptoError::Entropy`] if no nonce can be drawn.
    pub fn wrap_data_key(&self, key: &DataKey, owner: &[u8], e: &dyn Entropy) -> Result<Vec<u8>> {
        seal_raw(
            self.bytes(),
            &wrap_context(WRAP_DATA_LABEL, owner),
            key.bytes(),
            e,
        )
    }

    /// Unwraps a data key made by [`InstanceKey::wrap_data_key`] for the same `owner`.
    ///
    /// # Errors
    /// [`CryptoError::Decrypt`] for another instance key, another owner, an index key or any
    /// tampering; [`CryptoError::UnsupportedVersion`] / [`CryptoError::Malformed`] for bytes
    /// that are not a wrapped key.
    pub fn unwrap_data_key(&self, wrapped: &[u8], owner: &[u8]) -> Result<DataKey> {
        let mut key = DataKey { bytes: [0u8; 32] };
        self.unwrap_into(WRAP_DATA_LABEL, wrapped, owner, &mut key.bytes)?;
        Ok(key)
    }

    /// Wraps the blind-index key under this instance key, bound to `owner` (e.g. the
    /// organisation id). Same format as [`InstanceKey::wrap_data_key`], different domain.
    ///
    /// # Errors
    /// [`CryptoError::Entropy`] if no nonce can be drawn.
    pub fn wrap_index_key(&self, key: &IndexKey, owner: &[u8], e: &dyn Entropy) -> Result<Vec<u8>> {
        seal_raw(
            self.bytes(),
            &wrap_context(WRAP_INDEX_LABEL, owner),
            key.bytes(),
            e,
        )
    }

    /// Unwraps an index key made by [`InstanceKey::wrap_index_key`] for the same `owner`.
    ///
    /// # Errors
    /// As [`InstanceKey::unwrap_data_key`].
    pub fn unwrap_index_key(&self, wrapped: &[u8], owner: &[u8]) -> Result<IndexKey> {
        let mut key = IndexKey { bytes: [0u8; 32] };
        self.unwrap_into(WRAP_INDEX_LABEL, wrapped, owner, &mut key.bytes)?;
        Ok(key)
    }

    fn unwrap_into(
        &self,
        label: &[u8],
        wrapped: &[u8],
        owner: &[u8],
        out: &mut [u8; 32],
    ) -> Result<()> {
        let parts = split(wrapped)?;
        if parts.ciphertext.len() != out.len() {
            return Err(CryptoError::Malformed("wrapped key has the wrong length"));
        }
        open_parts(self.bytes(), &wrap_context(label, owner), &parts, out)
    }
}

/// Associated data for key wrapping: length-prefixed domain label, then owner.
fn wrap_context(label: &[u8], owner: &[u8]) -> Vec<u8> {
    let mut ctx = Vec::with_capacity(16 + label.len() + owner.len());
    push_prefixed(&mut ctx, label);
    push_prefixed(&mut ctx, owner);
    ctx
}

/// Sets mode 0600 on the open file, in case the umask left the owner without access.
fn restrict_permissions(file: &File) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        Ok(())
    }
}

/// Syncs the directory containing `path` so the new directory entry is durable.
fn sync_parent_dir(path: &Path) -> std::result::Result<(), (PathBuf, io::Error)> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| (dir, e))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;
    use crate::envelope::{Aad, open, seal};

    const FAST: KdfParams = KdfParams {
        m_cost_kib: 1024,
        t_cost: 1,
        p_cost: 1,
    };

    fn entropy() -> SeededEntropy {
        SeededEntropy::new(9)
    }

    #[test]
    fn debug_is_redacted() {
        let e = entropy();
        let ik = InstanceKey::generate(&e).unwrap();
        let dk = DataKey::generate(&e).unwrap();
        let xk = IndexKey::generate(&e).unwrap();
        for s in [format!("{ik:?}"), format!("{dk:?}"), format!("{xk:#?}")] {
            assert_eq!(s, "[redacted]");
        }
    }

    #[test]
    fn generate_is_deterministic_with_seed() {
        let a = DataKey::generate(&SeededEntropy::new(1)).unwrap();
        let b = DataKey::generate(&SeededEntropy::new(1)).unwrap();
        let c = DataKey::generate(&SeededEntropy::new(2)).unwrap();
        assert_eq!(a.bytes, b.bytes);
        assert_ne!(a.bytes, c.bytes);
    }

    #[test]
    fn wrap_round_trip() {
        let e = entropy();
        let ik = InstanceKey::generate(&e).unwrap();
        let dk = DataKey::generate(&e).unwrap();
        let wrapped = ik.wrap_data_key(&dk, b"person-1", &e).unwrap();
        assert_eq!(wrapped.len(), 1 + 24 + 32 + 16);
        assert_eq!(wrapped.first(), Some(&1));
        let back = ik.unwrap_data_key(&wrapped, b"person-1").unwrap();
        assert_eq!(back.bytes, dk.bytes);

        // The unwrapped key opens what the original sealed.
        let aad = Aad::new("t", "f", b"r");
        let sealed = seal(&dk, &aad, b"hello", &e).unwrap();
        assert_eq!(&open(&back, &aad, &sealed).unwrap()[..], b"hello");

        let xk = IndexKey::generate(&e).unwrap();
        let wrapped = ik.wrap_index_key(&xk, b"org-1", &e).unwrap();
        assert_eq!(
            ik.unwrap_index_key(&wrapped, b"org-1").unwrap().bytes,
            xk.bytes
        );
    }

    #[test]
    fn unwrap_fails_for_other_owner_or_instance_key() {
        let e = entropy();
        let ik = InstanceKey::generate(&e).unwrap();
        let other = InstanceKey::generate(&e).unwrap();
        let dk = DataKey::generate(&e).unwrap();
        let wrapped = ik.wrap_data_key(&dk, b"person-1", &e).unwrap();
        assert!(matches!(
            ik.unwrap_data_key(&wrapped, b"person-2"),
            Err(CryptoError::Decrypt)
        ));
        assert!(matches!(
            other.unwrap_data_key(&wrapped, b"person-1"),
            Err(CryptoError::Decrypt)
        ));
        let xk = IndexKey::generate(&e).unwrap();
        let wrapped = ik.wrap_index_key(&xk, b"org", &e).unwrap();
        assert!(matches!(
            ik.unwrap_index_key(&wrapped, b"org2"),
            Err(CryptoError::Decrypt)
        ));
        assert!(matches!(
            other.unwrap_index_key(&wrapped, b"org"),
            Err(CryptoError::Decrypt)
        ));
    }

    #[test]
    fn data_and_index_wrapping_are_domain_separated() {
        let e = entropy();
        let ik = InstanceKey::generate(&e).unwrap();
        let dk = DataKey::generate(&e).unwrap();
        let wrapped = ik.wrap_data_key(&dk, b"owner", &e).unwrap();
        assert!(matches!(
            ik.unwrap_index_key(&wrapped, b"owner"),
            Err(CryptoError::Decrypt)
        ));
        let xk = IndexKey::generate(&e).unwrap();
        let wrapped = ik.wrap_index_key(&xk, b"owner", &e).unwrap();
        assert!(matches!(
            ik.unwrap_data_key(&wrapped, b"owner"),
            Err(CryptoError::Decrypt)
        ));
    }

    #[test]
    fn unwrap_rejects_tampering_and_junk() {
        let e = entropy();
        let ik = InstanceKey::generate(&e).unwrap();
        let dk = DataKey::generate(&e).unwrap();
        let wrapped = ik.wrap_data_key(&dk, b"p", &e).unwrap();
        for i in 0..wrapped.len() {
            let mut bad = wrapped.clone();
            bad[i] ^= 0x04;
            assert!(ik.unwrap_data_key(&bad, b"p").is_err(), "byte {i}");
        }
        assert!(matches!(
            ik.unwrap_data_key(&wrapped[..wrapped.len() - 1], b"p"),
            Err(CryptoError::Malformed(_))
        ));
        assert!(matches!(
            ik.unwrap_data_key(&[2u8; 73], b"p"),
            Err(CryptoError::UnsupportedVersion(2))
        ));
        assert!(ik.unwrap_data_key(&[], b"p").is_err());
    }

    #[test]
    fn check_value_and_key_id() {
        let e = entropy();
        let a = InstanceKey::generate(&e).unwrap();
        let b = InstanceKey::generate(&e).unwrap();
        assert_eq!(a.check_value(), a.clone().check_value());
        assert_ne!(a.check_value(), b.check_value());
        assert_ne!(a.key_id(), b.key_id());
        assert_ne!(a.key_id()[..], a.check_value()[..8]);
        assert!(a.verify_check_value(&a.check_value()).is_ok());
        assert!(matches!(
            b.verify_check_value(&a.check_value()),
            Err(CryptoError::WrongKey)
        ));
        assert!(a.verify_check_value(&a.check_value()[..31]).is_err());
    }

    #[test]
    fn passphrase_derivation() {
        let pass = SecretString::new("correct horse battery staple".into());
        let a = InstanceKey::derive_from_passphrase(&pass, &[1u8; 16], &FAST).unwrap();
        let b = InstanceKey::derive_from_passphrase(&pass, &[1u8; 16], &FAST).unwrap();
        let c = InstanceKey::derive_from_passphrase(&pass, &[2u8; 16], &FAST).unwrap();
        let other = SecretString::new("correct horse battery stapler".into());
        let d = InstanceKey::derive_from_passphrase(&other, &[1u8; 16], &FAST).unwrap();
        assert_eq!(a.bytes, b.bytes);
        assert_ne!(a.bytes, c.bytes);
        assert_ne!(a.bytes, d.bytes);
        let slower = KdfParams { t_cost: 2, ..FAST };
        let f = InstanceKey::derive_from_passphrase(&pass, &[1u8; 16], &slower).unwrap();
        assert_ne!(a.bytes, f.bytes);
    }

    #[test]
    fn passphrase_derivation_rejects_empty_and_bad_params() {
        let pass = SecretString::new("x".into());
        assert!(matches!(
            InstanceKey::derive_from_passphrase(&SecretString::new(String::new()), &[0; 16], &FAST),
            Err(CryptoError::Kdf(_))
        ));
        let zero_t = KdfParams { t_cost: 0, ..FAST };
        assert!(matches!(
            InstanceKey::derive_from_passphrase(&pass, &[0; 16], &zero_t),
            Err(CryptoError::Kdf(_))
        ));
    }

    #[test]
    fn kdf_params_text() {
        let d = KdfParams::default();
        assert_eq!(d.to_string(), "argon2id:m=65536,t=3,p=1");
        assert_eq!(KdfParams::parse(&d.to_string()).unwrap(), d);
        assert_eq!(KdfParams::parse(&FAST.to_string()).unwrap(), FAST);
        assert_eq!(
            "argon2id:m=1024,t=1,p=1".parse::<KdfParams>().unwrap(),
            FAST
        );
        for junk in [
            "",
            "argon2id",
            "argon2id:",
            "argon2i:m=65536,t=3,p=1",
            "argon2id:m=65536,t=3",
            "argon2id:m=65536,t=3,p=1,x=2",
            "argon2id:m=65536,t=3,p=1,",
            "argon2id:t=3,m=65536,p=1",
            "argon2id:m=65536,t=3,p=+1",
            "argon2id:m=065536,t=3,p=1",
            "argon2id:m=65536,t=3,p=-1",
            "argon2id:m=65536,t=3,p=",
            "argon2id:m=99999999999,t=3,p=1",
            "argon2id:m=65536,t=0,p=1",
            "argon2id:m=65536,t=3,p=0",
            "argon2id:m=4,t=3,p=1",
            "argon2id:m=16,t=3,p=4",
            " argon2id:m=65536,t=3,p=1",
            "argon2id:m=65536,t=3,p=1\n",
            "argon2id:m = 65536,t=3,p=1",
        ] {
            assert!(
                matches!(KdfParams::parse(junk), Err(CryptoError::Kdf(_))),
                "{junk:?}"
            );
        }
    }

    #[test]
    fn key_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("instance.key");
        let key = InstanceKey::generate(&entropy()).unwrap();
        key.write_key_file(&path).unwrap();

        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("refuge-instance-key-v1:"));
        assert!(text.ends_with('\n'));
        assert_eq!(text.len(), KEY_FILE_LEN);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }

        let back = InstanceKey::read_key_file(&path).unwrap();
        assert_eq!(back.bytes, key.bytes);
    }

    #[test]
    fn key_file_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("instance.key");
        let first = InstanceKey::generate(&entropy()).unwrap();
        first.write_key_file(&path).unwrap();
        let second = InstanceKey::from_bytes([7u8; 32]);
        assert!(matches!(
            second.write_key_file(&path),
            Err(CryptoError::KeyFileExists { .. })
        ));
        assert_eq!(
            InstanceKey::read_key_file(&path).unwrap().bytes,
            first.bytes
        );
    }

    #[cfg(unix)]
    fn write_with_mode(path: &Path, content: &[u8], mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, content).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn key_file_refuses_loose_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("instance.key");
        let content = format!("{KEY_FILE_PREFIX}{}\n", "ab".repeat(32));
        for mode in [0o644, 0o640, 0o604, 0o660, 0o606] {
            write_with_mode(&path, content.as_bytes(), mode);
            match InstanceKey::read_key_file(&path) {
                Err(CryptoError::KeyFilePermissions { path: p, mode: m }) => {
                    assert_eq!(p, path);
                    assert_eq!(m, mode);
                    let msg = CryptoError::KeyFilePermissions { path: p, mode: m }.to_string();
                    assert!(msg.contains(&path.display().to_string()));
                    assert!(msg.contains(&format!("{mode:04o}")));
                    assert!(!msg.contains("abab"));
                }
                other => panic!("mode {mode:o}: {other:?}"),
            }
        }
        for mode in [0o600, 0o400] {
            write_with_mode(&path, content.as_bytes(), mode);
            assert_eq!(InstanceKey::read_key_file(&path).unwrap().bytes, [0xab; 32]);
        }
    }

    #[cfg(unix)]
    #[test]
    fn key_file_rejects_malformed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("instance.key");
        let hex = "ab".repeat(32);
        let cases: Vec<String> = vec![
            String::new(),
            "\n".into(),
            hex.clone(),
            format!("refuge-instance-key-v2:{hex}\n"),
            format!("{KEY_FILE_PREFIX}{}\n", &hex[..62]),
            format!("{KEY_FILE_PREFIX}{hex}00\n"),
            format!("{KEY_FILE_PREFIX}{}zz\n", &hex[..62]),
            format!("{KEY_FILE_PREFIX}{hex}\n\n"),
            format!("{KEY_FILE_PREFIX}{hex}\r\n"),
            format!(" {KEY_FILE_PREFIX}{hex}\n"),
            format!("{KEY_FILE_PREFIX}{hex}\n{}", "x".repeat(1000)),
        ];
        for content in &cases {
            write_with_mode(&path, content.as_bytes(), 0o600);
            match InstanceKey::read_key_file(&path) {
                Err(CryptoError::KeyFileFormat { path: p }) => {
                    assert_eq!(p, path);
                    let msg = CryptoError::KeyFileFormat { path: p }.to_string();
                    assert!(!msg.contains("abab"));
                }
                other => panic!("{content:?}: {other:?}"),
            }
        }
        // Upper-case hex and a missing final newline are accepted.
        write_with_mode(
            &path,
            format!("{KEY_FILE_PREFIX}{}", "AB".repeat(32)).as_bytes(),
            0o600,
        );
        assert_eq!(InstanceKey::read_key_file(&path).unwrap().bytes, [0xab; 32]);
        // A directory is not a key file.
        assert!(matches!(
            InstanceKey::read_key_file(dir.path()),
            Err(CryptoError::KeyFileFormat { .. }) | Err(CryptoError::KeyFilePermissions { .. })
        ));
    }

    #[test]
    fn missing_key_file_is_io_error_naming_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.key");
        let err = InstanceKey::read_key_file(&path).unwrap_err();
        assert!(matches!(err, CryptoError::KeyFile { .. }));
        assert!(err.to_string().contains("absent.key"));
    }
}
