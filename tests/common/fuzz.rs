//! The differential fuzzer's generators (see `tests/fuzz.rs`): from a seed,
//! a table over every type `docs/compatibility.md` lists, with charsets,
//! collations, generated and invisible columns and a random key shape; an
//! ALTER a DBA would run on it; and the mirrored write load.
//!
//! Everything here is pure and deterministic from the seed: nothing talks to
//! a server. SQL text quotes every identifier; values are bound as
//! parameters, never spliced into the text (DDL literals excepted).

use std::collections::{BTreeMap, BTreeSet};

use mysql_async::Value;

use super::{Rng, Statement};

// ---- helpers ---------------------------------------------------------------

/// A quoted identifier.
pub fn q(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A quoted string literal for DDL.
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// One item of `items`.
pub fn pick<'a, T>(rng: &mut Rng, items: &'a [T]) -> &'a T {
    &items[rng.below(items.len() as u64) as usize]
}

/// An index into `weights`, chosen with those relative weights.
fn weighted(rng: &mut Rng, weights: &[u64]) -> usize {
    let mut x = rng.below(weights.iter().sum());
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

/// A number in `lo..=hi`.
fn between(rng: &mut Rng, lo: i64, hi: i64) -> i64 {
    lo + rng.below((hi - lo + 1) as u64) as i64
}

/// A random alphanumeric string of `len` characters.
fn alnum(rng: &mut Rng, len: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..len).map(|_| *pick(rng, CHARS) as char).collect()
}

/// (year, month, day) of a day number (0 = 1970-01-01).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `YYYY-MM-DD` of a day number.
fn date_str(days: i64) -> String {
    let (y, m, d) = civil(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `.ffffff` cut to `digits` digits (empty for 0).
fn fraction(micros: u32, digits: u8) -> String {
    if digits == 0 {
        return String::new();
    }
    let f = format!("{micros:06}");
    format!(".{}", &f[..digits as usize])
}

/// `YYYY-MM-DD hh:mm:ss[.f]` of seconds since 1970 and microseconds.
fn datetime_str(secs: i64, micros: u32, digits: u8) -> String {
    let s = secs.rem_euclid(86_400);
    format!(
        "{} {:02}:{:02}:{:02}{}",
        date_str(secs.div_euclid(86_400)),
        s / 3600,
        s / 60 % 60,
        s % 60,
        fraction(micros, digits)
    )
}

/// `[-]hhh:mm:ss[.f]`.
fn time_str(secs: i64, micros: u32, digits: u8) -> String {
    let sign = if secs < 0 { "-" } else { "" };
    let s = secs.abs();
    format!(
        "{sign}{:02}:{:02}:{:02}{}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        fraction(micros, digits)
    )
}

// Day numbers (days since 1970-01-01) of the dates the generators use.
const DAY_1000: i64 = -354_285;
const DAY_1900: i64 = -25_567;
const DAY_2000: i64 = 10_957;
const DAY_2001: i64 = 11_323;
const DAY_2020: i64 = 18_262;
const DAY_2030_END: i64 = 22_279;
const DAY_2038_JAN_18: i64 = 24_855;
const DAY_2100_END: i64 = 47_846;

// ---- charsets and collations -----------------------------------------------

/// The character sets the fuzzer uses, by repertoire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Charset {
    /// 7-bit.
    Ascii,
    /// ISO 8859-1 (cp1252 on MariaDB).
    Latin1,
    /// The Basic Multilingual Plane.
    Utf8mb3,
    /// All of Unicode.
    Utf8mb4,
}

impl Charset {
    /// The server's name.
    pub fn name(self) -> &'static str {
        match self {
            Charset::Ascii => "ascii",
            Charset::Latin1 => "latin1",
            Charset::Utf8mb3 => "utf8mb3",
            Charset::Utf8mb4 => "utf8mb4",
        }
    }

    /// Whether every character of `s` exists in this set.
    pub fn holds(self, s: &str) -> bool {
        s.chars().all(|c| match self {
            Charset::Ascii => (c as u32) < 0x80,
            Charset::Latin1 => (c as u32) < 0x100,
            Charset::Utf8mb3 => (c as u32) < 0x10000,
            Charset::Utf8mb4 => true,
        })
    }
}

/// A collation, with what its comparisons ignore.
#[derive(Debug, PartialEq, Eq)]
pub struct Collation {
    /// The server's name.
    pub name: &'static str,
    /// Its character set.
    pub charset: Charset,
    /// Case- (and mostly accent-) insensitive.
    pub ci: bool,
    /// PAD SPACE: trailing spaces are ignored in comparisons.
    pub pad: bool,
}

const fn coll(name: &'static str, charset: Charset, ci: bool, pad: bool) -> Collation {
    Collation {
        name,
        charset,
        ci,
        pad,
    }
}

/// Collations of MariaDB 10.11 the fuzzer picks from: case/accent/pad
/// sensitive and insensitive ones in four character sets.
pub static COLLATIONS: &[Collation] = &[
    coll("latin1_swedish_ci", Charset::Latin1, true, true),
    coll("latin1_bin", Charset::Latin1, false, true),
    coll("latin1_general_ci", Charset::Latin1, true, true),
    coll("latin1_general_cs", Charset::Latin1, false, true),
    coll("latin1_german1_ci", Charset::Latin1, true, true),
    coll("latin1_spanish_ci", Charset::Latin1, true, true),
    coll("latin1_swedish_nopad_ci", Charset::Latin1, true, false),
    coll("latin1_nopad_bin", Charset::Latin1, false, false),
    coll("utf8mb4_general_ci", Charset::Utf8mb4, true, true),
    coll("utf8mb4_bin", Charset::Utf8mb4, false, true),
    coll("utf8mb4_unicode_ci", Charset::Utf8mb4, true, true),
    coll("utf8mb4_unicode_520_ci", Charset::Utf8mb4, true, true),
    coll("utf8mb4_general_nopad_ci", Charset::Utf8mb4, true, false),
    coll("utf8mb4_nopad_bin", Charset::Utf8mb4, false, false),
    coll("utf8mb4_unicode_nopad_ci", Charset::Utf8mb4, true, false),
    coll("utf8mb4_turkish_ci", Charset::Utf8mb4, true, true),
    coll("utf8mb4_german2_ci", Charset::Utf8mb4, true, true),
    coll("utf8mb3_general_ci", Charset::Utf8mb3, true, true),
    coll("utf8mb3_bin", Charset::Utf8mb3, false, true),
    coll("utf8mb3_unicode_ci", Charset::Utf8mb3, true, true),
    coll("ascii_general_ci", Charset::Ascii, true, true),
    coll("ascii_bin", Charset::Ascii, false, true),
];

/// The collation of a new database on the sandbox servers (the server's
/// `character_set_server` is latin1).
pub fn database_collation() -> &'static Collation {
    &COLLATIONS[0]
}

fn collation_named(name: &str) -> &'static Collation {
    COLLATIONS.iter().find(|c| c.name == name).expect(name)
}

/// A random collation, utf8mb4 and latin1 the most often.
fn random_collation(rng: &mut Rng) -> &'static Collation {
    let charset = [
        Charset::Utf8mb4,
        Charset::Latin1,
        Charset::Utf8mb3,
        Charset::Ascii,
    ][weighted(rng, &[50, 30, 12, 8])];
    collation_in(rng, charset)
}

fn collation_in(rng: &mut Rng, charset: Charset) -> &'static Collation {
    let all: Vec<&'static Collation> = COLLATIONS.iter().filter(|c| c.charset == charset).collect();
    all[rng.below(all.len() as u64) as usize]
}

// ---- types -------------------------------------------------------------------

/// TEXT and BLOB sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    /// TINYTEXT / TINYBLOB.
    Tiny,
    /// TEXT / BLOB.
    Regular,
    /// MEDIUMTEXT / MEDIUMBLOB.
    Medium,
    /// LONGTEXT / LONGBLOB.
    Long,
}

impl Size {
    fn prefix(self) -> &'static str {
        match self {
            Size::Tiny => "TINY",
            Size::Regular => "",
            Size::Medium => "MEDIUM",
            Size::Long => "LONG",
        }
    }
}

/// A string column's collation: `None` inherits the table's default.
pub type Coll = Option<&'static Collation>;

/// A column type.
#[derive(Clone, Debug, PartialEq)]
pub enum Ty {
    /// TINYINT (1) … BIGINT (8), by storage bytes.
    Int { bytes: u8, unsigned: bool },
    /// DECIMAL(m,d).
    Decimal { m: u8, d: u8, unsigned: bool },
    /// FLOAT.
    Float,
    /// DOUBLE.
    Double,
    /// BIT(n).
    Bit(u8),
    /// CHAR(n).
    Char(u16, Coll),
    /// VARCHAR(n).
    Varchar(u16, Coll),
    /// TINYTEXT … LONGTEXT.
    Text(Size, Coll),
    /// BINARY(n).
    Binary(u16),
    /// VARBINARY(n).
    Varbinary(u16),
    /// TINYBLOB … LONGBLOB.
    Blob(Size),
    /// DATE.
    Date,
    /// DATETIME(fsp).
    DateTime(u8),
    /// TIMESTAMP(fsp).
    Timestamp(u8),
    /// TIME(fsp).
    Time(u8),
    /// YEAR.
    Year,
    /// ENUM(values) [COLLATE].
    Enum(Vec<String>, Coll),
    /// SET(values) [COLLATE].
    Set(Vec<String>, Coll),
    /// JSON (LONGTEXT with a json_valid CHECK on MariaDB).
    Json,
    /// POINT.
    Point,
    /// GEOMETRY.
    Geometry,
}

fn coll_sql(c: Coll) -> String {
    match c {
        Some(c) => format!(" CHARACTER SET {} COLLATE {}", c.charset.name(), c.name),
        None => String::new(),
    }
}

fn fsp_sql(name: &str, fsp: u8) -> String {
    if fsp == 0 {
        name.to_string()
    } else {
        format!("{name}({fsp})")
    }
}

fn values_sql(values: &[String]) -> String {
    values.iter().map(|v| lit(v)).collect::<Vec<_>>().join(",")
}

impl Ty {
    /// The type as written in DDL.
    pub fn sql(&self) -> String {
        match self {
            Ty::Int { bytes, unsigned } => {
                let name = match bytes {
                    1 => "TINYINT",
                    2 => "SMALLINT",
                    3 => "MEDIUMINT",
                    4 => "INT",
                    _ => "BIGINT",
                };
                format!("{name}{}", if *unsigned { " UNSIGNED" } else { "" })
            }
            Ty::Decimal { m, d, unsigned } => {
                format!(
                    "DECIMAL({m},{d}){}",
                    if *unsigned { " UNSIGNED" } else { "" }
                )
            }
            Ty::Float => "FLOAT".into(),
            Ty::Double => "DOUBLE".into(),
            Ty::Bit(n) => format!("BIT({n})"),
            Ty::Char(n, c) => format!("CHAR({n}){}", coll_sql(*c)),
            Ty::Varchar(n, c) => format!("VARCHAR({n}){}", coll_sql(*c)),
            Ty::Text(s, c) => format!("{}TEXT{}", s.prefix(), coll_sql(*c)),
            Ty::Binary(n) => format!("BINARY({n})"),
            Ty::Varbinary(n) => format!("VARBINARY({n})"),
            Ty::Blob(s) => format!("{}BLOB", s.prefix()),
            Ty::Date => "DATE".into(),
            Ty::DateTime(f) => fsp_sql("DATETIME", *f),
            Ty::Timestamp(f) => fsp_sql("TIMESTAMP", *f),
            Ty::Time(f) => fsp_sql("TIME", *f),
            Ty::Year => "YEAR".into(),
            Ty::Enum(v, c) => format!("ENUM({}){}", values_sql(v), coll_sql(*c)),
            Ty::Set(v, c) => format!("SET({}){}", values_sql(v), coll_sql(*c)),
            Ty::Json => "JSON".into(),
            Ty::Point => "POINT".into(),
            Ty::Geometry => "GEOMETRY".into(),
        }
    }

    /// The explicit collation of a string type: `Some(coll)` for string
    /// types (`coll` None when inherited), `None` for the others.
    pub fn string_collation(&self) -> Option<Coll> {
        match self {
            Ty::Char(_, c)
            | Ty::Varchar(_, c)
            | Ty::Text(_, c)
            | Ty::Enum(_, c)
            | Ty::Set(_, c) => Some(*c),
            _ => None,
        }
    }

