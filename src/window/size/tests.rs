use super::*;

const T0: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z, a Thursday

fn grid(size: &str, zone: &str) -> Grid {
    Grid::new(size.parse().unwrap(), time_zone(zone).unwrap())
}

#[test]
fn sizes_parse_and_print_canonically() {
    for (text, size, label) in [
        ("30s", WindowSize::Seconds(30), "30s"),
        ("60s", WindowSize::Seconds(60), "1m"),
        ("1m", WindowSize::Seconds(60), "1m"),
        ("90m", WindowSize::Seconds(5400), "90m"),
        ("1h", WindowSize::Hours(1), "1h"),
        ("6h", WindowSize::Hours(6), "6h"),
        ("1d", WindowSize::Days(1), "1d"),
        ("7d", WindowSize::Days(7), "7d"),
        ("1w", WindowSize::Week, "1w"),
        ("1mo", WindowSize::Month, "1mo"),
        ("1y", WindowSize::Year, "1y"),
    ] {
        assert_eq!(text.parse::<WindowSize>(), Ok(size), "{text}");
        assert_eq!(size.to_string(), label);
    }
    for bad in [
        "",
        "0m",
        "5h",
        "2y",
        "12mo",
        "2w",
        "m",
        "1.5h",
        "-1m",
        "99999999999999999999s",
    ] {
        assert!(bad.parse::<WindowSize>().is_err(), "{bad:?}");
    }
    assert_eq!(
        parse_sizes("1m, 1h,1d").unwrap(),
        [
            WindowSize::Seconds(60),
            WindowSize::Hours(1),
            WindowSize::Days(1)
        ]
    );
    let err = |list: &str| parse_sizes(list).unwrap_err().to_string();
    assert_eq!(err("1mo,1mo"), "1mo is listed twice");
    assert_eq!(err("60s,1m"), "60s and 1m are the same size");
    assert_eq!(err("1m, 1h ,1h"), "1h is listed twice");
    assert_eq!(err(" , "), "no window size given");
    assert!(err("1q").starts_with(r#""1q" is not a window size"#));
    assert!(time_zone("Europe/Berlin").is_ok());
    assert!(time_zone("Mars/Olympus").is_err());
}

#[test]
fn utc_windows_are_the_epoch_aligned_ones() {
    for (size, len) in [("1m", 60), ("1h", 3600), ("6h", 6 * 3600), ("1d", 86_400)] {
        let g = grid(size, "UTC");
        for ts in [T0, T0 + 1, T0 + 59, T0 + 3599, T0 + 86_399, T0 + 123_456] {
            let start = ts - ts % len;
            assert_eq!(g.bounds(ts), Some((start, start + len)), "{size} {ts}");
        }
    }
    // 2026-01-01 is a Thursday: its ISO week began on Monday 2025-12-29.
    let week = grid("1w", "UTC").bounds(T0).unwrap();
    assert_eq!(week, (T0 - 3 * 86_400, T0 + 4 * 86_400));
    let month = grid("1mo", "UTC").bounds(T0 + 40 * 86_400).unwrap();
    assert_eq!(month, (T0 + 31 * 86_400, T0 + 59 * 86_400)); // February
    let year = grid("1y", "UTC").bounds(T0 + 200 * 86_400).unwrap();
    assert_eq!(year, (T0, T0 + 365 * 86_400));
    // 2028 is a leap year.
    let y2028 = T0 + (365 + 365) * 86_400;
    assert_eq!(
        grid("1y", "UTC").bounds(y2028 + 59 * 86_400),
        Some((y2028, y2028 + 366 * 86_400))
    );
}

#[test]
fn years_begin_at_local_new_year() {
    // Berlin's 2026 begins at 2025-12-31T23:00:00Z and ends at
    // 2026-12-31T23:00:00Z (both +01:00, winter time).
    let g = grid("1y", "Europe/Berlin");
    let (start, end) = (T0 - 3600, T0 + 365 * 86_400 - 3600);
    for ts in [start, T0, T0 + 180 * 86_400, end - 1] {
        assert_eq!(g.bounds(ts), Some((start, end)), "{ts}");
    }
    assert_eq!(g.bounds(end).unwrap().0, end);
    // Tokyo (+09:00): the UTC evening of 31 December is already next year.
    let tokyo = grid("1y", "Asia/Tokyo");
    assert_eq!(tokyo.bounds(T0 - 9 * 3600).unwrap().0, T0 - 9 * 3600);
    assert_eq!(tokyo.bounds(T0 - 9 * 3600 - 1).unwrap().1, T0 - 9 * 3600);
}

/// Central European time computed by hand from the EU rule, independent of
/// the time-zone library: +1 h, and +2 h from the last Sunday of March,
/// 01:00 UTC, to the last Sunday of October, 01:00 UTC.
fn berlin_offset(ts: u64) -> i64 {
    let year = 1970 + (ts / 31_556_952) as i64; // close enough mid-year
    let last_sunday = |month: u32| -> u64 {
        // Days from the epoch to the 1st of the next month, then back to a
        // Sunday (1970-01-04 was a Sunday).
        let first_next = days_from_civil(year, month + 1, 1);
        let mut d = first_next - 1;
        while (d - 3).rem_euclid(7) != 0 {
            d -= 1;
        }
        (d as u64) * 86_400 + 3600
    };
    if (last_sunday(3)..last_sunday(10)).contains(&ts) {
        7200
    } else {
        3600
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m as i64 + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[test]
fn berlin_days_follow_local_midnight_across_both_dst_changes() {
    let g = grid("1d", "Europe/Berlin");
    let mut lengths = std::collections::BTreeMap::new();
    // Every hour of 2026.
    for hour in 0..365 * 24 {
        let ts = T0 + hour * 3600 + 1800;
        let local = ts as i64 + berlin_offset(ts);
        let day = local.div_euclid(86_400);
        // Local midnight of that day and of the next, as instants: the
        // offset in force just after midnight decides.
        let midnight = |d: i64| {
            let guess = (d * 86_400 - 3600) as u64;
            (d * 86_400 - berlin_offset(guess)) as u64
        };
        let want = (midnight(day), midnight(day + 1));
        assert_eq!(g.bounds(ts), Some(want), "ts {ts}");
        lengths.insert(want.0, want.1 - want.0);
    }
    let short: Vec<_> = lengths.iter().filter(|(_, &l)| l == 23 * 3600).collect();
    let long: Vec<_> = lengths.iter().filter(|(_, &l)| l == 25 * 3600).collect();
    // 2026-03-29 and 2026-10-25, local midnights in UTC.
    assert_eq!(short, [(&1_774_738_800, &(23 * 3600))]);
    assert_eq!(long, [(&1_792_879_200, &(25 * 3600))]);
    // 2026 in Berlin, and the first half hour of 2027 (00:30Z is 01:30 local).
    assert_eq!(lengths.len(), 366);
}

#[test]
fn hours_tile_the_timeline_across_dst_changes() {
    for zone in [
        "Europe/Berlin",
        "America/New_York",
        "Asia/Kolkata",
        "Australia/Lord_Howe",
    ] {
        for size in ["1h", "2h", "6h", "1d", "7d", "1w", "1mo", "1y"] {
            let g = grid(size, zone);
            let mut ts = T0;
            let mut windows = 0;
            while ts < T0 + 800 * 86_400 {
                let (start, end) = g.bounds(ts).unwrap();
                assert!(start <= ts && ts < end, "{zone} {size}: {start} {ts} {end}");
                // Every instant of the window maps back to it.
                for probe in [start, (start + end) / 2, end - 1] {
                    assert_eq!(g.bounds(probe), Some((start, end)), "{zone} {size}");
                }
                assert_eq!(
                    g.bounds(end).unwrap().0,
                    end,
                    "{zone} {size}: gap or overlap"
                );
                ts = end;
                windows += 1;
            }
            assert!(windows > 0);
        }
    }
    // Kolkata is +05:30: its hours start at :30 UTC.
    assert_eq!(
        grid("1h", "Asia/Kolkata").bounds(T0),
        Some((T0 - 1800, T0 + 1800))
    );
    // New York, 2026-11-01: the local hour 01:00 repeats, so it lasts 2 h.
    let one_am_edt = 1_793_509_200; // 2026-11-01T05:00:00Z = 01:00 EDT
    assert_eq!(
        grid("1h", "America/New_York").bounds(one_am_edt + 4000),
        Some((one_am_edt, one_am_edt + 7200))
    );
}

#[test]
fn the_last_window_ends_by_year_9999() {
    let last = crate::decode::MAX_TS;
    for size in ["1m", "1h", "1d", "1w", "1mo", "1y"] {
        let g = grid(size, "Europe/Berlin");
        let max = g.max_ts(last);
        let (_, end) = g.bounds(max).unwrap();
        assert!(end <= last, "{size}");
        // Beyond it: a window that ends too late, or no local time at all.
        let next = g.bounds(max + 1);
        assert!(
            next.is_none_or(|(_, end)| end > last),
            "{size}: {max} is not the last"
        );
        // The last window that fits ends within one window of the end (a
        // year: year 9999 itself ends after the last writable instant).
        assert!(
            max > last - 367 * 86_400,
            "{size}: {max} is far from the end"
        );
    }
}
