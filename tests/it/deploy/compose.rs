//! The secure defaults of `deploy/compose.yaml`, its Postgres init scripts and the Dockerfile: the
//! daemon connects as an ordinary owner role, never the image's superuser; passwords come only from
//! secret files, with no fallback value anywhere; ports are published on the loopback interface.
//! (No Docker engine here: these are checks of the files, line by line, and of the owner-role init
//! script run by `psql` against a real PostgreSQL.)

const COMPOSE: &str = "deploy/compose.yaml";

/// `KEY: value` lines of the compose file (trimmed), in order.
fn settings<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
        .collect()
}

/// The entries of every `ports:` list.
fn published_ports(text: &str) -> Vec<String> {
    let mut ports = Vec::new();
    let mut in_ports = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed == "ports:" {
            in_ports = true;
        } else if in_ports && trimmed.starts_with("- ") {
            ports.push(
                trimmed
                    .trim_start_matches("- ")
                    .trim_matches('"')
                    .to_owned(),
            );
        } else if in_ports && !trimmed.starts_with('#') {
            in_ports = false;
        }
    }
    ports
}

#[test]
fn compose_publishes_ports_on_the_loopback_interface_only() {
    let compose = super::read_repo_file(COMPOSE);
    let ports = published_ports(&compose);
    assert!(
        ports.len() >= 3,
        "ports of postgres, the daemon and the sim: {ports:?}"
    );
    for port in ports {
        assert!(
            port.starts_with("127.0.0.1:"),
            "{COMPOSE} publishes `{port}` beyond the loopback interface"
        );
    }
}

#[test]
fn compose_takes_passwords_from_secret_files_with_no_fallback() {
    let compose = super::read_repo_file(COMPOSE);
    // No `${VAR:-default}` / `${VAR-default}` for anything secret, and no password variable inline.
    for (at, _) in compose.match_indices("${") {
        let expr = &compose[at..at + compose[at..].find('}').unwrap_or(0) + 1];
        let upper = expr.to_uppercase();
        if ["PASSWORD", "SECRET", "KEY", "TOKEN"]
            .iter()
            .any(|w| upper.contains(w))
        {
            assert!(
                expr.contains(":?"),
                "{COMPOSE}: `{expr}` must fail when unset (`${{VAR:?message}}`), not fall back"
            );
        }
    }
    assert!(
        settings(&compose, "POSTGRES_PASSWORD").is_empty(),
        "the superuser password is a secret file (POSTGRES_PASSWORD_FILE), not a variable"
    );
    assert_eq!(
        settings(&compose, "POSTGRES_PASSWORD_FILE"),
        ["/run/secrets/postgres_password"]
    );
    let urls = settings(&compose, "LSSYNC__DATABASE__URL");
    assert_eq!(urls.len(), 2, "the daemon and the demo: {urls:?}");
    let password_files = settings(&compose, "LSSYNC__DATABASE__PASSWORD_FILE");
    assert_eq!(password_files, ["/run/secrets/db_password"; 2]);
    for url in urls {
        let url = url::Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert!(url.password().is_none(), "{url} carries a password");
    }
    for secret in [
        "postgres_password",
        "db_password",
        "client_secret",
        "token_key",
    ] {
        assert!(
            compose.contains(&format!("  {secret}:\n    file: ./secrets/{secret}\n")),
            "{COMPOSE} declares the secret {secret} as a file in deploy/secrets/"
        );
    }
}

#[test]
fn compose_connects_as_an_owner_role_that_is_not_a_superuser() {
    let compose = super::read_repo_file(COMPOSE);
    let superuser = settings(&compose, "POSTGRES_USER");
    assert_eq!(superuser.len(), 1);
    let init = super::read_repo_file("deploy/postgres/00-owner-role.sql");
    for url in settings(&compose, "LSSYNC__DATABASE__URL") {
        let url = url::Url::parse(url).unwrap();
        let user = url.username();
        assert!(
            !user.is_empty() && user != superuser[0] && user != "postgres",
            "{url}: the daemon connects as the superuser"
        );
        assert!(
            !matches!(user, "lightspeed" | "lightspeed_sync"),
            "{url}: a role named like a schema puts that schema first on its search path"
        );
        // The init script makes that role, without privileges beyond owning the database.
        let create = init
            .lines()
            .find(|l| l.starts_with(&format!("CREATE ROLE {user} ")))
            .unwrap_or_else(|| panic!("00-owner-role.sql does not create {user}"));
        for attr in ["LOGIN", "NOSUPERUSER", "NOCREATEDB", "NOCREATEROLE"] {
            assert!(create.contains(attr), "{create}: {attr}");
        }
        assert!(
            init.contains(&format!("OWNER TO {user};")),
            "{user} owns the database"
        );
        assert!(
            init.contains("`cat /run/secrets/db_password`"),
            "its password is the db_password secret"
        );
    }
    let demo = super::read_repo_file("deploy/postgres/10-demo-database.sql");
    assert!(demo.contains("OWNER lightspeed_daemon;"), "{demo}");
    // The image itself runs as an unprivileged user.
    let dockerfile = super::read_repo_file("deploy/Dockerfile");
    assert!(
        dockerfile.contains("\nUSER 10001:10001\n"),
        "Dockerfile USER"
    );
}

