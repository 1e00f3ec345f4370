//! [`Int`]: an integer as the wire carries it, read by value.

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::ser::{Serialize, Serializer};
use std::fmt;

/// An integer as RTM's wire carries it: any msgpack integer, `int64` or `uint64`, read by its
/// value whatever the width or signedness the sender chose (Python sends non-negative
/// integers as `uint`, Node sends `int64`, C++ the smallest form).
///
/// It holds every value from `i64::MIN` to `u64::MAX`. It is written back in the form the
/// official writers use: as a signed integer when it fits `int64`, else as `uint64`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Int(i128);

impl Int {
    /// The value.
    pub const fn get(self) -> i128 {
        self.0
    }

    /// The value as an `i64`, if it fits.
    pub fn to_i64(self) -> Option<i64> {
        i64::try_from(self.0).ok()
    }

    /// The value as an `i32`, if it fits (a `pid`).
    pub fn to_i32(self) -> Option<i32> {
        i32::try_from(self.0).ok()
    }

    /// Its decimal text, on the stack (what the signature hashes).
    pub fn decimal(self) -> Decimal {
        Decimal::new(self)
    }
}

macro_rules! int_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Int {
            fn from(v: $t) -> Int {
                Int(i128::from(v))
            }
        }
    )*};
}

int_from!(i8, i16, i32, i64, u8, u16, u32, u64);

impl fmt::Display for Int {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Serialize for Int {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match (i64::try_from(self.0), u64::try_from(self.0)) {
            (Ok(i), _) => s.serialize_i64(i),
            (_, Ok(u)) => s.serialize_u64(u),
            // Not reachable through the constructors; refused rather than truncated.
            _ => Err(serde::ser::Error::custom(format!(
                "{} is outside the msgpack integer range",
                self.0
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Int, D::Error> {
        struct IntVisitor;
        impl Visitor<'_> for IntVisitor {
            type Value = Int;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int, E> {
                Ok(Int::from(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int, E> {
                Ok(Int::from(v))
            }
        }
        d.deserialize_any(IntVisitor)
    }
}

/// The decimal text of an [`Int`], written into a stack buffer: `-` and at most 20 digits
/// (the magnitude of every `Int` fits a `u64`).
#[derive(Clone, Copy)]
pub struct Decimal {
    /// The text is `digits[start..]`.
    digits: [u8; 21],
    start: usize,
}

impl Decimal {
    fn new(n: Int) -> Decimal {
        let mut digits = [0u8; 21];
        let mut start = digits.len();
        // |i64::MIN| = 2^63 and u64::MAX both fit a u64: the arithmetic stays in 64 bits.
        let mut rest = u64::try_from(n.0.unsigned_abs()).unwrap_or(u64::MAX);
        loop {
            start -= 1;
            digits[start] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        if n.0 < 0 {
            start -= 1;
            digits[start] = b'-';
        }
        Decimal { digits, start }
    }

    /// The text's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.digits[self.start..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fpnn::Value;
    use proptest::prelude::*;

    #[test]
    fn read_by_value_in_any_width() {
        for (value, expected) in [
            (Value::Int(-5), -5i128),
            (Value::UInt(7), 7),
            (Value::Int(7), 7),
            (Value::UInt(u64::MAX), i128::from(u64::MAX)),
            (Value::Int(i64::MIN), i128::from(i64::MIN)),
        ] {
            assert_eq!(fpnn::from_value::<Int>(&value).unwrap().get(), expected);
        }
        for bad in [
            Value::from("1"),
            Value::F64(1.0),
            Value::Nil,
            Value::Bool(true),
        ] {
            let e = fpnn::from_value::<Int>(&bad).unwrap_err();
            assert_eq!(e.code(), fpnn::code::PROTO_TYPE_CONVERT, "{bad}");
            assert!(e.to_string().contains("an integer"), "{e}");
        }
    }

    #[test]
    fn written_signed_when_it_fits() {
        assert_eq!(fpnn::to_value(&Int::from(42u64)).unwrap(), Value::Int(42));
        assert_eq!(
            fpnn::to_value(&Int::from(u64::MAX)).unwrap(),
            Value::UInt(u64::MAX)
        );
        assert_eq!(Int::from(300u32).to_i32(), Some(300));
        assert_eq!(Int::from(u64::MAX).to_i64(), None);
        assert_eq!(Int::from(i64::MIN).to_i32(), None);
    }

    proptest! {
        #[test]
        fn decimals_are_the_display_text(n in prop_oneof![
            any::<i64>().prop_map(Int::from),
            any::<u64>().prop_map(Int::from),
        ]) {
            let (decimal, text) = (n.decimal(), n.to_string());
            prop_assert_eq!(decimal.as_bytes(), text.as_bytes());
        }

        #[test]
        fn round_trips(n in prop_oneof![
            any::<i64>().prop_map(Int::from),
            any::<u64>().prop_map(Int::from),
        ]) {
            let value = fpnn::to_value(&n).unwrap();
            prop_assert_eq!(fpnn::from_value::<Int>(&value).unwrap(), n);
        }
    }

    #[test]
    fn decimal_edges() {
        for n in [0i64, 7, -7, 10, 99, 100, -100, i64::MAX, i64::MIN] {
            assert_eq!(Int::from(n).decimal().as_bytes(), n.to_string().as_bytes());
        }
        assert_eq!(
            Int::from(u64::MAX).decimal().as_bytes(),
            b"18446744073709551615"
        );
    }
}
