//! The allow-list of binlog event types. Anything that can carry rows and is
//! not understood stops the migration: an unknown event is never assumed
//! harmless.

/// What the tail does with an event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Carries nothing the migration needs.
    Ignore,
    /// A statement: checked for statements touching the table.
    Query,
    /// Next binlog file.
    Rotate,
    /// Commit of a transaction: a safe position.
    Xid,
    /// Maps a table id to a table.
    TableMap,
    /// Inserted rows (after images).
    WriteRows,
    /// Updated rows (before and after images).
    UpdateRows,
    /// Deleted rows (before images).
    DeleteRows,
    /// A MariaDB GTID event: starts a transaction, may flag XA.
    MariaGtid,
    /// MySQL's XA PREPARE.
    XaPrepare,
    /// Partial JSON update rows (MySQL): cannot be applied by key.
    PartialUpdateRows,
    /// Cannot be applied safely; the reason.
    Refuse(&'static str),
}

/// Classifies a raw event type byte (MySQL and MariaDB numbering).
pub fn classify(event_type: u8) -> EventKind {
    use EventKind::*;
    match event_type {
        2 => Query,
        4 => Rotate,
        16 => Xid,
        19 => TableMap,
        23 | 30 => WriteRows,
        24 | 31 => UpdateRows,
        25 | 32 => DeleteRows,
        // STOP, INTVAR, RAND, USER_VAR (their statement is checked as a
        // QUERY), FORMAT_DESCRIPTION, HEARTBEAT, IGNORABLE, ROWS_QUERY, MySQL
        // GTID/ANONYMOUS_GTID/PREVIOUS_GTIDS, TRANSACTION_CONTEXT, VIEW_CHANGE,
        // HEARTBEAT_V2, MariaDB ANNOTATE_ROWS, BINLOG_CHECKPOINT, GTID_LIST.
        3 | 5 | 13 | 14 | 15 | 27 | 28 | 29 | 33 | 34 | 35 | 36 | 37 | 41 | 160 | 161 | 163 => {
            Ignore
        }
        162 => MariaGtid,
        38 => XaPrepare,
        39 => PartialUpdateRows,
        26 => Refuse("an INCIDENT event: the primary lost track of changes"),
        40 => Refuse("a compressed transaction (binlog_transaction_compression)"),
        164 => Refuse("an encrypted binlog (START_ENCRYPTION)"),
        165..=171 => Refuse("a compressed event (log_bin_compress)"),
        6..=12 | 17 | 18 | 20..=22 => Refuse("a statement-based LOAD DATA or pre-GA rows event"),
        _ => Refuse("an event type this version of shadowcut does not know"),
    }
}

/// MariaDB GTID flags that mark an XA transaction.
pub fn mariadb_gtid_is_xa(body: &[u8]) -> bool {
    const FL_PREPARED_XA: u8 = 64;
    const FL_COMPLETED_XA: u8 = 128;
    body.get(12)
        .is_some_and(|f| f & (FL_PREPARED_XA | FL_COMPLETED_XA) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_events_of_both_versions_are_understood() {
        assert_eq!(classify(23), EventKind::WriteRows);
        assert_eq!(classify(30), EventKind::WriteRows);
        assert_eq!(classify(31), EventKind::UpdateRows);
        assert_eq!(classify(32), EventKind::DeleteRows);
    }

    #[test]
    fn compressed_encrypted_and_unknown_events_are_refused() {
        for t in [26u8, 40, 164, 165, 166, 169, 171, 200, 8] {
            assert!(matches!(classify(t), EventKind::Refuse(_)), "type {t}");
        }
    }

    #[test]
    fn mariadb_xa_flags() {
        let mut body = vec![0u8; 13];
        assert!(!mariadb_gtid_is_xa(&body));
        body[12] = 64;
        assert!(mariadb_gtid_is_xa(&body));
        body[12] = 1 | 8;
        assert!(!mariadb_gtid_is_xa(&body));
    }
}
