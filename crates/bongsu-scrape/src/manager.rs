//! The [`Scraper`]: one task per job (discovery and reconciliation) and one per target (the
//! scrape loop), started from a [`ScrapeConfig`], reloadable, stopped by [`Scraper::shutdown`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bongsu_ingest::Limits;
use bongsu_model::Labels;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::config::{JobConfig, ScrapeConfig};
use crate::discovery::{FileDiscovery, FILE_SD_CHECK};
use crate::http::Fetcher;
use crate::scrape::{Context, SeriesCache};
use crate::sink::MetricsSink;
use crate::stats::ScrapeStats;
use crate::target::{targets_from_group, Target};

/// Where scrape timestamps come from (milliseconds since the Unix epoch).
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// What the scraper needs besides its configuration.
#[derive(Clone)]
pub struct ScrapeOptions {
    /// Parser limits; `max_body_bytes` is the default `body_size_limit`.
    pub limits: Limits,
    /// Timestamps of scrapes and staleness markers.
    pub clock: Arc<dyn Clock>,
}

impl Default for ScrapeOptions {
    fn default() -> Self {
        ScrapeOptions {
            limits: Limits::default(),
            clock: Arc::new(SystemClock),
        }
    }
}

/// Why a loop stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Running,
    /// Server shutdown: no staleness markers (the series resume after a restart).
    Shutdown,
    /// The target or its job went away: its series get staleness markers.
    Removed,
}

/// What every task of a job shares.
struct Shared {
    sink: Arc<dyn MetricsSink>,
    stats: Arc<ScrapeStats>,
    clock: Arc<dyn Clock>,
    limits: Limits,
    external_labels: Labels,
}

struct JobHandle {
    config: JobConfig,
    stop: watch::Sender<Stop>,
    task: JoinHandle<()>,
}

/// Scrapes the targets of a [`ScrapeConfig`] and appends one record per scrape to a
/// [`MetricsSink`].
pub struct Scraper {
    sink: Arc<dyn MetricsSink>,
    stats: Arc<ScrapeStats>,
    opts: ScrapeOptions,
    state: tokio::sync::Mutex<(Labels, Vec<JobHandle>)>,
}

impl std::fmt::Debug for Scraper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scraper").finish_non_exhaustive()
    }
}

impl Scraper {
    /// Starts scraping every job of `config`. Must be called within a Tokio runtime.
    pub fn start(config: ScrapeConfig, sink: Arc<dyn MetricsSink>, opts: ScrapeOptions) -> Scraper {
        let stats = Arc::new(ScrapeStats::default());
        for key in &config.ignored {
            tracing::info!(
                key,
                "scrape config: ignoring a key that only Prometheus uses"
            );
        }
        let shared = Arc::new(Shared {
            sink: sink.clone(),
            stats: stats.clone(),
            clock: opts.clock.clone(),
            limits: opts.limits.clone(),
            external_labels: config.external_labels.clone(),
        });
        let jobs = config
            .jobs
            .into_iter()
            .map(|j| spawn_job(j, shared.clone()))
            .collect();
        Scraper {
            sink,
            stats,
            opts,
            state: tokio::sync::Mutex::new((config.external_labels, jobs)),
        }
    }

    /// The live per-job counters.
    pub fn stats(&self) -> Arc<ScrapeStats> {
        self.stats.clone()
    }

    /// Applies a new configuration: jobs that are unchanged keep running; changed and removed
    /// jobs stop (their series get staleness markers) and new or changed ones start.
    pub async fn reload(&self, config: ScrapeConfig) {
        let mut state = self.state.lock().await;
        let (external, jobs) = &mut *state;
        let all_changed = *external != config.external_labels;
        let mut old: BTreeMap<String, JobHandle> = std::mem::take(jobs)
            .into_iter()
            .map(|h| (h.config.job_name.clone(), h))
            .collect();
        let shared = Arc::new(Shared {
            sink: self.sink.clone(),
            stats: self.stats.clone(),
            clock: self.opts.clock.clone(),
            limits: self.opts.limits.clone(),
            external_labels: config.external_labels.clone(),
        });
        let mut keep = Vec::new();
        let mut start = Vec::new();
        for job in config.jobs {
            match old.remove(&job.job_name) {
                Some(h) if !all_changed && h.config == job => keep.push(h),
                Some(h) => {
                    stop_job(h, Stop::Removed).await;
                    start.push(job);
                }
                None => start.push(job),
            }
        }
        for (name, h) in old {
            stop_job(h, Stop::Removed).await;
            self.stats.remove_job(&name);
        }
        keep.extend(start.into_iter().map(|j| spawn_job(j, shared.clone())));
        *external = config.external_labels;
        *jobs = keep;
        tracing::info!(jobs = jobs.len(), "scrape config reloaded");
    }

