//! Evidence uploads: `refuge_web::sniff`, which both upload handlers (the portal's
//! `POST /case/upload` and the API's `POST /api/v1/cases/{id}/evidence`) call on the bytes to
//! decide the stored media type, and refuse the file when it says `None`.
//!
//! Downloads are always `Content-Disposition: attachment` with the stored type and
//! `X-Content-Type-Options: nosniff`, so the type is what a browser would render the file as if
//! someone opened it. Invariants:
//! - the type is one of the four the upload code accepts: PDF, PNG, JPEG, plain text;
//! - each is given only to content that starts with that format's signature (PDF `%PDF-`, PNG
//!   `\x89PNG\r\n\x1a\n`, JPEG `FF D8 FF`); so content starting with `<` (HTML, SVG, XML) is
//!   never given an image or PDF type;
//! - plain text is non-empty UTF-8 without NUL and without `<` in its first KiB
//!   (docs/api.md), so markup that starts there (`<script`, `<html`, `<svg`, with a BOM or
//!   blanks before it or not) is never accepted as text either;
//! - content starting with `<` is refused outright;
//! - the answer depends on the content only: the same for the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

const PDF: &[u8] = b"%PDF-";
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n";
const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF];

fn contains_ci(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

fn check(bytes: &[u8]) {
    let got = refuge_web::sniff(bytes);
    assert_eq!(got, refuge_web::sniff(bytes), "deterministic");
    let head = &bytes[..bytes.len().min(1024)];
    match got {
        Some("application/pdf") => assert!(bytes.starts_with(PDF)),
        Some("image/png") => assert!(bytes.starts_with(PNG)),
        Some("image/jpeg") => assert!(bytes.starts_with(JPEG)),
        Some("text/plain") => {
            assert!(!bytes.is_empty());
            assert!(std::str::from_utf8(bytes).is_ok(), "text is UTF-8");
            assert!(!bytes.contains(&0), "text has no NUL");
            assert!(!head.contains(&b'<'), "no markup in the first KiB of text");
            assert!(!contains_ci(head, b"<script"));
        }
        Some(other) => panic!("a media type the upload code does not accept: {other}"),
        None => {}
    }
    if bytes.first() == Some(&b'<') {
        assert_eq!(got, None, "content starting with '<' is refused");
    }
    if contains_ci(head, b"<script") {
        assert!(
            matches!(
                got,
                None | Some("application/pdf" | "image/png" | "image/jpeg")
            ),
            "script markup in the first KiB is never text"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    // The same content behind each signature, and after a UTF-8 byte-order mark: the type
    // must still follow the first bytes only.
    for prefix in [PDF, PNG, JPEG, b"\xEF\xBB\xBF".as_slice()] {
        let mut v = Vec::with_capacity(prefix.len() + data.len());
        v.extend_from_slice(prefix);
        v.extend_from_slice(data);
        check(&v);
    }
});
