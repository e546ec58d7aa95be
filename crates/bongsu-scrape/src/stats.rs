//! The scraper's own numbers, per job: targets and how many are up, scrapes and failures,
//! scrape durations as a histogram. The server turns a [`StatsSnapshot`] into `/metrics`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the scrape duration histogram buckets.
pub const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// One job's numbers at one moment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JobStats {
    pub job: String,
    /// Targets being scraped.
    pub targets: u64,
    /// Targets whose last scrape succeeded.
    pub targets_up: u64,
    pub scrapes_total: u64,
    pub scrapes_failed_total: u64,
    /// Records the sink refused (their scrape counts as failed too).
    pub appends_failed_total: u64,
    /// Samples appended (scraped samples kept, staleness markers and report series).
    pub samples_appended_total: u64,
    /// Cumulative counts per bucket of [`DURATION_BUCKETS`].
    pub duration_buckets: Vec<u64>,
    pub duration_sum_seconds: f64,
    pub duration_count: u64,
}

/// Every job's numbers, sorted by job name.
pub type StatsSnapshot = Vec<JobStats>;

#[derive(Debug, Default)]
struct JobCounters {
    /// Target key → whether its last scrape succeeded (`None` before the first one).
    targets: BTreeMap<String, Option<bool>>,
    scrapes: u64,
    failed: u64,
    appends_failed: u64,
    samples: u64,
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

/// The live counters, shared by the scrape tasks.
#[derive(Debug, Default)]
pub struct ScrapeStats {
    jobs: Mutex<BTreeMap<String, JobCounters>>,
}

impl ScrapeStats {
    fn with<R>(&self, job: &str, f: impl FnOnce(&mut JobCounters) -> R) -> R {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let c = jobs.entry(job.to_owned()).or_insert_with(|| JobCounters {
            buckets: vec![0; DURATION_BUCKETS.len()],
            ..JobCounters::default()
        });
        f(c)
    }

    pub(crate) fn add_job(&self, job: &str) {
        self.with(job, |_| ());
    }

    pub(crate) fn remove_job(&self, job: &str) {
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(job);
    }

    pub(crate) fn target_added(&self, job: &str, key: &str) {
        self.with(job, |c| c.targets.insert(key.to_owned(), None));
    }

    pub(crate) fn target_removed(&self, job: &str, key: &str) {
        self.with(job, |c| c.targets.remove(key));
    }

    pub(crate) fn scraped(
        &self,
        job: &str,
        key: &str,
        up: bool,
        duration: Duration,
        samples: usize,
        append_failed: bool,
    ) {
        let secs = duration.as_secs_f64();
        self.with(job, |c| {
            if let Some(t) = c.targets.get_mut(key) {
                *t = Some(up);
            }
            c.scrapes += 1;
            if !up {
                c.failed += 1;
            }
            if append_failed {
                c.appends_failed += 1;
            } else {
                c.samples += samples as u64;
            }
            for (b, le) in c.buckets.iter_mut().zip(DURATION_BUCKETS) {
                if secs <= *le {
                    *b += 1;
                }
            }
            c.sum += secs;
            c.count += 1;
        });
    }

    /// The numbers of every job now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.iter()
            .map(|(job, c)| JobStats {
                job: job.clone(),
                targets: c.targets.len() as u64,
                targets_up: c.targets.values().filter(|u| **u == Some(true)).count() as u64,
                scrapes_total: c.scrapes,
                scrapes_failed_total: c.failed,
                appends_failed_total: c.appends_failed,
                samples_appended_total: c.samples,
                duration_buckets: c.buckets.clone(),
                duration_sum_seconds: c.sum,
                duration_count: c.count,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_job() {
        let s = ScrapeStats::default();
        s.target_added("node", "a");
        s.target_added("node", "b");
        s.scraped("node", "a", true, Duration::from_millis(20), 10, false);
        s.scraped("node", "b", false, Duration::from_secs(20), 5, true);
        let snap = s.snapshot();
        let n = &snap[0];
        assert_eq!((n.targets, n.targets_up), (2, 1));
        assert_eq!((n.scrapes_total, n.scrapes_failed_total), (2, 1));
        assert_eq!(n.appends_failed_total, 1);
        assert_eq!(n.samples_appended_total, 10);
        assert_eq!(n.duration_count, 2);
        assert_eq!(n.duration_buckets[0], 0);
        assert_eq!(n.duration_buckets[3], 1); // 0.05
        assert_eq!(*n.duration_buckets.last().unwrap(), 1); // 20 s is above every bucket
        s.target_removed("node", "a");
        assert_eq!(s.snapshot()[0].targets_up, 0);
    }
}