    /// Stops every scrape loop and waits for them (without staleness markers: the series
    /// resume when the server starts again).
    pub async fn shutdown(&self) {
        let mut state = self.state.lock().await;
        for h in std::mem::take(&mut state.1) {
            stop_job(h, Stop::Shutdown).await;
        }
    }
}

async fn stop_job(h: JobHandle, why: Stop) {
    let _ = h.stop.send(why);
    if let Err(e) = h.task.await {
        tracing::error!(job = %h.config.job_name, error = %e, "scrape job task failed");
    }
}

fn spawn_job(config: JobConfig, shared: Arc<Shared>) -> JobHandle {
    let (tx, rx) = watch::channel(Stop::Running);
    shared.stats.add_job(&config.job_name);
    let job = Arc::new(config.clone());
    let task = tokio::spawn(run_job(job, shared, rx));
    JobHandle {
        config,
        stop: tx,
        task,
    }
}

async fn stopped(rx: &mut watch::Receiver<Stop>) -> Stop {
    match rx.wait_for(|s| *s != Stop::Running).await {
        Ok(s) => *s,
        // The sender is gone: the scraper was dropped without shutdown.
        Err(_) => Stop::Shutdown,
    }
}

struct TargetHandle {
    stop: watch::Sender<Stop>,
    task: JoinHandle<()>,
}

/// A job: discovers its targets, keeps one loop per target, stops them when asked.
async fn run_job(job: Arc<JobConfig>, shared: Arc<Shared>, mut stop: watch::Receiver<Stop>) {
    let fetcher = match Fetcher::new(&job, shared.limits.max_body_bytes) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(job = %job.job_name, error = %e, "cannot start scrape job");
            return;
        }
    };
    let mut files: Vec<FileDiscovery> = job
        .file_sd_configs
        .iter()
        .cloned()
        .map(FileDiscovery::new)
        .collect();
    let mut running: HashMap<String, TargetHandle> = HashMap::new();
    let mut first = true;
    let why = loop {
        let (changed, files_back) = poll_files(files).await;
        files = files_back;
        if changed || first {
            first = false;
            let mut wanted: BTreeMap<String, Target> = BTreeMap::new();
            let mut errors = Vec::new();
            for g in &job.static_configs {
                let (t, e) = targets_from_group(&job, g, &[]);
                wanted.extend(t.into_iter().map(|t| (t.key(), t)));
                errors.extend(e);
            }
            for f in &files {
                for (g, meta) in f.groups() {
                    let (t, e) = targets_from_group(&job, g, &meta);
                    wanted.extend(t.into_iter().map(|t| (t.key(), t)));
                    errors.extend(e);
                }
            }
            for e in errors {
                tracing::warn!(job = %job.job_name, "skipping target: {}", e.0);
            }
            let gone: Vec<String> = running
                .keys()
                .filter(|k| !wanted.contains_key(*k))
                .cloned()
                .collect();
            for key in gone {
                if let Some(h) = running.remove(&key) {
                    let _ = h.stop.send(Stop::Removed);
                    let _ = h.task.await;
                }
            }
            for (key, target) in wanted {
                if running.contains_key(&key) {
                    continue;
                }
                let (tx, rx) = watch::channel(Stop::Running);
                shared.stats.target_added(&job.job_name, &key);
                let task = tokio::spawn(run_target(
                    target,
                    job.clone(),
                    fetcher.clone(),
                    shared.clone(),
                    rx,
                ));
                running.insert(key, TargetHandle { stop: tx, task });
            }
            tracing::debug!(job = %job.job_name, targets = running.len(), "scrape targets updated");
        }
        if files.is_empty() {
            break stopped(&mut stop).await;
        }
        tokio::select! {
            why = stopped(&mut stop) => break why,
            _ = tokio::time::sleep(FILE_SD_CHECK) => {}
        }
    };
    for (_, h) in running.drain() {
        let _ = h.stop.send(why);
        let _ = h.task.await;
    }
}

/// Polls file discovery off the runtime (it reads files).
async fn poll_files(mut files: Vec<FileDiscovery>) -> (bool, Vec<FileDiscovery>) {
    if files.is_empty() {
        return (false, files);
    }
    let polled = tokio::task::spawn_blocking(move || {
        let mut changed = false;
        let mut errors = Vec::new();
        for f in &mut files {
            let (c, e) = f.poll();
            changed |= c;
            errors.extend(e);
        }
        (changed, errors, files)
    })
    .await;
    match polled {
        Ok((changed, errors, files)) => {
            for e in errors {
                tracing::warn!("{e}");
            }
            (changed, files)
        }
        Err(e) => {
            // Only a panic in the poll gets here; discovery starts over from nothing.
            tracing::error!(error = %e, "file discovery task failed");
            (false, Vec::new())
        }
    }
}

