//! The JSON API's request bodies, decoded exactly as the handlers' `ApiJson` extractor decodes
//! them (`parse_json`: serde_json through serde_path_to_error, then a check for trailing
//! bytes), through `refuge_web::decode_request_for_fuzzing`. The first input byte picks the
//! request (check, new case, move, message, deadline, referral, answer, export, export decision,
//! export collection); the rest is the body.
//!
//! Invariants:
//! - never a panic: always `Ok` or a `WebError`;
//! - an error is a client error with a message: `400 bad_request` (not JSON, empty body) or
//!   `422 invalid` naming the field at fault (empty only for an empty key);
//! - a body of blanks only is `400` ("send a JSON object");
//! - an accepted body is one whole JSON value (nothing after it), an object or an array (serde's
//!   derived structs also take their fields in order from an array).
#![no_main]

use libfuzzer_sys::fuzz_target;
use refuge_web::decode_request_for_fuzzing;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    match decode_request_for_fuzzing(kind, body) {
        Ok(()) => {
            let v: serde_json::Value = serde_json::from_slice(body)
                .unwrap_or_else(|e| panic!("accepted a body that is not one JSON value: {e}"));
            assert!(v.is_object() || v.is_array(), "accepted {v}");
        }
        Err(e) => {
            assert!(!e.code.is_empty());
            match e.code {
                "bad_request" => {
                    assert_eq!(e.status.as_u16(), 400);
                    assert!(e.field.is_none());
                }
                "invalid" => {
                    assert_eq!(e.status.as_u16(), 422);
                    let field = e.field.as_deref().expect("422 names the field");
                    // Not checked further: an unknown key is named as sent, so a key such as
                    // "a..b" or "x[0]" makes the path ambiguous, and the key "" at the top
                    // gives an empty field (both found by this target; see README.md).
                    assert!(
                        !field.is_empty() || body.windows(2).any(|w| w == b"\"\""),
                        "an empty field path"
                    );
                }
                other => panic!("unexpected error code {other} ({})", e.status),
            }
            assert!(
                e.detail.as_deref().is_some_and(|d| !d.trim().is_empty()),
                "an error says what is wrong"
            );
            if body.iter().all(u8::is_ascii_whitespace) {
                assert_eq!(e.code, "bad_request");
            }
        }
    }
});
