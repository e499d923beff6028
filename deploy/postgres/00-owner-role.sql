-- Run once by the postgres image when its volume is first initialised (docker-entrypoint-initdb.d,
-- as the superuser, connected to POSTGRES_DB): the role the daemon connects as. It is an ordinary
-- role (no SUPERUSER, CREATEDB or CREATEROLE) that owns the mirror's database, so it can run the
-- migrations and nothing beyond them. Its password is the secret file db_password.
\set ON_ERROR_STOP on
\set password `cat /run/secrets/db_password`
CREATE ROLE lightspeed_daemon LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'password';
\unset password
ALTER DATABASE :"DBNAME" OWNER TO lightspeed_daemon;
