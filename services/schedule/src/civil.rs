//! Proleptic Gregorian calendar arithmetic on plain integers.
//!
//! The next-fire engines work on broken-down wall-clock fields (like C's `struct tm`) because
//! systemd's algorithm is defined on them; these helpers give month lengths and weekdays
//! without building chrono values in the hot loop. No time zones here.

/// Whether `year` is a Gregorian leap year.
pub(crate) fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Days in `month` (1..=12) of `year`.
pub(crate) fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a civil date (month 1..=12, day 1..=31); Howard Hinnant's algorithm.
pub(crate) fn days_from_civil(year: i32, month: u32, day: u32) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Weekday of a civil date, 0 = Monday .. 6 = Sunday (systemd's numbering).
pub(crate) fn weekday_mon0(year: i32, month: u32, day: u32) -> u32 {
    // 1970-01-01 was a Thursday (3 in Monday-based numbering).
    (days_from_civil(year, month, day) + 3).rem_euclid(7) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, NaiveDate};
    use proptest::prelude::*;

    #[test]
    fn month_lengths() {
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2100, 2), 28);
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(2023, 4), 30);
        assert_eq!(days_in_month(2023, 12), 31);
    }

    proptest! {
        #[test]
        fn agrees_with_chrono(days in -800_000i64..800_000) {
            let date = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(days);
            prop_assert_eq!(days_from_civil(date.year(), date.month(), date.day()), days);
            prop_assert_eq!(
                weekday_mon0(date.year(), date.month(), date.day()),
                date.weekday().num_days_from_monday()
            );
        }
    }
}
