//! `deploy/reader-role.sql`: the `lightspeed_reader` group role reads the mirror, including tables
//! created later, and nothing else.
//!
//! Roles are cluster-wide while `#[sqlx::test]` databases are not: every test creates its own login
//! role with a unique name and drops it at the end, and the script itself must tolerate being applied
//! by several tests (databases) at once.

use sqlx::{AssertSqlSafe, Connection, PgPool, Row};

const READER_ROLE_SQL: &str = include_str!("../../../deploy/reader-role.sql");

/// SQLSTATE insufficient_privilege.
const PERMISSION_DENIED: &str = "42501";

/// A login role in `lightspeed_reader`, unique to one test; drop it with [`Reader::drop`].
struct Reader {
    name: String,
}

impl Reader {
    /// Apply the script and create a login role in the group, as the test's (superuser) connection.
    async fn create(pool: &PgPool) -> Reader {
        apply_script(pool).await;
        let name = format!("lss_test_reader_{}", uuid::Uuid::new_v4().simple());
        let sql = format!("CREATE ROLE {name} LOGIN PASSWORD 'test' IN ROLE lightspeed_reader");
        exec(pool, &sql).await;
        Reader { name }
    }

    /// Run `sql` as this role in a transaction that is rolled back; the statement's own outcome.
    async fn run(&self, pool: &PgPool, sql: &str) -> Result<(), sqlx::Error> {
        let mut tx = pool.begin().await.expect("begin");
        sqlx::query(AssertSqlSafe(format!("SET LOCAL ROLE {}", self.name)))
            .execute(&mut *tx)
            .await
            .expect("set role");
        let outcome = sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
            .execute(&mut *tx)
            .await;
        tx.rollback().await.expect("rollback");
        outcome.map(drop)
    }

    /// Assert that `sql` succeeds as this role.
    async fn assert_allowed(&self, pool: &PgPool, sql: &str) {
        if let Err(e) = self.run(pool, sql).await {
            panic!("as {}: `{sql}` should succeed, got {e}", self.name);
        }
    }

    /// Assert that `sql` fails with "permission denied" as this role.
    async fn assert_denied(&self, pool: &PgPool, sql: &str) {
        match self.run(pool, sql).await {
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(PERMISSION_DENIED) => {}
            other => panic!(
                "as {}: `{sql}` should be denied (42501), got {other:?}",
                self.name
            ),
        }
    }

    async fn drop(self, pool: &PgPool) {
        exec(pool, &format!("DROP ROLE {}", self.name)).await;
    }
}

async fn apply_script(pool: &PgPool) {
    if let Err(e) = sqlx::raw_sql(READER_ROLE_SQL).execute(pool).await {
        panic!("deploy/reader-role.sql failed: {e}");
    }
}

async fn exec(pool: &PgPool, sql: &str) {
    if let Err(e) = sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .execute(pool)
        .await
    {
        panic!("`{sql}` failed: {e}");
    }
}

/// One account, one customer with an email, phone and address, a credential and two runs: enough
/// for every mirror table and both views to return rows.
async fn seed(pool: &PgPool) {
    exec(
        pool,
        "INSERT INTO lightspeed.accounts (account_id, name, raw) VALUES (1, 'Shop', '{}');
         INSERT INTO lightspeed.customers (account_id, customer_id, first_name, updated_at, raw)
             VALUES (1, 10, 'Zoë', now(), '{}');
         INSERT INTO lightspeed.customer_emails (account_id, customer_id, position, address)
             VALUES (1, 10, 0, 'zoe@example.com');
         INSERT INTO lightspeed.customer_phones (account_id, customer_id, position, number)
             VALUES (1, 10, 0, '+1 555 0100');
         INSERT INTO lightspeed.customer_addresses (account_id, customer_id, position, city)
             VALUES (1, 10, 0, 'Montréal');
         INSERT INTO lightspeed_sync.credentials
             (account_id, key_version, access_token_enc, refresh_token_enc, access_expires_at)
             VALUES (1, 1, '\\x00', '\\x00', now());
         INSERT INTO lightspeed_sync.runs (account_id, stream, kind, finished_at, status, rows)
             VALUES (1, 'customers', 'full', now(), 'succeeded', 1),
                    (1, 'accounts', 'full', now(), 'failed', 0);",
    )
    .await;
}

