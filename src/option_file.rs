//! my.cnf option files, read as the mysql and mariadb clients read them.
//!
//! Which files: `/etc/my.cnf`, `/etc/mysql/my.cnf`, `$MYSQL_HOME/my.cnf`,
//! the `--defaults-extra-file`, then `~/.my.cnf`; only the `--defaults-file`
//! when one is given; none with `--no-defaults`. Missing files are skipped,
//! world-writable ones ignored with a warning (anyone could plant a host or
//! a password there), as the clients do.
//!
//! Which groups: `[client]`, `[client-server]`, `[client-mariadb]` and
//! `[shadowcut]`. A value read later wins over one read earlier.
//!
//! The rules of a line, from the servers' `my_default.c`:
//! - `#` or `;` first on a line makes it a comment; a `#` outside quotes
//!   ends the line anywhere else, so `password=a#b` reads as `a`;
//! - `[group]`, `name` (a flag) or `name = value`, spaces trimmed around
//!   both; `-` and `_` are the same in names; `loose-` is dropped, `skip-`
//!   and `disable-` set a flag to 0, `enable-` to 1;
//! - a value wholly inside matching single or double quotes loses them;
//! - `\n \t \r \b \s \" \' \\` are escapes (`\s` a space); a backslash
//!   before anything else stays;
//! - `!include FILE` reads that file's groups in place, `!includedir DIR`
//!   every `*.cnf` file of DIR in name order; missing ones are skipped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Groups shadowcut takes its settings from.
const GROUPS: [&str; 4] = ["client", "client-server", "client-mariadb", "shadowcut"];

/// Includes nested deeper than this are refused: a file including itself.
const MAX_INCLUDE_DEPTH: usize = 10;

/// Which option files to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Defaults {
    /// The standard files, then `extra` (`--defaults-extra-file`) before
    /// `~/.my.cnf`.
    #[default]
    Standard,
    /// The standard files with one more read before `~/.my.cnf`.
    StandardAnd(PathBuf),
    /// This file only (`--defaults-file`); it must exist.
    Only(PathBuf),
    /// None (`--no-defaults`).
    Nothing,
}

/// The settings of the groups shadowcut reads, by name (`-` for `_`).
/// Flags (`ssl`, `skip-ssl`) hold `1` or `0`; a bare `password` holds
/// `None`, which asks for the password as the clients do.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct OptionFiles {
    values: HashMap<String, Option<String>>,
    /// The files read, in order, for messages.
    pub read: Vec<PathBuf>,
}

impl OptionFiles {
    /// Reads the files `which` names.
    pub fn load(which: &Defaults) -> Result<OptionFiles> {
        let mut files = OptionFiles::default();
        let standard = || {
            let mut paths = vec![PathBuf::from("/etc/my.cnf"), "/etc/mysql/my.cnf".into()];
            if let Some(home) = std::env::var_os("MYSQL_HOME") {
                paths.push(Path::new(&home).join("my.cnf"));
            }
            paths
        };
        let home_file = std::env::var_os("HOME").map(|h| Path::new(&h).join(".my.cnf"));
        match which {
            Defaults::Nothing => {}
            Defaults::Only(path) => files.read_named(path, "--defaults-file")?,
            Defaults::Standard | Defaults::StandardAnd(_) => {
                for path in standard() {
                    files.read_file(&path, 0)?;
                }
                if let Defaults::StandardAnd(extra) = which {
                    files.read_named(extra, "--defaults-extra-file")?;
                }
                if let Some(path) = home_file {
                    files.read_file(&path, 0)?;
                }
            }
        }
        Ok(files)
    }

    /// Reads option-file text as if it were the file `origin`.
    pub fn parse(text: &str, origin: &Path) -> Result<OptionFiles> {
        let mut files = OptionFiles::default();
        files.read_text(text, origin, 0)?;
        Ok(files)
    }

