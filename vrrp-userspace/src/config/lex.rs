//! keepalived.conf's surface syntax: lines, `#` and `!` comments, quoted strings, braces as
//! tokens of their own, `include` with globs, `$NAME=value` definitions (with `\`
//! continuation) and `$NAME` / `${NAME}` expansion, `@id` / `@^id` line conditionals; then a
//! tree of blocks. Everything carries file:line.

use std::{
    collections::HashMap,
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
};

use super::{Diagnostics, Loc};

/// A word of the config, after expansion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    pub quoted: bool,
    pub loc: Loc,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A statement: a keyword, its arguments, and its block if it opens one.
#[derive(Clone, Debug)]
pub struct Node {
    pub keyword: Token,
    pub args: Vec<Token>,
    pub block: Option<Vec<Node>>,
}

impl Node {
    pub fn loc(&self) -> &Loc {
        &self.keyword.loc
    }
    pub fn name(&self) -> &str {
        &self.keyword.text
    }
}

/// How deep includes may nest, and how many expansions a line may take, before we call it a
/// loop (keepalived itself hangs on `$A=$B` / `$B=$A`).
const MAX_INCLUDE_DEPTH: usize = 16;
const MAX_EXPANSIONS: usize = 64;

pub struct Lexer<'a> {
    config_id: &'a str,
    vars: HashMap<String, String>,
    tokens: Vec<Token>,
    diags: &'a mut Diagnostics,
    /// Marks line ends in the token stream (keepalived's statements end at a newline).
    newline: Vec<usize>,
}

impl<'a> Lexer<'a> {
    pub fn new(config_id: &'a str, diags: &'a mut Diagnostics) -> Self {
        Self {
            config_id,
            vars: HashMap::new(),
            tokens: Vec::new(),
            diags,
            newline: Vec::new(),
        }
    }

    /// Reads `path` and everything it includes into the token stream.
    pub fn read_file(&mut self, path: &Path, depth: usize) {
        let file: Arc<PathBuf> = Arc::new(path.to_path_buf());
        let text = match std::fs::read(path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => {
                self.diags.error(
                    Loc { file, line: 0 },
                    format!("cannot read {}: {e}", path.display()),
                );
                return;
            }
        };
        self.read_str(&text, &file, depth);
    }