#[sqlx::test]
async fn a_reader_login_reads_every_mirror_table_and_view(pool: PgPool) {
    seed(&pool).await;
    let reader = Reader::create(&pool).await;

    // A real login as the new role, not only SET ROLE.
    let options = (*pool.connect_options())
        .clone()
        .username(&reader.name)
        .password("test");
    let mut conn = sqlx::PgConnection::connect_with(&options)
        .await
        .expect("log in as the reader");
    for table in [
        "accounts",
        "customers",
        "customer_emails",
        "customer_phones",
        "customer_addresses",
        "sync_runs",
        "sync_status",
    ] {
        let sql = format!("SELECT count(*) FROM lightspeed.{table}");
        let count: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
            .fetch_one(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("reader cannot read lightspeed.{table}: {e}"));
        assert!(
            count > 0,
            "lightspeed.{table} should show the seeded rows to the reader"
        );
    }
    let row = sqlx::query(
        r#"SELECT first_name, authorization_status FROM lightspeed.customers
           JOIN lightspeed.sync_status USING (account_id) WHERE stream = 'customers'"#,
    )
    .fetch_one(&mut conn)
    .await
    .expect("join the mirror and the freshness view");
    assert_eq!(row.get::<String, _>("first_name"), "Zoë");
    assert_eq!(row.get::<String, _>("authorization_status"), "connected");
    conn.close().await.expect("close");

    reader.drop(&pool).await;
}

#[sqlx::test]
async fn tables_and_views_created_after_the_grant_are_readable(pool: PgPool) {
    let reader = Reader::create(&pool).await;

    // A later migration, run by the migrating role (here the test's superuser, the schema's owner).
    exec(
        &pool,
        "CREATE TABLE lightspeed.new_thing (id bigint PRIMARY KEY, label text);
         INSERT INTO lightspeed.new_thing VALUES (1, 'later');
         CREATE VIEW lightspeed.new_view AS SELECT id FROM lightspeed.new_thing;",
    )
    .await;

    reader
        .assert_allowed(&pool, "SELECT * FROM lightspeed.new_thing")
        .await;
    reader
        .assert_allowed(&pool, "SELECT * FROM lightspeed.new_view")
        .await;
    reader
        .assert_denied(&pool, "INSERT INTO lightspeed.new_thing VALUES (2, 'no')")
        .await;

    reader.drop(&pool).await;
}

#[sqlx::test]
async fn tables_created_later_by_a_non_superuser_schema_owner_are_readable(pool: PgPool) {
    // The daemon often connects as an ordinary role that owns the schemas it migrated; the script,
    // run by a superuser, must set the default privileges for that owner, not only for itself.
    let owner = format!("lss_test_owner_{}", uuid::Uuid::new_v4().simple());
    exec(
        &pool,
        &format!(
            "CREATE ROLE {owner} NOLOGIN;
             ALTER SCHEMA lightspeed OWNER TO {owner};"
        ),
    )
    .await;
    let reader = Reader::create(&pool).await;

    exec(
        &pool,
        &format!(
            "BEGIN;
             SET LOCAL ROLE {owner};
             CREATE TABLE lightspeed.owned_later (id bigint);
             COMMIT;"
        ),
    )
    .await;
    reader
        .assert_allowed(&pool, "SELECT * FROM lightspeed.owned_later")
        .await;

    reader.drop(&pool).await;
    exec(
        &pool,
        &format!(
            "REASSIGN OWNED BY {owner} TO CURRENT_USER;
             DROP OWNED BY {owner};
             DROP ROLE {owner};"
        ),
    )
    .await;
}

#[sqlx::test]
async fn a_reader_cannot_see_the_internal_schema(pool: PgPool) {
    seed(&pool).await;
    let reader = Reader::create(&pool).await;

    for table in ["credentials", "cursors", "runs", "leases"] {
        reader
            .assert_denied(&pool, &format!("SELECT * FROM lightspeed_sync.{table}"))
            .await;
    }
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT has_schema_privilege('{0}', 'lightspeed_sync', 'USAGE') AS usage,
                has_schema_privilege('{0}', 'lightspeed_sync', 'CREATE') AS create,
                has_table_privilege('{0}', 'lightspeed_sync.credentials', 'SELECT') AS select",
        reader.name
    )))
    .fetch_one(&pool)
    .await
    .expect("privilege check");
    assert!(!row.get::<bool, _>("usage"), "USAGE on lightspeed_sync");
    assert!(!row.get::<bool, _>("create"), "CREATE on lightspeed_sync");
    assert!(
        !row.get::<bool, _>("select"),
        "SELECT on lightspeed_sync.credentials"
    );

    reader.drop(&pool).await;
}