    /// The value of `name` (`ssl-ca` or `ssl_ca`): `None` when not set,
    /// `Some(None)` for a bare name.
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.values
            .get(&normal_name(name))
            .map(|value| value.as_deref())
    }

    /// The value of `name` when it was given one.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).flatten()
    }

    /// A flag: `name`, `name=1|ON|TRUE`, `enable-name` are true;
    /// `name=0|OFF|FALSE`, `skip-name`, `disable-name` false.
    pub fn flag(&self, name: &str) -> Result<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some(None) => Ok(Some(true)),
            Some(Some(value)) => match value.to_ascii_lowercase().as_str() {
                "1" | "on" | "true" | "yes" => Ok(Some(true)),
                "0" | "off" | "false" | "no" => Ok(Some(false)),
                _ => Err(Error::Usage(format!(
                    "option file: {name}={value} is not a boolean (1, 0, ON, OFF, TRUE, FALSE)"
                ))),
            },
        }
    }

    /// A file named on the command line by `flag`: it must exist.
    fn read_named(&mut self, path: &Path, flag: &str) -> Result<()> {
        if !path.is_file() {
            return Err(Error::Usage(format!(
                "{flag} {}: no such file",
                path.display()
            )));
        }
        self.read_file(path, 0)
    }

    fn read_file(&mut self, path: &Path, depth: usize) -> Result<()> {
        let Ok(meta) = std::fs::metadata(path) else {
            tracing::debug!("option file {} not found; skipped", path.display());
            return Ok(());
        };
        if world_writable(&meta) {
            tracing::warn!(
                "option file {} is writable by every user of the machine and is ignored (chmod o-w it)",
                path.display()
            );
            return Ok(());
        }
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            context: format!("reading the option file {}", path.display()),
            source,
        })?;
        self.read.push(path.to_path_buf());
        self.read_text(&text, path, depth)
    }

    fn read_text(&mut self, text: &str, origin: &Path, depth: usize) -> Result<()> {
        let bad = |line: usize, what: &str| {
            Error::Usage(format!(
                "option file {} line {}: {what}",
                origin.display(),
                line + 1
            ))
        };
        // Until the first group, only includes may appear.
        let mut in_group: Option<bool> = None;
        for (number, raw) in text.lines().enumerate() {
            let line = raw.trim_start();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(rest) = line.strip_prefix('!') {
                let (directive, target) =
                    rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                let target = Path::new(target.trim());
                if depth >= MAX_INCLUDE_DEPTH {
                    return Err(bad(
                        number,
                        "includes nested too deep (a file including itself?)",
                    ));
                }
                match directive {
                    "include" => self.read_file(target, depth + 1)?,
                    "includedir" => {
                        for file in cnf_files_in(target) {
                            self.read_file(&file, depth + 1)?;
                        }
                    }
                    _ => return Err(bad(number, &format!("unknown directive !{directive}"))),
                }
                continue;
            }
            let line = strip_end_comment(line).trim_end();
            if let Some(group) = line.strip_prefix('[') {
                let Some(group) = group.strip_suffix(']') else {
                    return Err(bad(number, "a group header needs a closing ]"));
                };
                let group = group.trim().to_ascii_lowercase();
                in_group = Some(GROUPS.contains(&group.as_str()));
                continue;
            }
            match in_group {
                None => return Err(bad(number, "an option before the first [group]")),
                Some(false) => continue,
                Some(true) => {}
            }
            let (name, value) = match line.split_once('=') {
                Some((name, value)) => (name.trim_end(), Some(unquote(value.trim()))),
                None => (line, None),
            };
            let mut name = normal_name(name);
            if let Some(rest) = name.strip_prefix("loose-") {
                name = rest.to_string();
            }
            let flag_value = |on: bool| Some(if on { "1" } else { "0" }.to_string());
            let (name, value) = if let Some(rest) = name
                .strip_prefix("skip-")
                .or_else(|| name.strip_prefix("disable-"))
            {
                (rest.to_string(), flag_value(false))
            } else if let Some(rest) = name.strip_prefix("enable-") {
                (rest.to_string(), flag_value(true))
            } else {
                (name, value)
            };
            self.values.insert(name, value);
        }
        Ok(())
    }
}

fn normal_name(name: &str) -> String {
    name.trim().to_ascii_lowercase().replace('_', "-")
}

#[cfg(unix)]
fn world_writable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.is_file() && meta.permissions().mode() & 0o002 != 0
}

#[cfg(not(unix))]
fn world_writable(_meta: &std::fs::Metadata) -> bool {
    false
}

/// The `*.cnf` files of `dir` in name order; none when it cannot be read.
fn cnf_files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        tracing::debug!("option directory {} not found; skipped", dir.display());
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "cnf"))
        .collect();
    files.sort();
    files
}

/// Cuts the line at the first `#` outside quotes (a backslash inside
/// quotes protects the next character).
fn strip_end_comment(line: &str) -> &str {
    let mut quote = None;
    let mut escaped = false;
    for (at, c) in line.char_indices() {
        if (c == '\'' || c == '"') && !escaped {
            match quote {
                None => quote = Some(c),
                Some(q) if q == c => quote = None,
                Some(_) => {}
            }
        }
        if quote.is_none() && c == '#' {
            return &line[..at];
        }
        escaped = quote.is_some() && c == '\\' && !escaped;
    }
    line
}

