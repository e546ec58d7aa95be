//! Consumer groups: membership with session timeouts, generations, range and round-robin
//! assignment, committed offsets. Shared by every backend; durability of committed offsets is
//! the backend's job ([`OffsetLog`] for the embedded log).
//!
//! Membership changes are eager: a join, a leave or an expired session bumps the generation and
//! recomputes the whole assignment at once; each member learns it on its next heartbeat.
//! Expired sessions are detected whenever the group is touched (any group operation).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::config::Clock;
use crate::error::{io_err, Error, Result};
use crate::log::sync_dir;
use crate::types::{
    Assignment, AssignmentStrategy, GroupDescription, JoinGroup, MemberDescription, OffsetCommit,
    PartitionLag, TopicPartition,
};

#[derive(Debug)]
struct Member {
    topics: Vec<String>,
    session_timeout_ms: u64,
    last_seen_ms: i64,
    partitions: Vec<TopicPartition>,
}

#[derive(Debug, Default)]
struct Group {
    generation: u32,
    strategy: AssignmentStrategy,
    members: BTreeMap<String, Member>,
    committed: BTreeMap<TopicPartition, u64>,
}

/// Partition count of a topic, `None` when it does not exist.
pub(crate) type PartitionsOf<'a> = &'a dyn Fn(&str) -> Option<u32>;
/// (log start, high watermark) of a partition.
pub(crate) type OffsetsOf<'a> = &'a dyn Fn(&TopicPartition) -> Option<(u64, u64)>;

/// The group coordinator.
#[derive(Debug)]
pub(crate) struct Coordinator {
    clock: Arc<dyn Clock>,
    groups: Mutex<BTreeMap<String, Group>>,
    next_member: AtomicU64,
}

impl Coordinator {
    pub(crate) fn new(
        clock: Arc<dyn Clock>,
        committed: BTreeMap<String, BTreeMap<TopicPartition, u64>>,
    ) -> Self {
        let groups = committed
            .into_iter()
            .map(|(g, c)| {
                (
                    g,
                    Group {
                        committed: c,
                        ..Default::default()
                    },
                )
            })
            .collect();
        Coordinator {
            clock,
            groups: Mutex::new(groups),
            next_member: AtomicU64::new(1),
        }
    }

    pub(crate) fn join(
        &self,
        req: &JoinGroup,
        partitions_of: PartitionsOf<'_>,
    ) -> Result<Assignment> {
        if req.group.is_empty() {
            return Err(Error::InvalidConfig("group id must not be empty".into()));
        }
        if req.topics.is_empty() {
            return Err(Error::InvalidConfig(
                "a group member must subscribe to at least one topic".into(),
            ));
        }
        for t in &req.topics {
            if partitions_of(t).is_none() {
                return Err(Error::UnknownTopic(t.clone()));
            }
        }
        let now = self.clock.now_ms();
        let mut groups = self.groups.lock();
        let g = groups.entry(req.group.clone()).or_default();
        let mut changed = expire(g, now);
        if g.members.is_empty() {
            g.strategy = req.strategy;
        }
        let mut topics = req.topics.clone();
        topics.sort();
        topics.dedup();
        let id = match &req.member_id {
            Some(id) if g.members.contains_key(id) => id.clone(),
            Some(id) => {
                changed = true;
                id.clone()
            }
            None => {
                changed = true;
                format!(
                    "{}-{}-{}",
                    req.group,
                    self.next_member.fetch_add(1, Ordering::Relaxed),
                    now
                )
            }
        };
        let m = g.members.entry(id.clone()).or_insert_with(|| Member {
            topics: Vec::new(),
            session_timeout_ms: req.session_timeout_ms,
            last_seen_ms: now,
            partitions: Vec::new(),
        });
        if m.topics != topics {
            m.topics = topics;
            changed = true;
        }
        m.session_timeout_ms = req.session_timeout_ms;
        m.last_seen_ms = now;
        if changed {
            rebalance(g, partitions_of);
        }
        Ok(assignment_of(g, &id))
    }

    pub(crate) fn heartbeat(
        &self,
        group: &str,
        member: &str,
        partitions_of: PartitionsOf<'_>,
    ) -> Result<Assignment> {
        let now = self.clock.now_ms();
        let mut groups = self.groups.lock();
        let g = groups
            .get_mut(group)
            .ok_or_else(|| Error::UnknownGroup(group.to_string()))?;
        if expire(g, now) {
            rebalance(g, partitions_of);
        }
        let m = g
            .members
            .get_mut(member)
            .ok_or_else(|| Error::UnknownMember {
                group: group.to_string(),
                member: member.to_string(),
            })?;
        m.last_seen_ms = now;
        Ok(assignment_of(g, member))
    }

