//! The cron schedules (`schedule.customers`, `schedule.accounts`, `schedule.full_refresh`) on
//! tokio-cron-scheduler, kept in memory. Each job is a one-line shim that hands a [`Tick`] to the
//! [`Worker`], which spawns it on the shared task tracker: the scheduler's own shutdown does not wait
//! for running jobs, the tracker does.

use anyhow::Context;
use tokio_cron_scheduler::{Job as CronJob, JobScheduler};

use super::worker::{Tick, Worker};
use crate::config::ScheduleSettings;

/// The running cron scheduler.
pub struct Scheduler {
    inner: JobScheduler,
}

impl Scheduler {
    /// Add one job per schedule and start ticking.
    pub async fn start(schedule: &ScheduleSettings, worker: &Worker) -> anyhow::Result<Scheduler> {
        let inner = JobScheduler::new()
            .await
            .context("creating the scheduler")?;
        for (key, expr, tick) in [
            ("schedule.customers", &schedule.customers, Tick::Customers),
            ("schedule.accounts", &schedule.accounts, Tick::Accounts),
            (
                "schedule.full_refresh",
                &schedule.full_refresh,
                Tick::FullRefresh,
            ),
        ] {
            let worker = worker.clone();
            let job = CronJob::new_async(expr.as_str(), move |_, _| {
                let worker = worker.clone();
                Box::pin(async move { worker.spawn_tick(tick) })
            })
            .with_context(|| format!("configuration key `{key}`: `{expr}`"))?;
            inner
                .add(job)
                .await
                .with_context(|| format!("scheduling `{key}`"))?;
            tracing::info!(schedule = key, cron = %expr, "scheduled");
        }
        inner.start().await.context("starting the scheduler")?;
        Ok(Scheduler { inner })
    }

    /// Stop ticking. Jobs already handed to the worker keep running (the caller waits for them).
    pub async fn shutdown(mut self) {
        if let Err(e) = self.inner.shutdown().await {
            tracing::warn!(error = %crate::error::report(&e), "stopping the scheduler");
        }
    }
}
