//! A range query: `[from, to)`, optionally one group of one grouping,
//! answered by merging the coarsest held slices that tile it.

use super::Slices;
use crate::counter::{AnyCounter, CounterKind};
use crate::group::{group_param, write_group_json, GroupValue, Groupings};
use crate::record::Rfc3339;
use std::fmt::Write;

/// Most slices one answer merges: a range that needs more (a year of
/// minute slices) is refused rather than left to run.
const MAX_PIECES: usize = 20_000;

/// What `GET /v1/uniques` asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeQuery {
    pub from: u64,
    pub to: u64,
    /// Index of the grouping (into `Groupings::list`) and the group.
    pub group: Option<(usize, GroupValue)>,
}

/// Why a query is not answered; each is a 4xx with `{"error": …}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("{name}: {reason}")]
    Param { name: String, reason: String },
    #[error("{0}")]
    NotHeld(String),
    #[error(
        "group_by {given:?} is not counted here; the groupings are: {held} (DISTINCTLY_GROUP_BY)"
    )]
    UnknownGrouping { given: String, held: String },
    #[error("no slices are held (DISTINCTLY_SLICES is empty)")]
    Off,
    #[error("range queries are answered by `count --serve`; this process holds no slices")]
    NotServed,
    #[error("busy: the counting thread did not answer in time, try again")]
    Busy,
}

impl QueryError {
    /// The HTTP status of the answer.
    pub fn status(&self) -> u16 {
        match self {
            QueryError::Param { .. } | QueryError::UnknownGrouping { .. } => 400,
            QueryError::NotHeld(_) => 422,
            QueryError::Off | QueryError::NotServed => 404,
            QueryError::Busy => 503,
        }
    }

    /// `{"error":"…"}`.
    pub fn to_json(&self) -> String {
        serde_json::json!({ "error": self.to_string() }).to_string()
    }
}

fn param(name: &str, reason: impl Into<String>) -> QueryError {
    QueryError::Param {
        name: name.to_string(),
        reason: reason.into(),
    }
}

/// `t` as Unix seconds or an RFC 3339 instant, in whole seconds.
fn instant(name: &str, t: &str) -> Result<u64, QueryError> {
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse()
            .map_err(|_| param(name, format!("{t:?} is too large")));
    }
    let ts: jiff::Timestamp = t.parse().map_err(|_| {
        param(
            name,
            format!("{t:?} is neither Unix seconds nor an RFC 3339 instant such as 2026-01-01T14:00:00Z"),
        )
    })?;
    if ts.subsec_nanosecond() != 0 {
        return Err(param(name, format!("{t:?} is not a whole second")));
    }
    u64::try_from(ts.as_second()).map_err(|_| param(name, format!("{t:?} is before 1970")))
}

impl RangeQuery {
    /// Reads `from`, `to`, `group_by` and `group` (the group as a record
    /// writes it: a JSON string, `null`, or an array for a `+` grouping; a
    /// plain value that is not JSON is taken as a string).
    pub fn from_params(
        params: &[(String, String)],
        groupings: &Groupings,
    ) -> Result<Self, QueryError> {
        let get = |name: &str| -> Result<Option<&str>, QueryError> {
            let mut found = params.iter().filter(|(k, _)| k == name);
            let first = found.next().map(|(_, v)| v.as_str());
            if found.next().is_some() {
                return Err(param(name, "given twice"));
            }
            Ok(first)
        };
        if let Some((k, _)) = params
            .iter()
            .find(|(k, _)| !["from", "to", "group_by", "group"].contains(&k.as_str()))
        {
            return Err(param(
                k,
                "unknown parameter (the parameters are from, to, group_by and group)",
            ));
        }
        let from = instant(
            "from",
            get("from")?.ok_or_else(|| param("from", "missing"))?,
        )?;
        let to = instant("to", get("to")?.ok_or_else(|| param("to", "missing"))?)?;
        if from >= to {
            return Err(param("to", "must be after from"));
        }
        let group = match (get("group_by")?, get("group")?) {
            (None, None) => None,
            (None, Some(_)) => return Err(param("group", "needs group_by")),
            (Some(_), None) => return Err(param("group_by", "needs group (null for no group)")),
            (Some(by), Some(value)) => {
                let Some(g) = groupings.list.iter().position(|g| g.text == by) else {
                    let held: Vec<&str> = groupings.list.iter().map(|g| g.text.as_str()).collect();
                    return Err(QueryError::UnknownGrouping {
                        given: by.to_string(),
                        held: if held.is_empty() {
                            "none".to_string()
                        } else {
                            held.join(", ")
                        },
                    });
                };
                let parts = groupings.list[g].parts.len();
                let value = group_param(value, parts).map_err(|e| param("group", e))?;
                Some((g, value))
            }
        };
        Ok(RangeQuery { from, to, group })
    }
}