    pub fn read_str(&mut self, text: &str, file: &Arc<PathBuf>, depth: usize) {
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let line_no = u32::try_from(i + 1).unwrap_or(u32::MAX);
            let loc = Loc {
                file: Arc::clone(file),
                line: line_no,
            };
            let mut line = lines[i].to_owned();
            i += 1;
            // `@id rest` / `@^id rest`: the rest only for (or not for) this config id.
            if let Some(cond) = line.trim_start().strip_prefix('@') {
                let (negate, cond) = cond.strip_prefix('^').map_or((false, cond), |c| (true, c));
                let (id, rest) = cond.split_once(char::is_whitespace).unwrap_or((cond, ""));
                if (id == self.config_id) == negate {
                    continue;
                }
                line = rest.to_owned();
            }
            // `$NAME=value`, continued over lines ending in `\`.
            if let Some(def) = line.trim_start().strip_prefix('$')
                && let Some((name, value)) = def.split_once('=')
                && is_var_name(name)
            {
                let mut value = value.trim().to_owned();
                while value.ends_with('\\') && i < lines.len() {
                    value.pop();
                    value.push('\n');
                    value.push_str(lines[i].trim());
                    i += 1;
                }
                self.vars.insert(name.to_owned(), value);
                continue;
            }
            let expanded = match self.expand(&line) {
                Ok(s) => s,
                Err(name) => {
                    // Keep the line as written, so that one loop is one error, not a cascade.
                    self.diags.error(
                        loc.clone(),
                        format!("variable ${name} expands into itself (a definition loop)"),
                    );
                    line
                }
            };
            // A multi-line variable value becomes several lines at this line number.
            for piece in expanded.split('\n') {
                let words = match split_words(piece) {
                    Ok(w) => w,
                    Err(msg) => {
                        self.diags.error(loc.clone(), msg);
                        continue;
                    }
                };
                if words.first().is_some_and(|(w, q)| !q && w == "include") {
                    self.include(&words[1..], file, &loc, depth);
                    continue;
                }
                for (text, quoted) in words {
                    self.tokens.push(Token {
                        text,
                        quoted,
                        loc: loc.clone(),
                    });
                }
                self.newline.push(self.tokens.len());
            }
        }
    }

    fn include(&mut self, args: &[(String, bool)], file: &Arc<PathBuf>, loc: &Loc, depth: usize) {
        let Some((pattern, _)) = args.first() else {
            self.diags.error(
                loc.clone(),
                "include needs a file name or pattern".to_owned(),
            );
            return;
        };
        if depth >= MAX_INCLUDE_DEPTH {
            self.diags.error(
                loc.clone(),
                format!("includes nest deeper than {MAX_INCLUDE_DEPTH}: an include loop?"),
            );
            return;
        }
        // Relative patterns are relative to the including file's directory.
        let base = file.parent().unwrap_or_else(|| Path::new("."));
        let full = if Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            base.join(pattern)
        };
        let mut matched: Vec<PathBuf> = glob::glob(&full.to_string_lossy())
            .map(|paths| paths.filter_map(Result::ok).collect())
            .unwrap_or_default();
        matched.sort();
        if matched.is_empty() {
            // keepalived: "Config files missing" is a warning, not an error.
            self.diags
                .warning(loc.clone(), format!("include {pattern}: no such file"));
        }
        for path in matched {
            self.read_file(&path, depth + 1);
        }
    }

    /// Expands `$NAME` and `${NAME}` (unknown names stay as they are, as in keepalived).
    fn expand(&self, line: &str) -> Result<String, String> {
        let mut out = line.to_owned();
        for _ in 0..MAX_EXPANSIONS {
            let Some((start, end, name)) = find_var(&out, &self.vars) else {
                return Ok(out);
            };
            let value = &self.vars[&name];
            out.replace_range(start..end, value);
        }
        Err(find_var(&out, &self.vars).map(|v| v.2).unwrap_or_default())
    }

    /// Builds the statement tree; unbalanced braces are errors with their line.
    pub fn into_tree(self) -> Vec<Node> {
        let Self {
            tokens,
            newline,
            diags,
            ..
        } = self;
        let mut ends = newline.into_iter().peekable();
        let mut stack: Vec<(Option<Node>, Vec<Node>)> = vec![(None, Vec::new())];
        let mut current: Vec<Token> = Vec::new();
        let flush = |current: &mut Vec<Token>, stack: &mut Vec<(Option<Node>, Vec<Node>)>| {
            if current.is_empty() {
                return;
            }
            let mut words = std::mem::take(current).into_iter();
            if let Some(keyword) = words.next() {
                let node = Node {
                    keyword,
                    args: words.collect(),
                    block: None,
                };
                if let Some(top) = stack.last_mut() {
                    top.1.push(node);
                }
            }
        };
        for (i, tok) in tokens.into_iter().enumerate() {
            while ends.peek().is_some_and(|&e| e <= i) {
                ends.next();
                flush(&mut current, &mut stack);
            }
            match (tok.text.as_str(), tok.quoted) {
                ("{", false) => {
                    // The statement before the brace owns the block; a bare `{` opens an
                    // anonymous one that keepalived would also reject.
                    let owner = if current.is_empty() {
                        diags.error(
                            tok.loc.clone(),
                            "'{' without a keyword before it".to_owned(),
                        );
                        Node {
                            keyword: tok.clone(),
                            args: Vec::new(),
                            block: None,
                        }
                    } else {
                        let mut words = std::mem::take(&mut current).into_iter();
                        let keyword = words.next().unwrap_or_else(|| tok.clone());
                        Node {
                            keyword,
                            args: words.collect(),
                            block: None,
                        }
                    };
                    stack.push((Some(owner), Vec::new()));
                }
                ("}", false) => {
                    flush(&mut current, &mut stack);
                    if stack.len() == 1 {
                        diags.error(tok.loc.clone(), "extra '}'".to_owned());
                        continue;
                    }
                    if let Some((Some(mut owner), children)) = stack.pop() {
                        owner.block = Some(children);
                        if let Some(top) = stack.last_mut() {
                            top.1.push(owner);
                        }
                    }
                }
                _ => current.push(tok),
            }
        }
        flush(&mut current, &mut stack);
        while stack.len() > 1 {
            if let Some((Some(mut owner), children)) = stack.pop() {
                diags.error(
                    owner.keyword.loc.clone(),
                    format!("'{{' of '{}' is never closed", owner.keyword.text),
                );
                owner.block = Some(children);
                if let Some(top) = stack.last_mut() {
                    top.1.push(owner);
                }
            }
        }
        stack.pop().map(|(_, nodes)| nodes).unwrap_or_default()
    }
}

