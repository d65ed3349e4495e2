//! The latest emitted windows of every series, kept small: what the page
//! and `/v1/windows`, `/v1/groups` show.
//!
//! Fed once per output batch with the records just emitted (never per
//! event), so one mutex is enough. A window's correction replaces its point
//! and keeps the first revision's count beside it, so a correction is
//! visible as such. Groups are kept for the latest windows only, and per
//! window only the groups with the most users: a window of 10⁵ pages keeps
//! its top [`GROUPS_PER_WINDOW`] and says how many it left out.

use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Windows kept per series.
pub const POINTS: usize = 240;
/// Windows per series and grouping whose groups are kept.
pub const GROUP_WINDOWS: usize = 60;
/// Groups kept per window and grouping: those with the most users.
pub const GROUPS_PER_WINDOW: usize = 200;

/// One window of a series (or of one group in it), as last emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Point {
    pub start_ts: u64,
    pub end_ts: u64,
    pub unique_users: u64,
    pub events: u64,
    pub revision: u32,
    /// The count the window was first seen with: differs from
    /// `unique_users` after a correction.
    pub first_unique_users: u64,
}

/// A record as the store takes it.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// Index into the series (window sizes, then rolling windows).
    pub series: usize,
    /// A group's record: its grouping's index and the group as JSON (a
    /// string, `null`, an array), or `None` as the text for the overflow.
    pub group: Option<(usize, Option<&'a str>)>,
    pub start_ts: u64,
    pub end_ts: u64,
    pub unique_users: u64,
    pub events: u64,
    pub revision: u32,
}

/// The key under which the overflow record of a window is kept.
pub const OVERFLOW: &str = "*";

/// One window's groups: the largest ones, and how many others there were.
#[derive(Debug, Default)]
pub struct GroupWindow {
    pub end_ts: u64,
    pub groups: HashMap<Box<str>, Point>,
    /// Groups seen in this window but not kept (fewer users than the kept).
    pub left_out: u64,
}

#[derive(Debug, Default)]
struct Series {
    points: BTreeMap<u64, Point>,
    /// Per grouping: window start -> its groups.
    groups: Vec<BTreeMap<u64, GroupWindow>>,
}

/// Every series' latest windows.
#[derive(Debug, Default)]
pub struct Recent {
    series: Vec<Series>,
}

impl Recent {
    /// A store for `series` series of `groupings` groupings each.
    pub fn new(series: usize, groupings: usize) -> Self {
        Recent {
            series: (0..series)
                .map(|_| Series {
                    points: BTreeMap::new(),
                    groups: (0..groupings).map(|_| BTreeMap::new()).collect(),
                })
                .collect(),
        }
    }

    /// Takes one emitted record. Records of unknown series or groupings
    /// (another configuration on the output topic) are skipped.
    pub fn add(&mut self, e: &Entry<'_>) {
        let Some(series) = self.series.get_mut(e.series) else {
            return;
        };
        match e.group {
            None => {
                keep(&mut series.points, e, POINTS);
            }
            Some((g, key)) => {
                let Some(windows) = series.groups.get_mut(g) else {
                    return;
                };
                if windows.len() >= GROUP_WINDOWS
                    && windows
                        .first_key_value()
                        .is_some_and(|(&s, _)| e.start_ts < s)
                {
                    return;
                }
                let window = windows.entry(e.start_ts).or_insert_with(|| GroupWindow {
                    end_ts: e.end_ts,
                    ..GroupWindow::default()
                });
                window.add(key.unwrap_or(OVERFLOW), e);
                while windows.len() > GROUP_WINDOWS {
                    windows.pop_first();
                }
            }
        }
    }

    /// The points of series `s`, oldest first.
    pub fn points(&self, s: usize) -> impl Iterator<Item = &Point> {
        self.series
            .iter()
            .skip(s)
            .take(1)
            .flat_map(|x| x.points.values())
    }

    /// The windows of series `s` with groups of grouping `g`, oldest first.
    pub fn group_windows(&self, s: usize, g: usize) -> impl Iterator<Item = (u64, &GroupWindow)> {
        self.series
            .get(s)
            .and_then(|x| x.groups.get(g))
            .into_iter()
            .flat_map(|w| w.iter().map(|(&start, w)| (start, w)))
    }

    /// One group's points in series `s`: the windows where it was kept.
    pub fn group_points(&self, s: usize, g: usize, key: &str) -> Vec<Point> {
        self.group_windows(s, g)
            .filter_map(|(_, w)| w.groups.get(key).copied())
            .collect()
    }
}

/// Puts the record's point into `points`, keeping the newest `cap`.
fn keep(points: &mut BTreeMap<u64, Point>, e: &Entry<'_>, cap: usize) {
    if points.len() >= cap
        && points
            .first_key_value()
            .is_some_and(|(&s, _)| e.start_ts < s)
    {
        return;
    }
    let before = points.get(&e.start_ts);
    if before.is_some_and(|p| p.revision > e.revision) {
        return; // read again from an older offset: the newer one stays
    }
    let first = before.map_or(e.unique_users, |p| p.first_unique_users);
    points.insert(e.start_ts, point(e, first));
    while points.len() > cap {
        points.pop_first();
    }
}

