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
-- write (INSERT, UPDATE, DELETE, TRUNCATE), CREATE in either schema, or temporary tables (TEMP is
-- revoked from PUBLIC on this database: give the mirror its own database).
-- Limits: every login in the group gets `statement_timeout = '5min'` and `CONNECTION LIMIT 10`, so a
-- runaway dashboard cannot hold the server. Role settings are not inherited from a group, so they
-- are set on each member that has none yet: run this script again after adding a login (a value set
-- by hand, `ALTER ROLE metabase SET statement_timeout = '30s'`, is kept). That part needs a superuser
-- or CREATEROLE; run by the schema's owner alone, it is skipped with a warning.

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

-- No temporary tables for readers. TEMP is PUBLIC's by default, so it is revoked there; the owner of the
-- database keeps it (an owner's own privileges), and so does the owner of schema `lightspeed`.
DO $$
DECLARE
    owner name;
BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM lightspeed_reader', current_database());
    SELECT pg_catalog.pg_get_userbyid(nspowner) INTO owner
    FROM pg_catalog.pg_namespace WHERE nspname = 'lightspeed';
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO %I', current_database(), owner);
END
$$;

-- Limits on the group and on each login in it that has none yet (see the top of this file).
DO $$
DECLARE
    member name;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles
                   WHERE rolname = current_user AND (rolsuper OR rolcreaterole)) THEN
        RAISE WARNING 'lightspeed_reader: statement_timeout and connection limits not set (needs a '
                      'superuser or CREATEROLE); set them on each login by hand';
        RETURN;
    END IF;
    FOR member IN
        SELECT 'lightspeed_reader'::name
        UNION
        SELECT r.rolname FROM pg_catalog.pg_auth_members m
        JOIN pg_catalog.pg_roles g ON g.oid = m.roleid
        JOIN pg_catalog.pg_roles r ON r.oid = m.member
        WHERE g.rolname = 'lightspeed_reader' AND NOT r.rolsuper
    LOOP
        -- Another database of the cluster may be running this script at the same moment and set the
        -- same value first: "tuple concurrently updated" (internal_error) or unique_violation then
        -- mean "already done".
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_catalog.pg_db_role_setting s
                           JOIN pg_catalog.pg_roles r ON r.oid = s.setrole
                           WHERE r.rolname = member AND s.setdatabase = 0
                             AND EXISTS (SELECT FROM unnest(s.setconfig) c
                                         WHERE c LIKE 'statement\_timeout=%')) THEN
                EXECUTE format('ALTER ROLE %I SET statement_timeout = %L', member, '5min');
            END IF;
            IF (SELECT rolconnlimit FROM pg_catalog.pg_roles WHERE rolname = member) = -1 THEN
                EXECUTE format('ALTER ROLE %I CONNECTION LIMIT 10', member);
            END IF;
        EXCEPTION WHEN internal_error OR unique_violation THEN
            NULL;
        END;
    END LOOP;
END
$$;

-- The daemon's own state: credentials, cursors, runs, leases. Never granted to anyone but its owner.
REVOKE ALL ON SCHEMA lightspeed_sync FROM PUBLIC;
REVOKE ALL ON SCHEMA lightspeed_sync FROM lightspeed_reader;
REVOKE ALL ON ALL TABLES IN SCHEMA lightspeed_sync FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA lightspeed_sync FROM lightspeed_reader;

COMMIT;
