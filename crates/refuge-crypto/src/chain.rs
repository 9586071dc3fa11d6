//! The event hash chain.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::error::{CryptoError, Result};
use crate::hex::{hex_decode_into, hex_encode};
use crate::mac::len_be;

const CHAIN_LABEL: &[u8] = b"refuge-chain-v1";

/// A link of the event hash chain: SHA-256 of the previous link and one event's stored bytes.
/// Not secret; `Debug` and `Display` print it as hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChainHash(pub [u8; 32]);

impl ChainHash {
    /// The `prev` of the first event: all zeros.
    pub const GENESIS: Self = Self([0u8; 32]);

    /// Lower-case hex, 64 characters.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex_encode(&self.0)
    }

    /// Parses 64 hex characters (either case).
    ///
    /// # Errors
    /// [`CryptoError::Malformed`] for anything else.
    pub fn from_hex(s: &str) -> Result<Self> {
        let mut bytes = [0u8; 32];
        hex_decode_into(s.as_bytes(), &mut bytes).ok_or(CryptoError::Malformed(
            "chain hash must be 64 hex characters",
        ))?;
        Ok(Self(bytes))
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainHash({})", self.to_hex())
    }
}

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The next link of the chain:
/// `SHA-256("refuge-chain-v1" || prev || for each field: len as big-endian u64 || bytes)`.
///
/// Put **every** stored byte of the event in `fields` (id, sequence, actor, time, kind,
/// payload, …), in a fixed order, so that changing, adding or removing any byte of any event
/// changes its link and every later one, and deleting or reordering events breaks the chain.
/// Because each field is length-prefixed, `["ab", "c"]` and `["a", "bc"]` hash differently.
#[must_use]
pub fn chain_link(prev: &ChainHash, fields: &[&[u8]]) -> ChainHash {
    let mut h = Sha256::new();
    h.update(CHAIN_LABEL);
    h.update(prev.0);
    for field in fields {
        h.update(len_be(field));
        h.update(field);
    }
    ChainHash(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let h = chain_link(&ChainHash::GENESIS, &[b"x"]);
        assert_eq!(ChainHash::from_hex(&h.to_hex()).unwrap(), h);
        assert_eq!(ChainHash::from_hex(&h.to_hex().to_uppercase()).unwrap(), h);
        assert_eq!(format!("{h:?}"), format!("ChainHash({})", h.to_hex()));
        assert_eq!(h.to_string(), h.to_hex());
        assert_eq!(ChainHash::GENESIS.to_hex(), "0".repeat(64));
        for bad in ["", "00", &"0".repeat(63), &"0".repeat(65), &"g".repeat(64)] {
            assert!(ChainHash::from_hex(bad).is_err());
        }
    }

    #[test]
    fn matches_specified_construction() {
        let mut data = b"refuge-chain-v1".to_vec();
        data.extend_from_slice(&[0u8; 32]);
        data.extend_from_slice(&2u64.to_be_bytes());
        data.extend_from_slice(b"ab");
        data.extend_from_slice(&0u64.to_be_bytes());
        assert_eq!(
            chain_link(&ChainHash::GENESIS, &[b"ab", b""]).0,
            crate::mac::sha256(&data)
        );
    }

    #[test]
    fn any_change_changes_the_link() {
        let fields: [&[u8]; 3] = [b"event-1", b"actor", b"{\"k\":1}"];
        let base = chain_link(&ChainHash::GENESIS, &fields);
        assert_eq!(base, chain_link(&ChainHash::GENESIS, &fields));
        for f in 0..fields.len() {
            for i in 0..fields[f].len() {
                let mut changed: Vec<Vec<u8>> = fields.iter().map(|x| x.to_vec()).collect();
                changed[f][i] ^= 0x01;
                let refs: Vec<&[u8]> = changed.iter().map(Vec::as_slice).collect();
                assert_ne!(chain_link(&ChainHash::GENESIS, &refs), base);
            }
        }
        let mut prev = ChainHash::GENESIS;
        prev.0[31] = 1;
        assert_ne!(chain_link(&prev, &fields), base);
        assert_ne!(chain_link(&ChainHash::GENESIS, &fields[..2]), base);
        assert_ne!(
            chain_link(
                &ChainHash::GENESIS,
                &[b"event-1", b"actor", b"{\"k\":1}", b""]
            ),
            base
        );
    }

    #[test]
    fn unambiguous_field_boundaries() {
        let g = ChainHash::GENESIS;
        assert_ne!(
            chain_link(&g, &[b"ab", b"c"]),
            chain_link(&g, &[b"a", b"bc"])
        );
        assert_ne!(chain_link(&g, &[b"abc"]), chain_link(&g, &[b"ab", b"c"]));
        assert_ne!(chain_link(&g, &[]), chain_link(&g, &[b""]));
    }
}
