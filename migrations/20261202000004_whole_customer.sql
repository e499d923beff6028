-- The whole customer (issue 13): the relations loaded with customers (CustomerType, Note,
-- CreditAccount, Tags, CustomFieldValues, Contact.Websites) and the definitions they refer to.
-- Child rows belong to lightspeed.customers by (account_id, customer_id) and are replaced together
-- with their customer, in the page's transaction, like the Contact rows.

ALTER TABLE lightspeed.customers
    ADD COLUMN contact_custom   text,
    ADD COLUMN note             text,
    ADD COLUMN note_is_public   boolean,
    ADD COLUMN tags             text[];

CREATE TABLE lightspeed.customer_websites (
    account_id          bigint NOT NULL,
    customer_id         bigint NOT NULL,
    position            integer NOT NULL,
    url                 text NOT NULL,
    PRIMARY KEY (account_id, customer_id, position)
);

-- One row per value that is set and not `deleted`. `value` is the value as text (choice types: the
-- chosen choices' names, joined by ", "); `value_json` is the value exactly as sent.
CREATE TABLE lightspeed.customer_custom_fields (
    account_id            bigint NOT NULL,
    customer_id           bigint NOT NULL,
    custom_field_id       bigint NOT NULL,
    custom_field_value_id bigint,
    name                  text NOT NULL DEFAULT '',
    type                  text NOT NULL DEFAULT '',
    value                 text,
    value_json            jsonb,
    updated_at            timestamptz,
    PRIMARY KEY (account_id, customer_id, custom_field_id)
);
CREATE INDEX customer_custom_fields_field_idx
    ON lightspeed.customer_custom_fields (account_id, custom_field_id, value);

-- The definitions (`Customer/CustomField.json`).
CREATE TABLE lightspeed.custom_fields (
    account_id          bigint NOT NULL,
    custom_field_id     bigint NOT NULL,
    name                text NOT NULL DEFAULT '',
    type                text NOT NULL DEFAULT '',
    uom                 text,
    decimal_precision   integer,
    archived            boolean NOT NULL DEFAULT false,
    raw                 jsonb NOT NULL,
    synced_at           timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz,
    PRIMARY KEY (account_id, custom_field_id)
);

-- `CustomerType.json`; customer types are deleted for good upstream: a full walk that no longer
-- sees one sets `deleted_at`.
CREATE TABLE lightspeed.customer_types (
    account_id          bigint NOT NULL,
    customer_type_id    bigint NOT NULL,
    name                text NOT NULL DEFAULT '',
    tax_category_id     bigint,
    discount_id         bigint,
    raw                 jsonb NOT NULL,
    synced_at           timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz,
    PRIMARY KEY (account_id, customer_type_id)
);

-- A customer's credit account (store credit), from the CreditAccount relation.
CREATE TABLE lightspeed.credit_accounts (
    account_id          bigint NOT NULL,
    credit_account_id   bigint NOT NULL,
    customer_id         bigint NOT NULL,
    name                text,
    balance             numeric,
    credit_limit        numeric,
    gift_card           boolean,
    archived            boolean,
    updated_at          timestamptz,
    raw                 jsonb NOT NULL,
    PRIMARY KEY (account_id, credit_account_id)
);
CREATE INDEX credit_accounts_customer_idx ON lightspeed.credit_accounts (account_id, customer_id);
