//! SQL text helpers shared by every stage: identifier quoting, string literal
//! escaping, and a small lexer that understands quoting well enough to split
//! an ALTER specification into clauses.

/// Quotes an identifier with backticks, doubling embedded backticks.
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `db`.`table`, both quoted.
pub fn qualified(db: &str, table: &str) -> String {
    format!("{}.{}", ident(db), ident(table))
}

/// A single-quoted string literal, escaped for the fixed session sql_mode
/// (backslash escapes on, ANSI_QUOTES off) that every connection sets.
pub fn literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            _ => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Checks that a name read from information_schema (a charset or collation)
/// is a plain word, so that it can be written into SQL unquoted.
pub fn is_plain_word(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// One token of SQL text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// An unquoted word (keyword or identifier), as written.
    Word(String),
    /// A backtick-quoted identifier (or, under ANSI_QUOTES, a
    /// double-quoted one), unquoted.
    Quoted(String),
    /// A string literal, unquoted.
    Str(String),
    /// A number.
    Number(String),
    /// Any other single character: punctuation or operator.
    Punct(char),
}

impl Token {
    /// True when this is the unquoted keyword `kw` (case-insensitive).
    pub fn is_kw(&self, kw: &str) -> bool {
        matches!(self, Token::Word(w) if w.eq_ignore_ascii_case(kw))
    }

    /// The identifier this token names, quoted or not.
    pub fn as_name(&self) -> Option<&str> {
        match self {
            Token::Word(w) | Token::Quoted(w) => Some(w),
            _ => None,
        }
    }
}

/// How the server reads `"` and `\`, which its sql_mode decides. Every
/// other rule of the lexer below is the server's whatever the mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexing {
    /// `"` quotes an identifier (ANSI_QUOTES), not a string.
    pub ansi_quotes: bool,
    /// `\` in a string escapes the next character (unless
    /// NO_BACKSLASH_ESCAPES).
    pub backslash_escapes: bool,
}

impl Lexing {
    /// The server's default reading, and that of every session of the
    /// tool ([`crate::server::SQL_TEXT_MODES`] are taken out). The user's
    /// ALTER runs in the server's own mode, and is refused where that
    /// would read it otherwise
    /// ([`crate::server::alter_reads_differently`]).
    pub const DEFAULT: Lexing = Lexing {
        ansi_quotes: false,
        backslash_escapes: true,
    };

    /// The reading under the sql_mode bits a binlog QUERY event carries
    /// (the bit values both servers use).
    pub fn of_sql_mode_bits(bits: u64) -> Lexing {
        const ANSI_QUOTES: u64 = 0x4;
        const NO_BACKSLASH_ESCAPES: u64 = 0x10_0000;
        Lexing {
            ansi_quotes: bits & ANSI_QUOTES != 0,
            backslash_escapes: bits & NO_BACKSLASH_ESCAPES == 0,
        }
    }
}

/// A character the server takes into an unquoted identifier: ASCII letters,
/// digits, `_` and `$`, and every character from U+0080 on (the no-break
/// space included: only ASCII separates words).
pub fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$' || !c.is_ascii()
}

/// A character the server skips between tokens: ASCII white space only.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// Splits SQL text into tokens, read as the server reads it in its default
/// sql_mode. Comments are dropped, but for executable comments (`/*! ...
/// */`), whose content is read as SQL. Returns an error message for an
/// unterminated quote or comment.
pub fn tokenize(sql: &str) -> Result<Vec<Token>, String> {
    tokenize_as(sql, Lexing::DEFAULT).map(|(tokens, _)| tokens)
}

