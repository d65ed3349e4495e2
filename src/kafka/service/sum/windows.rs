//! What the summer holds of one window: each shard's latest count of its
//! total and of each of its groups, and what was emitted for each.

use crate::group::{GroupLabel, GroupValue};
use crate::kafka::partials::{Emitted, Part};
use std::collections::BTreeMap;

/// The shards' counts of one total or group, and its last emission.
#[derive(Debug, Default, Clone)]
pub(super) struct Summed {
    /// By shard, in shard order (a group is seldom in many shards).
    parts: Vec<(i32, Part)>,
    pub emitted: Option<Emitted>,
}

impl Summed {
    /// A shard's latest count (`None`: its key was deleted).
    pub fn set(&mut self, shard: i32, part: Option<Part>) {
        match (self.parts.binary_search_by_key(&shard, |(s, _)| *s), part) {
            (Ok(i), Some(p)) => self.parts[i].1 = p,
            (Err(i), Some(p)) => self.parts.insert(i, (shard, p)),
            (Ok(i), None) => {
                self.parts.remove(i);
            }
            (Err(_), None) => {}
        }
    }

    /// `(unique_users, events)`: the shards' sums (their users are
    /// disjoint).
    pub fn total(&self) -> (u64, u64) {
        self.parts
            .iter()
            .fold((0, 0), |(u, e), (_, p)| (u + p.unique_users, e + p.events))
    }

    pub fn has_parts(&self) -> bool {
        !self.parts.is_empty()
    }

    pub fn shards(&self) -> impl Iterator<Item = i32> + '_ {
        self.parts.iter().map(|(s, _)| *s)
    }

    /// The next emission if the sum differs from the last one sent.
    pub fn due(&self, end_ts: u64) -> Option<Emitted> {
        if self.parts.is_empty() {
            return None;
        }
        let (unique_users, events) = self.total();
        let unchanged = self
            .emitted
            .is_some_and(|e| e.sent && e.unique_users == unique_users && e.events == events);
        (!unchanged).then(|| Emitted {
            end_ts,
            revision: self.emitted.map_or(0, |e| e.revision + 1),
            unique_users,
            events,
            sent: false,
        })
    }

    /// Its last record went out (or it has nothing to send).
    pub fn settled(&self) -> bool {
        self.emitted.is_some_and(|e| e.sent) || self.parts.is_empty()
    }
}

/// A window as the summer sees it.
#[derive(Debug, Default)]
pub(super) struct SumWindow {
    pub end: u64,
    pub total: Summed,
    /// Per grouping (by index), its groups.
    pub groups: Vec<BTreeMap<GroupValue, Summed>>,
}

impl SumWindow {
    /// The total (`None`) or a group.
    pub fn slot(&mut self, group: Option<&GroupLabel>) -> &mut Summed {
        match group {
            None => &mut self.total,
            Some(label) => {
                let g = usize::from(label.grouping);
                if self.groups.len() <= g {
                    self.groups.resize_with(g + 1, BTreeMap::new);
                }
                self.groups[g].entry(label.value.clone()).or_default()
            }
        }
    }

    /// A group's slot, if held.
    pub fn group_mut(&mut self, label: &GroupLabel) -> Option<&mut Summed> {
        self.groups
            .get_mut(usize::from(label.grouping))
            .and_then(|m| m.get_mut(&label.value))
    }

    /// Forgets a group (its emitted key was deleted).
    pub fn remove_group(&mut self, label: &GroupLabel) {
        if let Some(m) = self.groups.get_mut(usize::from(label.grouping)) {
            m.remove(&label.value);
        }
    }

    /// Every slot: the total first, then groups by grouping and value.
    pub fn slots(&self) -> impl Iterator<Item = (Option<GroupLabel>, &Summed)> + '_ {
        let groups = self.groups.iter().enumerate().flat_map(|(g, m)| {
            m.iter().map(move |(value, s)| {
                (
                    Some(GroupLabel {
                        grouping: g as u16,
                        value: value.clone(),
                    }),
                    s,
                )
            })
        });
        std::iter::once((None, &self.total)).chain(groups)
    }

    /// Every record due, as `(group, emission)`.
    pub fn due(&self) -> Vec<(Option<GroupLabel>, Emitted)> {
        self.slots()
            .filter_map(|(label, s)| s.due(self.end).map(|e| (label, e)))
            .collect()
    }

    /// Whether every slot's last record went out.
    pub fn settled(&self) -> bool {
        self.slots().all(|(_, s)| s.settled())
    }

    /// Whether it was ever emitted (its total).
    pub fn emitted(&self) -> bool {
        self.total.emitted.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(u: u64, e: u64) -> Option<Part> {
        Some(Part {
            end_ts: 60,
            unique_users: u,
            events: e,
        })
    }

    #[test]
    fn sums_replace_a_shards_count_and_say_what_is_due() {
        let mut w = SumWindow {
            end: 60,
            ..SumWindow::default()
        };
        let de = GroupLabel {
            grouping: 1,
            value: GroupValue::Key(b"DE"[..].into()),
        };
        w.slot(None).set(2, part(3, 5));
        w.slot(None).set(0, part(1, 1));
        w.slot(None).set(2, part(4, 6));
        w.slot(Some(&de)).set(1, part(2, 2));
        assert_eq!(w.total.total(), (5, 7));
        let due = w.due();
        assert_eq!(due.len(), 2);
        assert_eq!((due[0].0.clone(), due[0].1.unique_users), (None, 5));
        assert_eq!((due[1].0.clone(), due[1].1.revision), (Some(de.clone()), 0));
        // Sent: nothing is due until a count changes.
        for (label, e) in due {
            w.slot(label.as_ref()).emitted = Some(Emitted { sent: true, ..e });
        }
        assert!(w.due().is_empty() && w.settled());
        w.slot(Some(&de)).set(0, part(1, 1));
        let due = w.due();
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].1.revision, due[0].1.unique_users), (1, 3));
        w.slot(None).set(2, None);
        assert_eq!(w.total.total(), (1, 1));
    }
}
