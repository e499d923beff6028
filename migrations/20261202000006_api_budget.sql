-- The API budget of full refreshes (issue 11, item 4).
--
-- A scheduled full refresh skips the walk when the upstream count equals the mirror's and runs a
-- cheaper pass on `Contact.timeStamp` instead (kind `contacts`); `full_walks` records when each
-- account last completed a full walk, for the backstop (`schedule.full_walk_every`). `runs.drips`
-- holds the drips a run spent (the pacer's computed cost of each request sent).

ALTER TABLE lightspeed_sync.runs DROP CONSTRAINT IF EXISTS runs_kind_check;
ALTER TABLE lightspeed_sync.runs
    ADD CONSTRAINT runs_kind_check CHECK (kind IN ('incremental', 'full', 'contacts'));

ALTER TABLE lightspeed_sync.runs ADD COLUMN drips double precision NOT NULL DEFAULT 0;

CREATE TABLE lightspeed_sync.full_walks (
    account_id          bigint PRIMARY KEY,
    completed_at        timestamptz NOT NULL,
    run_id              bigint
);

-- The drips of the last 24 hours (`status`, `/metrics`) are summed by start time.
CREATE INDEX runs_started_at_idx ON lightspeed_sync.runs (started_at);

-- Full walks completed before this migration count for the backstop.
INSERT INTO lightspeed_sync.full_walks (account_id, completed_at, run_id)
SELECT DISTINCT ON (account_id) account_id, finished_at, run_id
FROM lightspeed_sync.runs
WHERE stream = 'customers' AND kind = 'full' AND status = 'succeeded' AND finished_at IS NOT NULL
ORDER BY account_id, finished_at DESC;