/// [`tokenize`] under `lexing`, and whether the text holds an executable
/// comment that only some servers run: one with a version (`/*!80000 ...
/// */`, run from that version on) or MariaDB's `/*M! ... */`. Its content
/// is read as SQL all the same, which is right only where the server runs
/// it.
pub fn tokenize_as(sql: &str, lexing: Lexing) -> Result<(Vec<Token>, bool), String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut tokens = Vec::new();
    let mut executable_comments = 0usize;
    let mut conditional = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if is_space(c) {
            i += 1;
        } else if c == '#' || starts_dash_comment(&chars, i) {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/'
            && chars.get(i + 1) == Some(&'*')
            && (chars.get(i + 2) == Some(&'!')
                || (chars.get(i + 2) == Some(&'M') && chars.get(i + 3) == Some(&'!')))
        {
            // An executable comment: the server runs its content, so it is
            // read as SQL (after the optional version number).
            conditional |= chars[i + 2] == 'M';
            i += if chars[i + 2] == 'M' { 4 } else { 3 };
            conditional |= chars.get(i).is_some_and(char::is_ascii_digit);
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            executable_comments += 1;
        } else if c == '*' && chars.get(i + 1) == Some(&'/') && executable_comments > 0 {
            executable_comments -= 1;
            i += 2;
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            let start = i;
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                i += 1;
            }
            if i + 1 >= chars.len() {
                return Err(format!("unterminated comment at offset {start}"));
            }
            i += 2;
        } else if c == '`' || c == '"' || c == '\'' {
            let identifier = c == '`' || (c == '"' && lexing.ansi_quotes);
            let (text, next) = quoted(&chars, i, !identifier && lexing.backslash_escapes)?;
            i = next;
            tokens.push(if identifier {
                Token::Quoted(text)
            } else {
                Token::Str(text)
            });
        } else if is_ident_char(c) && follows_a_name_and_a_dot(&chars, i) {
            // `shop.123`: after a name and a dot the server reads a name,
            // whatever it starts with.
            let start = i;
            while i < chars.len() && is_ident_char(chars[i]) {
                i += 1;
            }
            tokens.push(Token::Word(chars[start..i].iter().collect()));
        } else if is_ident_char(c) {
            let (token, next) = word_or_number(&chars, i);
            tokens.push(token);
            i = next;
        } else {
            tokens.push(Token::Punct(c));
            i += 1;
        }
    }
    Ok((tokens, conditional))
}

/// True when `chars[i]` comes right after a dot that comes right after a
/// name (`db.t`, `` `db`.t ``).
fn follows_a_name_and_a_dot(chars: &[char], i: usize) -> bool {
    i >= 2
        && chars[i - 1] == '.'
        && (is_ident_char(chars[i - 2]) || matches!(chars[i - 2], '`' | '"'))
}

/// `--` starts a comment only when a space or a control character (or the
/// end of the text) follows: `5--1` is five minus minus one.
fn starts_dash_comment(chars: &[char], i: usize) -> bool {
    chars[i] == '-'
        && chars.get(i + 1) == Some(&'-')
        && chars
            .get(i + 2)
            .is_none_or(|&c| is_space(c) || c.is_ascii_control())
}

/// The text between the quote at `start` and its closing quote (a doubled
/// quote stands for one; with `backslash`, `\` takes the next character
/// in), and the index after the closing quote.
fn quoted(chars: &[char], start: usize, backslash: bool) -> Result<(String, usize), String> {
    let quote = chars[start];
    let mut text = String::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => return Err(format!("unterminated quote {quote} at offset {start}")),
            Some(&ch) if ch == quote => {
                if chars.get(i + 1) == Some(&quote) {
                    text.push(quote);
                    i += 2;
                } else {
                    return Ok((text, i + 1));
                }
            }
            Some(&'\\') if backslash => {
                if let Some(&next) = chars.get(i + 1) {
                    text.push(next);
                }
                i += 2;
            }
            Some(&ch) => {
                text.push(ch);
                i += 1;
            }
        }
    }
}