/// Drops quotes around the whole value, then reads its escapes.
fn unquote(value: &str) -> String {
    let inner = match value.chars().next() {
        Some(q @ ('\'' | '"')) if value.len() > 1 && value.ends_with(q) => {
            &value[1..value.len() - 1]
        }
        _ => value,
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('b') => out.push('\u{8}'),
            Some('s') => out.push(' '),
            Some(c @ ('"' | '\'' | '\\')) => out.push(c),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> OptionFiles {
        OptionFiles::parse(text, Path::new("test.cnf")).unwrap()
    }

    #[test]
    fn reads_the_client_groups_and_later_values_win() {
        let o = parse(
            "[mysqld]\nport=1\n[client]\nuser = dba\nport=3307\n; c\n  # c\n\
             [client-server]\nsocket=/tmp/s\n[other]\nuser=x\n[CLIENT]\nport = 3308\n",
        );
        assert_eq!(o.value("user"), Some("dba"));
        assert_eq!(o.value("port"), Some("3308"));
        assert_eq!(o.value("socket"), Some("/tmp/s"));
    }

    #[test]
    fn comments_quotes_and_escapes_read_as_the_clients_read_them() {
        let o = parse(concat!(
            "[client]\n",
            "password=a#b\n",
            "user=\"x # y\" # a comment\n",
            "host='h'\n",
            "ssl-ca=\"/path with\\sspace\\\\x\\q\"\n",
            "ssl-key='it\\'s'\n",
            "socket=\"unbalanced\n",
        ));
        assert_eq!(o.value("password"), Some("a"));
        assert_eq!(o.value("user"), Some("x # y"));
        assert_eq!(o.value("host"), Some("h"));
        assert_eq!(o.value("ssl-ca"), Some("/path with space\\x\\q"));
        assert_eq!(o.value("ssl_key"), Some("it's"));
        assert_eq!(o.value("socket"), Some("\"unbalanced"));
    }

    #[test]
    fn flags_take_prefixes_and_boolean_words() {
        let o = parse(
            "[client]\nssl\nloose-ssl-verify-server-cert=OFF\nskip-compress\nenable-x\npassword\n",
        );
        assert_eq!(o.flag("ssl").unwrap(), Some(true));
        assert_eq!(o.flag("ssl-verify-server-cert").unwrap(), Some(false));
        assert_eq!(o.flag("compress").unwrap(), Some(false));
        assert_eq!(o.flag("x").unwrap(), Some(true));
        assert_eq!(o.flag("missing").unwrap(), None);
        assert_eq!(o.get("password"), Some(None));
        let o = parse("[client]\nssl=maybe\n");
        assert!(o.flag("ssl").is_err());
    }

    #[test]
    fn malformed_lines_are_refused_with_their_place() {
        let e = OptionFiles::parse("user=x\n", Path::new("my.cnf")).unwrap_err();
        assert!(e.to_string().contains("my.cnf line 1"), "{e}");
        let e = OptionFiles::parse("[client\n", Path::new("my.cnf")).unwrap_err();
        assert!(e.to_string().contains("closing ]"), "{e}");
        let e = OptionFiles::parse("!source x\n", Path::new("my.cnf")).unwrap_err();
        assert!(e.to_string().contains("!source"), "{e}");
    }

    #[test]
    fn includes_are_read_in_place_and_loops_are_refused() {
        let dir = std::env::temp_dir().join(format!("shadowcut-cnf-inc-{}", std::process::id()));
        let confd = dir.join("conf.d");
        std::fs::create_dir_all(&confd).unwrap();
        std::fs::write(confd.join("20-b.cnf"), "[client]\nuser=from-b\n").unwrap();
        std::fs::write(confd.join("10-a.cnf"), "[client]\nuser=from-a\nport=1\n").unwrap();
        std::fs::write(confd.join("30-c.txt"), "[client]\nuser=not-a-cnf\n").unwrap();
        std::fs::write(dir.join("one.cnf"), "[shadowcut]\nhost=included\n").unwrap();
        let main = dir.join("main.cnf");
        std::fs::write(
            &main,
            format!(
                "[client]\nhost=main\n!include {}\n!includedir {}\n!include {}/missing.cnf\nport=2\n",
                dir.join("one.cnf").display(),
                confd.display(),
                dir.display()
            ),
        )
        .unwrap();
        let o = OptionFiles::load(&Defaults::Only(main.clone())).unwrap();
        assert_eq!(o.value("host"), Some("included"));
        assert_eq!(o.value("user"), Some("from-b"));
        // The includes leave the including file's group as it was.
        assert_eq!(o.value("port"), Some("2"));
        assert_eq!(o.read.len(), 4);

        let looping = dir.join("loop.cnf");
        std::fs::write(&looping, format!("!include {}\n", looping.display())).unwrap();
        let e = OptionFiles::load(&Defaults::Only(looping)).unwrap_err();
        assert!(e.to_string().contains("nested too deep"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn world_writable_files_are_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("shadowcut-cnf-ww-{}", std::process::id()));
        std::fs::write(&path, "[client]\npassword=planted\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let o = OptionFiles::load(&Defaults::Only(path.clone())).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(o.value("password"), None);
    }
}