    /// The same type with another collation (string types only).
    fn with_collation(&self, c: Coll) -> Ty {
        match self {
            Ty::Char(n, _) => Ty::Char(*n, c),
            Ty::Varchar(n, _) => Ty::Varchar(*n, c),
            Ty::Text(s, _) => Ty::Text(*s, c),
            Ty::Enum(v, _) => Ty::Enum(v.clone(), c),
            Ty::Set(v, _) => Ty::Set(v.clone(), c),
            other => other.clone(),
        }
    }

    /// Whether a whole-column index is possible (no TEXT/BLOB/JSON/spatial).
    pub fn indexable(&self) -> bool {
        !matches!(
            self,
            Ty::Text(..) | Ty::Blob(_) | Ty::Json | Ty::Point | Ty::Geometry
        )
    }

    /// Whether an index on it needs a prefix length.
    fn needs_prefix(&self) -> bool {
        matches!(self, Ty::Text(..) | Ty::Blob(_) | Ty::Json)
    }

    fn is_int(&self) -> bool {
        matches!(self, Ty::Int { .. })
    }

    fn is_spatial(&self) -> bool {
        matches!(self, Ty::Point | Ty::Geometry)
    }

    /// Maximum length in characters of generated strings.
    fn char_len(&self) -> usize {
        match self {
            Ty::Char(n, _) | Ty::Varchar(n, _) => *n as usize,
            Ty::Text(Size::Tiny, _) => 60,
            Ty::Text(..) => 200,
            _ => 0,
        }
    }

    /// Distinct key values this type can hold, when that is small.
    fn cardinality(&self) -> Option<u64> {
        match self {
            Ty::Int { bytes: 1, unsigned } => Some(if *unsigned { 250 } else { 120 }),
            Ty::Bit(n) if *n < 16 => Some(1 << n),
            Ty::Year => Some(250),
            Ty::Enum(v, c) => Some(v.len() as u64 * if c.is_some_and(|c| c.ci) { 2 } else { 1 }),
            Ty::Set(v, _) => Some(1 << v.len().min(10)),
            Ty::Decimal { m, d, .. } if m - d <= 2 => Some(90),
            _ => None,
        }
    }

    /// The placeholder of a value of this type in DML.
    pub fn placeholder(&self) -> &'static str {
        if self.is_spatial() {
            "ST_GeomFromText(?)"
        } else {
            "?"
        }
    }
}

// ---- random types ----------------------------------------------------------

const ENUM_WORDS: &[&str] = &[
    "alpha", "Bravo", "charlie", "délta", "echo", "Foxtrot", "golf", "ß", "straße", "zulu", "",
    "Ñu", "日本",
];
const SET_WORDS: &[&str] = &["x", "y", "z", "Mu", "nü", "Ω"];

/// Distinct words of `pool` that `charset` can hold, 2..=max of them.
fn words(rng: &mut Rng, pool: &[&str], charset: Charset, max: u64) -> Vec<String> {
    let mut all: Vec<String> = pool
        .iter()
        .filter(|w| charset.holds(w))
        .map(|w| w.to_string())
        .collect();
    let n = 2 + rng.below(max - 1) as usize;
    let mut chosen = Vec::new();
    while chosen.len() < n && !all.is_empty() {
        let i = rng.below(all.len() as u64) as usize;
        chosen.push(all.remove(i));
    }
    chosen
}

/// A collation for a string column: inherited, or an explicit one.
fn column_collation(rng: &mut Rng) -> Coll {
    if rng.chance(30) {
        None
    } else {
        Some(random_collation(rng))
    }
}

fn int_ty(rng: &mut Rng) -> Ty {
    Ty::Int {
        bytes: *pick(rng, &[1, 2, 3, 4, 4, 8, 8]),
        unsigned: rng.chance(30),
    }
}

/// An ENUM; `explicit` is the chance (percent) of an explicit collation.
fn enum_ty(rng: &mut Rng, charset_default: Charset, explicit: u64) -> Ty {
    let c = if rng.chance(explicit) {
        Some(random_collation(rng))
    } else {
        None
    };
    let cs = c.map_or(charset_default, |c| c.charset);
    Ty::Enum(words(rng, ENUM_WORDS, cs, 6), c)
}

/// A type for a column of the shared key.
fn key_ty(rng: &mut Rng, table_charset: Charset) -> Ty {
    match weighted(rng, &[30, 14, 10, 8, 8, 7, 7, 4, 4, 3, 2, 1, 1, 2]) {
        0 => int_ty(rng),
        1 => Ty::Varchar(
            8 + rng.below(56) as u16,
            Some(collation_in(rng, Charset::Utf8mb4)),
        ),
        2 => {
            let c = if rng.chance(30) {
                None
            } else {
                Some(collation_in(rng, Charset::Latin1))
            };
            if rng.chance(40) {
                Ty::Char(8 + rng.below(12) as u16, c)
            } else {
                Ty::Varchar(8 + rng.below(40) as u16, c)
            }
        }
        3 => enum_ty(rng, table_charset, 25),
        4 => Ty::DateTime(*pick(rng, &[0, 3, 6])),
        5 => {
            let m = 6 + rng.below(20) as u8;
            Ty::Decimal {
                m,
                d: rng.below(5) as u8,
                unsigned: rng.chance(20),
            }
        }
        6 => {
            if rng.chance(60) {
                Ty::Binary(*pick(rng, &[4, 8, 16]))
            } else {
                Ty::Varbinary(*pick(rng, &[4, 16, 32]))
            }
        }
        7 => Ty::Date,
        8 => Ty::Timestamp(*pick(rng, &[0, 3, 6])),
        9 => Ty::Time(*pick(rng, &[0, 3, 6])),
        10 => Ty::Year,
        11 => Ty::Bit(*pick(rng, &[8, 16])),
        12 => pick(rng, &[Ty::Double, Ty::Float]).clone(),
        _ => {
            let charset = *pick(rng, &[Charset::Utf8mb3, Charset::Ascii]);
            Ty::Varchar(8 + rng.below(20) as u16, Some(collation_in(rng, charset)))
        }
    }
}

/// A type for any other column: every type of the compatibility page.
fn any_ty(rng: &mut Rng, table_charset: Charset) -> Ty {
    match weighted(
        rng,
        &[
            14, 5, 3, 2, 3, 12, 5, 6, 3, 3, 3, 5, 7, 6, 4, 2, 5, 3, 3, 2, 1,
        ],
    ) {
        0 => int_ty(rng),
        1 => {
            let m = 1 + rng.below(30) as u8;
            Ty::Decimal {
                m,
                d: rng.below(u64::from(m.min(10)) + 1) as u8,
                unsigned: rng.chance(20),
            }
        }
        2 => Ty::Float,
        3 => Ty::Double,
        4 => Ty::Bit(*pick(rng, &[1, 1, 8, 64])),
        5 => Ty::Varchar(*pick(rng, &[1, 5, 20, 50, 255]), column_collation(rng)),
        6 => Ty::Char(*pick(rng, &[1, 3, 10, 30]), column_collation(rng)),
        7 => Ty::Text(
            *pick(rng, &[Size::Tiny, Size::Regular, Size::Medium, Size::Long]),
            column_collation(rng),
        ),
        8 => Ty::Binary(*pick(rng, &[1, 4, 16])),
        9 => Ty::Varbinary(*pick(rng, &[3, 16, 100])),
        10 => Ty::Blob(*pick(
            rng,
            &[Size::Tiny, Size::Regular, Size::Medium, Size::Long],
        )),
        11 => Ty::Date,
        12 => Ty::DateTime(*pick(rng, &[0, 0, 2, 3, 6])),
        13 => Ty::Timestamp(*pick(rng, &[0, 0, 3, 6])),
        14 => Ty::Time(rng.below(7) as u8),
        15 => Ty::Year,
        16 => enum_ty(rng, table_charset, 70),
        17 => {
            let c = column_collation(rng);
            let cs = c.map_or(table_charset, |c| c.charset);
            Ty::Set(words(rng, SET_WORDS, cs, 5), c)
        }
        18 => Ty::Json,
        19 => Ty::Point,
        _ => Ty::Geometry,
    }
}

// ---- values ----------------------------------------------------------------

/// Which values a column gets, so that the typical ALTER holds them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Restrict {
    /// Only small, plain values every plausible target type holds.
    pub core: bool,
    /// Values from a large domain, so that a new unique key holds.
    pub unique: bool,
    /// No NULL (the column becomes NOT NULL or part of a primary key).
    pub no_null: bool,
    /// Zero dates now and then (a copying ALTER fails on them under a
    /// global NO_ZERO_DATE, whichever column it changes).
    pub zero_dates: bool,
}

const STRINGS: &[&str] = &[
    "a",
    "A",
    "a ",
    "b",
    "B",
    "z",
    "Z",
    "abc",
    "ABC",
    "Abc",
    "",
    " ",
    "0",
    "10",
    "9",
    "x y",
    "a\t",
    "á",
    "Á",
    "ä",
    "Ä",
    "ß",
    "ss",
    "é",
    "E",
    "e",
    "ñ",
    "Ñ",
    "ü",
    "ue",
    "æ",
    "ae",
    "ÿ",
    "İ",
    "ı",
    "i",
    "I",
    "ǅ",
    "日本",
    "ｆ",
    "ﬁ",
    "fi",
    "Ω",
    "😀",
    "𝔘",
    "🙂a",
    "ñandú 😀",
];

fn string_value(rng: &mut Rng, max_len: usize, charset: Charset, restrict: Restrict) -> String {
    let max_len = max_len.max(1);
    if restrict.unique {
        let len = max_len.min(10);
        return alnum(rng, len);
    }
    if restrict.core {
        let len = 1 + rng.below(max_len.min(3) as u64) as usize;
        return alnum(rng, len).to_lowercase();
    }
    let fits = |s: &str| s.chars().count() <= max_len && charset.holds(s);
    match weighted(rng, &[55, 25, 10, 5, 5]) {
        0 => {
            let all: Vec<&str> = STRINGS.iter().copied().filter(|s| fits(s)).collect();
            pick(rng, &all).to_string()
        }
        1 => {
            let len = 1 + rng.below(max_len.min(12) as u64) as usize;
            alnum(rng, len)
        }
        2 => {
            let base: Vec<&str> = STRINGS.iter().copied().filter(|s| fits(s)).collect();
            let mut s = pick(rng, &base).to_string();
            while s.chars().count() < max_len && rng.chance(60) {
                s.push(' ');
            }
            s
        }
        3 => {
            // Exactly the column's length, in the widest characters it holds.
            let c = match charset {
                Charset::Ascii => 'x',
                Charset::Latin1 => 'é',
                Charset::Utf8mb3 => '日',
                Charset::Utf8mb4 => '😀',
            };
            std::iter::repeat_n(c, max_len.min(300)).collect()
        }
        _ => {
            let len = 1 + rng.below(max_len.min(6) as u64) as usize;
            alnum(rng, len).to_uppercase()
        }
    }
}

fn bytes_value(rng: &mut Rng, max_len: usize, restrict: Restrict) -> Vec<u8> {
    let max_len = max_len.max(1);
    if restrict.unique {
        let mut b: Vec<u8> = (0..max_len.min(8)).map(|_| rng.below(256) as u8).collect();
        b[0] = 1 + rng.below(255) as u8;
        return b;
    }
    if restrict.core {
        return (0..1 + rng.below(max_len.min(2) as u64))
            .map(|_| rng.below(256) as u8)
            .collect();
    }
    match rng.below(6) {
        0 => vec![],
        1 => vec![0],
        2 => vec![0xFF; max_len.min(20)],
        3 => {
            let mut b = vec![0xAB];
            b.resize(max_len.min(16), 0);
            b
        }
        _ => (0..1 + rng.below(max_len.min(16) as u64))
            .map(|_| rng.below(256) as u8)
            .collect(),
    }
}

fn int_range(bytes: u8, unsigned: bool) -> (i128, i128) {
    let bits = u32::from(bytes) * 8;
    if unsigned {
        (0, (1i128 << bits) - 1)
    } else {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    }
}

fn int_value(x: i128) -> Value {
    match i64::try_from(x) {
        Ok(i) => Value::Int(i),
        Err(_) => Value::UInt(x as u64),
    }
}