/// The word or number starting at `start`, as the server tells them apart:
/// a run of identifier characters is a number when it is all digits (then
/// with an optional fraction and exponent), a float such as `1e5`,
/// hexadecimal (`0x1F`) or binary (`0b101`), and an identifier otherwise,
/// even when it starts with a digit (`1x`). Returns the token and the index
/// after it.
fn word_or_number(chars: &[char], start: usize) -> (Token, usize) {
    let mut end = start;
    while end < chars.len() && is_ident_char(chars[end]) {
        end += 1;
    }
    let run: String = chars[start..end].iter().collect();
    if !chars[start].is_ascii_digit() {
        return (Token::Word(run), end);
    }
    let number = |to: usize| (Token::Number(chars[start..to].iter().collect()), to);
    let digits_from = |mut i: usize| {
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let mantissa_end = digits_from(start);
    if mantissa_end == end {
        // All digits: a fraction and an exponent may follow.
        let mut i = end;
        if chars.get(i) == Some(&'.') {
            i = digits_from(i + 1);
        }
        if matches!(chars.get(i), Some('e' | 'E')) {
            let sign = usize::from(matches!(chars.get(i + 1), Some('+' | '-')));
            if chars.get(i + 1 + sign).is_some_and(char::is_ascii_digit) {
                i = digits_from(i + 1 + sign);
            }
        }
        return number(i);
    }
    // The prefixes are lower case only: `0X1F` is a name.
    let exponent = &run[mantissa_end - start..];
    let is_hex =
        run.len() > 2 && run.starts_with("0x") && run[2..].chars().all(|c| c.is_ascii_hexdigit());
    let is_bits =
        run.len() > 2 && run.starts_with("0b") && run[2..].chars().all(|c| matches!(c, '0' | '1'));
    let is_float = exponent.len() > 1
        && exponent.starts_with(['e', 'E'])
        && exponent[1..].chars().all(|c| c.is_ascii_digit());
    if is_hex || is_bits || is_float {
        return number(end);
    }
    // `1e+5`, `1e-5`: the run stops at the sign.
    if matches!(exponent, "e" | "E")
        && matches!(chars.get(end), Some('+' | '-'))
        && chars.get(end + 1).is_some_and(char::is_ascii_digit)
    {
        return number(digits_from(end + 1));
    }
    (Token::Word(run), end)
}

/// Splits tokens on commas that are not inside parentheses.
pub fn split_top_level_commas(tokens: &[Token]) -> Vec<&[Token]> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, t) in tokens.iter().enumerate() {
        match t {
            Token::Punct('(') => depth += 1,
            Token::Punct(')') => depth -= 1,
            Token::Punct(',') if depth == 0 => {
                parts.push(&tokens[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < tokens.len() {
        parts.push(&tokens[start..]);
    }
    parts
}

/// True when `text` mentions `name` as a whole identifier (case-insensitive),
/// bare or backtick-quoted. Used to spot statements touching a table.
pub fn mentions_identifier(text: &str, name: &str) -> bool {
    let hay = text.to_lowercase();
    let needle = name.to_lowercase();
    if needle.is_empty() {
        return false;
    }
    let is_word = is_ident_char;
    let mut from = 0;
    while let Some(pos) = hay[from..].find(&needle) {
        let start = from + pos;
        let end = start + needle.len();
        let before = hay[..start].chars().next_back();
        let after = hay[end..].chars().next();
        if !before.is_some_and(is_word) && !after.is_some_and(is_word) {
            return true;
        }
        from = start + needle.len().max(1);
        while !hay.is_char_boundary(from) {
            from += 1;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_identifiers_and_literals() {
        assert_eq!(ident("a`b"), "`a``b`");
        assert_eq!(qualified("d", "t"), "`d`.`t`");
        assert_eq!(literal("it's \\ ok"), "'it''s \\\\ ok'");
    }

    #[test]
    fn tokenizer_respects_quotes_and_comments() {
        let t = tokenize("ADD COLUMN `a,b` INT DEFAULT 'x,y' /* c, d */, DROP c -- e\n").unwrap();
        let parts = split_top_level_commas(&t);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0][2], Token::Quoted("a,b".into()));
        assert_eq!(parts[0][5], Token::Str("x,y".into()));
        assert!(parts[1][0].is_kw("drop"));
        assert!(tokenize("ADD `x").is_err());
    }

    #[test]
    fn executable_comments_are_read_as_sql() {
        let t =
            tokenize("ADD c INT /*!50100 , RENAME TO x */ /*M!100000 , LOCK=NONE */ /* x, y */")
                .unwrap();
        let parts = split_top_level_commas(&t);
        assert_eq!(parts.len(), 3);
        assert!(parts[1][0].is_kw("RENAME"));
        assert!(parts[2][0].is_kw("LOCK"));
        let conditional = |sql: &str| tokenize_as(sql, Lexing::DEFAULT).unwrap().1;
        assert!(conditional("ADD c INT /*!50100 , DROP d */"));
        assert!(conditional("ADD c INT /*M! , DROP d */"));
        assert!(!conditional(
            "ADD c INT /*! , DROP d */ /* 50100 */ -- /*!5"
        ));
        assert!(!conditional("ADD c INT DEFAULT '/*!50100 x */'"));
    }

    #[test]
    fn reads_as_the_server_reads() {
        let words = |sql: &str| tokenize(sql).unwrap();
        // A double-quoted string, with an escaped quote inside: not an
        // identifier, and the clauses after it are its text (fuzz review D1).
        let t = words(r#"DEFAULT "\", CHANGE a b INT" , DROP c"#);
        assert_eq!(t[1], Token::Str("\", CHANGE a b INT".into()));
        assert!(t[3].is_kw("DROP"));
        assert_eq!(
            words(r#"'it''s' "say ""hi""""#)[1],
            Token::Str("say \"hi\"".into())
        );
        // `--` is a comment only before a space or a control character.
        let t = words("DEFAULT (5--1), CHANGE a b INT");
        assert!(t.iter().any(|t| t.is_kw("CHANGE")), "{t:?}");
        assert_eq!(words("ADD c INT --\tnote").len(), 3);
        assert_eq!(words("ADD c INT --").len(), 3);
        // Identifiers may start with a digit, and take any non-ASCII
        // character, the no-break space included.
        assert_eq!(words("CHANGE 1x a INT")[1], Token::Word("1x".into()));
        assert_eq!(words("DROP a€")[1], Token::Word("a€".into()));
        assert_eq!(words("DROP p\u{a0}1")[1], Token::Word("p\u{a0}1".into()));
        assert_eq!(words("DROP é\u{3000}x").len(), 2);
        for number in ["12", "1.5", "1e5", "1E+5", "2.5e-3", "0x1F", "0b101"] {
            assert_eq!(
                words(number),
                vec![Token::Number(number.into())],
                "{number}"
            );
        }
        for word in ["1e", "1ex", "0x1G", "0b12", "123abc", "1e5x", "0X1F", "0B1"] {
            assert_eq!(words(word), vec![Token::Word(word.into())], "{word}");
        }
        // Under ANSI_QUOTES a double quote is an identifier's; under
        // NO_BACKSLASH_ESCAPES a backslash is a character.
        let ansi = Lexing::of_sql_mode_bits(0x4);
        let (t, _) = tokenize_as(r#""a\" b"#, ansi).unwrap();
        assert_eq!(
            t,
            vec![Token::Quoted("a\\".into()), Token::Word("b".into())]
        );
        let plain = Lexing::of_sql_mode_bits(0x10_0000);
        let (t, _) = tokenize_as(r"'a\' b", plain).unwrap();
        assert_eq!(t, vec![Token::Str("a\\".into()), Token::Word("b".into())]);
        assert_eq!(Lexing::of_sql_mode_bits(0), Lexing::DEFAULT);
        // After a name and a dot, a name; a leading dot makes a number.
        assert_eq!(
            words("TRUNCATE shop.123"),
            vec![
                Token::Word("TRUNCATE".into()),
                Token::Word("shop".into()),
                Token::Punct('.'),
                Token::Word("123".into())
            ]
        );
        assert_eq!(words("`shop`.1e5")[2], Token::Word("1e5".into()));
        assert_eq!(words("DEFAULT .5")[2], Token::Number("5".into()));
    }

    #[test]
    fn parentheses_keep_commas_inside_a_clause() {
        let t = tokenize("ADD INDEX i (a, b), ADD COLUMN d DECIMAL(10,2)").unwrap();
        assert_eq!(split_top_level_commas(&t).len(), 2);
    }

    #[test]
    fn finds_identifier_mentions_as_whole_words() {
        assert!(mentions_identifier(
            "ALTER TABLE `Orders` ADD x INT",
            "orders"
        ));
        assert!(mentions_identifier("truncate orders", "orders"));
        assert!(!mentions_identifier("DROP TABLE `_orders_del`", "orders"));
        assert!(!mentions_identifier(
            "insert into orders2 values (1)",
            "orders"
        ));
    }
}
