-- The mirror that BI users read (`lightspeed`) and the daemon's own state (`lightspeed_sync`).

CREATE SCHEMA IF NOT EXISTS lightspeed;
CREATE SCHEMA IF NOT EXISTS lightspeed_sync;

-- ---------------------------------------------------------------- mirror

CREATE TABLE lightspeed.accounts (
    account_id          bigint PRIMARY KEY,
    name                text NOT NULL,
    status              text,
    currency_code       text,
    raw                 jsonb NOT NULL,
    synced_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE lightspeed.customers (
    account_id          bigint NOT NULL,
    customer_id         bigint NOT NULL,
    first_name          text NOT NULL DEFAULT '',
    last_name           text NOT NULL DEFAULT '',
    title               text NOT NULL DEFAULT '',
    company             text NOT NULL DEFAULT '',
    company_registration_number text,
    vat_number          text,
    dob                 timestamptz,
    archived            boolean NOT NULL DEFAULT false,
    credit_account_id   bigint,
    customer_type_id    bigint,
    discount_id         bigint,
    tax_category_id     bigint,
    no_email            boolean,
    no_phone            boolean,
    no_mail             boolean,
    contact_updated_at  timestamptz,
    created_at          timestamptz,
    updated_at          timestamptz NOT NULL,
    deleted_at          timestamptz,
    raw                 jsonb NOT NULL,
    synced_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, customer_id)
);
CREATE INDEX customers_updated_at_idx ON lightspeed.customers (account_id, updated_at);

-- Contact rows of a customer, in the order Lightspeed lists them. They belong to
-- lightspeed.customers by (account_id, customer_id); the daemon replaces them together with their
-- customer in one transaction. (No declared foreign key: its per-row check cost more than the whole
-- rest of a page's write.)
CREATE TABLE lightspeed.customer_emails (
    account_id          bigint NOT NULL,
    customer_id         bigint NOT NULL,
    position            integer NOT NULL,
    address             text NOT NULL,
    use_type            text NOT NULL DEFAULT '',
    PRIMARY KEY (account_id, customer_id, position)
);

CREATE TABLE lightspeed.customer_phones (
    account_id          bigint NOT NULL,
    customer_id         bigint NOT NULL,
    position            integer NOT NULL,
    number              text NOT NULL,
    use_type            text NOT NULL DEFAULT '',
    PRIMARY KEY (account_id, customer_id, position)
);

CREATE TABLE lightspeed.customer_addresses (
    account_id          bigint NOT NULL,
    customer_id         bigint NOT NULL,
    position            integer NOT NULL,
    address1            text NOT NULL DEFAULT '',
    address2            text NOT NULL DEFAULT '',
    city                text NOT NULL DEFAULT '',
    state               text NOT NULL DEFAULT '',
    state_code          text NOT NULL DEFAULT '',
    zip                 text NOT NULL DEFAULT '',
    country             text NOT NULL DEFAULT '',
    country_code        text NOT NULL DEFAULT '',
    PRIMARY KEY (account_id, customer_id, position)
);

-- ---------------------------------------------------------------- internal

-- One row per connected account. Tokens are AEAD ciphertexts (nonce || ciphertext || tag), bound to
-- the account and the key version as associated data; never plaintext.
CREATE TABLE lightspeed_sync.credentials (
    account_id          bigint PRIMARY KEY,
    account_name        text NOT NULL DEFAULT '',
    key_version         integer NOT NULL,
    access_token_enc    bytea NOT NULL,
    refresh_token_enc   bytea NOT NULL,
    access_expires_at   timestamptz NOT NULL,
    -- bumped on every stored rotation; lets a worker tell "someone else refreshed" from "still mine"
    generation          bigint NOT NULL DEFAULT 0,
    status              text NOT NULL DEFAULT 'connected' CHECK (status IN ('connected', 'needs_reauth')),
    status_reason       text,
    status_changed_at   timestamptz,
    connected_at        timestamptz NOT NULL DEFAULT now(),
    refreshed_at        timestamptz
);

-- Per account and stream: where the incremental sync resumes.
CREATE TABLE lightspeed_sync.cursors (
    account_id          bigint NOT NULL,
    stream              text NOT NULL,
    watermark           timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, stream)
);

CREATE TABLE lightspeed_sync.runs (
    run_id              bigserial PRIMARY KEY,
    account_id          bigint NOT NULL,
    stream              text NOT NULL,
    kind                text NOT NULL CHECK (kind IN ('incremental', 'full')),
    started_at          timestamptz NOT NULL DEFAULT now(),
    finished_at         timestamptz,
    status              text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
    pages               integer NOT NULL DEFAULT 0,
    rows                bigint NOT NULL DEFAULT 0,
    requests            integer NOT NULL DEFAULT 0,
    throttled           integer NOT NULL DEFAULT 0,
    error               text,
    replica             text
);
CREATE INDEX runs_account_stream_idx ON lightspeed_sync.runs (account_id, stream, started_at DESC);

-- One owner per account at a time. `epoch` grows on every takeover; checkpoints verify it.
CREATE TABLE lightspeed_sync.leases (
    account_id          bigint PRIMARY KEY,
    holder              text NOT NULL,
    epoch               bigint NOT NULL,
    expires_at          timestamptz NOT NULL,
    acquired_at         timestamptz NOT NULL DEFAULT now()
);

-- ---------------------------------------------------------------- views for readers

CREATE VIEW lightspeed.sync_runs AS
SELECT run_id, account_id, stream, kind, started_at, finished_at, status, pages, rows, requests,
       throttled, error
FROM lightspeed_sync.runs;

CREATE VIEW lightspeed.sync_status AS
SELECT s.account_id,
       s.stream,
       (SELECT max(r.finished_at) FROM lightspeed_sync.runs r
         WHERE r.account_id = s.account_id AND r.stream = s.stream AND r.status = 'succeeded') AS last_success_at,
       now() - (SELECT max(r.finished_at) FROM lightspeed_sync.runs r
         WHERE r.account_id = s.account_id AND r.stream = s.stream AND r.status = 'succeeded') AS lag,
       last.status AS last_status,
       last.started_at AS last_started_at,
       last.error AS last_error,
       c.status AS authorization_status
FROM (SELECT DISTINCT account_id, stream FROM lightspeed_sync.runs) s
LEFT JOIN LATERAL (SELECT r.status, r.started_at, r.error FROM lightspeed_sync.runs r
                    WHERE r.account_id = s.account_id AND r.stream = s.stream
                    ORDER BY r.started_at DESC LIMIT 1) last ON true
LEFT JOIN lightspeed_sync.credentials c ON c.account_id = s.account_id;
