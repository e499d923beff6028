-- A read-only group role for BI tools: `lightspeed_reader` reads the mirror (schema `lightspeed`:
-- tables and views, including tables that later migrations add) and nothing else.
--
-- Run it once per database, after the daemon has migrated it (`lightspeed-sync migrate` or the first
-- `run`), as a superuser or as the role that owns the `lightspeed` schema (the role the daemon connects
-- with):
--
--     psql "postgres://postgres@db-host/lightspeed" -v ON_ERROR_STOP=1 -f deploy/reader-role.sql
--
-- It is idempotent: running it again (e.g. after an upgrade) changes nothing and fails on nothing.
--
-- Then give each BI tool its own login in the group:
--
--     CREATE ROLE metabase LOGIN PASSWORD 'change me' IN ROLE lightspeed_reader;
--
-- What a reader gets:
--   * USAGE on schema `lightspeed` and SELECT on every table and view in it, now and later: default
--     privileges are set FOR ROLE the schema's owner (the migrating role, which creates the tables) and
--     for the role running this script. Tables that any other role creates there are not covered.
--   * The views `lightspeed.sync_runs` and `lightspeed.sync_status` read the internal tables with their
--     owner's rights; that is intended: they expose run history and authorization state, no tokens.
-- What a reader does not get: anything in `lightspeed_sync` (credentials, cursors, runs, leases), any
-- write (INSERT, UPDATE, DELETE, TRUNCATE), or CREATE in either schema.

-- All or nothing.
BEGIN;

-- The group role. Roles are cluster-wide, so two databases (or two sessions) may run this at once:
-- the loser of that race sees duplicate_object or unique_violation, which both mean "already there".
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'lightspeed_reader') THEN
        BEGIN
            CREATE ROLE lightspeed_reader NOLOGIN;
            COMMENT ON ROLE lightspeed_reader IS
                'lightspeed-sync: read-only access to the mirror (schema lightspeed)';
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
END
$$;

-- Connecting to this database (PUBLIC has CONNECT by default; this keeps working where it was revoked).
DO $$
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO lightspeed_reader', current_database());
END
$$;

-- The mirror: read, never write or create.
REVOKE CREATE ON SCHEMA lightspeed FROM PUBLIC;
REVOKE CREATE ON SCHEMA lightspeed FROM lightspeed_reader;
GRANT USAGE ON SCHEMA lightspeed TO lightspeed_reader;
REVOKE ALL ON ALL TABLES IN SCHEMA lightspeed FROM lightspeed_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA lightspeed TO lightspeed_reader;

-- Tables and views created later (by migrations of newer versions) are readable too. Default
-- privileges apply to objects created by the role they are set FOR: the schema's owner, which is the
-- role that runs the migrations, and the role running this script if it is another one.
DO $$
DECLARE
    owner name;
BEGIN
    SELECT pg_catalog.pg_get_userbyid(nspowner) INTO owner
    FROM pg_catalog.pg_namespace WHERE nspname = 'lightspeed';
    EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA lightspeed '
                   'GRANT SELECT ON TABLES TO lightspeed_reader', owner);
    IF owner <> current_user THEN
        EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA lightspeed '
                       'GRANT SELECT ON TABLES TO lightspeed_reader', current_user);
    END IF;
END
$$;

-- The daemon's own state: credentials, cursors, runs, leases. Never granted to anyone but its owner.
REVOKE ALL ON SCHEMA lightspeed_sync FROM PUBLIC;
REVOKE ALL ON SCHEMA lightspeed_sync FROM lightspeed_reader;
REVOKE ALL ON ALL TABLES IN SCHEMA lightspeed_sync FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA lightspeed_sync FROM lightspeed_reader;

COMMIT;
