//! systemd `Type=notify`: `READY=1` once the daemon serves, `WATCHDOG=1` at half of `WATCHDOG_USEC`,
//! `STOPPING=1` when shutdown begins. Every call is a no-op outside systemd (no `NOTIFY_SOCKET`).

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Tell systemd the daemon is ready (migrations done, HTTP bound, scheduler started).
pub fn ready() {
    send(&[NotifyState::Ready], "READY=1");
}

/// Tell systemd the daemon is stopping.
pub fn stopping() {
    send(&[NotifyState::Stopping], "STOPPING=1");
}

/// When systemd asked for a watchdog, ping it at half its period until `stop` fires.
///
/// The pings come from a task on the runtime, so they prove the runtime still schedules work; they
/// deliberately do not depend on the database, since restarting the daemon cannot fix a database
/// outage (`/readyz` reports that instead).
pub fn spawn_watchdog(tracker: &TaskTracker, stop: CancellationToken) {
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    let every = period / 2;
    tracing::debug!(?every, "systemd watchdog enabled");
    tracker.spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => send(&[NotifyState::Watchdog], "WATCHDOG=1"),
            }
        }
    });
}

fn send(state: &[NotifyState<'_>], what: &str) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %crate::error::report(&e), "could not notify systemd ({what})");
    }
}
