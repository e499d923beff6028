-- History and privacy (issue 14): every version of a customer the sync saw (`mirror.history`),
-- erasures of anonymized customers, counted per run.

-- One row per version seen: valid from its `timeStamp` to the next version's (NULL while
-- current), or to the time a full walk found it hard-deleted (`deleted_at`). The typed columns are
-- those of lightspeed.customers (`updated_at` is `valid_from`); Contact emails, phones, addresses
-- and the other relations are in `raw`. PII policies apply here as everywhere.
CREATE TABLE lightspeed.customers_history (
    account_id          bigint NOT NULL,
    customer_id         bigint NOT NULL,
    valid_from          timestamptz NOT NULL,
    valid_to            timestamptz,
    is_current          boolean NOT NULL DEFAULT true,
    archived            boolean NOT NULL DEFAULT false,
    deleted_at          timestamptz,
    first_name          text NOT NULL DEFAULT '',
    last_name           text NOT NULL DEFAULT '',
    title               text NOT NULL DEFAULT '',
    company             text NOT NULL DEFAULT '',
    company_registration_number text,
    vat_number          text,
    dob                 timestamptz,
    credit_account_id   bigint,
    customer_type_id    bigint,
    discount_id         bigint,
    tax_category_id     bigint,
    no_email            boolean,
    no_phone            boolean,
    no_mail             boolean,
    contact_updated_at  timestamptz,
    created_at          timestamptz,
    contact_custom      text,
    note                text,
    note_is_public      boolean,
    tags                text[],
    raw                 jsonb NOT NULL,
    -- When the sync recorded this version (polling: versions are seen at sync time).
    seen_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, customer_id, valid_from)
);
-- Point-in-time queries over an account ("as of T": valid_from <= T AND (valid_to IS NULL OR
-- valid_to > T)): the range scan on valid_from reads valid_to from the index.
CREATE INDEX customers_history_as_of_idx
    ON lightspeed.customers_history (account_id, valid_from) INCLUDE (valid_to);
-- The current versions (closed by a hard delete, looked up by the next version).
CREATE INDEX customers_history_current_idx
    ON lightspeed.customers_history (account_id, customer_id) WHERE is_current;

-- When the mirror first saw the customer anonymized (an erasure upstream); NULL otherwise.
ALTER TABLE lightspeed.customers ADD COLUMN erased_at timestamptz;
-- Customers already mirrored anonymized (archived, named `Customer` / `[<id>]`: fact sheet §9) were
-- erased before this migration: a replay of them is no new erasure. (No PII policy existed yet, so
-- the names are as Lightspeed sent them.)
UPDATE lightspeed.customers SET erased_at = synced_at
WHERE archived AND first_name = 'Customer' AND last_name = '[' || customer_id || ']';

-- Customers erased by a run (came back anonymized while the mirror held them un-anonymized).
ALTER TABLE lightspeed_sync.runs ADD COLUMN erased bigint NOT NULL DEFAULT 0;
CREATE OR REPLACE VIEW lightspeed.sync_runs AS
SELECT run_id, account_id, stream, kind, started_at, finished_at, status, pages, rows, requests,
       throttled, error, erased
FROM lightspeed_sync.runs;
