//! The live page on the HTTP address (`GET /`) and the JSON it reads:
//! `/v1/info`, `/v1/windows`, `/v1/groups` (and `/v1/status`,
//! `/v1/uniques` from [`crate::metrics`] and [`crate::slices`]).
//!
//! ```text
//! recent.rs   the latest emitted windows per series, and their top groups
//! page/       index.html, page.js, page.css: compiled into the binary
//! ```
//!
//! `count` feeds the store with the records each output batch emitted (one
//! lock per batch, never one per event); `run` reads its output topic back
//! (`kafka::service::page`), so every instance shows every committed
//! window, whichever instance summed it. Either only while the HTTP
//! endpoints are served.

pub mod recent;

use crate::config::{ConfigError, CoreConfig};
use crate::group::{group_param, write_group_json, GroupValue};
use crate::record::WindowRecord;
use recent::{Entry, Point, Recent, OVERFLOW};
use serde_json::{json, Value};
use std::sync::{Mutex, OnceLock};

/// The page and its assets, served as they are.
pub const INDEX_HTML: &str = include_str!("page/index.html");
pub const PAGE_JS: &str = include_str!("page/page.js");
pub const PAGE_CSS: &str = include_str!("page/page.css");

/// What the service counts: the series and groupings its records have.
#[derive(Debug, Clone, Default)]
pub struct Info {
    /// `count` or `run`.
    pub command: &'static str,
    pub counter: String,
    pub timezone: String,
    /// Window sizes, then rolling windows, as records name them.
    pub series: Vec<(String, bool)>,
    /// Per grouping: its text and how many fields it joins.
    pub groupings: Vec<(String, usize)>,
    /// `run`: the shard count.
    pub shards: Option<usize>,
}

impl Info {
    pub fn new(command: &'static str, cfg: &CoreConfig) -> Result<Info, ConfigError> {
        let mut series: Vec<(String, bool)> = cfg
            .sizes()?
            .iter()
            .map(|s| (s.to_string(), false))
            .collect();
        series.extend(cfg.rolling()?.iter().map(|r| (r.to_string(), true)));
        Ok(Info {
            command,
            counter: cfg.counter_kind()?.to_string(),
            timezone: cfg.timezone.clone(),
            series,
            groupings: cfg
                .groupings()?
                .list
                .iter()
                .map(|g| (g.text.clone(), g.parts.len()))
                .collect(),
            shards: None,
        })
    }

    /// The index of a record's series: its rolling setting or size, else
    /// the only size.
    fn series_of(&self, r: &WindowRecord) -> Option<usize> {
        let label = match (r.rolling, r.size) {
            (Some(rolling), _) => rolling.to_string(),
            (None, Some(size)) => size.to_string(),
            (None, None) => return (!self.series.is_empty()).then_some(0),
        };
        self.series.iter().position(|(s, _)| *s == label)
    }
}

struct Live {
    info: Info,
    recent: Mutex<Recent>,
}

static LIVE: OnceLock<Live> = OnceLock::new();

/// Sets what the page shows (once per process; later calls are ignored).
pub fn configure(info: Info) {
    let recent = Recent::new(info.series.len(), info.groupings.len());
    let _ = LIVE.set(Live {
        info,
        recent: Mutex::new(recent),
    });
}

/// Takes the records an output batch emitted.
pub fn observe(records: &[WindowRecord]) {
    let Some(live) = LIVE.get() else {
        return;
    };
    if records.is_empty() {
        return;
    }
    let mut recent = live.recent.lock().unwrap_or_else(|e| e.into_inner());
    let mut key = String::new();
    for r in records {
        let Some(series) = live.info.series_of(r) else {
            continue;
        };
        let group = r
            .group
            .as_ref()
            .map(|l| (usize::from(l.grouping), &l.value));
        let counts = Counts {
            start_ts: r.start_ts,
            end_ts: r.end_ts,
            unique_users: r.unique_users,
            events: r.events,
            revision: r.revision,
        };
        add(&mut recent, &live.info, series, group, counts, &mut key);
    }
}

