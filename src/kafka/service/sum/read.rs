//! Reading the partials topic into the summer's windows: each record's key
//! says what it is (a shard's count, a status, what was emitted, the freed
//! watermark), and a value this version cannot read is skipped and said,
//! never taken for a tombstone.

use super::Summer;
use crate::group::GroupLabel;
use crate::internal_events::{InternalEvent, UnreadablePartialsRecord};
use crate::kafka::partials::{Emitted, Freed, Key, Part, Status, Value};
use crate::window::size::WindowSize;
use rdkafka::message::{BorrowedMessage, Message};

impl Summer<'_> {
    pub(super) fn on_message(&mut self, msg: &BorrowedMessage<'_>) {
        let key = std::str::from_utf8(msg.key().unwrap_or_default())
            .ok()
            .and_then(Key::parse);
        let payload = msg.payload();
        let unreadable = || {
            UnreadablePartialsRecord {
                topic: &self.ctx.topology.partials,
                key: &String::from_utf8_lossy(msg.key().unwrap_or_default()),
                offset: msg.offset(),
            }
            .emit()
        };
        self.dirty = true;
        if msg.offset() + 1 >= self.end_at_assignment {
            self.caught_up = true;
        }
        // What was emitted and freed is this summer's own state once it
        // holds the partition: records past the end it was assigned at are
        // its own writes coming back, older than what it holds by then (a
        // revision it already moved past).
        let echo = msg.offset() >= self.end_at_assignment;
        if echo
            && matches!(
                key,
                Some(Key::Emitted { .. } | Key::GroupEmitted { .. } | Key::Freed)
            )
        {
            return;
        }
        match key {
            Some(Key::Part { size, start, shard }) => match Value::of(payload) {
                Value::Unreadable => unreadable(),
                part => self.on_part(size, start, shard, None, part),
            },
            Some(Key::GroupPart {
                size,
                start,
                shard,
                group,
            }) => match Value::of(payload) {
                Value::Unreadable => unreadable(),
                part => self.on_part(size, start, shard, Some(group), part),
            },
            Some(Key::Status { shard }) => {
                let status = match Value::<Status>::of(payload) {
                    Value::Unreadable => return unreadable(),
                    Value::Read(s) => Some(s),
                    Value::Tombstone => None,
                };
                if let Some(slot) = self.statuses.get_mut(shard as usize) {
                    *slot = status;
                }
            }
            Some(Key::Emitted { size, start }) => {
                let Some(i) = self.sizes.iter().position(|&s| s == size) else {
                    return;
                };
                match Value::<Emitted>::of(payload) {
                    Value::Read(e) => {
                        let w = self.windows.entry((i, start)).or_default();
                        w.end = e.end_ts;
                        w.total.emitted = Some(e);
                    }
                    // Written last when a window is freed.
                    Value::Tombstone => {
                        self.windows.remove(&(i, start));
                    }
                    Value::Unreadable => unreadable(),
                }
            }
            Some(Key::GroupEmitted { size, start, group }) => {
                let Some(i) = self.sizes.iter().position(|&s| s == size) else {
                    return;
                };
                if usize::from(group.grouping) >= self.ctx.groupings.len() {
                    return; // a grouping no longer counted
                }
                match Value::<Emitted>::of(payload) {
                    Value::Read(e) => {
                        let w = self.windows.entry((i, start)).or_default();
                        w.end = e.end_ts;
                        w.slot(Some(&group)).emitted = Some(e);
                    }
                    Value::Tombstone => {
                        if let Some(w) = self.windows.get_mut(&(i, start)) {
                            w.remove_group(&group);
                        }
                    }
                    Value::Unreadable => unreadable(),
                }
            }
            Some(Key::Freed) => match Value::<Freed>::of(payload) {
                Value::Read(f) => self.freed_below = self.freed_below.max(f.below),
                Value::Unreadable => unreadable(),
                Value::Tombstone => {}
            },
            None => {}
        }
    }

    /// A shard's count of a window's total or of one of its groups.
    fn on_part(
        &mut self,
        size: WindowSize,
        start: u64,
        shard: i32,
        group: Option<GroupLabel>,
        part: Value<Part>,
    ) {
        let Some(i) = self.sizes.iter().position(|&s| s == size) else {
            return; // a size no longer counted
        };
        if group
            .as_ref()
            .is_some_and(|g| usize::from(g.grouping) >= self.ctx.groupings.len())
        {
            return; // a grouping no longer counted
        }
        match part {
            Value::Read(part) => {
                if self.is_freed(part.end_ts) && !self.windows.contains_key(&(i, start)) {
                    return; // a restored shard's copy of a freed window
                }
                let w = self.windows.entry((i, start)).or_default();
                w.end = part.end_ts;
                w.slot(group.as_ref()).set(shard, Some(part));
            }
            Value::Tombstone | Value::Unreadable => {
                if let Some(w) = self.windows.get_mut(&(i, start)) {
                    match &group {
                        None => w.total.set(shard, None),
                        Some(g) => {
                            if let Some(s) = w.group_mut(g) {
                                s.set(shard, None);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Whether a window ending at `end` was emitted and freed.
    pub(super) fn is_freed(&self, end: u64) -> bool {
        end.saturating_add(self.ctx.core.late_retention_seconds) <= self.freed_below
    }
}
