-- Ingest speed (issue 11, item 3).
--
-- `raw` of a customer with its relations is 2-3 kB, above the 2 kB TOAST threshold, so most rows
-- are compressed on the way in; Postgres' default (pglz) was 5% of the server's time in the ingest
-- benchmark. lz4 compresses about as well on JSON, several times faster. Only new values are
-- compressed with it (no rewrite; old values stay readable). A server built without lz4 keeps
-- pglz: the migration must not fail there.
DO $$
BEGIN
    EXECUTE 'ALTER TABLE lightspeed.customers ALTER COLUMN raw SET COMPRESSION lz4';
    EXECUTE 'ALTER TABLE lightspeed.credit_accounts ALTER COLUMN raw SET COMPRESSION lz4';
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not available on this server: raw stays compressed with pglz';
END
$$;
