//! Authentication on the sandbox: a user of MariaDB's `ed25519` plugin
//! runs a whole migration (the main, worker and binlog connections all
//! authenticate with it).

mod common;

use common::*;
use mysql_async::prelude::*;

const PASSWORD: &str = "ed-9Wq4-curve";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_authenticated_by_ed25519_migrates() {
    let mut conn = client(&primary()).await;
    ensure_plugin(&mut conn, "ed25519", "auth_ed25519").await;
    let db = simple_table(&mut conn, "ed25519", 300).await;
    let user = format!("ed_{}", std::process::id());
    // The user lives on the primary alone: the shared replica has no
    // plugin, and replaying the statement would stop its replication.
    let mut unlogged = client(&primary()).await;
    unlogged
        .query_drop("SET SESSION sql_log_bin = 0")
        .await
        .unwrap();
    unlogged
        .query_drop(format!(
            "CREATE USER '{user}'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('{PASSWORD}')"
        ))
        .await
        .unwrap();
    let _drop_user = cli::SqlOnDrop {
        config: primary(),
        statements: vec![
            "SET SESSION sql_log_bin = 0".into(),
            format!("DROP USER IF EXISTS '{user}'@'%'"),
        ],
    };
    unlogged
        .query_drop(format!("GRANT ALL PRIVILEGES ON *.* TO '{user}'@'%'"))
        .await
        .unwrap();
    let plugin: Option<String> = conn
        .exec_first(
            "SELECT plugin FROM mysql.user WHERE user = ? AND host = '%'",
            (&user,),
        )
        .await
        .unwrap();
    assert_eq!(plugin.as_deref(), Some("ed25519"));
    let mut config = config(&db, "t", "ADD COLUMN extra INT NOT NULL DEFAULT 3");
    config.connect.user = user;
    config.connect.password = Some(PASSWORD.into());
    let summary = shadowcut::run(&config)
        .await
        .unwrap_or_else(|e| panic!("an ed25519 user could not migrate: {e}"));
    assert_eq!(summary.rows_copied, 300);
    let migrated: Option<i64> = conn
        .query_first(format!("SELECT COUNT(*) FROM `{db}`.`t` WHERE extra = 3"))
        .await
        .unwrap();
    assert_eq!(migrated, Some(300));
}