/// The answer to a [`RangeQuery`].
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub query: RangeQuery,
    pub unique_users: u64,
    pub events: u64,
    pub counter: CounterKind,
    /// Slices merged, per resolution (its size as written).
    pub slices: Vec<(String, usize)>,
    /// With a group: events of the grouping's overflow slots in the merged
    /// slices (groups beyond `DISTINCTLY_MAX_GROUPS`), which the group may
    /// be missing.
    pub overflow_events: u64,
    /// The highest event time counted so far.
    pub latest_ts: Option<u64>,
}

impl Answer {
    pub fn to_json(&self, groupings: &Groupings) -> String {
        let mut out = String::with_capacity(256);
        let q = &self.query;
        let _ = write!(
            out,
            "{{\"from_ts\":{},\"to_ts\":{},\"from\":\"{}\",\"to\":\"{}\",\"unique_users\":{},\"events\":{},\"counter\":\"{}\"",
            q.from,
            q.to,
            Rfc3339(q.from),
            Rfc3339(q.to),
            self.unique_users,
            self.events,
            self.counter
        );
        if let Some((g, value)) = &q.group {
            let grouping = &groupings.list[*g];
            out.push_str(",\"group_by\":");
            crate::group::json_string(grouping.text.as_bytes(), &mut out);
            out.push_str(",\"group\":");
            write_group_json(value, grouping.parts.len(), &mut out);
            let _ = write!(out, ",\"overflow_events\":{}", self.overflow_events);
        }
        out.push_str(",\"slices\":{");
        for (i, (size, n)) in self.slices.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "\"{size}\":{n}");
        }
        out.push('}');
        match self.latest_ts {
            Some(t) => {
                let _ = write!(out, ",\"latest_ts\":{t}");
            }
            None => out.push_str(",\"latest_ts\":null"),
        }
        out.push('}');
        out
    }
}

impl Slices {
    /// Answers `q` from the slices held now.
    pub fn query(&self, q: &RangeQuery) -> Result<Answer, QueryError> {
        if self.levels.is_empty() {
            return Err(QueryError::Off);
        }
        let mut acc = AnyCounter::new(self.kind);
        let mut events = 0;
        let mut overflow_events = 0;
        let mut used = vec![0usize; self.levels.len()];
        let mut pos = q.from;
        let mut pieces = 0;
        while pos < q.to {
            pieces += 1;
            if pieces > MAX_PIECES {
                return Err(QueryError::NotHeld(format!(
                    "the range needs more than {MAX_PIECES} slices: align it to coarser ones \
                     ({})",
                    self.held()
                )));
            }
            // The coarsest resolution with a held slice starting here that
            // ends within the range.
            let chosen = self.levels.iter().enumerate().rev().find_map(|(i, l)| {
                let (start, end) = l.grid.bounds(pos)?;
                (start == pos && end <= q.to && end > l.freed_until).then_some((i, end))
            });
            let Some((i, end)) = chosen else {
                return Err(QueryError::NotHeld(format!(
                    "[{}, {}) cannot be tiled by held slices at {}: {}",
                    Rfc3339(q.from),
                    Rfc3339(q.to),
                    Rfc3339(pos),
                    self.held()
                )));
            };
            used[i] += 1;
            let level = &self.levels[i];
            let at = level.slices.partition_point(|s| s.start < pos);
            if let Some(slice) = level.slices.get(at).filter(|s| s.start == pos) {
                match &q.group {
                    None => {
                        events += slice.events;
                        let _ = acc.merge(&slice.counter);
                    }
                    Some((g, value)) => {
                        let table = &slice.groups[*g];
                        if let Some(group) = table.get(value) {
                            events += group.events;
                            group.members.add_to(&slice.counter, &mut acc);
                        }
                        if let Some(o) = table.get(&GroupValue::Overflow) {
                            overflow_events += o.events;
                        }
                    }
                }
            }
            pos = end;
        }
        Ok(Answer {
            query: q.clone(),
            unique_users: acc.count(),
            events,
            counter: self.kind,
            slices: self
                .levels
                .iter()
                .zip(used)
                .map(|(l, n)| (l.resolution.size.to_string(), n))
                .collect(),
            overflow_events,
            latest_ts: self.latest,
        })
    }

    /// What is held, for messages: each resolution and since when.
    pub fn held(&self) -> String {
        let parts: Vec<String> = self
            .levels
            .iter()
            .map(|l| {
                // The slice holding the freeing point ends after it: held.
                let since = l.grid.bounds(l.freed_until).map_or(l.freed_until, |b| b.0);
                if since == 0 {
                    format!(
                        "{} slices (held {}) of all times so far",
                        l.resolution.size,
                        span(l)
                    )
                } else {
                    format!(
                        "{} slices (held {}) from {}",
                        l.resolution.size,
                        span(l),
                        Rfc3339(since)
                    )
                }
            })
            .collect();
        format!(
            "a range must start and end on boundaries of slices held there; held are {}",
            parts.join(", ")
        )
    }
}

fn span(l: &super::Level) -> String {
    let r = l.resolution.to_string();
    r.split_once(':').map_or(r.clone(), |(_, s)| s.to_string())
}