/// The delay until the next instant whose time within the interval equals `offset`.
fn align(now_ms: i64, interval: Duration, offset: Duration) -> Duration {
    let i = i64::try_from(interval.as_millis())
        .unwrap_or(i64::MAX)
        .max(1);
    let o = i64::try_from(offset.as_millis()).unwrap_or(0) % i;
    let wait = (o - now_ms.rem_euclid(i)).rem_euclid(i);
    Duration::from_millis(u64::try_from(wait).unwrap_or(0))
}

/// One target's scrape loop.
async fn run_target(
    target: Target,
    job: Arc<JobConfig>,
    fetcher: Fetcher,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<Stop>,
) {
    let key = target.key();
    let target = Arc::new(target);
    let mut cache = SeriesCache::default();
    let first = Instant::now() + align(shared.clock.now_ms(), target.interval, target.offset());
    let mut ticker = tokio::time::interval_at(first, target.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut last_ts = i64::MIN;
    let mut was_up = true;
    let why = loop {
        tokio::select! {
            biased;
            why = stopped(&mut stop) => break why,
            _ = ticker.tick() => {}
        }
        let ts = shared.clock.now_ms().max(last_ts.saturating_add(1));
        last_ts = ts;
        let started = Instant::now();
        let fetched = tokio::select! {
            why = stopped(&mut stop) => break why,
            f = fetcher.fetch(&target.url, target.timeout) => f,
        };
        let elapsed = started.elapsed();
        // Parsing and relabeling a large exposition is CPU work: off the async runtime.
        let (t, j, sh) = (target.clone(), job.clone(), shared.clone());
        let parsed = tokio::task::spawn_blocking(move || {
            let ctx = Context {
                target: &t,
                job: &j,
                external_labels: &sh.external_labels,
                limits: &sh.limits,
            };
            let outcome = cache.scrape(&ctx, ts, fetched, elapsed);
            (cache, outcome)
        })
        .await;
        let outcome = match parsed {
            Ok((c, outcome)) => {
                cache = c;
                outcome
            }
            Err(e) => {
                tracing::error!(job = %job.job_name, url = %target.url, error = %e, "scrape task failed");
                cache = SeriesCache::default();
                continue;
            }
        };
        let up = outcome.error.is_none();
        if let Some(e) = &outcome.error {
            if was_up {
                tracing::warn!(job = %job.job_name, url = %target.url, error = %e, "scrape failed");
            } else {
                tracing::debug!(job = %job.job_name, url = %target.url, error = %e, "scrape failed");
            }
        } else if !was_up {
            tracing::info!(job = %job.job_name, url = %target.url, "target is up again");
        }
        was_up = up;
        let n = outcome.record.sample_count();
        let append_failed = match shared.sink.append(outcome.record).await {
            Ok(()) => false,
            Err(e) => {
                tracing::warn!(job = %job.job_name, url = %target.url, error = %e, "scrape not stored");
                true
            }
        };
        shared.stats.scraped(
            &job.job_name,
            &key,
            up && !append_failed,
            started.elapsed(),
            n,
            append_failed,
        );
    };
    if why == Stop::Removed {
        let ctx = Context {
            target: &target,
            job: &job,
            external_labels: &shared.external_labels,
            limits: &shared.limits,
        };
        let ts = shared.clock.now_ms().max(last_ts.saturating_add(1));
        if let Some(rec) = cache.end_of_run(&ctx, ts) {
            if let Err(e) = shared.sink.append(rec).await {
                tracing::warn!(job = %job.job_name, url = %target.url, error = %e, "staleness markers not stored");
            }
        }
    }
    shared.stats.target_removed(&job.job_name, &key);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_hits_the_offset() {
        let i = Duration::from_secs(10);
        assert_eq!(
            align(12_000, i, Duration::from_secs(3)),
            Duration::from_millis(1000)
        );
        assert_eq!(
            align(14_000, i, Duration::from_secs(3)),
            Duration::from_millis(9000)
        );
        assert_eq!(align(13_000, i, Duration::from_secs(3)), Duration::ZERO);
        for now in [0i64, 1, 9_999, 123_456_789] {
            let w = align(now, i, Duration::from_millis(4321));
            assert!(w < i);
            assert_eq!((now + w.as_millis() as i64) % 10_000, 4321);
        }
    }
}