fn decimal_str(int_part: u64, frac: u64, d: u8, negative: bool) -> String {
    let sign = if negative { "-" } else { "" };
    if d == 0 {
        format!("{sign}{int_part}")
    } else {
        let f = format!("{frac:0width$}", width = d as usize);
        format!("{sign}{int_part}.{}", &f[f.len() - d as usize..])
    }
}

fn pow10(n: u8) -> u64 {
    10u64.saturating_pow(u32::from(n.min(18)))
}

/// A random value of `ty` (not NULL); `charset` is the column's effective
/// character set.
fn random_value(rng: &mut Rng, ty: &Ty, charset: Charset, restrict: Restrict) -> Value {
    let core = restrict.core && !restrict.unique;
    match ty {
        Ty::Int { bytes, unsigned } => {
            let (lo, hi) = int_range(*bytes, *unsigned);
            if restrict.unique {
                return int_value(lo.max(0) + i128::from(rng.below(hi.min(1 << 31) as u64)));
            }
            if core {
                return int_value(i128::from(rng.below(100)).min(hi));
            }
            match weighted(rng, &[25, 15, 60]) {
                0 => int_value(*pick(rng, &[lo, hi, 0, 1, if *unsigned { 2 } else { -1 }])),
                1 => int_value(lo + (i128::from(rng.next()) % (hi - lo + 1))),
                _ => int_value((i128::from(rng.below(1000)) - 500).clamp(lo, hi)),
            }
        }
        Ty::Decimal { m, d, unsigned } => {
            let int_digits = m - d;
            let max_int = pow10(int_digits) - 1;
            if restrict.unique {
                let i = rng.below(max_int.min(1_000_000_000) + 1);
                return Value::from(decimal_str(i, rng.below(pow10(*d)), *d, false));
            }
            if core {
                return Value::from(decimal_str(rng.below(100.min(max_int + 1)), 0, *d, false));
            }
            let negative = !unsigned && rng.chance(30);
            if rng.chance(20) {
                let nines = |n: u8| if n == 0 { 0 } else { pow10(n) - 1 };
                Value::from(decimal_str(nines(int_digits), nines(*d), *d, negative))
            } else {
                let i = rng.below(max_int.min(1_000_000) + 1);
                Value::from(decimal_str(i, rng.below(pow10(*d)), *d, negative))
            }
        }
        Ty::Float | Ty::Double => {
            if restrict.unique {
                return Value::Double(rng.below(1 << 20) as f64 * 0.25);
            }
            if core || rng.chance(60) {
                return Value::Double(rng.below(400) as f64 * 0.25 - if core { 0.0 } else { 50.0 });
            }
            let edges: &[f64] = if *ty == Ty::Float {
                &[0.0, 1.5, -2.25, 1e38, -1e-30, 123_456.7]
            } else {
                &[
                    0.0,
                    1e300,
                    -2.2250738585072014e-308,
                    1.7976931348623157e308,
                    0.1,
                ]
            };
            Value::Double(*pick(rng, edges))
        }
        Ty::Bit(n) => {
            let max = if *n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
            if core {
                return Value::UInt(rng.below(2));
            }
            if restrict.unique {
                return Value::UInt(rng.next() & max);
            }
            let r = rng.next() & max;
            Value::UInt(*pick(rng, &[0, max, 1, r]))
        }
        Ty::Char(..) | Ty::Varchar(..) | Ty::Text(..) => {
            Value::from(string_value(rng, ty.char_len(), charset, restrict))
        }
        Ty::Binary(n) | Ty::Varbinary(n) => Value::Bytes(bytes_value(rng, *n as usize, restrict)),
        Ty::Blob(s) => Value::Bytes(bytes_value(
            rng,
            if *s == Size::Tiny { 255 } else { 100 },
            restrict,
        )),
        Ty::Date => {
            if core {
                return Value::from(date_str(between(rng, DAY_2001, DAY_2030_END)));
            }
            if restrict.unique {
                return Value::from(date_str(between(rng, DAY_1900, DAY_2100_END)));
            }
            match rng.below(20) {
                0 => Value::from("1000-01-01"),
                1 => Value::from("9999-12-31"),
                2 => Value::from("2024-02-29"),
                3 if restrict.zero_dates => Value::from("0000-00-00"),
                _ => Value::from(date_str(between(rng, DAY_1900, DAY_2100_END))),
            }
        }
        Ty::DateTime(fsp) | Ty::Timestamp(fsp) => {
            let ts = matches!(ty, Ty::Timestamp(_));
            let micros = rng.below(1_000_000) as u32;
            let digits = if !core && rng.chance(10) { 6 } else { *fsp };
            // TIMESTAMP values valid in every session time zone (-12:00 to
            // +13:00) the load uses.
            let (lo, hi) = if ts {
                (1, DAY_2038_JAN_18 - 1)
            } else if core {
                (DAY_2001, DAY_2030_END)
            } else {
                (DAY_1900, DAY_2100_END)
            };
            let (lo, hi) = if core && ts {
                (DAY_2001, DAY_2030_END)
            } else {
                (lo, hi)
            };
            let random = |rng: &mut Rng| {
                datetime_str(
                    between(rng, lo, hi) * 86_400 + rng.below(86_400) as i64,
                    micros,
                    digits,
                )
            };
            if core || restrict.unique {
                return Value::from(random(rng));
            }
            match rng.below(20) {
                0 if !ts => Value::from("1000-01-01 00:00:00"),
                1 if !ts => Value::from(format!("9999-12-31 23:59:59{}", fraction(999_999, *fsp))),
                2 if !ts => Value::from("2038-01-19 03:14:08"),
                0 | 1 if ts => Value::from(datetime_str(86_400, 0, *fsp)),
                2 if ts => Value::from(format!("2038-01-18 15:14:07{}", fraction(999_999, *fsp))),
                3 if restrict.zero_dates => Value::from("0000-00-00 00:00:00"),
                _ => Value::from(random(rng)),
            }
        }
        Ty::Time(fsp) => {
            let micros = rng.below(1_000_000) as u32;
            if core {
                return Value::from(time_str(rng.below(86_400) as i64, micros, *fsp));
            }
            if restrict.unique {
                return Value::from(time_str(between(rng, -3_000_000, 3_000_000), micros, *fsp));
            }
            match rng.below(10) {
                0 => Value::from("-838:59:59"),
                1 => Value::from("838:59:59"),
                2 => Value::from(format!("-00:00:01{}", fraction(500_000, *fsp))),
                3 => Value::from("24:00:00"),
                _ => Value::from(time_str(between(rng, -2_880_000, 2_880_000), micros, *fsp)),
            }
        }
        Ty::Year => {
            if core {
                return Value::Int(between(rng, 2001, 2030));
            }
            let r = between(rng, 1901, 2155);
            Value::Int(*pick(rng, &[0, 1901, 2155, 2000, r]))
        }
        Ty::Enum(values, c) => {
            let v = pick(rng, values).clone();
            if !core && c.is_some_and(|c| c.ci) && rng.chance(20) {
                Value::from(v.to_ascii_uppercase())
            } else {
                Value::from(v)
            }
        }
        Ty::Set(values, _) => {
            let mut members: Vec<&str> = values
                .iter()
                .filter(|_| rng.chance(40))
                .map(|s| s.as_str())
                .collect();
            if !core && rng.chance(30) {
                members.reverse();
            }
            Value::from(members.join(","))
        }
        Ty::Json => {
            let pool: &[&str] = if core {
                &["{}", "[]", "1"]
            } else {
                &[
                    r#"{"a": 1}"#,
                    r#"[1, 2.5, "x"]"#,
                    r#""é😀""#,
                    "null",
                    "{}",
                    r#"{"k": [true, false, null], "n": {"m": -0.5}}"#,
                    "123",
                ]
            };
            Value::from(*pick(rng, pool))
        }
        Ty::Point => Value::from(format!(
            "POINT({} {})",
            rng.below(200) as f64 * 0.5 - 50.0,
            rng.below(100) as i64 - 20
        )),
        Ty::Geometry => Value::from(*pick(
            rng,
            &[
                "POINT(1 2)",
                "LINESTRING(0 0,1 1,2 0)",
                "POLYGON((0 0,4 0,4 4,0 0))",
                "POINT(-1.5 10000000000)",
            ],
        )),
    }
}

/// The key value number `idx` of a key column: a fixed domain, so that keys
/// repeat (hot keys, re-inserts) and, in a case-insensitive or PAD SPACE
/// collation, different bytes make the same key. `core` values never
/// collide under any collation and fit the plausible new types.
fn key_value(ty: &Ty, idx: u64, core: bool, charset: Charset) -> Value {
    let i = idx as i64;
    match ty {
        Ty::Int { bytes, unsigned } => {
            let (lo, hi) = int_range(*bytes, *unsigned);
            if core {
                return int_value(i128::from(idx));
            }
            if *unsigned && *bytes == 8 && idx % 7 == 3 {
                return int_value(hi - i128::from(idx));
            }
            let x = if !unsigned && idx % 2 == 1 {
                -i128::from(idx)
            } else {
                i128::from(idx)
            };
            int_value(x.clamp(lo, hi))
        }
        Ty::Decimal { m, d, unsigned } => {
            let max_int = pow10(m - d) - 1;
            if core {
                return Value::from(decimal_str(idx.min(max_int), 0, *d, false));
            }
            let negative = !unsigned && idx % 2 == 1;
            Value::from(decimal_str(
                (idx / 3).min(max_int),
                idx % 3 * 7,
                *d,
                negative,
            ))
        }
        Ty::Float | Ty::Double => Value::Double(if !core && idx % 2 == 1 {
            -(i as f64) * 0.5
        } else {
            i as f64 * 0.5
        }),
        Ty::Bit(n) => Value::UInt(if *n >= 64 { idx } else { idx % (1 << n) }),
        Ty::Char(..) | Ty::Varchar(..) | Ty::Text(..) => {
            if core {
                return Value::from(if idx % 3 == 1 {
                    format!("K{idx}")
                } else {
                    format!("k{idx}")
                });
            }
            let n = idx / 4;
            let accented = if charset >= Charset::Latin1 {
                "ké"
            } else {
                "ke"
            };
            Value::from(match idx % 4 {
                0 => format!("ke{n}"),
                1 => format!("KE{n}"),
                2 => format!("ke{n} "),
                _ => format!("{accented}{n}"),
            })
        }
        Ty::Binary(_) | Ty::Varbinary(_) | Ty::Blob(_) => {
            let mut b = vec![0x10 + (idx >> 8) as u8, idx as u8];
            if !core && idx.is_multiple_of(3) {
                b.push(0);
            }
            Value::Bytes(b)
        }
        Ty::Date => Value::from(date_str(DAY_2000 + i * 3)),
        Ty::DateTime(fsp) => Value::from(datetime_str(
            DAY_2020 * 86_400 + i * 3599,
            (idx * 7919 % 1_000_000) as u32,
            *fsp,
        )),
        Ty::Timestamp(fsp) => Value::from(datetime_str(
            (DAY_2020 + 400) * 86_400 + i * 3599,
            (idx * 7919 % 1_000_000) as u32,
            *fsp,
        )),
        Ty::Time(fsp) => {
            let secs = i * 3671 % 3_000_000;
            let secs = if !core && idx % 2 == 1 { -secs } else { secs };
            Value::from(time_str(secs, (idx * 7919 % 1_000_000) as u32, *fsp))
        }
        Ty::Year => Value::Int(if idx == 0 && !core { 0 } else { 1901 + i % 250 }),
        Ty::Enum(values, c) => {
            let v = &values[(idx % values.len() as u64) as usize];
            if !core && c.is_some_and(|c| c.ci) && (idx / values.len() as u64) % 2 == 1 {
                Value::from(v.to_ascii_uppercase())
            } else {
                Value::from(v.clone())
            }
        }
        Ty::Set(values, _) => {
            let mask = idx % (1 << values.len());
            let members: Vec<&str> = values
                .iter()
                .enumerate()
                .filter(|(b, _)| mask & (1 << b) != 0)
                .map(|(_, v)| v.as_str())
                .collect();
            Value::from(members.join(","))
        }
        Ty::Json | Ty::Point | Ty::Geometry => Value::NULL,
    }
}

