//! Background work that must not slow ingest: compaction runs on a thread of its own with the
//! idle scheduling policy (Linux `SCHED_IDLE`), so it only gets CPU time no other thread of the
//! machine wants. Under a sustained ingest peak it waits; once the peak passes it catches up.

use tokio::sync::oneshot;

use crate::error::{Error, Result};

/// Lowers the calling thread to the idle scheduling policy. Lowering needs no privilege; where
/// the system refuses anyway, the thread keeps its normal priority and a warning is logged.
pub(crate) fn lower_current_thread() {
    use thread_priority::unix::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
        ThreadSchedulePolicy,
    };
    use thread_priority::ThreadPriority;
    if let Err(e) = set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Min,
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
    ) {
        tracing::warn!(error = ?e, "cannot lower a background thread's priority: it competes with ingest");
    }
}

/// Runs `f` on a new thread named `name` at the idle scheduling policy and waits for its
/// result. Dropping the returned future leaves the thread to finish on its own.
pub(crate) async fn run_idle<T, F>(name: &str, f: F) -> Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            lower_current_thread();
            let _ = tx.send(f());
        })
        .map_err(|e| Error::Task(format!("cannot start thread {name}: {e}")))?;
    rx.await
        .map_err(|_| Error::Task(format!("thread {name} ended without a result")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The work runs, its result comes back, and the thread it ran on is at the idle policy.
    #[tokio::test]
    async fn runs_the_work_on_an_idle_policy_thread() {
        let (value, policy) = run_idle("bongsu-test-idle", || {
            let policy = thread_priority::unix::thread_schedule_policy().ok();
            (6 * 7, policy)
        })
        .await
        .unwrap();
        assert_eq!(value, 42);
        assert_eq!(
            policy,
            Some(thread_priority::unix::ThreadSchedulePolicy::Normal(
                thread_priority::unix::NormalThreadSchedulePolicy::Idle
            ))
        );
    }
}
