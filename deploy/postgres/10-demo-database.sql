-- Run once by the postgres image when its volume is first initialised (docker-entrypoint-initdb.d):
-- a separate database for `lightspeed-sync demo`, so the demo's simulated accounts never mix with
-- the real mirror in the `lightspeed` database.
CREATE DATABASE lightspeed_demo OWNER lightspeed_daemon;
