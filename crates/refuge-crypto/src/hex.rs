//! Lower-case hexadecimal, without a dependency.

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Encodes bytes as lower-case hexadecimal. Never use it on secret bytes you would not print.
#[must_use]
pub fn hex_encode(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len().saturating_mul(2));
    hex_push(&mut s, bytes);
    s
}

/// Appends the lower-case hexadecimal of `bytes` to `out` (which may be a zeroizing buffer
/// with enough capacity, so secrets are not copied elsewhere).
pub(crate) fn hex_push(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        for nibble in [b >> 4, b & 0x0f] {
            out.push(char::from(
                DIGITS.get(usize::from(nibble)).copied().unwrap_or(b'0'),
            ));
        }
    }
}

/// Decodes exactly `N` bytes of hexadecimal (either case) into `out`; `None` if the text is not
/// exactly `2 * N` hex digits. `out` may be a secret buffer: it is written in place.
pub(crate) fn hex_decode_into<const N: usize>(text: &[u8], out: &mut [u8; N]) -> Option<()> {
    if text.len() != N.checked_mul(2)? {
        return None;
    }
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let (hi, lo) = match pair {
            [hi, lo] => (nibble(*hi)?, nibble(*lo)?),
            _ => return None,
        };
        *byte = (hi << 4) | lo;
    }
    Some(())
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let bytes = [0x00, 0x01, 0xab, 0xff];
        let text = hex_encode(&bytes);
        assert_eq!(text, "0001abff");
        let mut out = [0u8; 4];
        assert_eq!(hex_decode_into(text.as_bytes(), &mut out), Some(()));
        assert_eq!(out, bytes);
        assert_eq!(hex_decode_into(b"0001ABFF", &mut out), Some(()));
        assert_eq!(out, bytes);
    }

    #[test]
    fn rejects_bad_text() {
        let mut out = [0u8; 2];
        assert_eq!(hex_decode_into(b"abc", &mut out), None);
        assert_eq!(hex_decode_into(b"abcdef", &mut out), None);
        assert_eq!(hex_decode_into(b"abcg", &mut out), None);
        assert_eq!(hex_decode_into(b"+bcd", &mut out), None);
    }
}
