//! Authentication on the sandbox: a user of MariaDB's `ed25519` plugin
//! runs a whole migration (the main, worker and binlog connections all
//! authenticate with it), and a migration over TLS with certificates the
//! test makes, on a server of its own.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::cli::{shadowcut, Outcome};
use common::extra_server::ExtraServer;
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

/// Runs openssl with `args` in `dir`; panics with its output on failure.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running openssl (scripts/sandbox installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and `name`-cert.pem/`name`-key.pem signed by it: a server's for
/// the names `san`, a client's without (X.509 v3 either way: rustls
/// refuses a v1 certificate even as the client's own).
fn signed_certificate(dir: &Path, name: &str, subject: &str, san: Option<&str>) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    if !dir.join("ca.pem").exists() {
        let mut args = vec![
            "req",
            "-x509",
            "-days",
            "1",
            "-subj",
            "/CN=shadowcut test CA",
        ];
        args.extend(ec);
        args.extend(["-keyout", "ca-key.pem", "-out", "ca.pem"]);
        openssl(dir, &args);
    }
    let (key, csr, cert) = (
        format!("{name}-key.pem"),
        format!("{name}.csr"),
        format!("{name}-cert.pem"),
    );
    let mut args = vec!["req", "-subj", subject, "-keyout", &key, "-out", &csr];
    args.extend(ec);
    openssl(dir, &args);
    let ext = format!("{name}.ext");
    std::fs::write(
        dir.join(&ext),
        match san {
            Some(names) => format!("subjectAltName={names}\n"),
            None => "extendedKeyUsage=clientAuth\n".to_string(),
        },
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &ext,
            "-out",
            &cert,
        ],
    );
}

/// Puts `name`'s certificate and the test's CA in the server's place and
/// makes it load them.
async fn install_server_certificate(
    server: &ExtraServer,
    certs: &Path,
    name: &str,
    conn: &mut mysql_async::Conn,
) {
    let tls = Path::new(&server.dir).join("tls");
    for (from, to) in [
        (format!("{name}-cert.pem"), "server-cert.pem"),
        (format!("{name}-key.pem"), "server-key.pem"),
        ("ca.pem".to_string(), "ca.pem"),
    ] {
        std::fs::copy(certs.join(from), tls.join(to)).unwrap();
    }
    conn.query_drop("FLUSH SSL").await.unwrap();
}

