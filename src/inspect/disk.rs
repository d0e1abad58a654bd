//! Room on the server's disk: what a migration writes (the new table, and
//! the copy's row images in the binlog) against the free space of the data
//! directory, where the server shows it (MariaDB's `information_schema.DISKS`,
//! from the `disks` plugin; MySQL has no such view).

use mysql_async::prelude::*;
use mysql_async::Conn;

use crate::error::{Error, Result, SqlContext};
use crate::shadow::ShadowNames;

/// What the migration of a table will write on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needed {
    /// The new table: about the original's data and indexes.
    pub table_bytes: u64,
    /// The copy's row images in the binlog: about the original's data.
    pub binlog_bytes: u64,
}

impl Needed {
    /// Both together.
    pub fn total(&self) -> u64 {
        self.table_bytes.saturating_add(self.binlog_bytes)
    }
}

/// What the migration of `names`' table will write, from the server's
/// statistics of its size.
pub async fn needed(conn: &mut Conn, names: &ShadowNames) -> Result<Needed> {
    let table = names.q(&names.original);
    let sizes: Option<(Option<u64>, Option<u64>)> = conn
        .exec_first(
            "SELECT DATA_LENGTH, INDEX_LENGTH FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (&names.database, &names.original),
        )
        .await
        .context(|| format!("reading the size of {table}"))?;
    let (data, index) = sizes.unwrap_or_default();
    let (data, index) = (data.unwrap_or(0), index.unwrap_or(0));
    Ok(Needed {
        table_bytes: data.saturating_add(index),
        binlog_bytes: data,
    })
}

/// Free bytes of the disk holding the data directory, where the server
/// shows it; `None`: unknown.
pub async fn free_bytes(conn: &mut Conn) -> Option<u64> {
    let datadir: String = conn.query_first("SELECT @@datadir").await.ok()??;
    let disks: Vec<(String, u64)> = conn
        .query("SELECT Path, Available * 1024 FROM information_schema.DISKS")
        .await
        .ok()?;
    holding(&datadir, &disks)
}

/// The free space of the longest mount path that holds `datadir`.
fn holding(datadir: &str, disks: &[(String, u64)]) -> Option<u64> {
    disks
        .iter()
        .filter(|(path, _)| datadir.starts_with(path.as_str()))
        .max_by_key(|(path, _)| path.len())
        .map(|(_, free)| *free)
}

/// Refuses a migration the data directory cannot hold; warns when the
/// server does not show its free space.
pub async fn check_room(conn: &mut Conn, names: &ShadowNames) -> Result<()> {
    let needed = needed(conn, names).await?;
    match free_bytes(conn).await {
        Some(free) => judge(&names.q(&names.original), needed, free),
        None => {
            tracing::warn!(
                needed_mb = needed.total() / 1_048_576,
                "the server does not show its free disk space (MariaDB: INSTALL SONAME 'disks'): \
                 make sure the data directory can hold the new table and the binlog growth"
            );
            Ok(())
        }
    }
}

/// The refusal when `free` bytes cannot hold `needed`.
fn judge(table: &str, needed: Needed, free: u64) -> Result<()> {
    if free >= needed.total() {
        return Ok(());
    }
    let mb = |b: u64| format!("{:.0} MB", b as f64 / 1_048_576.0);
    Err(Error::refused(
        table,
        format!(
            "the data directory has {} free, and the migration writes about {} (the new table {}, the copy's binlog {})",
            mb(free),
            mb(needed.total()),
            mb(needed.table_bytes),
            mb(needed.binlog_bytes)
        ),
        "Free disk space on the server (purge old binlogs, drop unused tables) and retry",
    ))
}

/// Parses a size: bytes, or a number with `K`, `M`, `G` or `T` (powers of
/// 1024), as `--min-free-disk` takes it.
pub fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, ""),
    };
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size (e.g. 500M, 10G)"))?;
    let shift = match unit.to_ascii_uppercase().trim_end_matches('B') {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(format!("`{text}` has an unknown unit (use K, M, G or T)")),
    };
    number
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("`{text}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deepest_mount_holding_the_datadir_counts() {
        let disks = vec![
            ("/".to_string(), 100),
            ("/var".to_string(), 50),
            ("/var/lib/mysql".to_string(), 7),
            ("/home".to_string(), 900),
        ];
        assert_eq!(holding("/var/lib/mysql/", &disks), Some(7));
        assert_eq!(holding("/srv/db/", &disks), Some(100));
        assert_eq!(holding("/srv/db/", &[]), None);
    }

    #[test]
    fn refuses_when_the_disk_cannot_hold_the_copy() {
        let needed = Needed {
            table_bytes: 3 << 30,
            binlog_bytes: 2 << 30,
        };
        assert!(judge("`d`.`t`", needed, 5 << 30).is_ok());
        let Err(Error::Refused(r)) = judge("`d`.`t`", needed, 4 << 30) else {
            panic!("not refused");
        };
        assert!(r.problem.contains("4096 MB free"), "{}", r.problem);
        assert!(r.problem.contains("about 5120 MB"), "{}", r.problem);
    }

    #[test]
    fn reads_sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("500M"), Ok(500 << 20));
        assert_eq!(parse_size("10g"), Ok(10 << 30));
        assert_eq!(parse_size("2TB"), Ok(2 << 40));
        assert!(parse_size("10X").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("99999999999T").is_err());
    }
}
