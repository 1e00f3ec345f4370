//! Hex text: the one home of the workspace's hex encoding and decoding.
//!
//! Signs are upper-case hex and are read in either case; the Redis store writes its keys'
//! secrets and node ids in lower case.

/// The value of each byte as a hex digit, or [`NOT_HEX`].
///
/// Signs are random, so a digit is a letter or a number at random: a lookup instead of
/// comparisons keeps the branch predictor out of it (mispredicted branches cost a decode of
/// 32 digits some 80 ns).
const HEX_VALUES: [u8; 256] = {
    let mut values = [NOT_HEX; 256];
    let mut i = 0;
    while i < 10 {
        values[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        values[b'a' as usize + i] = 10 + i as u8;
        values[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    values
};

/// Marks a byte that is not a hex digit: its high bits are set, those of a digit's value
/// never are.
const NOT_HEX: u8 = 0xf0;

const UPPER: &[u8; 16] = b"0123456789ABCDEF";
const LOWER: &[u8; 16] = b"0123456789abcdef";

fn encode(bytes: &[u8], digits: &[u8; 16]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(digits[usize::from(byte >> 4)]));
        out.push(char::from(digits[usize::from(byte & 0x0f)]));
    }
    out
}

/// `bytes` as upper-case hex (how signs are written).
pub fn upper(bytes: &[u8]) -> String {
    encode(bytes, UPPER)
}

/// `bytes` as lower-case hex.
pub fn lower(bytes: &[u8]) -> String {
    encode(bytes, LOWER)
}

/// The `N` bytes that exactly `2 × N` hex digits (either case) spell; `None` for anything
/// else.
pub fn decode<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    // Any byte that is not a digit leaves high bits here: checked once at the end.
    let mut not_hex = 0u8;
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let hi = HEX_VALUES[usize::from(pair[0])];
        let lo = HEX_VALUES[usize::from(pair[1])];
        not_hex |= hi | lo;
        *byte = hi << 4 | lo;
    }
    (not_hex & NOT_HEX == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_byte_is_read_as_a_digit_or_refused() {
        for b in 0..=255u8 {
            let expected = char::from(b).to_digit(16).filter(|_| b.is_ascii());
            let got = if b.is_ascii() {
                let text = format!("0{}", char::from(b));
                decode::<1>(&text).map(|d| u32::from(d[0]))
            } else {
                None
            };
            assert_eq!(got, expected, "byte {b:#x}");
        }
    }

    #[test]
    fn either_case_and_exact_length() {
        let digest: [u8; 16] = std::array::from_fn(|i| (i * 17) as u8);
        let upper = upper(&digest);
        assert_eq!(upper, "00112233445566778899AABBCCDDEEFF");
        assert_eq!(lower(&digest), upper.to_lowercase());
        assert_eq!(decode::<16>(&upper), Some(digest));
        assert_eq!(decode::<16>(&upper.to_lowercase()), Some(digest));
        for bad in [
            "",
            &upper[..31],
            &format!("{upper}0"),
            &upper.replace('1', "g"),
        ] {
            assert_eq!(decode::<16>(bad), None, "{bad}");
        }
        // A multi-byte character is not two digits.
        assert_eq!(decode::<16>(&format!("é{}", &upper[..30])), None);
    }

    proptest! {
        #[test]
        fn round_trips(bytes in proptest::array::uniform32(any::<u8>())) {
            prop_assert_eq!(decode::<32>(&lower(&bytes)), Some(bytes));
            prop_assert_eq!(decode::<32>(&upper(&bytes)), Some(bytes));
        }
    }
}