#[test]
fn deployment_docs_cover_tls_to_remote_databases_and_the_security_model() {
    let docs = super::read_repo_file("docs/deployment.md");
    assert!(
        docs.contains("sslmode=verify-full"),
        "docs/deployment.md: sslmode=verify-full"
    );
    assert!(
        docs.contains("## Security model"),
        "docs/deployment.md: Security model"
    );
    assert!(
        docs.contains("security-network.md"),
        "links docs/security-network.md"
    );
    for secret in [
        "security.token_key",
        "lightspeed.client_secret",
        "refresh token",
        "database password",
        "mirror.pii_key",
    ] {
        assert!(
            docs.to_lowercase().contains(&secret.to_lowercase()),
            "the security model says what {secret} protects"
        );
    }
}

/// `deploy/postgres/00-owner-role.sql` run by `psql` as the image's entry point runs it (as the
/// superuser, connected to the mirror's database), against a real PostgreSQL: the role it creates
/// is no superuser, owns the database, and can run every migration by itself.
#[sqlx::test(migrations = false)]
async fn the_compose_owner_role_script_makes_a_role_that_migrates_without_superuser(
    pool: sqlx::PgPool,
) {
    use sqlx::{AssertSqlSafe, Connection};
    if std::process::Command::new("psql")
        .arg("--version")
        .output()
        .is_err()
    {
        crate::common::skipped(
            "the_compose_owner_role_script_makes_a_role_that_migrates_without_superuser",
            "psql is not installed here",
        );
        return;
    }
    // A role name and a secret file of this test's own (roles are cluster-wide).
    let role = format!("lss_test_daemon_{}", uuid::Uuid::new_v4().simple());
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("db_password");
    std::fs::write(&secret, "s3cret-for-the-test\n").unwrap();
    let script = super::read_repo_file("deploy/postgres/00-owner-role.sql")
        .replace("lightspeed_daemon", &role)
        .replace("/run/secrets/db_password", secret.to_str().unwrap());
    let db = crate::common::database_name(&pool);
    let mut url = url::Url::parse(&std::env::var("DATABASE_URL").unwrap()).unwrap();
    url.set_path(&db);
    let mut psql = tokio::process::Command::new("psql")
        .args([
            "--no-psqlrc",
            "--quiet",
            "--dbname",
            url.as_str(),
            "--file",
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use tokio::io::AsyncWriteExt;
    let mut stdin = psql.stdin.take().unwrap();
    stdin.write_all(script.as_bytes()).await.unwrap();
    drop(stdin);
    let out = psql.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let row: (bool, bool, bool, bool, String) = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT a.rolsuper, a.rolcreatedb, a.rolcreaterole, a.rolpassword IS NOT NULL,
                pg_get_userbyid(d.datdba)::text
         FROM pg_authid a, pg_database d WHERE a.rolname = '{role}' AND d.datname = '{db}'"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(row, (false, false, false, true, role.clone()));

    // As that role alone: every migration applies.
    let options = (*pool.connect_options())
        .clone()
        .username(&role)
        .password("s3cret-for-the-test");
    let mut conn = sqlx::PgConnection::connect_with(&options).await.unwrap();
    lightspeed_sync::db::MIGRATOR
        .run(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("migrating as {role}: {e}"));
    let owners: Vec<String> = sqlx::query_scalar(
        "SELECT pg_get_userbyid(nspowner)::text FROM pg_namespace
         WHERE nspname IN ('lightspeed', 'lightspeed_sync')",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(owners, [role.clone(), role.clone()]);
    conn.close().await.unwrap();

    sqlx::raw_sql(AssertSqlSafe(format!(
        "REASSIGN OWNED BY {role} TO CURRENT_USER; DROP OWNED BY {role}; DROP ROLE {role};"
    )))
    .execute(&pool)
    .await
    .unwrap();
}
