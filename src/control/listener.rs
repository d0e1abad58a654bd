//! Where the live commands arrive: a unix socket (`--serve-socket-file`), a
//! loopback TCP port (`--serve-tcp-port`), and the `--panic-flag-file`,
//! watched every second. One command per connection, as gh-ost does:
//! `echo status | nc -U /tmp/shadowcut.sock`. Beside them, the status in
//! Prometheus' text format on `--metrics-addr` (loopback only).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use super::commands::Live;
use crate::error::{Error, Result};

/// Where to listen.
#[derive(Debug, Clone, Default)]
pub struct ServeConfig {
    /// Unix socket to create (removed again at the end).
    pub socket_file: Option<PathBuf>,
    /// TCP port on 127.0.0.1 (0: any free port).
    pub tcp_port: Option<u16>,
    /// Abort the migration as soon as this file exists.
    pub panic_flag_file: Option<PathBuf>,
    /// Serve `GET /metrics` here (a loopback address).
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// Longest command line read.
const MAX_LINE: u64 = 4096;

/// How long a client may take to send its command.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The running listeners; they stop, and the socket file goes, when dropped.
pub struct Listeners {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    socket_file: Option<PathBuf>,
    /// The TCP port listened on, when one was asked for.
    pub tcp_port: Option<u16>,
    /// The metrics address listened on, when one was asked for.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

impl Drop for Listeners {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        if let Some(path) = &self.socket_file {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Listeners {
    /// Starts listening. A socket file left by a process that is gone is
    /// replaced; one that still answers is refused (another migration
    /// serves it).
    pub async fn start(config: &ServeConfig, live: Live) -> Result<Listeners> {
        // Checked before anything is served: an operator (or a script)
        // that sees the socket may take the run as started and raise the
        // flag, which must then stop it, not be refused as left over.
        if let Some(flag) = &config.panic_flag_file {
            if flag.exists() {
                return Err(Error::Usage(format!(
                    "--panic-flag-file {} exists already; remove it first",
                    flag.display()
                )));
            }
        }
        let mut listeners = Listeners {
            tasks: Vec::new(),
            socket_file: None,
            tcp_port: None,
            metrics_addr: None,
        };
        #[cfg(unix)]
        if let Some(path) = &config.socket_file {
            let listener = bind_socket(path, &live.table).await?;
            listeners.socket_file = Some(path.clone());
            let live = live.clone();
            listeners.tasks.push(tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serve(stream, live.clone()));
                }
            }));
            tracing::info!(socket = %path.display(), "live commands: echo help | nc -U {}", path.display());
        }
        if let Some(port) = config.tcp_port {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .map_err(|source| Error::Io {
                    context: format!("--serve-tcp-port: listening on 127.0.0.1:{port}"),
                    source,
                })?;
            let port = listener.local_addr().map(|a| a.port()).unwrap_or(port);
            listeners.tcp_port = Some(port);
            let live = live.clone();
            listeners.tasks.push(tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serve(stream, live.clone()));
                }
            }));
            tracing::info!(port, "live commands: echo help | nc 127.0.0.1 {port}");
        }
        if let Some(addr) = config.metrics_addr {
            if !addr.ip().is_loopback() {
                return Err(Error::Usage(format!(
                    "--metrics-addr {addr}: only a loopback address (127.0.0.1, ::1) is served"
                )));
            }
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| Error::Io {
                    context: format!("--metrics-addr: listening on {addr}"),
                    source,
                })?;
            listeners.metrics_addr = listener.local_addr().ok();
            let live = live.clone();
            listeners.tasks.push(tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serve_metrics(stream, live.clone()));
                }
            }));
            tracing::info!(%addr, "metrics: curl http://{addr}/metrics");
        }
        if let Some(flag) = config.panic_flag_file.clone() {
            let stop = live.stop.clone();
            listeners.tasks.push(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stop.raised() => return,
                    }
                    if flag.exists() {
                        tracing::error!(flag = %flag.display(), "panic flag file found: aborting");
                        stop.panic(&format!("panic-flag-file {} exists", flag.display()));
                        return;
                    }
                }
            }));
        }
        Ok(listeners)
    }
}

#[cfg(unix)]
async fn bind_socket(path: &Path, table: &str) -> Result<tokio::net::UnixListener> {
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(Error::Usage(format!(
                "--serve-socket-file {}: another process serves it; choose another path (migrating {table})",
                path.display()
            )));
        }
        // Left by a process that is gone.
        let _ = std::fs::remove_file(path);
    }
    tokio::net::UnixListener::bind(path).map_err(|source| Error::Io {
        context: format!("--serve-socket-file: listening on {}", path.display()),
        source,
    })
}