fn point(e: &Entry<'_>, first_unique_users: u64) -> Point {
    Point {
        start_ts: e.start_ts,
        end_ts: e.end_ts,
        unique_users: e.unique_users,
        events: e.events,
        revision: e.revision,
        first_unique_users,
    }
}

impl GroupWindow {
    fn add(&mut self, key: &str, e: &Entry<'_>) {
        if let Some(p) = self.groups.get_mut(key) {
            if p.revision > e.revision {
                return;
            }
            let first = p.first_unique_users;
            *p = point(e, first);
            return;
        }
        if self.groups.len() >= GROUPS_PER_WINDOW {
            // Full: the new group replaces the smallest kept one if it has
            // more users. A scan, but only once a window has this many
            // groups, and per record, not per event.
            let smallest = self
                .groups
                .iter()
                .min_by_key(|(k, p)| (p.unique_users, std::cmp::Reverse(k.to_string())))
                .map(|(k, p)| (k.clone(), p.unique_users));
            self.left_out += 1;
            match smallest {
                Some((k, users)) if users < e.unique_users => {
                    self.groups.remove(&k);
                }
                _ => return,
            }
        }
        self.groups.insert(key.into(), point(e, e.unique_users));
    }

    /// The kept groups, most users first (ties by key).
    pub fn top(&self) -> Vec<(&str, &Point)> {
        let mut v: Vec<(&str, &Point)> = self.groups.iter().map(|(k, p)| (&**k, p)).collect();
        v.sort_by(|a, b| b.1.unique_users.cmp(&a.1.unique_users).then(a.0.cmp(b.0)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(
        start: u64,
        users: u64,
        revision: u32,
        group: Option<(usize, Option<&str>)>,
    ) -> Entry<'_> {
        Entry {
            series: 0,
            group,
            start_ts: start,
            end_ts: start + 60,
            unique_users: users,
            events: users * 2,
            revision,
        }
    }

    #[test]
    fn a_correction_replaces_the_point_and_keeps_the_first_count() {
        let mut r = Recent::new(1, 0);
        r.add(&entry(60, 5, 0, None));
        r.add(&entry(120, 7, 0, None));
        r.add(&entry(60, 6, 1, None));
        let got: Vec<Point> = r.points(0).copied().collect();
        assert_eq!(got.len(), 2);
        assert_eq!(
            (
                got[0].unique_users,
                got[0].first_unique_users,
                got[0].revision
            ),
            (6, 5, 1)
        );
        assert_eq!((got[1].unique_users, got[1].first_unique_users), (7, 7));
        // The same revision or an older one read again does not undo the
        // correction.
        r.add(&entry(60, 6, 1, None));
        r.add(&entry(60, 5, 0, None));
        let p = r.points(0).next().unwrap();
        assert_eq!(
            (p.unique_users, p.first_unique_users, p.revision),
            (6, 5, 1)
        );
        // Unknown series are skipped.
        r.add(&Entry {
            series: 3,
            ..entry(60, 1, 0, None)
        });
        assert_eq!(r.points(3).count(), 0);
    }

    #[test]
    fn only_the_newest_windows_are_kept() {
        let mut r = Recent::new(1, 0);
        for i in 0..(POINTS as u64 + 10) {
            r.add(&entry(i * 60, i, 0, None));
        }
        let starts: Vec<u64> = r.points(0).map(|p| p.start_ts).collect();
        assert_eq!(starts.len(), POINTS);
        assert_eq!(starts[0], 10 * 60);
        // A window older than every kept one is not brought back.
        r.add(&entry(0, 1, 1, None));
        assert_eq!(r.points(0).next().unwrap().start_ts, 600);
    }

    #[test]
    fn a_full_window_keeps_its_largest_groups() {
        let mut r = Recent::new(1, 1);
        let keys: Vec<String> = (0..GROUPS_PER_WINDOW + 50)
            .map(|i| format!("\"g{i}\""))
            .collect();
        for (i, k) in keys.iter().enumerate() {
            r.add(&entry(60, i as u64, 0, Some((0, Some(k)))));
        }
        r.add(&entry(60, 1000, 0, Some((0, None))));
        let (start, w) = r.group_windows(0, 0).next().unwrap();
        assert_eq!(start, 60);
        assert_eq!(w.groups.len(), GROUPS_PER_WINDOW);
        assert_eq!(w.left_out, 51);
        let top = w.top();
        assert_eq!(top[0].0, OVERFLOW);
        assert_eq!(top[1].0, format!("\"g{}\"", GROUPS_PER_WINDOW + 49));
        assert_eq!(top.last().unwrap().1.unique_users, 51);
        assert_eq!(r.group_points(0, 0, "\"g249\"").len(), 1);
        assert!(r.group_points(0, 0, "\"g0\"").is_empty());
    }
}
