//! What `rtm` prints: tables and times for people, one JSON object a line for scripts.

use std::borrow::Cow;
use std::time::{Duration, UNIX_EPOCH};

/// The first millisecond humantime cannot print (year 10000).
const YEAR_10000_MS: i64 = 253_402_300_800_000;

/// A time in Unix milliseconds as ISO 8601 in UTC, to the millisecond
/// (`2024-05-01T12:00:00.123Z`). A time before 1970 or after 9999 stays a number of
/// milliseconds (`@-5 ms`): it comes from the server and must not stop the listing.
pub fn utc(ms: i64) -> String {
    if (0..YEAR_10000_MS).contains(&ms) {
        let at = UNIX_EPOCH + Duration::from_millis(ms.unsigned_abs());
        humantime::format_rfc3339_millis(at).to_string()
    } else {
        format!("@{ms} ms")
    }
}

/// Text from the server made safe to print on a terminal: control characters (escape
/// sequences among them) are shown escaped, the rest as it is.
pub fn printable(text: &str) -> Cow<'_, str> {
    if text.chars().any(char::is_control) {
        Cow::Owned(
            text.chars()
                .map(|c| {
                    if c.is_control() {
                        c.escape_default().to_string()
                    } else {
                        c.to_string()
                    }
                })
                .collect(),
        )
    } else {
        Cow::Borrowed(text)
    }
}

/// Rows under a header, each column as wide as its widest cell (two spaces between
/// columns); the last column is not padded, so a long last cell does not widen the others.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let columns = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate().take(columns) {
            if i + 1 == columns {
                line.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count());
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Prints one JSON object on a line of stdout (`--json`).
pub fn json(value: serde_json::Value) {
    println!("{value}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_time_from_the_server_prints_and_reads_back(
            ms in prop_oneof![0..YEAR_10000_MS, any::<i64>()]
        ) {
            let shown = utc(ms);
            if (0..YEAR_10000_MS).contains(&ms) {
                let at = humantime::parse_rfc3339(&shown).unwrap();
                let back = at.duration_since(UNIX_EPOCH).unwrap().as_millis();
                prop_assert_eq!(back, u128::from(ms.unsigned_abs()));
            } else {
                prop_assert_eq!(shown, format!("@{ms} ms"));
            }
        }

        #[test]
        fn printable_text_has_no_control_characters(text in any::<String>()) {
            let shown = printable(&text);
            prop_assert!(!shown.chars().any(char::is_control));
            if !text.chars().any(char::is_control) {
                prop_assert_eq!(shown.as_ref(), text.as_str());
            }
        }
    }

    #[test]
    fn times_are_utc_iso_8601_and_out_of_range_ones_stay_numbers() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(utc(YEAR_10000_MS - 1), "9999-12-31T23:59:59.999Z");
        assert_eq!(utc(-5), "@-5 ms");
        assert_eq!(utc(YEAR_10000_MS), format!("@{YEAR_10000_MS} ms"));
        assert_eq!(utc(i64::MAX), format!("@{} ms", i64::MAX));
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("a1b2"), "a1b2");
        assert_eq!(printable("x\u{1b}[31my\n"), "x\\u{1b}[31my\\n");
    }

    #[test]
    fn a_table_pads_every_column_but_the_last() {
        let rows = vec![
            vec!["apns".to_owned(), "t1".to_owned(), "short".to_owned()],
            vec![
                "fcm".to_owned(),
                "t22".to_owned(),
                "a-much-longer-token".to_owned(),
            ],
        ];
        assert_eq!(
            table(&["APPTYPE", "ADDED", "TOKEN"], &rows),
            "APPTYPE  ADDED  TOKEN\n\
             apns     t1     short\n\
             fcm      t22    a-much-longer-token\n"
        );
    }
}