/// What a record counted, as written and as the store takes it.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
struct Counts {
    start_ts: u64,
    end_ts: u64,
    unique_users: u64,
    events: u64,
    revision: u32,
}

/// Puts one record of `series` into `recent`: of `group` (its grouping's
/// index and value) if it is a group's, its JSON text made in `key`.
/// Groupings this process does not count are skipped.
fn add(
    recent: &mut Recent,
    info: &Info,
    series: usize,
    group: Option<(usize, &GroupValue)>,
    c: Counts,
    key: &mut String,
) {
    key.clear();
    let group = match group {
        None => None,
        Some((g, value)) => {
            let Some((_, parts)) = info.groupings.get(g) else {
                return;
            };
            match value {
                GroupValue::Overflow => Some((g, None)),
                value => {
                    write_group_json(value, *parts, key);
                    Some((g, Some(key.as_str())))
                }
            }
        }
    };
    recent.add(&Entry {
        series,
        group,
        start_ts: c.start_ts,
        end_ts: c.end_ts,
        unique_users: c.unique_users,
        events: c.events,
        revision: c.revision,
    });
}

/// A record as the output topic holds it (`run` reads its output back).
#[derive(serde::Deserialize)]
struct Written<'a> {
    #[serde(flatten)]
    counts: Counts,
    #[serde(default, borrow)]
    window: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    group_by: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    group: Option<Value>,
    #[serde(default)]
    overflow: bool,
}

/// Takes one record as written (JSON); what is not a record of the
/// series and groupings counted here is skipped.
pub fn observe_json(bytes: &[u8]) {
    let Some(live) = LIVE.get() else {
        return;
    };
    let Ok(r) = serde_json::from_slice::<Written<'_>>(bytes) else {
        return;
    };
    let series = match &r.window {
        None => 0,
        Some(w) => match live.info.series.iter().position(|(s, _)| s == w) {
            Some(i) => i,
            None => return,
        },
    };
    let value = match &r.group_by {
        None => None,
        Some(by) => {
            let Some(g) = live.info.groupings.iter().position(|(t, _)| t == by) else {
                return;
            };
            let parts = live.info.groupings[g].1;
            let json = r.group.as_ref().unwrap_or(&Value::Null);
            match (r.overflow, crate::group::group_from_json(json, parts)) {
                (true, _) => Some((g, GroupValue::Overflow)),
                (false, Some(v)) => Some((g, v)),
                (false, None) => return,
            }
        }
    };
    let group = value.as_ref().map(|(g, v)| (*g, v));
    let mut recent = live.recent.lock().unwrap_or_else(|e| e.into_inner());
    add(
        &mut recent,
        &live.info,
        series,
        group,
        r.counts,
        &mut String::new(),
    );
}

/// An answer: HTTP status and JSON body.
pub type Answer = (u16, String);

fn error(status: u16, message: impl Into<String>) -> Answer {
    (status, json!({ "error": message.into() }).to_string())
}

fn live() -> Result<&'static Live, Answer> {
    LIVE.get()
        .ok_or_else(|| error(404, "nothing is counted in this process yet"))
}

/// `GET /v1/info`: what is counted, and how much the page endpoints keep.
pub fn info_json() -> Answer {
    let live = match live() {
        Ok(l) => l,
        Err(a) => return a,
    };
    let i = &live.info;
    let body = json!({
        "command": i.command,
        "version": env!("CARGO_PKG_VERSION"),
        "counter": i.counter,
        "timezone": i.timezone,
        "series": i.series.iter().map(|(w, r)| json!({"window": w, "rolling": r})).collect::<Vec<_>>(),
        "groupings": i.groupings.iter().map(|(g, _)| g).collect::<Vec<_>>(),
        "shards": i.shards,
        "kept": {
            "points": recent::POINTS,
            "group_windows": recent::GROUP_WINDOWS,
            "groups_per_window": recent::GROUPS_PER_WINDOW,
        },
    });
    (200, body.to_string())
}