/// A DEFAULT literal valid for `ty`.
fn default_literal(rng: &mut Rng, ty: &Ty, charset: Charset) -> Option<String> {
    Some(match ty {
        Ty::Int { .. } => pick(rng, &["0", "1", "7", "42"]).to_string(),
        Ty::Decimal { m, d, .. } => {
            if m - d >= 1 {
                decimal_str(1, 5, *d, false)
            } else {
                "0".into()
            }
        }
        Ty::Float | Ty::Double => "0.5".into(),
        Ty::Bit(_) => "b'1'".into(),
        Ty::Char(..) | Ty::Varchar(..) | Ty::Text(..) => {
            let all: Vec<&str> = ["", "x", "dflt", "é"]
                .into_iter()
                .filter(|s| charset.holds(s) && s.chars().count() <= ty.char_len())
                .collect();
            let chosen: &&str = pick(rng, &all);
            lit(chosen)
        }
        Ty::Binary(_) | Ty::Varbinary(_) | Ty::Blob(_) => "'x'".into(),
        Ty::Date => "'2001-02-03'".into(),
        Ty::DateTime(_) | Ty::Timestamp(_) => "'2001-02-03 04:05:06'".into(),
        Ty::Time(_) => "'01:02:03'".into(),
        Ty::Year => "2001".into(),
        Ty::Enum(v, _) => lit(pick(rng, v).as_str()),
        Ty::Set(v, _) => lit(if rng.chance(50) { "" } else { &v[0] }),
        Ty::Json => "'{}'".into(),
        Ty::Point | Ty::Geometry => return None,
    })
}

// ---- tables ----------------------------------------------------------------

/// A column.
#[derive(Clone, Debug)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its name in the original table (None: added by the ALTER).
    pub orig: Option<String>,
    /// Its type.
    pub ty: Ty,
    /// NULL allowed.
    pub nullable: bool,
    /// DEFAULT literal, if any.
    pub default: Option<String>,
    /// A generated column: (expression, stored, source column).
    pub generated: Option<(String, bool, String)>,
    /// MariaDB INVISIBLE.
    pub invisible: bool,
    /// AUTO_INCREMENT.
    pub auto_increment: bool,
}

/// Kinds of index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexKind {
    /// PRIMARY KEY.
    Primary,
    /// UNIQUE KEY.
    Unique,
    /// KEY.
    Plain,
}

/// An index: its name and (column, prefix length) parts.
#[derive(Clone, Debug)]
pub struct Index {
    /// Name (`PRIMARY` for the primary key).
    pub name: String,
    /// Kind.
    pub kind: IndexKind,
    /// Columns and prefix lengths.
    pub parts: Vec<(String, Option<u16>)>,
}

