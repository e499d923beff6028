//! The daemon against the simulator and a real Postgres: schedules and the fair worker, replicas
//! sharing accounts through leases (in-process, with a killed `run` process, with a frozen one),
//! `sync` meeting a busy account, graceful shutdown
//! (shutdown input and SIGTERM), the HTTP endpoints and `status`.

mod helpers;

mod budget;
mod endpoints;
mod leases;
mod ownership;
mod schedule;
mod server_limits;
mod shutdown;
mod status_page;
mod takeover;