/// The value of parameter `name`, once at most.
fn get<'a>(params: &'a [(String, String)], name: &str) -> Result<Option<&'a str>, Answer> {
    let mut found = params.iter().filter(|(k, _)| k == name);
    let first = found.next().map(|(_, v)| v.as_str());
    if found.next().is_some() {
        return Err(error(400, format!("{name}: given twice")));
    }
    Ok(first)
}

fn only(params: &[(String, String)], known: &[&str]) -> Result<(), Answer> {
    match params.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        Some((k, _)) => Err(error(
            400,
            format!(
                "{k}: unknown parameter (the parameters are {})",
                known.join(", ")
            ),
        )),
        None => Ok(()),
    }
}

fn number(params: &[(String, String)], name: &str) -> Result<Option<u64>, Answer> {
    get(params, name)?
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| error(400, format!("{name}: expected a whole number, got {v:?}")))
        })
        .transpose()
}

/// The series `window=` names (every one when absent).
fn series(live: &Live, window: Option<&str>) -> Result<Vec<usize>, Answer> {
    let all = &live.info.series;
    match window {
        None => Ok((0..all.len()).collect()),
        Some(w) => match all.iter().position(|(s, _)| s == w) {
            Some(i) => Ok(vec![i]),
            None => Err(error(
                404,
                format!(
                    "window {w:?} is not counted here; the windows are: {}",
                    names(all.iter().map(|(s, _)| s.as_str()))
                ),
            )),
        },
    }
}

fn names<'a>(list: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<&str> = list.collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// The grouping `group_by=` names.
fn grouping(live: &Live, by: &str) -> Result<usize, Answer> {
    let all = &live.info.groupings;
    all.iter().position(|(g, _)| g == by).ok_or_else(|| {
        error(
            404,
            format!(
                "group_by {by:?} is not counted here; the groupings are: {} (DISTINCTLY_GROUP_BY)",
                names(all.iter().map(|(g, _)| g.as_str()))
            ),
        )
    })
}

/// `GET /v1/windows[?window=][&group_by=&group=][&limit=]`: the latest
/// windows of every series (or one), totals or one group's, oldest first.
pub fn windows_json(params: &[(String, String)]) -> Answer {
    match windows(params) {
        Ok(body) => (200, body.to_string()),
        Err(a) => a,
    }
}

fn windows(params: &[(String, String)]) -> Result<Value, Answer> {
    only(params, &["window", "group_by", "group", "limit"])?;
    let live = live()?;
    let which = series(live, get(params, "window")?)?;
    let limit = number(params, "limit")?.unwrap_or(u64::MAX) as usize;
    let group = match (get(params, "group_by")?, get(params, "group")?) {
        (None, None) => None,
        (None, Some(_)) => return Err(error(400, "group: needs group_by")),
        (Some(_), None) => return Err(error(400, "group_by: needs group (null for no group)")),
        (Some(by), Some(value)) => {
            let g = grouping(live, by)?;
            let parts = live.info.groupings[g].1;
            let parsed =
                group_param(value, parts).map_err(|e| error(400, format!("group: {e}")))?;
            let mut key = String::new();
            write_group_json(&parsed, parts, &mut key);
            Some((g, key))
        }
    };
    let recent = live.recent.lock().unwrap_or_else(|e| e.into_inner());
    let series: Vec<Value> = which
        .into_iter()
        .map(|s| {
            let (window, rolling) = &live.info.series[s];
            let points: Vec<Point> = match &group {
                None => recent.points(s).copied().collect(),
                Some((g, key)) => recent.group_points(s, *g, key),
            };
            let skip = points.len().saturating_sub(limit);
            let mut v = json!({ "window": window, "rolling": rolling, "points": &points[skip..] });
            if let Some((g, key)) = &group {
                v["group_by"] = json!(live.info.groupings[*g].0);
                v["group"] = serde_json::from_str(key).unwrap_or(Value::Null);
            }
            v
        })
        .collect();
    Ok(json!({ "counter": live.info.counter, "series": series }))
}

