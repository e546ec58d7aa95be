//! `bongsu stream …`: a kcat-like tool over the embedded stream's data dir.
//!
//! The command opens the data dir itself, so it cannot run while a bongsu server holds the
//! same dir (it then fails with "data dir DIR is in use by another bongsu process").

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use bongsu_stream::{
    AssignmentStrategy, Clock, EmbeddedStream, FetchOptions, JoinGroup, OffsetCommit, Producer,
    ProducerConfig, Record, Stream, StreamOptions, SystemClock, TopicConfig, TopicPartition,
};
use bytes::Bytes;
use clap::Subcommand;

/// `bongsu stream` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum StreamCommand {
    /// Create, list, describe or delete topics.
    Topics {
        #[command(subcommand)]
        cmd: TopicsCommand,
    },
    /// Append one record per stdin line; exits once every record is acknowledged (durable).
    Produce {
        /// Topic (must exist: topics are not auto-created).
        #[arg(short = 't', long)]
        topic: String,
        /// Key of every record (same key, same partition).
        #[arg(short = 'k', long)]
        key: Option<String>,
        /// Partition to write to (default: from the key, else spread).
        #[arg(short = 'p', long)]
        partition: Option<u32>,
    },
    /// Print one record value per line.
    Consume {
        /// Topic.
        #[arg(short = 't', long)]
        topic: String,
        /// Consumer group: join it, start from its committed offsets and commit what was printed.
        #[arg(short = 'g', long)]
        group: Option<String>,
        /// Start offset: `beginning`, `end` or a number (with -g: only where nothing is committed).
        #[arg(short = 'o', long, default_value = "beginning")]
        offset: String,
        /// Only this partition (not with -g).
        #[arg(short = 'p', long)]
        partition: Option<u32>,
        /// Exit at the end of the partitions instead of waiting for more.
        #[arg(short = 'e', long)]
        exit: bool,
        /// Print `partition:offset:key:value` instead of the value only.
        #[arg(long)]
        verbose: bool,
    },
    /// List or describe consumer groups.
    Groups {
        #[command(subcommand)]
        cmd: GroupsCommand,
    },
}

/// `bongsu stream topics` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum TopicsCommand {
    /// Create a topic.
    Create {
        /// Topic name.
        name: String,
        /// Number of partitions (default: number of CPU cores).
        #[arg(short = 'p', long)]
        partitions: Option<u32>,
        /// Topic setting `key=value` with Kafka's names (repeatable), e.g. retention.ms=3600000.
        #[arg(short = 'c', long = "config")]
        config: Vec<String>,
    },
    /// List topics.
    List,
    /// Show a topic's settings and partitions.
    Describe {
        /// Topic name.
        name: String,
    },
    /// Delete a topic and its data.
    Delete {
        /// Topic name.
        name: String,
    },
}

/// `bongsu stream groups` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum GroupsCommand {
    /// List consumer groups.
    List,
    /// Show a group's members, committed offsets and lag.
    Describe {
        /// Group id.
        group: String,
    },
}

