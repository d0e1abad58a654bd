//! Turning the key columns of a binlog row image into [`KeyPart`]s equal to
//! what the chunker reads from the table. Only key columns are decoded; the
//! known defects of the decoder are corrected here:
//!
//! - signedness is not in MariaDB's table map: unsigned integers arrive as
//!   negative numbers and are reinterpreted with the column's real type,
//!   and a signed MEDIUMINT arrives without its sign and is sign-extended;
//! - `BINARY(n)` arrives without its trailing zero bytes and is re-padded;
//! - `YEAR` 0000 arrives as 1900;
//! - `BIT` arrives as big-endian bytes and `SET` as a little-endian bitmask,
//!   both compared as numbers here (as the chunker reads them).

use mysql_async::binlog::value::BinlogValue;
use mysql_async::Value;

use crate::schema::{Column, KeyPart};

/// Normalises one key column value from a row image.
pub fn key_part(column: &Column, value: Option<&BinlogValue<'_>>) -> Result<KeyPart, String> {
    let value = match value {
        Some(BinlogValue::Value(v)) => v.clone(),
        Some(other) => {
            return Err(format!(
                "column {} has an unexpected binlog value {other:?}",
                column.name
            ))
        }
        None => {
            return Err(format!(
                "column {} is missing from the row image",
                column.name
            ))
        }
    };
    let value = match (value, column.int_width(), column.is_unsigned()) {
        (Value::Int(v), Some(width), true) => Value::UInt(reinterpret_unsigned(v, width)),
        // mysql_common reads a MEDIUMINT's three bytes without their sign:
        // -1 arrives as 16777215 (found by the fuzzer, through the
        // applier's shortfall check).
        (Value::Int(v), Some(3), false) => Value::Int(sign_extend_24(v)),
        // mysql_common adds 1900 to the stored byte, so YEAR 0000 reads as
        // 1900, a year the type cannot hold.
        (Value::Bytes(b), _, _) if column.data_type == "year" && b == b"1900" => Value::Int(0),
        // BIT arrives as big-endian bytes; keys compare it as a number.
        (Value::Bytes(b), _, _) if column.data_type == "bit" => {
            Value::UInt(b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x)))
        }
        // SET arrives as its bitmask in little-endian bytes; keys compare
        // it as a number (`col + 0`).
        (Value::Bytes(b), _, _) if column.data_type == "set" => Value::UInt(
            b.iter()
                .rev()
                .fold(0u64, |acc, x| (acc << 8) | u64::from(*x)),
        ),
        (Value::Bytes(mut b), _, _) if column.is_fixed_binary() => {
            if let Some(len) = column.octet_length {
                if (b.len() as u64) < len {
                    b.resize(len as usize, 0);
                }
            }
            Value::Bytes(b)
        }
        (v, _, _) => v,
    };
    KeyPart::from_value(value)
        .ok_or_else(|| format!("key column {} is NULL in the row image", column.name))
}

/// The signed value of a 24-bit integer, whether it arrives sign-extended
/// or not.
pub fn sign_extend_24(v: i64) -> i64 {
    ((v & 0xFF_FFFF) << 40) >> 40
}

/// The unsigned value of a `width`-byte integer read as signed.
pub fn reinterpret_unsigned(v: i64, width: u32) -> u64 {
    match width {
        1 => u64::from(v as u8),
        2 => u64::from(v as u16),
        3 => (v as u64) & 0xFF_FFFF,
        4 => u64::from(v as u32),
        _ => v as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::tests::col;

    #[test]
    fn unsigned_integers_are_reinterpreted_by_width() {
        assert_eq!(reinterpret_unsigned(-6, 1), 250);
        assert_eq!(reinterpret_unsigned(-1, 2), 65535);
        assert_eq!(reinterpret_unsigned(-1, 3), 16_777_215);
        assert_eq!(reinterpret_unsigned(-1, 4), 4_294_967_295);
        assert_eq!(reinterpret_unsigned(-1, 8), u64::MAX);
        let mut c = col("id", "tinyint", None);
        c.column_type = "tinyint(3) unsigned".into();
        let v = BinlogValue::Value(Value::Int(-6));
        assert_eq!(key_part(&c, Some(&v)).unwrap(), KeyPart::Int(250));
    }

    #[test]
    fn negative_mediumints_get_their_sign_back() {
        assert_eq!(sign_extend_24(16_777_215), -1);
        assert_eq!(sign_extend_24(16_777_205), -11);
        assert_eq!(sign_extend_24(-8_388_608), -8_388_608);
        assert_eq!(sign_extend_24(8_388_607), 8_388_607);
        let c = col("m", "mediumint", None);
        let v = BinlogValue::Value(Value::Int(16_777_215));
        assert_eq!(key_part(&c, Some(&v)).unwrap(), KeyPart::Int(-1));
    }

    #[test]
    fn binary_keys_get_their_trailing_zero_bytes_back() {
        let mut c = col("u", "binary", Some(("binary", "binary")));
        c.octet_length = Some(4);
        let v = BinlogValue::Value(Value::Bytes(vec![1, 2]));
        assert_eq!(
            key_part(&c, Some(&v)).unwrap(),
            KeyPart::Bytes(vec![1, 2, 0, 0])
        );
    }

    #[test]
    fn year_zero_is_not_1900() {
        let c = col("y", "year", None);
        let v = BinlogValue::Value(Value::Bytes(b"1900".to_vec()));
        assert_eq!(key_part(&c, Some(&v)).unwrap(), KeyPart::Int(0));
        let v = BinlogValue::Value(Value::Bytes(b"2024".to_vec()));
        assert_eq!(
            key_part(&c, Some(&v)).unwrap(),
            KeyPart::Bytes(b"2024".to_vec())
        );
    }

    #[test]
    fn set_bitmasks_become_numbers() {
        let mut c = col("s", "set", Some(("utf8mb4", "utf8mb4_general_ci")));
        c.column_type = "set('x','y','z')".into();
        let v = BinlogValue::Value(Value::Bytes(vec![5]));
        assert_eq!(key_part(&c, Some(&v)).unwrap(), KeyPart::Int(5));
        let v = BinlogValue::Value(Value::Bytes(vec![1, 2]));
        assert_eq!(key_part(&c, Some(&v)).unwrap(), KeyPart::Int(0x201));
    }

    #[test]
    fn null_or_missing_key_values_are_errors() {
        let c = col("id", "int", None);
        assert!(key_part(&c, None).is_err());
        assert!(key_part(&c, Some(&BinlogValue::Value(Value::NULL))).is_err());
    }
}