/// TLS end to end through the binary, on a server of the test's own whose
/// certificates the test makes: the server's certificate and name are
/// checked against --ssl-ca unless the option file says `ssl-mode=REQUIRED`
/// (or --ssl-allow-insecure), and a user that REQUIRE X509 migrates under
/// the mirrored load with the TLS settings read from an option file.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_migration_over_tls_checks_the_servers_certificate() {
    let server = ExtraServer::start(&["--no-replica"]).await;
    let certs = std::env::temp_dir().join(format!("shadowcut-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&certs);
    std::fs::create_dir_all(&certs).unwrap();
    signed_certificate(
        &certs,
        "named",
        "/CN=127.0.0.1",
        Some("IP:127.0.0.1,DNS:localhost"),
    );
    signed_certificate(&certs, "misnamed", "/CN=db.example", Some("DNS:db.example"));
    signed_certificate(&certs, "client", "/CN=shadowcut client", None);
    let path = |file: &str| certs.join(file).to_str().unwrap().to_string();

    let mut conn = client(&server.config).await;
    conn.query_drop(
        "CREATE USER 'tls_user'@'%' IDENTIFIED BY 'tls-Pw1' REQUIRE X509; \
         GRANT ALL PRIVILEGES ON *.* TO 'tls_user'@'%'",
    )
    .await
    .unwrap();
    let db = churn_tables(&mut conn, "tls", 2000).await;
    let alter = "ADD COLUMN extra INT NOT NULL DEFAULT 4";
    let option_file = |mode: &str| {
        let file = certs.join(format!("client-{mode}.cnf"));
        std::fs::write(
            &file,
            format!(
                "# made by the test\n[client]\npassword = \"tls-Pw1\"\nssl-mode = {mode}\n\
                 ssl-ca = {}\nssl-cert = {}\nssl-key = {}\n",
                path("ca.pem"),
                path("client-cert.pem"),
                path("client-key.pem")
            ),
        )
        .unwrap();
        file.to_str().unwrap().to_string()
    };
    let tls_user = shadowcut::server::ConnectConfig {
        user: "tls_user".into(),
        password: None,
        ..server.config.clone()
    };
    let dry_run = async |target: &shadowcut::server::ConnectConfig, flags: &[&str]| -> Outcome {
        shadowcut(target, &db, "t", alter, flags).await
    };
    let refused_on_the_certificate = |out: &Outcome| {
        assert_eq!(out.code, Some(4), "{out}");
        assert!(out.error_line().contains("--ssl-ca"), "{out}");
    };

    // A certificate for another name: refused, also under VERIFY_CA (the
    // driver cannot check the chain alone); accepted unchecked, the
    // client's certificate still presented.
    install_server_certificate(&server, &certs, "misnamed", &mut conn).await;
    for mode in ["VERIFY_IDENTITY", "VERIFY_CA"] {
        let out = dry_run(&tls_user, &["--defaults-file", &option_file(mode)]).await;
        refused_on_the_certificate(&out);
        let problem = out.error_line().to_lowercase().replace(' ', "");
        assert!(problem.contains("notvalidforname"), "{out}");
    }
    let out = dry_run(&tls_user, &["--defaults-file", &option_file("REQUIRED")]).await;
    assert_eq!(out.code, Some(0), "{out}");

    install_server_certificate(&server, &certs, "named", &mut conn).await;
    // The public roots do not know the test's CA.
    let out = dry_run(&server.config, &["--no-defaults", "--ssl"]).await;
    refused_on_the_certificate(&out);
    // Encrypted but unchecked, when asked for.
    let out = dry_run(&server.config, &["--no-defaults", "--ssl-allow-insecure"]).await;
    assert_eq!(out.code, Some(0), "{out}");
    // The account needs a client certificate: no TLS, no login.
    let no_tls = shadowcut::server::ConnectConfig {
        password: Some("tls-Pw1".into()),
        ..tls_user.clone()
    };
    let out = dry_run(&no_tls, &["--no-defaults"]).await;
    assert_eq!(out.code, Some(4), "{out}");
    // The command line's flags do what the file's keys do.
    let out = dry_run(
        &no_tls,
        &[
            "--no-defaults",
            "--ssl-ca",
            &path("ca.pem"),
            "--ssl-cert",
            &path("client-cert.pem"),
            "--ssl-key",
            &path("client-key.pem"),
        ],
    )
    .await;
    assert_eq!(out.code, Some(0), "{out}");

    // The migration itself, every connection over TLS, under the load.
    let stop = Arc::new(AtomicBool::new(false));
    let (stats, writers) = start_mirrored_load(
        server.config.clone(),
        db.clone(),
        "t".into(),
        "control".into(),
        3,
        stop.clone(),
        std::time::Duration::from_secs(120),
        |rng| churn_transaction(rng, 2000),
    );
    let out = shadowcut(
        &tls_user,
        &db,
        "t",
        alter,
        &[
            "--defaults-file",
            &option_file("VERIFY_IDENTITY"),
            "--execute",
            "--chunk-size",
            "100",
            "--output",
            "json",
        ],
    )
    .await;
    stop_load(&stop, writers).await;
    assert_eq!(out.code, Some(0), "{out}");
    assert!(stats.transactions.load(Ordering::Relaxed) > 0);
    let summary = common::cli::json_event(&out, "summary")["summary"].clone();
    assert_eq!(summary["checksum"]["mismatches"], 0, "{out}");
    assert_eq!(
        summary["rows_copied"].as_u64().map(|r| r > 0),
        Some(true),
        "{out}"
    );
    let what = "migrated over TLS vs control";
    assert_t_as_native_alter(&mut conn, &db, alter, "id, a, b, extra", what).await;
    let _ = std::fs::remove_dir_all(&certs);
}
