//! Human-readable byte sizes for quotas and size limits.

use serde::Deserializer;
use serde::de::{self, Visitor};

use crate::DirectoryError;

const KIB: u64 = 1 << 10;

/// Units, largest first so `format_size` picks the largest one that fits.
const UNITS: &[(&str, u64)] = &[
    ("TiB", KIB * KIB * KIB * KIB),
    ("TB", 1_000_000_000_000),
    ("GiB", KIB * KIB * KIB),
    ("GB", 1_000_000_000),
    ("MiB", KIB * KIB),
    ("MB", 1_000_000),
    ("KiB", KIB),
    ("KB", 1_000),
    ("B", 1),
];

/// Parses a size: `1024`, `500MB`, `2GB`, `1GiB`, `64 KiB`.
///
/// A bare number is bytes. Units follow IEC 80000-13: `KB`, `MB`, `GB`, `TB`
/// are decimal (10^3, 10^6, 10^9, 10^12 bytes); `KiB`, `MiB`, `GiB`, `TiB` are
/// binary (2^10, 2^20, 2^30, 2^40). Units are case-insensitive and may follow
/// a space. Fractions (`1.5GB`) are refused rather than rounded: write `1500MB`.
pub fn parse_size(input: &str) -> Result<u64, DirectoryError> {
    let invalid = |reason: &str| DirectoryError::InvalidSize {
        value: input.to_owned(),
        reason: reason.to_owned(),
    };
    let text = input.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    if number.is_empty() {
        return Err(invalid("it must start with a whole number"));
    }
    let number: u64 = number.parse().map_err(|_| invalid("number too large"))?;
    if unit.starts_with(['.', ',']) {
        return Err(invalid(
            "fractions are not accepted: write 1500MB, not 1.5GB",
        ));
    }
    let unit = unit.trim_start();
    let multiplier = if unit.is_empty() {
        1
    } else {
        UNITS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(unit))
            .map(|&(_, multiplier)| multiplier)
            .ok_or_else(|| invalid("unknown unit; use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB"))?
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| invalid("size too large"))
}

/// Formats a size for people: exact in the largest unit that divides it
/// (`1 GiB`, `500 MB`), otherwise approximate in binary units (`12.3 MiB`).
pub fn format_size(bytes: u64) -> String {
    if let Some((name, multiplier)) = UNITS.iter().find(|&&(_, multiplier)| {
        multiplier > 1 && bytes >= multiplier && bytes.is_multiple_of(multiplier)
    }) {
        return format!("{} {name}", bytes / multiplier);
    }
    if bytes < KIB {
        return format!("{bytes} B");
    }
    let (name, multiplier) = UNITS
        .iter()
        .filter(|(name, _)| name.ends_with("iB"))
        .find(|&&(_, multiplier)| bytes >= multiplier)
        .copied()
        .unwrap_or(("KiB", KIB));
    // Display only: the precision lost converting to f64 does not matter here.
    format!("{:.1} {name}", bytes as f64 / multiplier as f64)
}

/// Serde helper so configuration may write sizes as numbers (bytes) or as
/// strings in `parse_size` syntax: `default_quota = "1GiB"`.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    struct SizeVisitor;

    impl Visitor<'_> for SizeVisitor {
        type Value = u64;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a size in bytes or a string such as \"500MB\" or \"1GiB\"")
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<u64, E> {
            Ok(value)
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<u64, E> {
            u64::try_from(value).map_err(|_| E::custom("a size cannot be negative"))
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<u64, E> {
            parse_size(value).map_err(E::custom)
        }
    }

    deserializer.deserialize_any(SizeVisitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documented_forms() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("500MB").unwrap(), 500_000_000);
        assert_eq!(parse_size("2GB").unwrap(), 2_000_000_000);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("64 KiB").unwrap(), 64 << 10);
        assert_eq!(parse_size("3mib").unwrap(), 3 << 20);
        assert_eq!(parse_size("1TiB").unwrap(), 1 << 40);
        assert_eq!(parse_size("7B").unwrap(), 7);
        assert_eq!(parse_size(" 10 MB ").unwrap(), 10_000_000);
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "MB",
            "1.5GB",
            "-1",
            "10 XB",
            "12k",
            "99999999999999999999",
            "20000000TiB",
        ] {
            let err = parse_size(bad).unwrap_err();
            assert!(
                matches!(err, DirectoryError::InvalidSize { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn formats_for_people() {
        assert_eq!(format_size(1 << 30), "1 GiB");
        assert_eq!(format_size(500_000_000), "500 MB");
        assert_eq!(format_size(0), "0 B");
        assert_eq!(format_size(1023), "1023 B");
        assert_eq!(format_size(12_900_000 + 7), "12.3 MiB");
    }

    #[test]
    fn deserializes_numbers_and_strings() {
        use serde::de::IntoDeserializer;
        use serde::de::value::Error;
        let from_str: Result<u64, Error> = deserialize("1GiB".into_deserializer());
        assert_eq!(from_str.unwrap(), 1 << 30);
        let from_int: Result<u64, Error> = deserialize(5_i64.into_deserializer());
        assert_eq!(from_int.unwrap(), 5);
        let negative: Result<u64, Error> = deserialize((-5_i64).into_deserializer());
        assert!(negative.is_err());
    }
}