    pub(crate) fn leave(
        &self,
        group: &str,
        member: &str,
        partitions_of: PartitionsOf<'_>,
    ) -> Result<()> {
        let now = self.clock.now_ms();
        let mut groups = self.groups.lock();
        let g = groups
            .get_mut(group)
            .ok_or_else(|| Error::UnknownGroup(group.to_string()))?;
        let expired = expire(g, now);
        let left = g.members.remove(member).is_some();
        if expired || left {
            rebalance(g, partitions_of);
        }
        if left {
            Ok(())
        } else {
            Err(Error::UnknownMember {
                group: group.to_string(),
                member: member.to_string(),
            })
        }
    }

    /// Checks that `member` of `generation` may commit. An empty member id with generation 0
    /// is a standalone commit (no group membership), allowed only while the group has no members.
    pub(crate) fn check_commit(
        &self,
        group: &str,
        member: &str,
        generation: u32,
        partitions_of: PartitionsOf<'_>,
    ) -> Result<()> {
        let now = self.clock.now_ms();
        let mut groups = self.groups.lock();
        let g = groups.entry(group.to_string()).or_default();
        if expire(g, now) {
            rebalance(g, partitions_of);
        }
        if member.is_empty() && generation == 0 && g.members.is_empty() {
            return Ok(());
        }
        let Some(m) = g.members.get_mut(member) else {
            return Err(Error::UnknownMember {
                group: group.to_string(),
                member: member.to_string(),
            });
        };
        if generation != g.generation {
            return Err(Error::StaleGeneration {
                group: group.to_string(),
                given: generation,
                current: g.generation,
            });
        }
        m.last_seen_ms = now;
        Ok(())
    }

    pub(crate) fn apply_commit(&self, group: &str, offsets: &[OffsetCommit]) {
        let mut groups = self.groups.lock();
        let g = groups.entry(group.to_string()).or_default();
        for o in offsets {
            g.committed.insert(o.tp.clone(), o.offset);
        }
    }

    pub(crate) fn committed(&self, group: &str) -> BTreeMap<TopicPartition, u64> {
        self.groups
            .lock()
            .get(group)
            .map(|g| g.committed.clone())
            .unwrap_or_default()
    }

    pub(crate) fn list(&self) -> Vec<String> {
        self.groups
            .lock()
            .iter()
            .filter(|(_, g)| !g.members.is_empty() || !g.committed.is_empty())
            .map(|(n, _)| n.clone())
            .collect()
    }

    pub(crate) fn describe(
        &self,
        group: &str,
        partitions_of: PartitionsOf<'_>,
        offsets_of: OffsetsOf<'_>,
    ) -> Result<GroupDescription> {
        let now = self.clock.now_ms();
        let mut groups = self.groups.lock();
        let g = groups
            .get_mut(group)
            .ok_or_else(|| Error::UnknownGroup(group.to_string()))?;
        if expire(g, now) {
            rebalance(g, partitions_of);
        }
        let mut tps: BTreeSet<TopicPartition> = g.committed.keys().cloned().collect();
        for m in g.members.values() {
            for t in &m.topics {
                for p in 0..partitions_of(t).unwrap_or(0) {
                    tps.insert(TopicPartition::new(t.clone(), p));
                }
            }
        }
        let lag = tps
            .into_iter()
            .filter_map(|tp| {
                let (start, hwm) = offsets_of(&tp)?;
                let committed = g.committed.get(&tp).copied();
                let from = committed.unwrap_or(start).max(start);
                Some(PartitionLag {
                    lag: hwm.saturating_sub(from),
                    committed,
                    high_watermark: hwm,
                    tp,
                })
            })
            .collect();
        Ok(GroupDescription {
            group: group.to_string(),
            generation: g.generation,
            strategy: g.strategy,
            members: g
                .members
                .iter()
                .map(|(id, m)| MemberDescription {
                    member_id: id.clone(),
                    topics: m.topics.clone(),
                    partitions: m.partitions.clone(),
                })
                .collect(),
            lag,
        })
    }
}

/// Drops members whose session expired; true when any was dropped.
fn expire(g: &mut Group, now: i64) -> bool {
    let before = g.members.len();
    g.members
        .retain(|_, m| now.saturating_sub(m.last_seen_ms) <= m.session_timeout_ms as i64);
    g.members.len() != before
}

fn assignment_of(g: &Group, member: &str) -> Assignment {
    Assignment {
        member_id: member.to_string(),
        generation: g.generation,
        partitions: g
            .members
            .get(member)
            .map(|m| m.partitions.clone())
            .unwrap_or_default(),
    }
}

fn rebalance(g: &mut Group, partitions_of: PartitionsOf<'_>) {
    g.generation = g.generation.wrapping_add(1);
    let subs: Vec<(String, Vec<String>)> = g
        .members
        .iter()
        .map(|(id, m)| (id.clone(), m.topics.clone()))
        .collect();
    let mut result = assign(g.strategy, &subs, partitions_of);
    for (id, m) in g.members.iter_mut() {
        m.partitions = result.remove(id).unwrap_or_default();
    }
}

