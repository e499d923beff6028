//! The daemon against the simulator and a real Postgres: schedules and the fair worker, replicas
//! sharing accounts through leases (in-process and with a killed `run` process), graceful shutdown
//! (shutdown input and SIGTERM), the HTTP endpoints and `status`.

mod helpers;

mod endpoints;
mod schedule;
mod server_limits;
mod shutdown;
mod takeover;