/// `GET /v1/groups[?window=][&group_by=][&start=][&limit=]`: one window's
/// groups with the most users (the latest window with groups by default).
pub fn groups_json(params: &[(String, String)]) -> Answer {
    match groups(params) {
        Ok(body) => (200, body.to_string()),
        Err(a) => a,
    }
}

/// Groups listed by default.
const GROUPS_LISTED: u64 = 20;

fn groups(params: &[(String, String)]) -> Result<Value, Answer> {
    only(params, &["window", "group_by", "start", "limit"])?;
    let live = live()?;
    if live.info.groupings.is_empty() {
        return Err(error(
            404,
            "no groupings are counted here (DISTINCTLY_GROUP_BY)",
        ));
    }
    let s = match get(params, "window")? {
        Some(w) => series(live, Some(w))?[0],
        None => 0,
    };
    let g = match get(params, "group_by")? {
        Some(by) => grouping(live, by)?,
        None => 0,
    };
    let limit = number(params, "limit")?.unwrap_or(GROUPS_LISTED) as usize;
    let start = number(params, "start")?;
    let recent = live.recent.lock().unwrap_or_else(|e| e.into_inner());
    let held: Vec<(u64, &recent::GroupWindow)> = recent.group_windows(s, g).collect();
    let chosen = match start {
        None => held.last(),
        Some(t) => match held.iter().find(|(st, _)| *st == t) {
            Some(w) => Some(w),
            None => {
                return Err(error(
                    404,
                    format!(
                        "start {t}: no groups are kept for that window (the latest {} windows' are; their starts are in \"windows\" without start=)",
                        recent::GROUP_WINDOWS
                    ),
                ))
            }
        },
    };
    let (window, _) = &live.info.series[s];
    let mut body = json!({
        "window": window,
        "group_by": live.info.groupings[g].0,
        "start_ts": Value::Null,
        "end_ts": Value::Null,
        "groups": [],
        "groups_kept": 0,
        "left_out": 0,
        "windows": held.iter().map(|(st, _)| st).collect::<Vec<_>>(),
    });
    if let Some((st, w)) = chosen {
        let top = w.top();
        body["start_ts"] = json!(st);
        body["end_ts"] = json!(w.end_ts);
        body["groups_kept"] = json!(top.len());
        body["left_out"] = json!(w.left_out);
        body["groups"] = top
            .iter()
            .take(limit)
            .map(|(key, p)| {
                let overflow = *key == OVERFLOW;
                let group = if overflow {
                    Value::Null
                } else {
                    serde_json::from_str(key).unwrap_or(Value::Null)
                };
                let mut v = json!({ "group": group });
                if overflow {
                    v["overflow"] = json!(true);
                }
                for (k, x) in [
                    ("unique_users", p.unique_users),
                    ("events", p.events),
                    ("revision", u64::from(p.revision)),
                    ("first_unique_users", p.first_unique_users),
                ] {
                    v[k] = json!(x);
                }
                v
            })
            .collect();
    }
    Ok(body)
}

/// `run`: instances in the counting group, as last asked (`u64::MAX`:
/// not asked).
static INSTANCES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(u64::MAX);

/// Notes how many instances count (members of the count stage's group).
pub fn set_instances(n: usize) {
    INSTANCES.store(n as u64, std::sync::atomic::Ordering::Relaxed);
}

/// Instances counting, if known (`run` only).
pub fn instances() -> Option<u64> {
    let n = INSTANCES.load(std::sync::atomic::Ordering::Relaxed);
    (n != u64::MAX).then_some(n)
}