/// Computes an assignment. `subs` is (member id, subscribed topics), sorted by member id.
pub(crate) fn assign(
    strategy: AssignmentStrategy,
    subs: &[(String, Vec<String>)],
    partitions_of: PartitionsOf<'_>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let mut out: BTreeMap<String, Vec<TopicPartition>> = subs
        .iter()
        .map(|(id, _)| (id.clone(), Vec::new()))
        .collect();
    let topics: BTreeSet<&String> = subs.iter().flat_map(|(_, t)| t.iter()).collect();
    match strategy {
        AssignmentStrategy::Range => {
            for t in topics {
                let n = partitions_of(t).unwrap_or(0);
                let members: Vec<&String> = subs
                    .iter()
                    .filter(|(_, ts)| ts.contains(t))
                    .map(|(id, _)| id)
                    .collect();
                if members.is_empty() {
                    continue;
                }
                let m = members.len() as u32;
                let (per, extra) = (n / m, n % m);
                let mut p = 0;
                for (i, id) in members.iter().enumerate() {
                    let take = per + u32::from((i as u32) < extra);
                    for q in p..p + take {
                        if let Some(v) = out.get_mut(*id) {
                            v.push(TopicPartition::new(t.clone(), q));
                        }
                    }
                    p += take;
                }
            }
        }
        AssignmentStrategy::RoundRobin => {
            let mut i = 0usize;
            for t in topics {
                for q in 0..partitions_of(t).unwrap_or(0) {
                    // next member (cyclically) subscribed to t
                    for _ in 0..subs.len() {
                        let (id, ts) = &subs[i % subs.len()];
                        i += 1;
                        if ts.contains(t) {
                            if let Some(v) = out.get_mut(id) {
                                v.push(TopicPartition::new(t.clone(), q));
                            }
                            break;
                        }
                    }
                }
            }
        }
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

/// Committed offsets on disk: an append-only file of CRC'd commit entries, compacted on open.
/// See docs/formats/stream.md.
#[derive(Debug)]
pub(crate) struct OffsetLog {
    path: PathBuf,
    file: Mutex<File>,
}

const OFFSETS_MAGIC: &[u8; 4] = b"BSCO";
const OFFSETS_VERSION: u16 = 1;

pub(crate) type Committed = BTreeMap<String, BTreeMap<TopicPartition, u64>>;

fn encode_entry(group: &str, offsets: &[OffsetCommit]) -> Vec<u8> {
    let mut p = Vec::with_capacity(64);
    p.extend_from_slice(&(group.len() as u16).to_le_bytes());
    p.extend_from_slice(group.as_bytes());
    p.extend_from_slice(&(offsets.len() as u32).to_le_bytes());
    for o in offsets {
        p.extend_from_slice(&(o.tp.topic.len() as u16).to_le_bytes());
        p.extend_from_slice(o.tp.topic.as_bytes());
        p.extend_from_slice(&o.tp.partition.to_le_bytes());
        p.extend_from_slice(&o.offset.to_le_bytes());
    }
    let mut out = Vec::with_capacity(p.len() + 8);
    out.extend_from_slice(&(p.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&p).to_le_bytes());
    out.extend_from_slice(&p);
    out
}

struct Cursor<'a>(&'a [u8], usize);

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.0.get(self.1..self.1.checked_add(n)?)?;
        self.1 += n;
        Some(s)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn string(&mut self) -> Option<String> {
        let n = self.u16()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

fn decode_payload(p: &[u8]) -> Option<(String, Vec<OffsetCommit>)> {
    let mut c = Cursor(p, 0);
    let group = c.string()?;
    let n = c.u32()?;
    let mut v = Vec::new();
    for _ in 0..n {
        let topic = c.string()?;
        let partition = c.u32()?;
        let offset = c.u64()?;
        v.push(OffsetCommit {
            tp: TopicPartition { topic, partition },
            offset,
        });
    }
    if c.1 != p.len() {
        return None;
    }
    Some((group, v))
}

/// Parses an offsets file; returns the state and the length of its valid prefix.
pub(crate) fn parse_offsets(buf: &[u8]) -> Option<(Committed, usize)> {
    if buf.len() < 8 || &buf[0..4] != OFFSETS_MAGIC {
        return None;
    }
    if u16::from_le_bytes([buf[4], buf[5]]) != OFFSETS_VERSION {
        return None;
    }
    let mut state = Committed::new();
    let mut pos = 8usize;
    while pos + 8 <= buf.len() {
        let len = u32::from_le_bytes(buf[pos..pos + 4].try_into().ok()?) as usize;
        let crc = u32::from_le_bytes(buf[pos + 4..pos + 8].try_into().ok()?);
        let Some(p) = buf.get(pos + 8..pos + 8 + len) else {
            break;
        };
        if crc32c::crc32c(p) != crc {
            break;
        }
        let Some((g, offs)) = decode_payload(p) else {
            break;
        };
        let e = state.entry(g).or_default();
        for o in offs {
            e.insert(o.tp, o.offset);
        }
        pos += 8 + len;
    }
    Some((state, pos))
}

impl OffsetLog {
    /// Opens (or creates) the offsets file, dropping a torn tail and compacting it.
    pub(crate) fn open(dir: &Path) -> Result<(Self, Committed)> {
        let path = dir.join("offsets.log");
        let state = match File::open(&path) {
            Ok(mut f) => {
                let mut buf = Vec::new();
                f.read_to_end(&mut buf).map_err(io_err(&path))?;
                match parse_offsets(&buf) {
                    Some((s, _)) => s,
                    None => {
                        return Err(Error::BadFile {
                            path,
                            reason: "not a committed-offsets file (bad magic or version)".into(),
                        })
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Committed::new(),
            Err(e) => return Err(io_err(&path)(e)),
        };
        // compact: write the current state to a new file, then rename it over the old one
        let tmp = dir.join("offsets.log.tmp");
        let mut buf = Vec::new();
        buf.extend_from_slice(OFFSETS_MAGIC);
        buf.extend_from_slice(&OFFSETS_VERSION.to_le_bytes());
        buf.extend_from_slice(&0u16.to_le_bytes());
        for (g, m) in &state {
            let offs: Vec<OffsetCommit> = m
                .iter()
                .map(|(tp, o)| OffsetCommit {
                    tp: tp.clone(),
                    offset: *o,
                })
                .collect();
            buf.extend_from_slice(&encode_entry(g, &offs));
        }
        crate::index::write_synced(&tmp, &buf)?;
        std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
        sync_dir(dir)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        Ok((
            OffsetLog {
                path,
                file: Mutex::new(file),
            },
            state,
        ))
    }

    /// Appends one commit and fsyncs it (blocking).
    pub(crate) fn append(&self, group: &str, offsets: &[OffsetCommit]) -> Result<()> {
        let entry = encode_entry(group, offsets);
        let mut f = self.file.lock();
        f.write_all(&entry).map_err(io_err(&self.path))?;
        f.sync_data().map_err(io_err(&self.path))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(t: &str) -> Option<u32> {
        match t {
            "a" => Some(5),
            "b" => Some(2),
            _ => None,
        }
    }

    fn subs(members: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        members
            .iter()
            .map(|(m, ts)| (m.to_string(), ts.iter().map(|t| t.to_string()).collect()))
            .collect()
    }

    fn names(v: &[TopicPartition]) -> Vec<String> {
        v.iter()
            .map(|tp| format!("{}{}", tp.topic, tp.partition))
            .collect()
    }

    #[test]
    fn range_assignment_matches_kafka() {
        let s = subs(&[("m1", &["a", "b"]), ("m2", &["a", "b"]), ("m3", &["a"])]);
        let r = assign(AssignmentStrategy::Range, &s, &parts);
        assert_eq!(names(&r["m1"]), ["a0", "a1", "b0"]);
        assert_eq!(names(&r["m2"]), ["a2", "a3", "b1"]);
        assert_eq!(names(&r["m3"]), ["a4"]);
    }

    #[test]
    fn round_robin_assignment_matches_kafka() {
        let s = subs(&[
            ("m1", &["a", "b"]),
            ("m2", &["a", "b"]),
            ("m3", &["a", "b"]),
        ]);
        let r = assign(AssignmentStrategy::RoundRobin, &s, &parts);
        assert_eq!(names(&r["m1"]), ["a0", "a3", "b1"]);
        assert_eq!(names(&r["m2"]), ["a1", "a4"]);
        assert_eq!(names(&r["m3"]), ["a2", "b0"]);
    }

    #[test]
    fn offsets_file_survives_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (log, s) = OffsetLog::open(dir.path()).unwrap();
        assert!(s.is_empty());
        let c = |o| {
            vec![OffsetCommit {
                tp: TopicPartition::new("t", 1),
                offset: o,
            }]
        };
        log.append("g", &c(5)).unwrap();
        log.append("g", &c(9)).unwrap();
        drop(log);
        let p = dir.path().join("offsets.log");
        let mut buf = std::fs::read(&p).unwrap();
        buf.extend_from_slice(&[1, 2, 3]); // torn write
        std::fs::write(&p, &buf).unwrap();
        let (_log, s) = OffsetLog::open(dir.path()).unwrap();
        assert_eq!(s["g"][&TopicPartition::new("t", 1)], 9);
    }
}
