//! The cron schedules (`schedule.customers`, `schedule.accounts`, `schedule.full_refresh`) on
//! tokio-cron-scheduler, kept in memory. Each job is a one-line shim that hands a [`Tick`] to the
//! [`Worker`], which spawns it on the shared task tracker: the scheduler's own shutdown does not wait
//! for running jobs, the tracker does.

use anyhow::Context;
use tokio_cron_scheduler::{JobBuilder, JobScheduler};

use super::worker::{Tick, Worker};
use crate::config::{Schedule, ScheduleSettings};

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
        let [customers, accounts, full_refresh] = ScheduleSettings::KEYS;
        for (key, expr, tick) in [
            (customers, &schedule.customers, Tick::Customers),
            (accounts, &schedule.accounts, Tick::Accounts),
            (full_refresh, &schedule.full_refresh, Tick::FullRefresh),
        ] {
            inner
                .add(
                    job(expr, tick, worker.clone())
                        .with_context(|| format!("configuration key `{key}`: `{expr}`"))?,
                )
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

/// The job of one schedule, on the expression parsed at load (the builder takes a `croner::Cron`;
/// tokio-cron-scheduler keeps its text and parses it again, the same way, for each next tick).
fn job(
    expr: &Schedule,
    tick: Tick,
    worker: Worker,
) -> Result<tokio_cron_scheduler::Job, tokio_cron_scheduler::JobSchedulerError> {
    JobBuilder {
        schedule: Some(expr.cron().clone()),
        ..JobBuilder::new()
    }
    .with_cron_job_type()
    .with_run_async(Box::new(move |_, _| {
        let worker = worker.clone();
        Box::pin(async move { worker.spawn_tick(tick) })
    }))
    .build()
}
