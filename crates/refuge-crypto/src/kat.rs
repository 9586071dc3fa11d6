//! Known-answer tests against an independent implementation (Python `cryptography` 48 for
//! Argon2id and ChaCha20-Poly1305, a hand-written HChaCha20 checked against the
//! draft-irtf-cfrg-xchacha-03 A.3.1 vector, and the standard library `hmac`), so the formats
//! here are pinned byte for byte.

use crate::entropy::Entropy;
use crate::error::Result;
use crate::hex::hex_encode;
use crate::{
    Aad, DataKey, IndexKey, InstanceKey, KdfParams, SecretString, blind_index, open, seal,
};

/// Hands out 100, 101, … so the nonce is known.
struct CountingEntropy;

impl Entropy for CountingEntropy {
    fn fill(&self, buf: &mut [u8]) -> Result<()> {
        for (b, v) in buf.iter_mut().zip(100u8..) {
            *b = v;
        }
        Ok(())
    }
}

fn key_0_to_31() -> [u8; 32] {
    std::array::from_fn(|i| u8::try_from(i).unwrap())
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn argon2id_known_answer() {
    let params = KdfParams {
        m_cost_kib: 1024,
        t_cost: 1,
        p_cost: 1,
    };
    let key = InstanceKey::derive_from_passphrase(
        &SecretString::new("password".into()),
        b"somesaltsomesalt",
        &params,
    )
    .unwrap();
    assert_eq!(
        hex_encode(key.bytes()),
        "16253e23a29b20d7c7a0c05f9150e74baaa6cf1832edc838d484fc250a02bef9"
    );
}

#[test]
fn check_value_key_id_and_blind_index_known_answers() {
    let ik = InstanceKey::from_bytes(key_0_to_31());
    assert_eq!(
        hex_encode(&ik.check_value()),
        "b918397659724d620000c58fc4b0ee5845b0a080639da3a4171016cbc409f4be"
    );
    assert_eq!(hex_encode(&ik.key_id()), "756be0ed9f7a0b67");
    let xk = IndexKey::from_bytes(key_0_to_31());
    assert_eq!(
        hex_encode(&blind_index(&xk, "person.name", b"ivanov ivan")),
        "178ca1ee4491740a9368530cb151c4d4"
    );
}

#[test]
fn seal_known_answer() {
    let key = DataKey::from_bytes(key_0_to_31());
    let aad = Aad::new("persons", "name", b"rec-1");
    let expected = "016465666768696a6b6c6d6e6f707172737475767778797a7b\
                    350598de9058a9cbf151f3af9ba8497de13bbbab1e0e07455fa530";
    let sealed = seal(&key, &aad, b"Ivanov Ivan", &CountingEntropy).unwrap();
    assert_eq!(hex_encode(&sealed), expected);
    assert_eq!(
        &open(&key, &aad, &unhex(expected)).unwrap()[..],
        b"Ivanov Ivan"
    );
}

#[test]
fn wrap_known_answer() {
    let ik = InstanceKey::from_bytes(key_0_to_31());
    let dk = DataKey::from_bytes([0xaa; 32]);
    let expected = "016465666768696a6b6c6d6e6f707172737475767778797a7b\
                    d6d9531a558423282d9a37950cc51763f111f8db4e86601a26ffce0d81f4d2ba\
                    85c94547715e2d79b0de251764d91f96";
    let wrapped = ik
        .wrap_data_key(&dk, b"person-1", &CountingEntropy)
        .unwrap();
    assert_eq!(hex_encode(&wrapped), expected);
    let back = ik.unwrap_data_key(&unhex(expected), b"person-1").unwrap();
    assert_eq!(back.bytes(), &[0xaa; 32]);
}