/// Runs a `bongsu stream` command against the data dir.
pub(crate) fn run(cmd: StreamCommand, data_dir: &Path) -> anyhow::Result<()> {
    let opts = StreamOptions {
        retention_check_interval_ms: 0,
        ..StreamOptions::default()
    };
    let stream = EmbeddedStream::open(data_dir, opts)
        .with_context(|| format!("cannot open the stream in {}", data_dir.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = rt.block_on(async {
        let r = execute(cmd, stream.clone()).await;
        stream.shutdown().await;
        r
    });
    drop(stream);
    result
}

async fn execute(cmd: StreamCommand, s: Arc<EmbeddedStream>) -> anyhow::Result<()> {
    let out = std::io::stdout();
    match cmd {
        StreamCommand::Topics { cmd } => topics(cmd, &*s).await,
        StreamCommand::Produce {
            topic,
            key,
            partition,
        } => produce(s, &topic, key, partition).await,
        StreamCommand::Consume {
            topic,
            group,
            offset,
            partition,
            exit,
            verbose,
        } => {
            let mut w = std::io::BufWriter::new(out.lock());
            let opts = ConsumeOpts {
                topic,
                offset,
                exit,
                verbose,
            };
            match group {
                Some(g) => {
                    if partition.is_some() {
                        bail!("-p cannot be used with -g: the group assigns partitions");
                    }
                    consume_group(&*s, &opts, &g, &mut w).await
                }
                None => consume_plain(&*s, &opts, partition, &mut w).await,
            }
        }
        StreamCommand::Groups { cmd } => groups(cmd, &*s).await,
    }
}

async fn topics(cmd: TopicsCommand, s: &dyn Stream) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match cmd {
        TopicsCommand::Create {
            name,
            partitions,
            config,
        } => {
            let mut cfg = TopicConfig::default();
            if let Some(p) = partitions {
                cfg.partitions = p;
            }
            for kv in &config {
                let (k, v) = kv
                    .split_once('=')
                    .with_context(|| format!("setting {kv:?} is not key=value"))?;
                cfg.set(k.trim(), v.trim())?;
            }
            s.create_topic(&name, cfg).await?;
            writeln!(out, "created topic {name}")?;
        }
        TopicsCommand::List => {
            for t in s.list_topics().await? {
                writeln!(out, "{t}")?;
            }
        }
        TopicsCommand::Describe { name } => {
            let d = s.describe_topic(&name).await?;
            writeln!(out, "topic {}", d.name)?;
            for k in bongsu_stream::TOPIC_CONFIG_KEYS {
                if let Some(v) = d.config.get(k) {
                    writeln!(out, "  {k}={v}")?;
                }
            }
            writeln!(
                out,
                "{:>9} {:>12} {:>12} {:>14} {:>8}",
                "PARTITION", "LOG-START", "END", "BYTES", "SEGMENTS"
            )?;
            for p in d.partitions {
                writeln!(
                    out,
                    "{:>9} {:>12} {:>12} {:>14} {:>8}",
                    p.partition, p.log_start_offset, p.high_watermark, p.size_bytes, p.segments
                )?;
            }
        }
        TopicsCommand::Delete { name } => {
            s.delete_topic(&name).await?;
            writeln!(out, "deleted topic {name}")?;
        }
    }
    Ok(())
}

async fn produce(
    s: Arc<EmbeddedStream>,
    topic: &str,
    key: Option<String>,
    partition: Option<u32>,
) -> anyhow::Result<()> {
    // fail early on an unknown topic or partition
    let d = s.describe_topic(topic).await?;
    if let Some(p) = partition {
        if p >= d.config.partitions {
            bail!(
                "topic {topic:?} has {} partitions, partition {p} does not exist",
                d.config.partitions
            );
        }
    }
    let lines = tokio::task::spawn_blocking(|| -> std::io::Result<Vec<String>> {
        std::io::stdin().lock().lines().collect()
    })
    .await??;
    let clock = SystemClock;
    let mut n = 0usize;
    match partition {
        Some(p) => {
            // explicit partition: one append per up to 1000 lines
            for chunk in lines.chunks(1000) {
                let recs: Vec<Record> = chunk
                    .iter()
                    .map(|l| Record {
                        key: key.clone().map(Bytes::from),
                        value: Bytes::from(l.clone()),
                        timestamp_ms: clock.now_ms(),
                    })
                    .collect();
                n += recs.len();
                s.append(topic, Some(p), recs).await?;
            }
        }
        None => {
            let producer = Producer::new(s.clone() as Arc<dyn Stream>, ProducerConfig::default());
            let mut pending = Vec::with_capacity(lines.len());
            for l in lines {
                let r = Record {
                    key: key.clone().map(Bytes::from),
                    value: Bytes::from(l),
                    timestamp_ms: clock.now_ms(),
                };
                pending.push(producer.enqueue(topic, r).await?);
            }
            producer.flush().await?;
            for d in pending {
                d.wait().await?;
                n += 1;
            }
        }
    }
    eprintln!("produced {n} records to {topic}");
    Ok(())
}

struct ConsumeOpts {
    topic: String,
    offset: String,
    exit: bool,
    verbose: bool,
}

async fn start_offset(s: &dyn Stream, topic: &str, p: u32, spec: &str) -> anyhow::Result<u64> {
    let d = s.describe_topic(topic).await?;
    let part = d
        .partitions
        .get(p as usize)
        .with_context(|| format!("topic {topic:?} has no partition {p}"))?;
    Ok(match spec {
        "beginning" => part.log_start_offset,
        "end" => part.high_watermark,
        n => n
            .parse()
            .with_context(|| format!("offset {n:?} is not beginning, end or a number"))?,
    })
}

fn print_records(
    w: &mut impl Write,
    p: u32,
    recs: &[bongsu_stream::StoredRecord],
    verbose: bool,
) -> anyhow::Result<()> {
    for r in recs {
        if verbose {
            let key = r
                .key
                .as_ref()
                .map(|k| String::from_utf8_lossy(k).to_string())
                .unwrap_or_default();
            writeln!(
                w,
                "{p}:{}:{key}:{}",
                r.offset,
                String::from_utf8_lossy(&r.value)
            )?;
        } else {
            w.write_all(&r.value)?;
            w.write_all(b"\n")?;
        }
    }
    w.flush()?;
    Ok(())
}

fn fetch_opts(exit: bool) -> FetchOptions {
    if exit {
        FetchOptions::no_wait()
    } else {
        FetchOptions {
            fetch_max_wait_ms: 500,
            ..FetchOptions::default()
        }
    }
}

async fn consume_plain(
    s: &dyn Stream,
    o: &ConsumeOpts,
    partition: Option<u32>,
    w: &mut impl Write,
) -> anyhow::Result<()> {
    let d = s.describe_topic(&o.topic).await?;
    let parts: Vec<u32> = match partition {
        Some(p) => vec![p],
        None => (0..d.config.partitions).collect(),
    };
    let mut pos = BTreeMap::new();
    for &p in &parts {
        pos.insert(p, start_offset(s, &o.topic, p, &o.offset).await?);
    }
    loop {
        let mut at_end = true;
        for &p in &parts {
            let from = pos[&p];
            let f = s
                .fetch(&o.topic, p, from, fetch_opts(o.exit || parts.len() > 1))
                .await?;
            print_records(w, p, &f.records, o.verbose)?;
            let next = f.records.last().map_or(from, |r| r.offset + 1);
            pos.insert(p, next);
            at_end &= next >= f.high_watermark;
        }
        if o.exit && at_end {
            return Ok(());
        }
        if !o.exit && at_end && parts.len() > 1 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

async fn consume_group(
    s: &dyn Stream,
    o: &ConsumeOpts,
    group: &str,
    w: &mut impl Write,
) -> anyhow::Result<()> {
    let mut a = s
        .join_group(JoinGroup {
            group: group.to_string(),
            member_id: None,
            topics: vec![o.topic.clone()],
            session_timeout_ms: 45_000,
            strategy: AssignmentStrategy::Range,
        })
        .await?;
    let result = async {
        loop {
            let committed: BTreeMap<TopicPartition, u64> = s
                .committed_offsets(group)
                .await?
                .into_iter()
                .map(|c| (c.tp, c.offset))
                .collect();
            let mut at_end = true;
            for tp in a.partitions.clone() {
                let from = match committed.get(&tp) {
                    Some(o) => *o,
                    None => start_offset(s, &tp.topic, tp.partition, &o.offset).await?,
                };
                let f = s
                    .fetch(
                        &tp.topic,
                        tp.partition,
                        from,
                        fetch_opts(o.exit || a.partitions.len() > 1),
                    )
                    .await?;
                print_records(w, tp.partition, &f.records, o.verbose)?;
                let next = f.records.last().map_or(from, |r| r.offset + 1);
                if next != from || !committed.contains_key(&tp) {
                    s.commit_offsets(
                        group,
                        &a.member_id,
                        a.generation,
                        vec![OffsetCommit {
                            tp: tp.clone(),
                            offset: next,
                        }],
                    )
                    .await?;
                }
                at_end &= next >= f.high_watermark;
            }
            if o.exit && at_end {
                return anyhow::Ok(());
            }
            a = s.heartbeat(group, &a.member_id).await?;
            if a.partitions.is_empty() || (!o.exit && at_end && a.partitions.len() > 1) {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
    .await;
    let _ = s.leave_group(group, &a.member_id).await;
    result
}

async fn groups(cmd: GroupsCommand, s: &dyn Stream) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match cmd {
        GroupsCommand::List => {
            for g in s.list_groups().await? {
                writeln!(out, "{g}")?;
            }
        }
        GroupsCommand::Describe { group } => {
            let d = s.describe_group(&group).await?;
            writeln!(
                out,
                "group {} generation {} strategy {} members {}",
                d.group,
                d.generation,
                d.strategy.name(),
                d.members.len()
            )?;
            for m in &d.members {
                let parts: Vec<String> = m
                    .partitions
                    .iter()
                    .map(|tp| format!("{}/{}", tp.topic, tp.partition))
                    .collect();
                writeln!(out, "  member {} owns {}", m.member_id, parts.join(","))?;
            }
            writeln!(
                out,
                "{:<24} {:>9} {:>12} {:>12} {:>10}",
                "TOPIC", "PARTITION", "COMMITTED", "END", "LAG"
            )?;
            for l in d.lag {
                writeln!(
                    out,
                    "{:<24} {:>9} {:>12} {:>12} {:>10}",
                    l.tp.topic,
                    l.tp.partition,
                    l.committed.map_or("-".to_string(), |c| c.to_string()),
                    l.high_watermark,
                    l.lag
                )?;
            }
        }
    }
    Ok(())
}