fn is_var_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn find_var(s: &str, vars: &HashMap<String, String>) -> Option<(usize, usize, String)> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            if bytes.get(i + 1) == Some(&b'{') {
                if let Some(close) = s[i + 2..].find('}') {
                    let name = &s[i + 2..i + 2 + close];
                    if vars.contains_key(name) {
                        return Some((i, i + 3 + close, name.to_owned()));
                    }
                }
            } else {
                let len = s[i + 1..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(s.len() - i - 1);
                let name = &s[i + 1..i + 1 + len];
                if vars.contains_key(name) {
                    return Some((i, i + 1 + len, name.to_owned()));
                }
            }
        }
        i += 1;
    }
    None
}

/// Splits a line into words: whitespace separates, `"..."` quotes (with `\"`), `#` or `!`
/// outside quotes starts a comment, `{` and `}` are words of their own.
fn split_words(line: &str) -> Result<Vec<(String, bool)>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut in_quote = false;
    let mut chars = line.chars().peekable();
    let push = |cur: &mut String, quoted: &mut bool, words: &mut Vec<(String, bool)>| {
        if !cur.is_empty() || *quoted {
            words.push((std::mem::take(cur), *quoted));
        }
        *quoted = false;
    };
    while let Some(c) = chars.next() {
        if in_quote {
            match c {
                '\\' if chars.peek() == Some(&'"') => {
                    cur.push('"');
                    chars.next();
                }
                '"' => in_quote = false,
                _ => cur.push(c),
            }
            continue;
        }
        match c {
            '"' => {
                in_quote = true;
                quoted = true;
            }
            '#' | '!' => break,
            '{' | '}' => {
                push(&mut cur, &mut quoted, &mut words);
                words.push((c.to_string(), false));
            }
            c if c.is_whitespace() => push(&mut cur, &mut quoted, &mut words),
            _ => cur.push(c),
        }
    }
    if in_quote {
        return Err(format!("missing closing '\"' in: {}", line.trim()));
    }
    push(&mut cur, &mut quoted, &mut words);
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        split_words(s)
            .expect("splits")
            .into_iter()
            .map(|w| w.0)
            .collect()
    }

    #[test]
    fn words_comments_quotes_braces() {
        assert_eq!(
            words("  router_id lb01  #设置路由ID"),
            ["router_id", "lb01"]
        );
        assert_eq!(
            words("vrrp_instance VI_1{ ! comment"),
            ["vrrp_instance", "VI_1", "{"]
        );
        assert_eq!(words("virtual_router_id 50#c"), ["virtual_router_id", "50"]);
        assert_eq!(
            words(r#"script "/bin/check -x \"a b\" # not a comment""#),
            ["script", r#"/bin/check -x "a b" # not a comment"#]
        );
        assert_eq!(words("10.0.0.3 }"), ["10.0.0.3", "}"]);
        assert!(split_words("script \"open").is_err());
    }
}