#[sqlx::test]
async fn a_reader_cannot_write_or_create(pool: PgPool) {
    seed(&pool).await;
    let reader = Reader::create(&pool).await;

    for sql in [
        "INSERT INTO lightspeed.customers (account_id, customer_id, updated_at, raw)
             VALUES (1, 11, now(), '{}')",
        "UPDATE lightspeed.customers SET first_name = 'x'",
        "DELETE FROM lightspeed.customers",
        "TRUNCATE lightspeed.customer_emails",
        "INSERT INTO lightspeed.accounts (account_id, name, raw) VALUES (2, 'x', '{}')",
        "CREATE TABLE lightspeed.mine (id int)",
        "CREATE VIEW lightspeed.mine AS SELECT 1",
        "CREATE TABLE lightspeed_sync.mine (id int)",
        "DROP TABLE lightspeed.customers",
        "ALTER TABLE lightspeed.customers ADD COLUMN x int",
    ] {
        reader.assert_denied(&pool, sql).await;
    }

    reader.drop(&pool).await;
}

#[sqlx::test]
async fn the_script_is_idempotent(pool: PgPool) {
    apply_script(&pool).await;
    apply_script(&pool).await;
    let reader = Reader::create(&pool).await; // a third time
    reader
        .assert_allowed(&pool, "SELECT * FROM lightspeed.customers")
        .await;
    reader
        .assert_denied(&pool, "SELECT * FROM lightspeed_sync.credentials")
        .await;

    let entries: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_default_acl d JOIN pg_namespace n ON n.oid = d.defaclnamespace
         WHERE n.nspname = 'lightspeed'",
    )
    .fetch_one(&pool)
    .await
    .expect("count default privileges");
    assert_eq!(
        entries, 1,
        "one default-privileges entry (for the schema owner), not one per run"
    );

    reader.drop(&pool).await;
}

/// SQLSTATE too_many_connections (also "too many connections for role").
const TOO_MANY_CONNECTIONS: &str = "53300";

#[sqlx::test]
async fn a_reader_login_gets_no_temp_tables_a_statement_timeout_and_a_connection_limit(
    pool: PgPool,
) {
    let reader = Reader::create(&pool).await;
    // Limits set by hand on another login are kept when the script runs again.
    let tuned = format!("lss_test_tuned_{}", uuid::Uuid::new_v4().simple());
    exec(
        &pool,
        &format!(
            "CREATE ROLE {tuned} LOGIN PASSWORD 'test' CONNECTION LIMIT 2 IN ROLE lightspeed_reader;
             ALTER ROLE {tuned} SET statement_timeout = '30s';"
        ),
    )
    .await;
    // Logins added after the script get their limits when it runs again (as documented).
    apply_script(&pool).await;

    let options = (*pool.connect_options())
        .clone()
        .username(&reader.name)
        .password("test");
    let mut conn = sqlx::PgConnection::connect_with(&options)
        .await
        .expect("log in as the reader");
    match sqlx::query("CREATE TEMP TABLE scratch (id int)")
        .execute(&mut conn)
        .await
    {
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(PERMISSION_DENIED) => {}
        other => panic!("a reader created a temporary table: {other:?}"),
    }
    let timeout: String = sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(timeout, "5min");
    // Ten connections in all, the eleventh is refused.
    let mut open = vec![conn];
    for _ in 1..10 {
        open.push(
            sqlx::PgConnection::connect_with(&options)
                .await
                .expect("connections up to the limit"),
        );
    }
    match sqlx::PgConnection::connect_with(&options).await {
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(TOO_MANY_CONNECTIONS) => {}
        other => panic!(
            "an eleventh connection was not refused: {:?}",
            other.map(drop)
        ),
    }
    for conn in open {
        conn.close().await.expect("close");
    }

    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT rolconnlimit, (SELECT setconfig FROM pg_db_role_setting WHERE setrole = r.oid
                               AND setdatabase = 0) AS config
         FROM pg_roles r WHERE rolname = '{tuned}'"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(row.get::<i32, _>("rolconnlimit"), 2);
    assert_eq!(
        row.get::<Vec<String>, _>("config"),
        ["statement_timeout=30s"]
    );
    // The daemon's role (here the test's superuser, the schema owner) still may.
    exec(&pool, "CREATE TEMP TABLE owner_scratch (id int)").await;

    exec(&pool, &format!("DROP ROLE {tuned}")).await;
    reader.drop(&pool).await;
}