impl Index {
    fn parts_sql(&self) -> String {
        self.parts
            .iter()
            .map(|(c, p)| match p {
                Some(p) => format!("{}({p})", q(c)),
                None => q(c),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn sql(&self) -> String {
        match self.kind {
            IndexKind::Primary => format!("PRIMARY KEY ({})", self.parts_sql()),
            IndexKind::Unique => format!("UNIQUE KEY {} ({})", q(&self.name), self.parts_sql()),
            IndexKind::Plain => format!("KEY {} ({})", q(&self.name), self.parts_sql()),
        }
    }

    fn has(&self, column: &str) -> bool {
        self.parts
            .iter()
            .any(|(c, _)| c.eq_ignore_ascii_case(column))
    }
}

/// A table: columns, indexes and options.
#[derive(Clone, Debug)]
pub struct Table {
    /// Columns in order.
    pub columns: Vec<Column>,
    /// The primary key first, if any.
    pub indexes: Vec<Index>,
    /// DEFAULT CHARSET/COLLATE of the table (None: the database's).
    pub collation: Coll,
    /// ROW_FORMAT, if set.
    pub row_format: Option<&'static str>,
    /// AUTO_INCREMENT table option, if set.
    pub auto_increment: Option<u64>,
    /// PARTITION BY KEY () PARTITIONS n.
    pub partitions: Option<u32>,
}

impl Table {
    /// The column named `name` (names are case-insensitive).
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// The table's default collation.
    pub fn default_collation(&self) -> &'static Collation {
        self.collation.unwrap_or_else(database_collation)
    }

    /// The effective character set of a column (binary types: utf8mb4).
    pub fn charset_of(&self, ty: &Ty) -> Charset {
        match ty.string_collation() {
            Some(Some(c)) => c.charset,
            Some(None) => self.default_collation().charset,
            None => Charset::Utf8mb4,
        }
    }

    /// The primary key.
    pub fn primary(&self) -> Option<&Index> {
        self.indexes.iter().find(|i| i.kind == IndexKind::Primary)
    }

    /// The key the load addresses rows by: the primary key, or else the
    /// first unique key over whole NOT NULL columns.
    pub fn row_key(&self) -> Option<&Index> {
        self.primary().or_else(|| {
            self.indexes.iter().find(|i| {
                i.kind == IndexKind::Unique
                    && i.parts
                        .iter()
                        .all(|(c, p)| p.is_none() && self.column(c).is_some_and(|c| !c.nullable))
            })
        })
    }

    fn name_taken(&self, name: &str) -> bool {
        self.column(name).is_some()
    }

    fn index_named(&self, name: &str) -> Option<usize> {
        self.indexes
            .iter()
            .position(|i| i.name.eq_ignore_ascii_case(name))
    }

    /// The column as written in CREATE TABLE / ADD / MODIFY.
    pub fn column_sql(&self, c: &Column) -> String {
        let mut s = format!("{} {}", q(&c.name), c.ty.sql());
        if let Some((expr, stored, _)) = &c.generated {
            s += &format!(
                " AS ({expr}) {}",
                if *stored { "PERSISTENT" } else { "VIRTUAL" }
            );
        } else {
            s += if c.nullable { " NULL" } else { " NOT NULL" };
            if let Some(d) = &c.default {
                s += &format!(" DEFAULT {d}");
            }
            if c.auto_increment {
                s += " AUTO_INCREMENT";
            }
        }
        if c.invisible {
            s += " INVISIBLE";
        }
        s
    }

    /// Table options after the closing parenthesis.
    fn options_sql(&self) -> String {
        let mut s = " ENGINE=InnoDB".to_string();
        if let Some(c) = self.collation {
            s += &format!(" DEFAULT CHARSET={} COLLATE={}", c.charset.name(), c.name);
        }
        if let Some(n) = self.auto_increment {
            s += &format!(" AUTO_INCREMENT={n}");
        }
        if let Some(r) = self.row_format {
            s += &format!(" ROW_FORMAT={r}");
        }
        if let Some(n) = self.partitions {
            s += &format!(" PARTITION BY KEY () PARTITIONS {n}");
        }
        s
    }

    /// CREATE TABLE with `{T}` for the table's name.
    pub fn create_sql(&self) -> String {
        let mut defs: Vec<String> = self.columns.iter().map(|c| self.column_sql(c)).collect();
        defs.extend(self.indexes.iter().map(Index::sql));
        format!(
            "CREATE TABLE {{T}} (\n  {}\n){}",
            defs.join(",\n  "),
            self.options_sql()
        )
    }

    /// One line: column count, key, options.
    pub fn summary(&self) -> String {
        let key = match self.row_key() {
            Some(k) => format!(
                "{}({})",
                if k.kind == IndexKind::Primary {
                    "PK"
                } else {
                    "UNIQUE NOT NULL"
                },
                k.parts
                    .iter()
                    .map(|(c, _)| {
                        let col = self.column(c).expect("key column");
                        let coll = match col.ty.string_collation() {
                            Some(Some(c)) => format!(" {}", c.name),
                            Some(None) => format!(" {}", self.default_collation().name),
                            None => String::new(),
                        };
                        let ty = col.ty.sql();
                        let short = ty.split(" CHARACTER SET").next().unwrap_or(&ty);
                        format!("{} {short}{coll}", col.name)
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => "no key".into(),
        };
        let flags: Vec<&str> = [
            (
                self.columns.iter().any(|c| c.generated.is_some()),
                "generated",
            ),
            (self.columns.iter().any(|c| c.invisible), "invisible"),
            (
                self.columns.iter().any(|c| c.auto_increment),
                "auto_increment",
            ),
            (self.partitions.is_some(), "partitioned"),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, f)| f)
        .collect();
        format!(
            "{} cols, {key}, +{} idx{}{}",
            self.columns.len(),
            self.indexes.len() - usize::from(self.primary().is_some()),
            if flags.is_empty() { "" } else { ", " },
            flags.join(", ")
        )
    }
}

const NAMES: &[&str] = &[
    "id",
    "a",
    "b",
    "c",
    "d",
    "k",
    "v",
    "name",
    "code",
    "created_at",
    "amount",
    "price",
    "status",
    "flags",
    "data",
    "note",
    "ts",
    "order",
    "key",
    "group",
    "select",
    "Col Space",
    "ünï",
    "x`y",
    "MiXeD",
    "tag",
    "when",
];

fn fresh_name(rng: &mut Rng, table: &Table, prefix: &str) -> String {
    let base = format!("{prefix}{}", pick(rng, NAMES));
    let mut name = base.clone();
    let mut n = 1;
    while table.name_taken(&name) {
        name = format!("{base}_{n}");
        n += 1;
    }
    name
}

fn fresh_index_name(rng: &mut Rng, table: &Table, prefix: &str) -> String {
    let base = if rng.chance(10) {
        format!("{prefix} ix`{}", rng.below(100))
    } else {
        format!("{prefix}{}", rng.below(1000))
    };
    let mut name = base.clone();
    let mut n = 1;
    while table.index_named(&name).is_some() || name.eq_ignore_ascii_case("PRIMARY") {
        name = format!("{base}_{n}");
        n += 1;
    }
    name
}

/// An index part for a column (with a prefix length when one is needed).
fn part(c: &Column) -> (String, Option<u16>) {
    let prefix = if c.ty.needs_prefix() {
        Some(10)
    } else if let Ty::Varchar(n, _) | Ty::Char(n, _) = c.ty {
        // Stay below InnoDB's 3072-byte key limit with 4-byte characters.
        (n > 700).then_some(100)
    } else {
        None
    };
    (c.name.clone(), prefix)
}

/// Generates a table from `rng`.
pub fn generate_table(rng: &mut Rng) -> Table {
    let collation = if rng.chance(40) {
        None
    } else {
        Some(random_collation(rng))
    };
    let mut table = Table {
        columns: vec![],
        indexes: vec![],
        collation,
        row_format: None,
        auto_increment: None,
        partitions: None,
    };
    let charset = table.default_collation().charset;
    // The key shape: int PK, composite PK, single non-int PK, or a unique
    // NOT NULL key without a PK.
    let shape = weighted(rng, &[30, 35, 15, 20]);
    let key_columns = match shape {
        0 => 1,
        1 => 2 + rng.below(2) as usize,
        2 => 1,
        _ => 1 + rng.below(2) as usize,
    };
    let mut key_names = vec![];
    for i in 0..key_columns {
        let ty = if shape == 0 {
            int_ty(rng)
        } else if shape == 2 {
            loop {
                let t = key_ty(rng, charset);
                if !t.is_int() {
                    break t;
                }
            }
        } else if i == 0 && shape == 1 && rng.chance(50) {
            // A low-cardinality first column.
            let choices = [
                enum_ty(rng, charset, 25),
                Ty::Int {
                    bytes: 1,
                    unsigned: true,
                },
                Ty::Char(8, Some(collation_in(rng, Charset::Latin1))),
            ];
            pick(rng, &choices).clone()
        } else {
            key_ty(rng, charset)
        };
        let name = fresh_name(rng, &table, "");
        table.columns.push(Column {
            name: name.clone(),
            orig: Some(name.clone()),
            ty,
            nullable: false,
            default: None,
            generated: None,
            invisible: false,
            auto_increment: false,
        });
        key_names.push(name);
    }
    if shape == 0 && rng.chance(40) {
        table.columns[0].auto_increment = true;
        if rng.chance(40) {
            table.auto_increment = Some(1 + rng.below(5000));
        }
    }
    let total = (2 + rng.below(11) as usize).max(key_columns + 1);
    while table.columns.len() < total {
        let ty = any_ty(rng, charset);
        let name = fresh_name(rng, &table, "");
        let nullable = rng.chance(55);
        let col_charset = table.charset_of(&ty);
        let default = if rng.chance(40) || (!nullable && rng.chance(50)) {
            default_literal(rng, &ty, col_charset)
        } else {
            None
        };
        let invisible = rng.chance(8) && (nullable || default.is_some());
        table.columns.push(Column {
            orig: Some(name.clone()),
            name,
            ty,
            nullable,
            default,
            generated: None,
            invisible,
            auto_increment: false,
        });
    }
    // A generated column now and then, over an integer or short string.
    if rng.chance(25) {
        let sources: Vec<Column> = table
            .columns
            .iter()
            .filter(|c| {
                c.ty.is_int() || matches!(c.ty, Ty::Varchar(n, _) | Ty::Char(n, _) if n < 100)
            })
            .cloned()
            .collect();
        if !sources.is_empty() {
            let src = pick(rng, &sources).clone();
            let stored = rng.chance(50);
            let (ty, expr) = if src.ty.is_int() {
                (
                    Ty::Int {
                        bytes: 8,
                        unsigned: false,
                    },
                    format!("{} DIV 2", q(&src.name)),
                )
            } else {
                let coll = src.ty.string_collation().flatten();
                (
                    Ty::Varchar(src.ty.char_len() as u16 + 1, coll),
                    format!("CONCAT({}, '!')", q(&src.name)),
                )
            };
            let name = fresh_name(rng, &table, "g_");
            table.columns.push(Column {
                orig: Some(name.clone()),
                name,
                ty,
                nullable: true,
                default: None,
                generated: Some((expr, stored, src.name.clone())),
                invisible: rng.chance(20),
                auto_increment: false,
            });
        }
    }
    // Column order: the key columns anywhere.
    for i in (1..table.columns.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        table.columns.swap(i, j);
    }
    let key_parts = key_names.iter().map(|n| (n.clone(), None)).collect();
    if shape == 3 {
        let name = fresh_index_name(rng, &table, "uk_");
        table.indexes.push(Index {
            name,
            kind: IndexKind::Unique,
            parts: key_parts,
        });
    } else {
        table.indexes.push(Index {
            name: "PRIMARY".into(),
            kind: IndexKind::Primary,
            parts: key_parts,
        });
    }
    // Secondary indexes.
    for _ in 0..weighted(rng, &[40, 35, 25]) {
        let candidates: Vec<Column> = table
            .columns
            .iter()
            .filter(|c| !c.ty.is_spatial() && c.generated.as_ref().is_none_or(|g| g.1))
            .cloned()
            .collect();
        let n = 1 + rng.below(2) as usize;
        let mut parts: Vec<(String, Option<u16>)> = vec![];
        for _ in 0..n {
            let c = pick(rng, &candidates);
            if !parts.iter().any(|(p, _)| p == &c.name) {
                parts.push(part(c));
            }
        }
        let unique = rng.chance(30);
        let name = fresh_index_name(rng, &table, if unique { "uq_" } else { "ix_" });
        table.indexes.push(Index {
            name,
            kind: if unique {
                IndexKind::Unique
            } else {
                IndexKind::Plain
            },
            parts,
        });
    }
    if rng.chance(10) {
        table.row_format = Some(*pick(rng, &["DYNAMIC", "COMPACT", "REDUNDANT"]));
    }
    if rng.chance(10)
        && table.primary().is_some()
        && !table.indexes.iter().any(|i| i.kind == IndexKind::Unique)
        && !table.columns.iter().any(|c| c.ty.is_spatial())
    {
        table.partitions = Some(2 + rng.below(3) as u32);
    }
    table
}

// ---- ALTERs ----------------------------------------------------------------

/// An ALTER and what it does to the original table's columns.
#[derive(Clone, Debug, Default)]
pub struct Alter {
    /// The specification after `ALTER TABLE t`.
    pub sql: String,
    /// Original columns whose definition or name changes (the load cannot
    /// write them after the swap and expect the control's result).
    pub touched: BTreeSet<String>,
    /// Original columns the ALTER drops.
    pub dropped: BTreeSet<String>,
    /// Value restrictions, by original column, that keep the ALTER valid.
    pub restrict: BTreeMap<String, Restrict>,
    /// The ALTER sets the AUTO_INCREMENT table option.
    pub sets_auto_increment: bool,
}

impl Alter {
    fn restrict(&mut self, col: &Column, f: impl FnOnce(&mut Restrict)) {
        if let Some(orig) = &col.orig {
            f(self.restrict.entry(orig.clone()).or_default());
        }
    }

    fn touch(&mut self, col: &Column) {
        if let Some(orig) = &col.orig {
            self.touched.insert(orig.clone());
        }
    }
}

/// A new type for a column of type `ty`: what DBAs do (widen, narrow,
/// change collation or charset, switch families).
fn mutate_type(rng: &mut Rng, ty: &Ty, is_key: bool, table_charset: Charset) -> Ty {
    let new_coll = |rng: &mut Rng, c: Coll| -> Coll {
        let cs = c.map_or(table_charset, |c| c.charset);
        if rng.chance(60) {
            Some(collation_in(rng, cs))
        } else {
            Some(random_collation(rng))
        }
    };
    match ty {
        Ty::Int { bytes, unsigned } => match rng.below(if is_key { 5 } else { 8 }) {
            0 => Ty::Int {
                bytes: match bytes {
                    1 => 2,
                    2 => 3,
                    3 => 4,
                    _ => 8,
                },
                unsigned: *unsigned,
            },
            1 => Ty::Int {
                bytes: (*bytes).min(4) / 2 + 1,
                unsigned: *unsigned,
            },
            2 => Ty::Int {
                bytes: *bytes,
                unsigned: !unsigned,
            },
            3 => Ty::Int {
                bytes: 8,
                unsigned: *unsigned,
            },
            4 => Ty::Decimal {
                m: 22,
                d: if is_key { 0 } else { 2 },
                unsigned: false,
            },
            5 => Ty::Varchar(30, None),
            6 => Ty::Double,
            _ => Ty::Varchar(25, Some(collation_in(rng, Charset::Utf8mb4))),
        },
        Ty::Decimal { m, d, unsigned } => match rng.below(6) {
            0 => Ty::Decimal {
                m: (m + 4).min(65),
                d: (d + 1).min(30),
                unsigned: *unsigned,
            },
            1 => Ty::Decimal {
                m: (*m).max(d + 3) - 2,
                d: *d,
                unsigned: *unsigned,
            },
            2 => Ty::Decimal {
                m: *m,
                d: d.saturating_sub(1),
                unsigned: *unsigned,
            },
            3 if !is_key => Ty::Double,
            4 => Ty::Varchar(70, None),
            _ => Ty::Int {
                bytes: 8,
                unsigned: false,
            },
        },
        Ty::Float => pick(
            rng,
            &[
                Ty::Double,
                Ty::Decimal {
                    m: 30,
                    d: 6,
                    unsigned: false,
                },
            ],
        )
        .clone(),
        Ty::Double => pick(
            rng,
            &[
                Ty::Float,
                Ty::Decimal {
                    m: 40,
                    d: 10,
                    unsigned: false,
                },
            ],
        )
        .clone(),
        Ty::Bit(_) => pick(
            rng,
            &[
                Ty::Bit(64),
                Ty::Int {
                    bytes: 8,
                    unsigned: true,
                },
            ],
        )
        .clone(),
        Ty::Char(n, c) | Ty::Varchar(n, c) => {
            let is_char = matches!(ty, Ty::Char(..));
            let min = if is_key { 8 } else { 4 };
            match rng.below(if is_key { 6 } else { 9 }) {
                0 => Ty::Varchar((n * 2).min(700), *c),
                1 => Ty::Varchar((n / 2).max(min), *c),
                2 | 3 => ty.with_collation(new_coll(rng, *c)),
                4 => {
                    let nc = new_coll(rng, *c);
                    if is_char {
                        Ty::Varchar(*n, nc)
                    } else {
                        Ty::Char((*n).min(255), nc)
                    }
                }
                5 => Ty::Varbinary((n * 4).min(1000)),
                6 => Ty::Text(Size::Regular, *c),
                7 => Ty::Text(Size::Medium, new_coll(rng, *c)),
                _ => Ty::Int {
                    bytes: 4,
                    unsigned: false,
                },
            }
        }
        Ty::Text(s, c) => match rng.below(5) {
            0 => Ty::Text(Size::Long, *c),
            1 => Ty::Varchar(if *s == Size::Tiny { 255 } else { 500 }, *c),
            2 | 3 => ty.with_collation(new_coll(rng, *c)),
            _ => Ty::Blob(Size::Long),
        },
        Ty::Binary(n) | Ty::Varbinary(n) => match rng.below(3) {
            0 => Ty::Varbinary((n * 2).min(1000)),
            1 => Ty::Binary((n + 4).min(255)),
            _ if is_key => Ty::Varbinary(n + 1),
            _ => Ty::Blob(Size::Regular),
        },
        Ty::Blob(_) => pick(rng, &[Ty::Blob(Size::Long), Ty::Varbinary(300)]).clone(),
        Ty::Date => pick(
            rng,
            &[
                Ty::DateTime(0),
                Ty::DateTime(3),
                Ty::Timestamp(0),
                Ty::Varchar(20, None),
            ],
        )
        .clone(),
        Ty::DateTime(f) => pick(
            rng,
            &[
                Ty::Timestamp(*f),
                Ty::Timestamp(*f),
                Ty::DateTime(6),
                Ty::DateTime(0),
                if is_key { Ty::DateTime(6) } else { Ty::Date },
                Ty::Varchar(40, None),
            ],
        )
        .clone(),
        Ty::Timestamp(f) => pick(
            rng,
            &[
                Ty::DateTime(*f),
                Ty::DateTime(*f),
                Ty::Timestamp(6),
                Ty::Timestamp(0),
            ],
        )
        .clone(),
        Ty::Time(f) => pick(
            rng,
            &[
                Ty::Time(6),
                Ty::Time(if is_key { 3 } else { 0 }),
                Ty::Time(*f.max(&3)),
                Ty::Varchar(20, None),
            ],
        )
        .clone(),
        Ty::Year => pick(
            rng,
            &[
                Ty::Int {
                    bytes: 2,
                    unsigned: false,
                },
                Ty::Varchar(4, None),
            ],
        )
        .clone(),
        Ty::Enum(v, c) => match rng.below(if is_key { 2 } else { 4 }) {
            0 => {
                let cs = c.map_or(table_charset, |c| c.charset);
                let mut v = v.clone();
                if let Some(w) = ENUM_WORDS
                    .iter()
                    .find(|w| cs.holds(w) && !v.iter().any(|x| x.eq_ignore_ascii_case(w)))
                {
                    v.push(w.to_string());
                }
                Ty::Enum(v, *c)
            }
            1 => {
                let cs = c.map_or(table_charset, |c| c.charset);
                Ty::Enum(v.clone(), Some(collation_in(rng, cs)))
            }
            2 => {
                let mut v = v.clone();
                v.reverse();
                Ty::Enum(v, *c)
            }
            _ => Ty::Varchar(20, *c),
        },
        Ty::Set(v, c) => {
            if rng.chance(50) {
                let mut v = v.clone();
                if let Some(w) = SET_WORDS
                    .iter()
                    .find(|w| !v.iter().any(|x| x.eq_ignore_ascii_case(w)))
                {
                    v.push(w.to_string());
                }
                Ty::Set(v, *c)
            } else {
                Ty::Varchar(60, *c)
            }
        }
        Ty::Json => Ty::Text(Size::Long, Some(collation_named("utf8mb4_bin"))),
        Ty::Point | Ty::Geometry => Ty::Geometry,
    }
}

/// What an ALTER may be built from, one pick per operation.
#[derive(Clone, Copy)]
enum Op {
    AddColumn,
    DropColumn,
    RenameColumn,
    ChangeColumn,
    ModifyType,
    ModifyKeyType,
    Collation,
    Reorder,
    Default,
    PrimaryKey,
    AddUnique,
    AddIndex,
    DropIndex,
    TableOption,
    Convert,
}

const OPS: &[(Op, u64)] = &[
    (Op::AddColumn, 14),
    (Op::DropColumn, 8),
    (Op::RenameColumn, 5),
    (Op::ChangeColumn, 5),
    (Op::ModifyType, 14),
    (Op::ModifyKeyType, 8),
    (Op::Collation, 8),
    (Op::Reorder, 6),
    (Op::Default, 4),
    (Op::PrimaryKey, 10),
    (Op::AddUnique, 6),
    (Op::AddIndex, 6),
    (Op::DropIndex, 4),
    (Op::TableOption, 8),
    (Op::Convert, 3),
];

/// Builds ALTERs, keeping the table as it would be after each operation.
struct AlterBuilder<'a> {
    rng: &'a mut Rng,
    cur: Table,
    parts: Vec<String>,
    alter: Alter,
    /// Columns (current names, lower case) an earlier operation used.
    used: BTreeSet<String>,
    /// Keep the data valid for the ALTER (most seeds).
    valid: bool,
}

impl AlterBuilder<'_> {
    fn is_used(&self, name: &str) -> bool {
        self.used.contains(&name.to_lowercase())
    }

    fn use_col(&mut self, name: &str) {
        self.used.insert(name.to_lowercase());
    }

    fn in_key(&self, name: &str) -> bool {
        self.cur
            .indexes
            .iter()
            .any(|i| i.kind != IndexKind::Plain && i.has(name))
    }

    fn gen_source(&self, name: &str) -> bool {
        self.cur.columns.iter().any(|c| {
            c.generated
                .as_ref()
                .is_some_and(|g| g.2.eq_ignore_ascii_case(name))
        })
    }

    /// A column not used yet that satisfies `f`.
    fn choose(&mut self, f: impl Fn(&Self, &Column) -> bool) -> Option<Column> {
        let all: Vec<Column> = self
            .cur
            .columns
            .iter()
            .filter(|c| !self.is_used(&c.name) && f(self, c))
            .cloned()
            .collect();
        if all.is_empty() {
            None
        } else {
            Some(pick(self.rng, &all).clone())
        }
    }

    fn position_sql(&mut self, name: &str) -> String {
        match self.rng.below(4) {
            0 => " FIRST".into(),
            1 => {
                let others: Vec<String> = self
                    .cur
                    .columns
                    .iter()
                    .filter(|c| !c.name.eq_ignore_ascii_case(name))
                    .map(|c| c.name.clone())
                    .collect();
                if others.is_empty() {
                    String::new()
                } else {
                    format!(" AFTER {}", q(pick(self.rng, &others).as_str()))
                }
            }
            _ => String::new(),
        }
    }

    fn op(&mut self, op: Op) -> bool {
        let charset = self.cur.default_collation().charset;
        match op {
            Op::AddColumn => {
                let mut ty = any_ty(self.rng, charset);
                if self.cur.partitions.is_some() && ty.is_spatial() {
                    ty = Ty::Json; // partitioned tables hold no spatial types
                }
                let name = fresh_name(self.rng, &self.cur, "n_");
                let nullable = self.rng.chance(50);
                let col_charset = self.cur.charset_of(&ty);
                // Nullable without a default, or now and then NOT NULL
                // without one (existing rows get the server's implicit value).
                let no_default = if nullable {
                    self.rng.chance(50)
                } else {
                    self.rng.chance(10)
                };
                let default = if no_default {
                    None
                } else {
                    default_literal(self.rng, &ty, col_charset)
                };
                let col = Column {
                    name: name.clone(),
                    orig: None,
                    ty,
                    nullable,
                    default,
                    generated: None,
                    invisible: self.rng.chance(5) && nullable,
                    auto_increment: false,
                };
                let pos = self.position_sql(&name);
                self.parts
                    .push(format!("ADD COLUMN {}{pos}", self.cur.column_sql(&col)));
                self.use_col(&name);
                self.cur.columns.push(col);
                true
            }
            Op::DropColumn => {
                let allow_key = self.rng.chance(10);
                let Some(col) =
                    self.choose(|b, c| (allow_key || !b.in_key(&c.name)) && !b.gen_source(&c.name))
                else {
                    return false;
                };
                if self.cur.columns.len() < 2 {
                    return false;
                }
                self.parts.push(format!("DROP COLUMN {}", q(&col.name)));
                self.use_col(&col.name);
                if let Some(orig) = &col.orig {
                    self.alter.dropped.insert(orig.clone());
                }
                self.alter.touch(&col);
                let i = self.cur.position(&col.name).expect("column");
                self.cur.columns.remove(i);
                for idx in &mut self.cur.indexes {
                    idx.parts
                        .retain(|(c, _)| !c.eq_ignore_ascii_case(&col.name));
                }
                self.cur.indexes.retain(|i| !i.parts.is_empty());
                true
            }
            Op::RenameColumn | Op::ChangeColumn => {
                let Some(col) = self.choose(|b, c| !b.gen_source(&c.name)) else {
                    return false;
                };
                let new_name = fresh_name(self.rng, &self.cur, "r_");
                let i = self.cur.position(&col.name).expect("column");
                let mut new = col.clone();
                new.name = new_name.clone();
                if matches!(op, Op::RenameColumn) {
                    self.parts.push(format!(
                        "RENAME COLUMN {} TO {}",
                        q(&col.name),
                        q(&new_name)
                    ));
                } else {
                    if col.generated.is_none() && self.rng.chance(60) {
                        let key = self.in_key(&col.name);
                        new.ty = mutate_type(self.rng, &col.ty, key, charset);
                        self.retype(&mut new);
                        if self.valid {
                            self.alter.restrict(&col, |r| r.core = true);
                        }
                    }
                    let pos = self.position_sql(&col.name);
                    self.parts.push(format!(
                        "CHANGE COLUMN {} {}{pos}",
                        q(&col.name),
                        self.cur.column_sql(&new)
                    ));
                }
                self.alter.touch(&col);
                self.use_col(&col.name);
                self.use_col(&new_name);
                for idx in &mut self.cur.indexes {
                    for (c, _) in &mut idx.parts {
                        if c.eq_ignore_ascii_case(&col.name) {
                            c.clone_from(&new_name);
                        }
                    }
                }
                self.cur.columns[i] = new;
                true
            }
            Op::ModifyType | Op::ModifyKeyType | Op::Collation => {
                let want_key = matches!(op, Op::ModifyKeyType);
                let want_string = matches!(op, Op::Collation);
                let Some(col) = self.choose(|b, c| {
                    c.generated.is_none()
                        && (!want_key || b.in_key(&c.name))
                        && (!want_string || c.ty.string_collation().is_some())
                }) else {
                    return false;
                };
                let key = self.in_key(&col.name);
                let mut new = col.clone();
                if want_string {
                    let c = col.ty.string_collation().flatten();
                    let cs = c.map_or(charset, |c| c.charset);
                    let nc = if self.rng.chance(70) {
                        collation_in(self.rng, cs)
                    } else {
                        random_collation(self.rng)
                    };
                    new.ty = col.ty.with_collation(Some(nc));
                } else {
                    new.ty = mutate_type(self.rng, &col.ty, key, charset);
                }
                self.retype(&mut new);
                if !key && self.rng.chance(10) {
                    new.nullable = !col.nullable;
                    if !new.nullable && new.default.as_deref() == Some("NULL") {
                        new.default = None;
                    }
                }
                if self.valid {
                    let no_null = !new.nullable;
                    self.alter.restrict(&col, |r| {
                        r.core = true;
                        r.no_null |= no_null;
                    });
                }
                let pos = if self.rng.chance(20) {
                    self.position_sql(&col.name)
                } else {
                    String::new()
                };
                self.parts
                    .push(format!("MODIFY COLUMN {}{pos}", self.cur.column_sql(&new)));
                self.alter.touch(&col);
                self.use_col(&col.name);
                let i = self.cur.position(&col.name).expect("column");
                self.cur.columns[i] = new;
                true
            }
            Op::Reorder => {
                let Some(col) = self.choose(|_, _| true) else {
                    return false;
                };
                let pos = loop {
                    let p = self.position_sql(&col.name);
                    if !p.is_empty() {
                        break p;
                    }
                };
                self.parts
                    .push(format!("MODIFY COLUMN {}{pos}", self.cur.column_sql(&col)));
                self.alter.touch(&col);
                self.use_col(&col.name);
                true
            }
            Op::Default => {
                let Some(col) = self.choose(|_, c| {
                    c.generated.is_none() && !c.auto_increment && !c.ty.is_spatial()
                }) else {
                    return false;
                };
                let cs = self.cur.charset_of(&col.ty);
                let i = self.cur.position(&col.name).expect("column");
                if col.default.is_some() && self.rng.chance(40) {
                    self.parts
                        .push(format!("ALTER COLUMN {} DROP DEFAULT", q(&col.name)));
                    self.cur.columns[i].default = None;
                } else {
                    let d = default_literal(self.rng, &col.ty, cs).expect("default");
                    self.parts
                        .push(format!("ALTER COLUMN {} SET DEFAULT {d}", q(&col.name)));
                    self.cur.columns[i].default = Some(d);
                }
                self.alter.touch(&col);
                self.use_col(&col.name);
                true
            }
            Op::PrimaryKey => self.primary_key(),
            Op::AddUnique | Op::AddIndex => {
                let unique = matches!(op, Op::AddUnique);
                let candidates: Vec<Column> = self
                    .cur
                    .columns
                    .iter()
                    .filter(|c| !c.ty.is_spatial() && c.generated.as_ref().is_none_or(|g| g.1))
                    .cloned()
                    .collect();
                let mut parts: Vec<(String, Option<u16>)> = vec![];
                for _ in 0..1 + self.rng.below(2) {
                    let c = pick(self.rng, &candidates).clone();
                    if !parts.iter().any(|(p, _)| p == &c.name) {
                        parts.push(part(&c));
                    }
                }
                if unique {
                    let with_key = self.rng.chance(40);
                    if with_key {
                        // Unique by construction: the row key appended.
                        if let Some(k) = self.cur.row_key().cloned() {
                            for p in k.parts {
                                if !parts.iter().any(|(c, _)| c == &p.0) {
                                    parts.push(p);
                                }
                            }
                        }
                    } else if self.valid {
                        for (c, _) in &parts {
                            let col = self.cur.column(c).expect("column").clone();
                            self.alter.restrict(&col, |r| r.unique = true);
                        }
                    }
                }
                let name =
                    fresh_index_name(self.rng, &self.cur, if unique { "nuq_" } else { "nix_" });
                let index = Index {
                    name,
                    kind: if unique {
                        IndexKind::Unique
                    } else {
                        IndexKind::Plain
                    },
                    parts,
                };
                self.parts.push(format!(
                    "ADD {}INDEX {} ({})",
                    if unique { "UNIQUE " } else { "" },
                    q(&index.name),
                    index.parts_sql()
                ));
                self.cur.indexes.push(index);
                true
            }
            Op::DropIndex => {
                let secondary: Vec<Index> = self
                    .cur
                    .indexes
                    .iter()
                    .filter(|i| i.kind != IndexKind::Primary)
                    .cloned()
                    .collect();
                if secondary.is_empty() {
                    return false;
                }
                let index = pick(self.rng, &secondary).clone();
                self.parts.push(format!("DROP INDEX {}", q(&index.name)));
                let i = self.cur.index_named(&index.name).expect("index");
                self.cur.indexes.remove(i);
                true
            }
            Op::TableOption => {
                match self.rng.below(5) {
                    0 | 1 => {
                        let n = 1_000_000 + self.rng.below(1000);
                        self.parts.push(format!("AUTO_INCREMENT = {n}"));
                        self.alter.sets_auto_increment = true;
                    }
                    2 => self.parts.push("ENGINE = InnoDB".into()),
                    3 => {
                        let f = *pick(self.rng, &["DYNAMIC", "COMPACT"]);
                        self.parts.push(format!("ROW_FORMAT = {f}"));
                    }
                    _ => {
                        let c = random_collation(self.rng);
                        self.parts.push(format!(
                            "DEFAULT CHARACTER SET = {} COLLATE = {}",
                            c.charset.name(),
                            c.name
                        ));
                        self.cur.collation = Some(c);
                    }
                }
                true
            }
            Op::Convert => {
                let c = random_collation(self.rng);
                self.parts.push(format!(
                    "CONVERT TO CHARACTER SET {} COLLATE {}",
                    c.charset.name(),
                    c.name
                ));
                self.cur.collation = Some(c);
                let strings: Vec<Column> = self
                    .cur
                    .columns
                    .iter()
                    .filter(|c| c.ty.string_collation().is_some())
                    .cloned()
                    .collect();
                for col in strings {
                    self.alter.touch(&col);
                    if self.valid {
                        self.alter.restrict(&col, |r| r.core = true);
                    }
                    let i = self.cur.position(&col.name).expect("column");
                    self.cur.columns[i].ty = col.ty.with_collation(None);
                }
                true
            }
        }
    }

    /// Fixes what a new type makes invalid: AUTO_INCREMENT on a non-integer,
    /// a default the new type cannot hold.
    fn retype(&mut self, col: &mut Column) {
        if !col.ty.is_int() {
            col.auto_increment = false;
        }
        if col.default.is_some() && col.default.as_deref() != Some("NULL") {
            let cs = self.cur.charset_of(&col.ty);
            col.default = default_literal(self.rng, &col.ty, cs);
        }
        if col.default.is_none() && col.invisible && !col.nullable {
            col.nullable = true;
        }
    }

    /// Primary key changes: reorder, extend, replace, add or drop.
    fn primary_key(&mut self) -> bool {
        let pk = self.cur.primary().cloned();
        let indexable_not_null = |b: &Self, c: &Column| {
            c.ty.indexable() && !c.nullable && c.generated.is_none() && !b.in_key(&c.name)
        };
        let new_parts: Vec<(String, Option<u16>)>;
        let mut drop_pk = pk.is_some();
        match (pk, self.rng.below(4)) {
            (Some(pk), 0) if pk.parts.len() >= 2 => {
                // Reorder.
                let mut parts = pk.parts.clone();
                let by = 1 + self.rng.below(parts.len() as u64 - 1) as usize;
                parts.rotate_left(by);
                new_parts = parts;
            }
            (Some(pk), 1) => {
                // Extend with a NOT NULL column.
                let Some(col) = self.choose(|b, c| indexable_not_null(b, c)) else {
                    return false;
                };
                let mut parts = pk.parts.clone();
                let at = self.rng.below(parts.len() as u64 + 1) as usize;
                parts.insert(at, (col.name.clone(), None));
                new_parts = parts;
            }
            (Some(pk), 2) => {
                // Drop a column of a composite key: duplicates, unless valid.
                if pk.parts.len() < 2 {
                    return false;
                }
                let mut parts = pk.parts.clone();
                parts.remove(self.rng.below(parts.len() as u64) as usize);
                if self.valid {
                    return false;
                }
                new_parts = parts;
            }
            (pk, _) => {
                // Replace: by a unique NOT NULL key's columns, or others.
                let unique = self
                    .cur
                    .indexes
                    .iter()
                    .find(|i| {
                        i.kind == IndexKind::Unique
                            && i.parts.iter().all(|(c, p)| {
                                p.is_none() && self.cur.column(c).is_some_and(|c| !c.nullable)
                            })
                    })
                    .cloned();
                if let Some(u) = unique.filter(|_| self.rng.chance(60)) {
                    new_parts = u.parts.clone();
                    if self.rng.chance(50) {
                        self.parts.push(format!("DROP INDEX {}", q(&u.name)));
                        let i = self.cur.index_named(&u.name).expect("index");
                        self.cur.indexes.remove(i);
                    }
                } else {
                    let Some(col) = self.choose(|b, c| {
                        c.ty.indexable()
                            && c.ty.cardinality().is_none()
                            && !matches!(c.ty, Ty::Float | Ty::Double | Ty::Bit(_))
                            && c.generated.is_none()
                            && !b.in_key(&c.name)
                    }) else {
                        return false;
                    };
                    if self.valid {
                        self.alter.restrict(&col, |r| {
                            r.unique = true;
                            r.no_null = true;
                        });
                    }
                    new_parts = vec![(col.name.clone(), None)];
                }
                if pk.is_none() {
                    drop_pk = false;
                }
            }
        }
        let cols = new_parts
            .iter()
            .map(|(c, _)| q(c))
            .collect::<Vec<_>>()
            .join(", ");
        if drop_pk {
            self.parts.push("DROP PRIMARY KEY".into());
            self.cur.indexes.retain(|i| i.kind != IndexKind::Primary);
        }
        self.parts.push(format!("ADD PRIMARY KEY ({cols})"));
        for (c, _) in &new_parts {
            if let Some(i) = self.cur.position(c) {
                self.cur.columns[i].nullable = false;
            }
        }
        self.cur.indexes.insert(
            0,
            Index {
                name: "PRIMARY".into(),
                kind: IndexKind::Primary,
                parts: new_parts,
            },
        );
        true
    }

    /// The partitioning clause, if the new keys allow it.
    fn partitioning(&mut self) -> Option<String> {
        if self.cur.partitions.is_some() && self.rng.chance(60) {
            return Some("REMOVE PARTITIONING".into());
        }
        let pk = self.cur.primary()?;
        let ok = !self.cur.columns.iter().any(|c| c.ty.is_spatial())
            && self
                .cur
                .indexes
                .iter()
                .all(|i| i.kind == IndexKind::Plain || pk.parts.iter().all(|(c, _)| i.has(c)))
            && pk.parts.iter().all(|(_, p)| p.is_none());
        ok.then(|| format!("PARTITION BY KEY () PARTITIONS {}", 2 + self.rng.below(4)))
    }
}

/// Generates an ALTER of `table`; `valid` keeps the data within what the
/// ALTER can hold (restrictions in the result).
pub fn generate_alter(rng: &mut Rng, table: &Table, valid: bool) -> Alter {
    let mut b = AlterBuilder {
        rng,
        cur: table.clone(),
        parts: vec![],
        alter: Alter::default(),
        used: BTreeSet::new(),
        valid,
    };
    let n = 1 + weighted(b.rng, &[50, 30, 15, 5]);
    let weights: Vec<u64> = OPS.iter().map(|(_, w)| *w).collect();
    let mut tries = 0;
    while b.parts.is_empty() || (b.parts.len() < n && tries < 20) {
        tries += 1;
        let op = OPS[weighted(b.rng, &weights)].0;
        b.op(op);
        if tries > 40 {
            b.parts.push("ENGINE = InnoDB".into());
        }
    }
    let mut sql = b.parts.join(", ");
    if b.rng.chance(6) {
        if let Some(p) = b.partitioning() {
            sql = format!("{sql} {p}");
        }
    }
    let mut alter = b.alter;
    alter.sql = sql;
    alter
}

// ---- the load --------------------------------------------------------------

/// The mirrored write load of one case: which columns it writes, how it
/// addresses rows, which values it uses.
#[derive(Clone, Debug)]
pub struct Workload {
    /// The original table.
    pub table: Table,
    /// Indexes (into `table.columns`) of the row key's columns.
    pub key: Vec<usize>,
    /// Size of each key column's value domain.
    pub domains: Vec<u64>,
    /// Columns the load writes (no generated columns; in through mode none
    /// the ALTER drops).
    pub writable: Vec<usize>,
    /// Columns the seed rows fill.
    pub seeded: Vec<usize>,
    /// Value restrictions by column index.
    pub restrict: Vec<Restrict>,
    /// The load writes zero dates where `restrict` lets the seed rows have
    /// them: not when it runs through the cut-over, since a zero date
    /// written to the new table after the swap fails the control's native
    /// ALTER, run at the end, where the migration rightly succeeded (seed
    /// 11410): that oracle would not hold.
    pub zero_dates_in_load: bool,
    /// Statements whose effect depends on unique keys other than the row
    /// key (INSERT IGNORE, REPLACE, ON DUPLICATE KEY UPDATE, UPDATE
    /// IGNORE): only when both tables have the same schema all along.
    pub rich: bool,
    /// INSERTs at all: not when the load runs through the cut-over and the
    /// ALTER changes a column (a row inserted after the swap would get the
    /// new column's default, the control's the old one's).
    pub inserts: bool,
    /// Columns whose values two rows exchange in one statement now and
    /// then: under a unique key the ALTER adds, each row's change alone
    /// collides with the other's old value in the new table. Empty: no
    /// swaps (drawn last in [`Case::generate`]).
    pub swaps: Vec<usize>,
}

impl Workload {
    /// The load of `table` for `alter`: `through` when it runs through the
    /// cut-over (writes only columns the ALTER keeps as they are).
    pub fn new(
        rng: &mut Rng,
        table: &Table,
        alter: &Alter,
        rows: u64,
        through: bool,
        zero_dates: bool,
    ) -> Workload {
        let key_index = table.row_key().expect("a row key");
        let key: Vec<usize> = key_index
            .parts
            .iter()
            .map(|(c, _)| table.position(c).expect("key column"))
            .collect();
        // Domains whose product is a little above the row count.
        let target = rows * 2 + 4;
        let mut domains = vec![];
        let mut product = 1u64;
        for (n, &i) in key.iter().enumerate() {
            let ty = &table.columns[i].ty;
            let card = ty.cardinality().unwrap_or(u64::MAX);
            let want = if n + 1 == key.len() {
                target.div_ceil(product).max(2)
            } else {
                2 + rng.below(5)
            };
            let d = want.min(card).max(1);
            product = product.saturating_mul(d);
            domains.push(d);
        }
        let seeded: Vec<usize> = (0..table.columns.len())
            .filter(|&i| table.columns[i].generated.is_none())
            .collect();
        let in_set = |i: usize, set: &BTreeSet<String>| {
            table.columns[i]
                .orig
                .as_ref()
                .is_some_and(|o| set.contains(o))
        };
        // Through the cut-over: only columns the ALTER leaves as they are.
        let writable = seeded
            .iter()
            .copied()
            .filter(|&i| !through || !in_set(i, &alter.touched))
            .collect();
        let inserts = !through
            || seeded
                .iter()
                .all(|&i| !in_set(i, &alter.touched) || in_set(i, &alter.dropped));
        let restrict = table
            .columns
            .iter()
            .map(|c| {
                c.orig
                    .as_ref()
                    .and_then(|o| alter.restrict.get(o))
                    .copied()
                    .unwrap_or_default()
            })
            .map(|r| Restrict { zero_dates, ..r })
            .collect();
        Workload {
            table: table.clone(),
            key,
            domains,
            writable,
            seeded,
            restrict,
            zero_dates_in_load: !through,
            rich: !through,
            inserts,
            swaps: vec![],
        }
    }

    /// Adds, now and then, statements by which two rows exchange their
    /// values of one of [`Workload::swaps`] to `transaction`, at a random
    /// place. `rng` is its own (from [`Case::swap_rng`]), so that the rest
    /// of the load of a seed that found a defect before stays as it was.
    pub fn add_swap(&self, rng: &mut Rng, transaction: &mut Vec<Statement>) {
        if self.swaps.is_empty() || !rng.chance(30) {
            return;
        }
        let at = rng.below(transaction.len() as u64 + 1) as usize;
        transaction.splice(at..at, self.swap(rng));
    }

    /// Two rows exchange one column's values: both rows are read (locked)
    /// into user variables, then each gets the other's value as a bound
    /// value. Nothing depends on the plan, which may differ between `t`
    /// and the control (an earlier single UPDATE whose values came from
    /// derived tables read a row it had already changed on one of them).
    /// The runner executes each statement on `t`, then on the control: the
    /// variables hold the control's values, the same as `t`'s while the two
    /// are mirrored. Nothing is written unless both rows exist (a missing
    /// row's NULL would become the statement's time in a TIMESTAMP NOT NULL
    /// column, different in `t` and the control). Two statements, so that
    /// under a unique key the ALTER adds, each row's change alone collides
    /// with the other's old value in the new table.
    fn swap(&self, rng: &mut Rng) -> Vec<Statement> {
        let column = q(&self.table.columns[*pick(rng, &self.swaps)].name);
        let (first, second) = (self.key_values(rng), self.key_values(rng));
        let read = |var: &str, key: &Vec<mysql_async::Value>| -> Statement {
            (
                format!(
                    "SELECT {column}, 1 INTO @swap_{var}, @swap_{var}_found FROM {{T}} WHERE {} FOR UPDATE",
                    self.where_key()
                ),
                key.clone(),
            )
        };
        let write = |var: &str, key: &Vec<mysql_async::Value>| -> Statement {
            (
                format!(
                    "UPDATE {{T}} SET {column} = @swap_{var} WHERE {} AND @swap_first_found = 1 AND @swap_second_found = 1",
                    self.where_key()
                ),
                key.clone(),
            )
        };
        vec![
            (
                "SET @swap_first_found = 0, @swap_second_found = 0".to_string(),
                vec![],
            ),
            read("first", &first),
            read("second", &second),
            write("second", &first),
            write("first", &second),
        ]
    }

    fn is_key(&self, i: usize) -> bool {
        self.key.contains(&i)
    }

    /// The key column `n`'s value number `idx`.
    fn key_part(&self, n: usize, idx: u64) -> Value {
        let i = self.key[n];
        let col = &self.table.columns[i];
        key_value(
            &col.ty,
            idx,
            self.restrict[i].core,
            self.table.charset_of(&col.ty),
        )
    }

    /// A random key: hot keys a third of the time.
    fn key_values(&self, rng: &mut Rng) -> Vec<Value> {
        let hot = rng.chance(30);
        (0..self.key.len())
            .map(|n| {
                let d = self.domains[n];
                let idx = if hot {
                    rng.below(d.min(3))
                } else {
                    rng.below(d)
                };
                self.key_part(n, idx)
            })
            .collect()
    }

    /// A value for the non-key column `i`, NULL now and then; for a seed
    /// row when `seeding`, else for the load.
    fn value(&self, rng: &mut Rng, i: usize, seeding: bool) -> Value {
        let col = &self.table.columns[i];
        let mut r = self.restrict[i];
        r.zero_dates &= seeding || self.zero_dates_in_load;
        let null_chance = if r.no_null {
            0
        } else if r.core {
            5
        } else {
            12
        };
        if col.nullable && rng.chance(null_chance) {
            return Value::NULL;
        }
        random_value(rng, &col.ty, self.table.charset_of(&col.ty), r)
    }

    fn where_key(&self) -> String {
        self.key
            .iter()
            .map(|&i| {
                format!(
                    "{} = {}",
                    q(&self.table.columns[i].name),
                    self.table.columns[i].ty.placeholder()
                )
            })
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// (columns, placeholders, values) of a new row with `key`; columns
    /// with a default or NULL are left out now and then.
    fn row(&self, rng: &mut Rng, key: &[Value], columns: &[usize]) -> (Vec<usize>, Vec<Value>) {
        let mut cols = vec![];
        let mut values = vec![];
        let sparse = rng.chance(20);
        for &i in columns {
            let col = &self.table.columns[i];
            if let Some(n) = self.key.iter().position(|&k| k == i) {
                cols.push(i);
                values.push(key[n].clone());
                continue;
            }
            let omissible = (col.nullable && !self.restrict[i].no_null) || col.default.is_some();
            if sparse && omissible && rng.chance(50) {
                continue;
            }
            cols.push(i);
            values.push(self.value(rng, i, false));
        }
        (cols, values)
    }

    fn column_list(&self, cols: &[usize]) -> String {
        cols.iter()
            .map(|&i| q(&self.table.columns[i].name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn placeholders(&self, cols: &[usize]) -> String {
        format!(
            "({})",
            cols.iter()
                .map(|&i| self.table.columns[i].ty.placeholder())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }

    /// INSERT statements (with `{T}`) filling the table with up to `rows`
    /// rows, in batches.
    pub fn seed_statements(&self, rng: &mut Rng, rows: u64) -> Vec<Statement> {
        let mut stmts = vec![];
        let mut left = rows;
        while left > 0 {
            let batch = left.min(40);
            left -= batch;
            let mut params = vec![];
            for _ in 0..batch {
                let key = self.key_values(rng);
                // Every seeded column, so that all rows share the list.
                for &i in &self.seeded {
                    match self.key.iter().position(|&k| k == i) {
                        Some(n) => params.push(key[n].clone()),
                        None => params.push(self.value(rng, i, true)),
                    }
                }
            }
            // Duplicate keys are skipped (a no-op update); any other error
            // fails the case, which is then regenerated: INSERT IGNORE would
            // turn a bad value into a zero value instead.
            let one = self.placeholders(&self.seeded);
            let first = q(&self.table.columns[self.key[0]].name);
            stmts.push((
                format!(
                    "INSERT INTO {{T}} ({}) VALUES {} ON DUPLICATE KEY UPDATE {first} = {first}",
                    self.column_list(&self.seeded),
                    vec![one; batch as usize].join(", ")
                ),
                params,
            ));
        }
        stmts
    }

    /// One transaction of the load: 1–5 statements.
    pub fn transaction(&self, rng: &mut Rng) -> Vec<Statement> {
        let n = 1 + weighted(rng, &[50, 25, 15, 6, 4]);
        let mut stmts = vec![];
        let non_key: Vec<usize> = self
            .writable
            .iter()
            .copied()
            .filter(|&i| !self.is_key(i))
            .collect();
        for _ in 0..n {
            let key = self.key_values(rng);
            let ins = u64::from(self.inserts);
            let kind = weighted(
                rng,
                &[
                    30 * ins,
                    30,
                    10,
                    15,
                    8 * ins,
                    if self.key.len() > 1 { 5 } else { 0 },
                    if self.rich { 5 } else { 0 },
                    if self.rich { 5 } else { 0 },
                    if self.rich { 5 } else { 0 },
                    if self.rich { 3 } else { 0 },
                ],
            );
            match kind {
                0 | 6 | 7 => {
                    let (cols, values) = self.row(rng, &key, &self.writable);
                    let verb = match kind {
                        6 => "INSERT IGNORE",
                        7 => "REPLACE",
                        _ => "INSERT",
                    };
                    stmts.push((
                        format!(
                            "{verb} INTO {{T}} ({}) VALUES {}",
                            self.column_list(&cols),
                            self.placeholders(&cols)
                        ),
                        values,
                    ));
                }
                8 => {
                    let (cols, values) = self.row(rng, &key, &self.writable);
                    let updated: Vec<usize> =
                        cols.iter().copied().filter(|&i| !self.is_key(i)).collect();
                    let set = if updated.is_empty() {
                        let k = &self.table.columns[self.key[0]].name;
                        format!("{} = {}", q(k), q(k))
                    } else {
                        let i = *pick(rng, &updated);
                        let c = q(&self.table.columns[i].name);
                        format!("{c} = VALUES({c})")
                    };
                    stmts.push((
                        format!(
                            "INSERT INTO {{T}} ({}) VALUES {} ON DUPLICATE KEY UPDATE {set}",
                            self.column_list(&cols),
                            self.placeholders(&cols)
                        ),
                        values,
                    ));
                }
                1 | 5 if !non_key.is_empty() => {
                    let mut sets = vec![];
                    let mut params = vec![];
                    for _ in 0..1 + rng.below(3) {
                        let i = *pick(rng, &non_key);
                        let c = &self.table.columns[i];
                        if sets
                            .iter()
                            .any(|s: &String| s.starts_with(&format!("{} =", q(&c.name))))
                        {
                            continue;
                        }
                        sets.push(format!("{} = {}", q(&c.name), c.ty.placeholder()));
                        params.push(self.value(rng, i, false));
                    }
                    if kind == 5 {
                        // Several rows: by the first key column only.
                        let first = &self.table.columns[self.key[0]];
                        params.push(key[0].clone());
                        stmts.push((
                            format!(
                                "UPDATE {{T}} SET {} WHERE {} = {}",
                                sets.join(", "),
                                q(&first.name),
                                first.ty.placeholder()
                            ),
                            params,
                        ));
                    } else {
                        params.extend(key);
                        stmts.push((
                            format!(
                                "UPDATE {{T}} SET {} WHERE {}",
                                sets.join(", "),
                                self.where_key()
                            ),
                            params,
                        ));
                    }
                }
                2 | 9 => {
                    // Change one key column to another value of its domain.
                    let n = rng.below(self.key.len() as u64) as usize;
                    let i = self.key[n];
                    if !self.writable.contains(&i) {
                        continue;
                    }
                    let to = self.key_part(n, rng.below(self.domains[n]));
                    let c = &self.table.columns[i];
                    let mut params = vec![to];
                    params.extend(key);
                    stmts.push((
                        format!(
                            "UPDATE {}{{T}} SET {} = {} WHERE {}",
                            if kind == 9 { "IGNORE " } else { "" },
                            q(&c.name),
                            c.ty.placeholder(),
                            self.where_key()
                        ),
                        params,
                    ));
                }
                3 => stmts.push((format!("DELETE FROM {{T}} WHERE {}", self.where_key()), key)),
                _ if !self.inserts => {
                    stmts.push((format!("DELETE FROM {{T}} WHERE {}", self.where_key()), key))
                }
                _ => {
                    // Delete and re-insert the same key.
                    stmts.push((
                        format!("DELETE FROM {{T}} WHERE {}", self.where_key()),
                        key.clone(),
                    ));
                    let (cols, values) = self.row(rng, &key, &self.writable);
                    stmts.push((
                        format!(
                            "INSERT INTO {{T}} ({}) VALUES {}",
                            self.column_list(&cols),
                            self.placeholders(&cols)
                        ),
                        values,
                    ));
                }
            }
        }
        stmts
    }
}

// ---- a whole case ------------------------------------------------------------

/// Session time zones of the load's writers ("" keeps the server's).
pub const TIME_ZONES: &[&str] = &[
    "+00:00", "-07:00", "+05:30", "+13:00", "-12:00", "+01:00", "",
];

/// The first seed whose load may swap values between rows
/// ([`Workload::swaps`]).
pub const SWAPS_FROM_SEED: u64 = 57_000;

/// Everything one seed runs.
#[derive(Clone, Debug)]
pub struct Case {
    /// The seed.
    pub seed: u64,
    /// Regenerations because the server rejected the CREATE or the seed rows.
    pub attempt: u64,
    /// The original table.
    pub table: Table,
    /// The ALTER.
    pub alter: Alter,
    /// The load runs through the cut-over (else it stops before the swap).
    pub through: bool,
    /// Each writer's session time zone.
    pub time_zones: Vec<&'static str>,
    /// Seed row inserts.
    pub rows: u64,
    /// The load.
    pub workload: Workload,
    /// shadowcut's chunk size.
    pub chunk_size: u64,
    /// Rotate the binlog during the run.
    pub rotate: bool,
    /// Data kept within what the ALTER can hold.
    pub valid: bool,
    /// The data has zero dates.
    pub zero_dates: bool,
    /// The applier's batch size, when tiny (the `apply_batch_keys`
    /// failpoint): its generations then run in parallel on these small
    /// tables, split as the key allows.
    pub apply_batch_keys: Option<u64>,
}

impl Case {
    /// The case of `seed`; `attempt` > 0 regenerates it with a sub-seed.
    pub fn generate(seed: u64, attempt: u64) -> Case {
        let mut rng = Rng::new(seed.wrapping_mul(1_000_003).wrapping_add(attempt));
        let table = generate_table(&mut rng);
        let valid = rng.chance(85);
        let alter = generate_alter(&mut rng, &table, valid);
        let key_cols: Vec<String> = table
            .row_key()
            .map(|k| k.parts.iter().map(|(c, _)| c.clone()).collect())
            .unwrap_or_default();
        // The load can run through the cut-over when it can still address
        // rows the same way in both tables.
        let can_run_through = !key_cols.iter().any(|c| alter.touched.contains(c));
        let through = can_run_through && rng.chance(65);
        let rows = 20 + rng.below(280);
        let zero_dates = !valid && rng.chance(50);
        let workload = Workload::new(&mut rng, &table, &alter, rows, through, zero_dates);
        let writers = 2 + rng.below(2) as usize;
        let time_zones = (0..writers).map(|_| *pick(&mut rng, TIME_ZONES)).collect();
        let mut case = Case {
            seed,
            attempt,
            table,
            alter,
            through,
            time_zones,
            rows,
            workload,
            chunk_size: 10 + rng.below(41),
            rotate: rng.chance(30),
            valid,
            zero_dates,
            // Drawn last: the draws before it, and so every earlier seed's
            // case, stay as they were.
            apply_batch_keys: rng.chance(50).then(|| 2 + rng.below(7)),
        };
        // Drawn after everything else, for the same reason, and only for
        // seeds from SWAPS_FROM_SEED: every seed run before swaps existed
        // (the regression and fixed seeds, those quoted in notes, up to
        // 56149) keeps its load.
        if seed >= SWAPS_FROM_SEED && rng.chance(50) {
            case.workload.swaps = case
                .workload
                .writable
                .iter()
                .copied()
                .filter(|&i| !case.workload.is_key(i))
                .collect();
        }
        case
    }

    /// The RNG of the seed rows.
    pub fn seed_rng(&self) -> Rng {
        Rng::new(self.seed ^ 0x5EED ^ (self.attempt << 32))
    }

    /// The RNG of writer `w`.
    pub fn writer_rng(&self, w: u64) -> Rng {
        Rng::new(self.seed.wrapping_mul(31).wrapping_add(w + 1) ^ (self.attempt << 40))
    }

    /// The random source of writer `w`'s swaps ([`Workload::add_swap`]).
    pub fn swap_rng(&self, w: u64) -> Rng {
        Rng::new(self.seed.wrapping_mul(37).wrapping_add(w + 7) ^ (self.attempt << 40))
    }
}