/// Reads one command line, writes the answer, closes.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(stream: S, live: Live) {
    let (read, mut write) = tokio::io::split(stream);
    let mut line = String::new();
    let mut reader = BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_LINE));
    let answer = match tokio::time::timeout(READ_TIMEOUT, reader.read_line(&mut line)).await {
        Ok(Ok(_)) => live.answer(&line),
        Ok(Err(e)) => format!("ERROR: reading the command: {e}\n"),
        Err(_) => "ERROR: no command within 10 s\n".to_string(),
    };
    let _ = write.write_all(answer.as_bytes()).await;
    let _ = write.shutdown().await;
}

/// Answers one HTTP request: `GET /metrics` with the status, anything
/// else with 404.
async fn serve_metrics(stream: tokio::net::TcpStream, live: Live) {
    let (read, mut write) = tokio::io::split(stream);
    let mut reader = BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_LINE * 4));
    let mut request = String::new();
    if !matches!(
        tokio::time::timeout(READ_TIMEOUT, reader.read_line(&mut request)).await,
        Ok(Ok(_))
    ) {
        return;
    }
    // The headers are read and ignored.
    let mut header = String::new();
    while let Ok(Ok(n)) = tokio::time::timeout(READ_TIMEOUT, reader.read_line(&mut header)).await {
        if n == 0 || header.trim().is_empty() {
            break;
        }
        header.clear();
    }
    let mut parts = request.split_whitespace();
    let response = match (parts.next(), parts.next()) {
        (Some("GET"), Some("/metrics")) => {
            let body = crate::progress::prometheus(&live.sources.status(live.started), &live.table);
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        }
        _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
    };
    let _ = write.write_all(response.as_bytes()).await;
    let _ = write.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::Stop;
    use crate::progress::Sources;
    use std::sync::Arc;
    use tokio::io::AsyncReadExt;

    async fn ask_tcp(port: u16, command: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        stream.write_all(command.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn commands_are_answered_over_tcp_and_the_socket_and_the_panic_flag_stops() {
        let dir = std::env::temp_dir().join(format!("shadowcut-listen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("control.sock");
        let flag = dir.join("panic.flag");
        let live = Live {
            table: "`db`.`t`".into(),
            sources: Arc::new(Sources::default()),
            started: std::time::Instant::now(),
            stop: Stop::default(),
        };
        let listeners = Listeners::start(
            &ServeConfig {
                socket_file: Some(socket.clone()),
                tcp_port: Some(0),
                panic_flag_file: Some(flag.clone()),
                metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
            },
            live.clone(),
        )
        .await
        .unwrap();
        let port = listeners.tcp_port.unwrap();
        assert!(ask_tcp(port, "help\n").await.contains("no-throttle"));
        let metrics_port = listeners.metrics_addr.unwrap().port();
        let scrape = ask_tcp(metrics_port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(scrape.starts_with("HTTP/1.1 200 OK\r\n"), "{scrape}");
        assert!(
            scrape.contains("\nshadowcut_rows_copied_total{table=\"`db`.`t`\"} 0\n"),
            "{scrape}"
        );
        let missing = ask_tcp(metrics_port, "GET / HTTP/1.1\r\n\r\n").await;
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
        assert!(
            Listeners::start(
                &ServeConfig {
                    metrics_addr: Some("0.0.0.0:0".parse().unwrap()),
                    ..ServeConfig::default()
                },
                live.clone(),
            )
            .await
            .is_err(),
            "a non-loopback metrics address must be refused"
        );
        assert!(ask_tcp(port, "chunk-size=77\n").await.contains("77"));

        let mut unix = tokio::net::UnixStream::connect(&socket).await.unwrap();
        unix.write_all(b"throttle\n").await.unwrap();
        let mut answer = String::new();
        unix.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("throttled"), "{answer}");
        assert!(live.sources.throttle.reason().is_some());

        let second = Listeners::start(
            &ServeConfig {
                socket_file: Some(socket.clone()),
                ..ServeConfig::default()
            },
            live.clone(),
        )
        .await;
        assert!(second.is_err(), "a socket in use must be refused");

        std::fs::write(&flag, b"").unwrap();
        tokio::time::timeout(Duration::from_secs(5), live.stop.raised())
            .await
            .unwrap();
        assert!(live.stop.is_panic());
        drop(listeners);
        assert!(!socket.exists(), "the socket file is removed at the end");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
