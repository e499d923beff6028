use sqlx::PgPool;

async fn schema_snapshot(pool: &PgPool) -> Vec<(String, String, String, String)> {
    sqlx::query_as(
        "SELECT table_schema::text, table_name::text, column_name::text, data_type::text
         FROM information_schema.columns
         WHERE table_schema IN ('lightspeed', 'lightspeed_sync')
         ORDER BY 1, 2, 3",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = false)]
async fn migrate_creates_both_schemas_and_a_second_run_changes_nothing(pool: PgPool) {
    lightspeed_sync::db::MIGRATOR.run(&pool).await.unwrap();
    let first = schema_snapshot(&pool).await;
    let tables: std::collections::BTreeSet<String> = first
        .iter()
        .map(|(s, t, _, _)| format!("{s}.{t}"))
        .collect();
    for t in [
        "lightspeed.accounts",
        "lightspeed.customers",
        "lightspeed.customer_emails",
        "lightspeed.customer_phones",
        "lightspeed.customer_addresses",
        "lightspeed.sync_runs",
        "lightspeed.sync_status",
        "lightspeed_sync.credentials",
        "lightspeed_sync.cursors",
        "lightspeed_sync.runs",
        "lightspeed_sync.leases",
    ] {
        assert!(tables.contains(t), "missing {t}");
    }
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    lightspeed_sync::db::MIGRATOR.run(&pool).await.unwrap();
    assert_eq!(schema_snapshot(&pool).await, first);
    let again: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(applied, again);
}
