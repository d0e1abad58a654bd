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
    /// A backtick- or double-quote-quoted identifier, unquoted.
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

/// Splits SQL text into tokens. Comments are dropped, but for executable
/// comments (`/*! ... */`), whose content is read as SQL. Returns an error
/// message for an unterminated quote or comment.
pub fn tokenize(sql: &str) -> Result<Vec<Token>, String> {
    tokenize_noting_conditions(sql).map(|(tokens, _)| tokens)
}

/// [`tokenize`], and whether the text holds an executable comment that
/// only some servers run: one with a version (`/*!80000 ... */`, run from
/// that version on) or MariaDB's `/*M! ... */`. Its content is read as SQL
/// all the same, which is right only where the server runs it.
pub fn tokenize_noting_conditions(sql: &str) -> Result<(Vec<Token>, bool), String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut tokens = Vec::new();
    let mut executable_comments = 0usize;
    let mut conditional = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '#' || (c == '-' && chars.get(i + 1) == Some(&'-')) {
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
            let quote = c;
            let start = i;
            i += 1;
            let mut text = String::new();
            loop {
                match chars.get(i) {
                    None => return Err(format!("unterminated quote {quote} at offset {start}")),
                    Some(&ch) if ch == quote => {
                        if chars.get(i + 1) == Some(&quote) {
                            text.push(quote);
                            i += 2;
                        } else {
                            i += 1;
                            break;
                        }
                    }
                    Some(&'\\') if quote == '\'' => {
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
            tokens.push(if quote == '\'' {
                Token::Str(text)
            } else {
                Token::Quoted(text)
            });
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            tokens.push(Token::Number(chars[start..i].iter().collect()));
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            tokens.push(Token::Word(chars[start..i].iter().collect()));
        } else {
            tokens.push(Token::Punct(c));
            i += 1;
        }
    }
    Ok((tokens, conditional))
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
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
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
        let conditional = |sql: &str| tokenize_noting_conditions(sql).unwrap().1;
        assert!(conditional("ADD c INT /*!50100 , DROP d */"));
        assert!(conditional("ADD c INT /*M! , DROP d */"));
        assert!(!conditional(
            "ADD c INT /*! , DROP d */ /* 50100 */ -- /*!5"
        ));
        assert!(!conditional("ADD c INT DEFAULT '/*!50100 x */'"));
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
