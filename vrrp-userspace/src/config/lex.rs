//! keepalived.conf's surface syntax, as keepalived 2.2.7 reads it (lib/parser.c's `read_line`):
//! physical lines, comments (`#` or `!` anywhere outside double quotes), `@id` / `@^id` line
//! conditionals, `$NAME=value` definitions (redefinable, multi-line with a trailing `\`),
//! expanded lazily at the point of use (`$NAME`, `${NAME}`, the built-ins `_PWD`, `_INSTANCE`,
//! `_RANDOM`, `_HASH`, `_BANG`), the `~SEQ(...)` and `~LST(...)` line generators, `include`
//! (and `includer`, `includem`, `includew`, `includeb`, `includea`) with globs and brace
//! alternatives relative to the including file, and braces anywhere: a line is cut at every
//! `{` and `}` outside quotes, so `vrrp_instance VI_1 {` and `vrrp_instance VI_1` followed by a
//! line `{` are the same. Then a tree of statements. Everything carries file:line.

use std::{
    collections::HashMap,
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
};

use super::{Diagnostics, Loc, Severity};

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

/// A statement: a keyword, its arguments, the line as written (after expansion; scripts are
/// split from it with keepalived's quoting rules), and its block if it opens one.
#[derive(Clone, Debug)]
pub struct Node {
    pub keyword: Token,
    pub args: Vec<Token>,
    pub raw: String,
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

/// How deep includes and generators may nest, and how many expansions a line may take,
/// before we call it a loop (keepalived itself hangs on `$A=$B` / `$B=$A`).
const MAX_INCLUDE_DEPTH: usize = 16;
const MAX_EXPANSIONS: usize = 64;
/// How many statements one physical line may become (through generators and multi-line
/// definitions), how many files a brace pattern may name, and how deep blocks may nest:
/// beyond these a config is an attack or a mistake, and is refused with its line.
const MAX_LINES_PER_LINE: usize = 100_000;
const MAX_ALTERNATIVES: usize = 1024;
const MAX_BLOCK_DEPTH: usize = 64;
/// keepalived reads lines into a 1024-byte buffer; a definition may not push a line past it.
const MAX_LINE: usize = 1023;

/// A definition's value: one line, or several (`$NAME=a \` continued).
#[derive(Clone, Debug)]
enum Def {
    Line(String),
    Lines(Vec<String>),
}

/// A logical line, before it is cut into words.
struct Line {
    text: String,
    loc: Loc,
}

/// The include kinds: which problems make an include an error (keepalived's R, M, W, B).
#[derive(Clone, Copy, Debug, Default)]
struct IncludeCheck {
    /// The file cannot be read (or is a directory, or executable).
    unreadable: bool,
    /// A path without wildcards does not exist.
    missing: bool,
    /// A wildcard matches nothing.
    wildcard: bool,
    /// A brace alternative matches nothing.
    brace: bool,
}

impl IncludeCheck {
    const fn or(self, other: Self) -> Self {
        Self {
            unreadable: self.unreadable || other.unreadable,
            missing: self.missing || other.missing,
            wildcard: self.wildcard || other.wildcard,
            brace: self.brace || other.brace,
        }
    }

    /// `include_check [[+|-]read|match|wildcard_match|brace_match ...]` applied to `self`
    /// (keepalived's include_check_set): no word sets them all, a bare word sets `read` and
    /// that one, `+`/`-` add or remove one. Unknown words are the parser's to report.
    fn set(self, words: &[&str]) -> Self {
        let all = Self {
            unreadable: true,
            missing: true,
            wildcard: true,
            brace: true,
        };
        if words.is_empty() {
            return all;
        }
        let mut check = self;
        for (i, word) in words.iter().enumerate() {
            let (sign, name) = match word.as_bytes().first() {
                Some(b'+') => (1, &word[1..]),
                Some(b'-') => (-1, &word[1..]),
                _ if i == 0 => {
                    check = Self::default();
                    (0, *word)
                }
                _ => continue,
            };
            let mut flag = Self::default();
            match name {
                "read" => flag.unreadable = true,
                "match" => flag.missing = true,
                "wildcard_match" => flag.wildcard = true,
                "brace_match" => flag.brace = true,
                _ => continue,
            }
            check = match sign {
                0 => flag.or(Self {
                    unreadable: true,
                    ..Self::default()
                }),
                1 => check.or(flag),
                _ => Self {
                    unreadable: check.unreadable && !flag.unreadable,
                    missing: check.missing && !flag.missing,
                    wildcard: check.wildcard && !flag.wildcard,
                    brace: check.brace && !flag.brace,
                },
            };
        }
        check
    }

    fn of(keyword: &str) -> Option<Self> {
        let (r, m, w, b) = match keyword {
            "include" => (false, false, false, false),
            "includer" => (true, false, false, false),
            "includem" => (true, true, false, false),
            "includew" => (true, true, true, false),
            "includeb" => (true, false, false, true),
            "includea" => (true, true, true, true),
            _ => return None,
        };
        Some(Self {
            unreadable: r,
            missing: m,
            wildcard: w,
            brace: b,
        })
    }
}

pub struct Lexer<'a> {
    config_id: &'a str,
    defs: HashMap<String, Def>,
    lines: Vec<Line>,
    diags: &'a mut Diagnostics,
    /// Each included file's directory, innermost last (`_PWD`, relative includes).
    dirs: Vec<PathBuf>,
    /// Counts `${_RANDOM}` draws: deterministic within a run, different across lines.
    random: u64,
    /// global_defs `include_check`: added to every include's own kind until the file that
    /// set it ends.
    include_check: IncludeCheck,
    /// The line being read, as written (for a definition loop's message).
    written: String,
    /// Statements the current physical line may still become.
    budget: usize,
}

impl<'a> Lexer<'a> {
    pub fn new(config_id: &'a str, diags: &'a mut Diagnostics) -> Self {
        Self {
            config_id,
            defs: HashMap::new(),
            lines: Vec::new(),
            diags,
            dirs: Vec::new(),
            random: u64::from(std::process::id()),
            include_check: IncludeCheck::default(),
            written: String::new(),
            budget: MAX_LINES_PER_LINE,
        }
    }

    /// Reads `path` and everything it includes.
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
        let dir = file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        self.dirs.push(dir);
        let physical: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < physical.len() {
            let loc = Loc {
                file: Arc::clone(file),
                line: u32::try_from(i + 1).unwrap_or(u32::MAX),
            };
            let raw = physical[i].trim_end_matches('\r');
            i += 1;
            let line = decomment(raw);
            if line.is_empty() {
                continue;
            }
            // `$NAME=first \`: the definition goes on while lines end in `\`; a completely
            // empty line ends it too (comment-only and blank lines are skipped).
            if let Some((name, first)) = definition(&line)
                && let Some(first) = first.strip_suffix('\\')
            {
                let mut values = vec![first.trim_ascii_end().to_owned()];
                while i < physical.len() {
                    let raw = physical[i].trim_end_matches('\r');
                    if raw.is_empty() {
                        break;
                    }
                    i += 1;
                    let next = decomment(raw);
                    if next.is_empty() {
                        continue;
                    }
                    if let Some(more) = next.strip_suffix('\\') {
                        values.push(more.trim_ascii_end().to_owned());
                    } else {
                        values.push(next);
                        break;
                    }
                }
                values.retain(|v| !v.is_empty());
                self.defs.insert(name.to_owned(), Def::Lines(values));
                continue;
            }
            self.written.clone_from(&line);
            self.budget = MAX_LINES_PER_LINE;
            self.process(line, &loc, depth, 0);
        }
        self.dirs.pop();
    }

    /// One decommented line through conditionals, definitions, generators, expansion,
    /// includes and brace splitting.
    fn process(&mut self, mut line: String, loc: &Loc, depth: usize, expansions: usize) {
        // keepalived evaluates one condition per line: in `@a @^b x`, `@^b` is the keyword.
        let mut conditioned = false;
        loop {
            line = line.trim_ascii().to_owned();
            if line.is_empty() {
                return;
            }
            // `@id rest` / `@^id rest`: the rest only for (or not for) this config id.
            if !conditioned && let Some(cond) = line.strip_prefix('@') {
                conditioned = true;
                let (negate, cond) = cond.strip_prefix('^').map_or((false, cond), |c| (true, c));
                let Some((id, rest)) = cond.split_once([' ', '\t']) else {
                    return; // no blank after the id: keepalived drops the line
                };
                if (id == self.config_id) == negate {
                    return;
                }
                line = rest.to_owned();
                continue;
            }
            if let Some((name, value)) = definition(&line) {
                self.defs
                    .insert(name.to_owned(), Def::Line(value.to_owned()));
                return;
            }
            if line.starts_with("~SEQ") || line.starts_with("~LST") {
                self.generate(&line, loc, depth, expansions);
                return;
            }
            if line.starts_with('~') {
                break; // keepalived: any other `~` line goes on unexpanded
            }
            if !line.contains('$') {
                break;
            }
            match self.expand(&line, loc) {
                Expanded::Same => break,
                Expanded::Line(_) | Expanded::Lines(..) if expansions >= MAX_EXPANSIONS => {
                    let written = std::mem::take(&mut self.written);
                    self.diags.error(
                        loc.clone(),
                        format!("a definition expands into itself (a definition loop): {written}"),
                    );
                    // The line stays as written, so that its braces still pair up.
                    self.push_statements(&written, loc);
                    return;
                }
                Expanded::Line(text) => {
                    // The substituted text is read as if written there: a `#` it brings
                    // starts a comment, and it may be a definition or a conditional itself.
                    line = decomment(&text);
                    return self.process(line, loc, depth, expansions + 1);
                }
                Expanded::Lines(first, rest) => {
                    self.process(decomment(&first), loc, depth, expansions + 1);
                    for l in rest {
                        self.process(decomment(&l), loc, depth, expansions + 1);
                    }
                    return;
                }
            }
        }
        if let Some((kind, pattern)) = line.split_once([' ', '\t'])
            && let Some(check) = IncludeCheck::of(kind)
        {
            self.include(
                pattern.trim_ascii(),
                check.or(self.include_check),
                loc,
                depth,
            );
            return;
        }
        if let Some(words) = line.strip_prefix("include_check")
            && (words.is_empty() || words.starts_with([' ', '\t']))
        {
            // Read here because it changes how the includes that follow are read; the parser
            // checks its words.
            let words: Vec<&str> = words.split_ascii_whitespace().collect();
            self.include_check = self.include_check.set(&words);
        }
        if IncludeCheck::of(&line).is_some() {
            self.diags.error(
                loc.clone(),
                format!("'{line}' needs a file name or pattern"),
            );
            return;
        }
        self.push_statements(&line, loc);
    }

    /// Braces anywhere (outside double quotes) are statements of their own.
    fn push_statements(&mut self, line: &str, loc: &Loc) {
        if self.budget == 0 {
            return;
        }
        self.budget -= 1;
        if self.budget == 0 {
            self.diags.error(
                loc.clone(),
                format!("this line would become more than {MAX_LINES_PER_LINE} statements (line generators, definitions): the rest is dropped"),
            );
            return;
        }
        let mut rest = line;
        while !rest.is_empty() {
            let at = brace_at(rest);
            match at {
                Some(0) => {
                    self.lines.push(Line {
                        text: rest[..1].to_owned(),
                        loc: loc.clone(),
                    });
                    rest = rest[1..].trim_ascii_start();
                }
                Some(n) => {
                    self.lines.push(Line {
                        text: rest[..n].trim_ascii_end().to_owned(),
                        loc: loc.clone(),
                    });
                    rest = &rest[n..];
                }
                None => {
                    self.lines.push(Line {
                        text: rest.to_owned(),
                        loc: loc.clone(),
                    });
                    break;
                }
            }
        }
    }

    /// `~SEQ(var, [start,] [step,] end) template` and `~LST(var, a, b, ...) template` (or
    /// `~LST({v1,v2}, {a1,a2}, ...)`): the template once per value, the variables set as
    /// definitions (they keep their last value afterwards, as keepalived's do).
    fn generate(&mut self, line: &str, loc: &Loc, depth: usize, expansions: usize) {
        if depth >= MAX_INCLUDE_DEPTH {
            self.diags.error(
                loc.clone(),
                format!("line generators nest deeper than {MAX_INCLUDE_DEPTH}"),
            );
            return;
        }
        let (kind, after) = line.split_at(4);
        let (hex, after) = match after.strip_prefix('x') {
            Some(a) if kind == "~SEQ" => (true, a),
            _ => (false, after),
        };
        let after = after.trim_ascii_start();
        let parsed = after.strip_prefix('(').and_then(|a| {
            let close = closing_paren(a)?;
            Some((&a[..close], a[close + 1..].trim_ascii_start()))
        });
        let Some((spec, template)) = parsed else {
            self.diags.error(
                loc.clone(),
                format!("invalid {kind} specification: {line} (keepalived: {kind}(var, ...) text)"),
            );
            return;
        };
        let runs = if kind == "~SEQ" {
            // The parameters are expanded first (`~SEQ(i, $FIRST, $LAST)`).
            let spec = match self.expand(spec, loc) {
                Expanded::Line(s) => s,
                _ => spec.to_owned(),
            };
            seq(&spec, hex).map(|(var, values)| {
                values
                    .into_iter()
                    .map(|v| vec![(var.clone(), v)])
                    .collect::<Vec<_>>()
            })
        } else {
            lst(spec)
        };
        let Some(runs) = runs else {
            self.diags
                .error(loc.clone(), format!("invalid {kind} specification: {line}"));
            return;
        };
        for assignments in runs {
            if self.budget == 0 {
                return;
            }
            for (var, value) in assignments {
                self.defs.insert(var, Def::Line(value));
            }
            self.process(template.to_owned(), loc, depth + 1, expansions);
        }
    }

    /// Replaces the first definitions on `line` (`$NAME` before a blank, `,`, `)` or the end;
    /// `${NAME}` anywhere), the built-ins included. Unknown names stay as written.
    fn expand(&mut self, line: &str, loc: &Loc) -> Expanded {
        let mut out = String::with_capacity(line.len());
        let mut rest = line;
        let mut changed = false;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let (name, params, len, braced) = if let Some(inner) = after.strip_prefix('{') {
                let Some(close) = inner.find('}') else {
                    out.push('$');
                    rest = after;
                    continue;
                };
                let body = &inner[..close];
                let (name, params) = body.split_once(' ').unwrap_or((body, ""));
                (name, params.trim_ascii(), close + 2, true)
            } else {
                let n = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..n], "", n, false)
            };
            let next = after[len..].chars().next();
            let boundary = braced || matches!(next, None | Some(' ' | '\t' | ',' | ')'));
            let at_end = after[len..].trim_ascii().is_empty();
            match (is_name(name) && boundary)
                .then(|| self.value_of(name, params))
                .flatten()
            {
                Some(Def::Line(v)) => {
                    out.push_str(&v);
                    changed = true;
                }
                // A multi-line definition is used only as the last thing on a line: the first
                // line of the value takes its place, the others follow as lines of their own.
                Some(Def::Lines(vs)) if at_end => {
                    let mut vs = vs.into_iter();
                    out.push_str(&vs.next().unwrap_or_default());
                    return Expanded::Lines(out, vs.collect());
                }
                _ => {
                    out.push('$');
                    out.push_str(&after[..len]);
                }
            }
            rest = &after[len..];
        }
        out.push_str(rest);
        if !changed {
            return Expanded::Same;
        }
        if out.len() > MAX_LINE {
            self.diags.warning(
                loc.clone(),
                format!("expanding the definitions would make this line longer than {MAX_LINE} characters: left as written"),
            );
            return Expanded::Same;
        }
        Expanded::Line(out)
    }

    fn value_of(&mut self, name: &str, params: &str) -> Option<Def> {
        if let Some(d) = self.defs.get(name) {
            return Some(d.clone());
        }
        let text = match name {
            "_PWD" => self
                .dirs
                .last()
                .map(|d| std::fs::canonicalize(d).unwrap_or_else(|_| d.clone()))
                .map(|d| d.display().to_string())?,
            "_INSTANCE" => self.config_id.to_owned(),
            "_HASH" => "#".to_owned(),
            "_BANG" => "!".to_owned(),
            "_RANDOM" => {
                let mut p = params.split_ascii_whitespace().map(str::parse::<u64>);
                let (min, max) = match (p.next(), p.next()) {
                    (None, _) => (0, 32767),
                    (Some(Ok(min)), None) => (min, 32767.max(min)),
                    (Some(Ok(min)), Some(Ok(max))) if max >= min => (min, max),
                    _ => return None,
                };
                // keepalived: random() % (max - min + 1) + min. Any fair draw will do.
                self.random = self
                    .random
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let span = (max - min).saturating_add(1);
                (min + (self.random >> 33) % span).to_string()
            }
            _ => return None,
        };
        Some(Def::Line(text))
    }

    fn include(&mut self, pattern: &str, check: IncludeCheck, loc: &Loc, depth: usize) {
        if depth >= MAX_INCLUDE_DEPTH {
            self.diags.error(
                loc.clone(),
                format!("includes nest deeper than {MAX_INCLUDE_DEPTH}: an include loop?"),
            );
            return;
        }
        // Relative patterns are relative to the including file's directory.
        let base = self
            .dirs
            .last()
            .cloned()
            .unwrap_or_else(|| PathBuf::from("."));
        let alternatives = expand_braces(pattern);
        let mut matched: Vec<PathBuf> = Vec::new();
        for alt in &alternatives {
            let full = if Path::new(alt).is_absolute() {
                PathBuf::from(alt)
            } else {
                base.join(alt)
            };
            let wildcard = alt.contains(['*', '?', '[']);
            let mut found: Vec<PathBuf> = glob::glob(&full.to_string_lossy())
                .map(|paths| paths.filter_map(Result::ok).collect())
                .unwrap_or_default();
            found.sort();
            if found.is_empty() {
                let (escalate, what) = if wildcard {
                    (check.wildcard, "matches no file")
                } else {
                    (check.missing, "does not exist")
                };
                let escalate = escalate || (alternatives.len() > 1 && check.brace);
                let message = format!("include {alt}: {what}");
                if escalate {
                    self.diags.push(Severity::NoConfig, loc.clone(), message);
                } else {
                    // keepalived says "Config files missing" (and nothing for an empty
                    // wildcard) and goes on; a line here costs nothing at 3 a.m.
                    self.diags
                        .include_read_nothing(loc.clone(), format!("{message}: nothing read"));
                }
            }
            matched.extend(found);
        }
        for path in matched {
            let meta = std::fs::metadata(&path);
            let refused = match &meta {
                Ok(m) if m.is_dir() => Some("is a directory"),
                Ok(m) if !m.is_file() => Some("is not a regular file"),
                Ok(m) if std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0 => {
                    Some("is executable, and keepalived refuses executable config files")
                }
                Ok(_) => None,
                Err(_) => Some("cannot be read"),
            };
            if let Some(why) = refused {
                let message = format!("include {}: {why}", path.display());
                if check.unreadable {
                    self.diags.push(Severity::NoConfig, loc.clone(), message);
                } else {
                    self.diags
                        .warning(loc.clone(), format!("{message}: skipped"));
                }
                continue;
            }
            // An include_check set inside the included file ends with it.
            let saved = self.include_check;
            self.read_file(&path, depth + 1);
            self.include_check = saved;
        }
    }

    /// Builds the statement tree. A `{` opens the block of the statement right before it;
    /// unbalanced braces are errors with their line.
    pub fn into_tree(self) -> Vec<Node> {
        struct Level {
            nodes: Vec<Node>,
            /// The last statement may still take a block (no other line came since).
            open: bool,
            /// Opened by a `{` no statement owns: what it holds is dropped when it closes.
            orphan: bool,
        }
        let level = |orphan| Level {
            nodes: Vec::new(),
            open: false,
            orphan,
        };
        let Self { lines, diags, .. } = self;
        let mut stack = vec![level(false)];
        for line in lines {
            let depth = stack.len() - 1;
            match line.text.as_str() {
                "{" => {
                    let top = &mut stack[depth];
                    let owned = top.open && top.nodes.last().is_some_and(|n| n.block.is_none());
                    top.open = false;
                    if !owned {
                        diags.error(
                            line.loc.clone(),
                            "unexpected '{' (no keyword right before it takes a block)".to_owned(),
                        );
                    }
                    if stack.len() > MAX_BLOCK_DEPTH {
                        diags.error(
                            line.loc.clone(),
                            format!("blocks nested deeper than {MAX_BLOCK_DEPTH}"),
                        );
                        break;
                    }
                    stack.push(level(!owned));
                }
                "}" => {
                    if depth == 0 {
                        diags.error(line.loc.clone(), "extra '}'".to_owned());
                        continue;
                    }
                    if let Some(closed) = stack.pop()
                        && !closed.orphan
                        && let Some(owner) = stack[depth - 1].nodes.last_mut()
                    {
                        owner.block = Some(closed.nodes);
                    }
                }
                text => {
                    let words = match split_words(text, &line.loc) {
                        Ok(w) => w,
                        Err(msg) => {
                            diags.error(line.loc.clone(), msg);
                            continue;
                        }
                    };
                    let mut words = words.into_iter();
                    let Some(keyword) = words.next() else {
                        continue;
                    };
                    let top = &mut stack[depth];
                    top.nodes.push(Node {
                        keyword,
                        args: words.collect(),
                        raw: text.to_owned(),
                        block: None,
                    });
                    top.open = true;
                }
            }
        }
        while stack.len() > 1 {
            let Some(closed) = stack.pop() else {
                break;
            };
            let depth = stack.len() - 1;
            if closed.orphan {
                continue;
            }
            if let Some(owner) = stack[depth].nodes.last_mut() {
                diags.error(
                    owner.keyword.loc.clone(),
                    format!("'{{' of '{}' is never closed", owner.keyword.text),
                );
                owner.block = Some(closed.nodes);
            }
        }
        stack.pop().map(|l| l.nodes).unwrap_or_default()
    }
}

enum Expanded {
    Same,
    Line(String),
    /// A multi-line definition: the line with its first value line, then the others.
    Lines(String, Vec<String>),
}

fn is_name(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `$NAME=value` (no blank before `=`): the name and the value.
fn definition(line: &str) -> Option<(&str, &str)> {
    let def = line.strip_prefix('$')?;
    let eq = def.find('=')?;
    let name = &def[..eq];
    is_name(name).then(|| (name, def[eq + 1..].trim_ascii_start()))
}

/// keepalived's `decomment`: leading and trailing blanks go, and everything from the first `#`
/// or `!` outside double quotes; `\#` and `\!` outside quotes are the characters themselves.
fn decomment(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut quoted = false;
    let mut chars = line.trim_ascii_start().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                out.push(c);
            }
            '\\' if !quoted && matches!(chars.peek(), Some('#' | '!')) => {
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            }
            '#' | '!' if !quoted => break,
            _ => out.push(c),
        }
    }
    out.trim_ascii_end().to_owned()
}

/// Where the first `{` or `}` outside double quotes is.
fn brace_at(s: &str) -> Option<usize> {
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '{' | '}' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

fn closing_paren(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return Some(i),
            ')' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// `a/{x,y}/b` -> `a/x/b`, `a/y/b` (glob's GLOB_BRACE, which the glob crate lacks); at most
/// MAX_ALTERNATIVES of them, and a pattern with more than 64 braces is taken literally.
fn expand_braces(pattern: &str) -> Vec<String> {
    if pattern.matches('{').count() > 64 {
        return vec![pattern.to_owned()];
    }
    let Some(open) = pattern.find('{') else {
        return vec![pattern.to_owned()];
    };
    let mut depth = 0;
    let mut close = None;
    for (i, c) in pattern[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(open + i);
                    break;
                }
            }
            _ => {}
        }
    }
    let Some(close) = close else {
        return vec![pattern.to_owned()];
    };
    let (head, body, tail) = (
        &pattern[..open],
        &pattern[open + 1..close],
        &pattern[close + 1..],
    );
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&body[start..]);
    parts
        .into_iter()
        .flat_map(|p| expand_braces(&format!("{head}{p}{tail}")))
        .take(MAX_ALTERNATIVES)
        .collect()
}

/// A number as keepalived's strtol(.., 0) reads it: decimal, 0x hex or 0 octal.
fn c_number(s: &str) -> Option<i64> {
    let s = s.trim_ascii();
    let (neg, digits) = s.strip_prefix('-').map_or((false, s), |d| (true, d));
    let v = if let Some(h) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        i64::from_str_radix(h, 16).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        i64::from_str_radix(&digits[1..], 8).ok()?
    } else {
        digits.parse().ok()?
    };
    if neg { v.checked_neg() } else { Some(v) }
}

/// `var, [start,] [step,] end`: the variable and its values (keepalived's `add_seq`).
fn seq(spec: &str, hex: bool) -> Option<(String, Vec<String>)> {
    let mut parts = spec.split(',').map(str::trim);
    let var = parts.next().filter(|v| is_name(v))?.to_owned();
    let nums: Vec<i64> = parts.map(c_number).collect::<Option<_>>()?;
    let (start, step, end) = match nums[..] {
        [n] => (if n < 0 { -1 } else { 1 }, if n < 1 { -1 } else { 1 }, n),
        [a, b] => (a, if a <= b { 1 } else { -1 }, b),
        [a, s, b] => (a, s, b),
        _ => return None,
    };
    if step == 0 || (step > 0 && start > end) || (step < 0 && start < end) {
        return None;
    }
    if hex && (start < 0 || end < 0) {
        return None;
    }
    let mut values = Vec::new();
    let mut v = start;
    while (step > 0 && v <= end) || (step < 0 && v >= end) {
        values.push(if hex { format!("{v:x}") } else { v.to_string() });
        if values.len() > 100_000 {
            return None;
        }
        let Some(next) = v.checked_add(step) else {
            break;
        };
        v = next;
    }
    Some((var, values))
}

/// `var, a, b, ...` or `{v1,v2}, {a1,a2}, b1, ...`: each run's assignments (keepalived's
/// `add_lst`; missing values are empty).
fn lst(spec: &str) -> Option<Vec<Vec<(String, String)>>> {
    let items = split_list(spec)?;
    let mut items = items.into_iter();
    let vars = items.next()?;
    if vars.iter().any(|v| !is_name(v)) || vars.is_empty() {
        return None;
    }
    let mut runs = Vec::new();
    for values in items {
        if values.len() > vars.len() {
            return None;
        }
        runs.push(
            vars.iter()
                .enumerate()
                .map(|(i, var)| (var.clone(), values.get(i).cloned().unwrap_or_default()))
                .collect(),
        );
    }
    Some(runs)
}

/// `{a,b}, c, {d}` -> [[a,b],[c],[d]].
fn split_list(spec: &str) -> Option<Vec<Vec<String>>> {
    let mut out = Vec::new();
    let mut rest = spec.trim_ascii();
    while !rest.is_empty() {
        if let Some(inner) = rest.strip_prefix('{') {
            let close = inner.find('}')?;
            out.push(
                inner[..close]
                    .split(',')
                    .map(|v| v.trim_ascii().to_owned())
                    .collect(),
            );
            rest = inner[close + 1..].trim_ascii_start();
            rest = rest.strip_prefix(',').unwrap_or(rest).trim_ascii_start();
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            out.push(vec![rest[..end].trim_ascii().to_owned()]);
            rest = rest.get(end + 1..).unwrap_or("").trim_ascii_start();
        }
    }
    Some(out)
}

/// keepalived's tokenizer: words split at blanks; `"` starts a word that runs to the next `"`
/// (the quotes go, nothing is escaped), and ends a word it meets inside.
fn split_words(line: &str, loc: &Loc) -> Result<Vec<Token>, String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            chars.next();
        }
        let Some(&c) = chars.peek() else {
            break;
        };
        let mut text = String::new();
        let quoted = c == '"';
        if quoted {
            chars.next();
            let mut closed = false;
            for c in chars.by_ref() {
                if c == '"' {
                    closed = true;
                    break;
                }
                text.push(c);
            }
            if !closed {
                return Err(format!("missing closing '\"' in: {}", line.trim_ascii()));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_ascii_whitespace() || c == '"' {
                    break;
                }
                text.push(c);
                chars.next();
            }
        }
        words.push(Token {
            text,
            quoted,
            loc: loc.clone(),
        });
    }
    Ok(words)
}

/// The program of a script line: its first word, split with keepalived's quoting.
pub fn program(command: &str) -> Option<String> {
    script_words(command).ok()?.into_iter().next()
}

/// A script line as keepalived splits it (`alloc_strvec_quoted_escaped`): words at blanks,
/// `"..."` and `'...'` quoting (quoted and bare parts of one word join), and backslash escapes
/// (`\n`, `\t`, `\xHH`, octal `\NNN`, `\c`, and `\` before any other character for itself).
pub fn script_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while let Some(c) = chars.next() {
            match (quote, c) {
                (None, c) if c.is_ascii_whitespace() => break,
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (_, '\\') => {
                    let Some(e) = chars.next() else {
                        return Err("a script line may not end in '\\'".to_owned());
                    };
                    match e {
                        'n' => word.push('\n'),
                        't' => word.push('\t'),
                        'r' => word.push('\r'),
                        'a' => word.push('\u{7}'),
                        'b' => word.push('\u{8}'),
                        'f' => word.push('\u{c}'),
                        'v' => word.push('\u{b}'),
                        'E' => word.push('\u{1b}'),
                        'x' => {
                            let mut v = 0u32;
                            let mut n = 0;
                            while n < 2
                                && let Some(d) = chars.peek().and_then(|c| c.to_digit(16))
                            {
                                v = v * 16 + d;
                                chars.next();
                                n += 1;
                            }
                            word.push(char::from_u32(v).unwrap_or('?'));
                        }
                        'c' => {
                            if let Some(ctl) = chars.next() {
                                word.push(char::from_u32(u32::from(ctl) & 0x1f).unwrap_or('?'));
                            }
                        }
                        d @ '0'..='7' => {
                            let mut v = d.to_digit(8).unwrap_or(0);
                            let mut n = 1;
                            while n < 3
                                && let Some(d) = chars.peek().and_then(|c| c.to_digit(8))
                            {
                                v = v * 8 + d;
                                chars.next();
                                n += 1;
                            }
                            word.push(char::from_u32(v).unwrap_or('?'));
                        }
                        other => word.push(other),
                    }
                }
                (_, c) => word.push(c),
            }
        }
        if quote.is_some() {
            return Err(format!("missing closing quote in: {}", line.trim_ascii()));
        }
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        lines_for(text, "lb01")
    }

    fn lines_for(text: &str, id: &str) -> Vec<String> {
        let mut d = Diagnostics::default();
        let mut lx = Lexer::new(id, &mut d);
        lx.read_str(text, &Arc::new(PathBuf::from("t.conf")), 0);
        let out: Vec<String> = lx.lines.iter().map(|l| l.text.clone()).collect();
        assert!(!d.has_errors(), "{:?}", d.0);
        out
    }

    #[test]
    fn comments_anywhere_and_braces_split_lines() {
        assert_eq!(
            lines(
                "  router_id lb01  #设置路由ID\nvrrp_instance VI_1{ ! comment\nvirtual_router_id 50#c\n10.0.0.3 }"
            ),
            [
                "router_id lb01",
                "vrrp_instance VI_1",
                "{",
                "virtual_router_id 50",
                "10.0.0.3",
                "}"
            ]
        );
        assert_eq!(
            lines("global_defs\n{\n  router_id a }"),
            ["global_defs", "{", "router_id a", "}"]
        );
        assert_eq!(
            lines(r#"notify "/bin/echo a#b {c}" # real comment"#),
            [r#"notify "/bin/echo a#b {c}""#]
        );
        assert_eq!(lines(r"x \#1 \!2"), ["x #1 !2"]);
    }

    #[test]
    fn definitions_are_lazy_and_may_be_redefined() {
        assert_eq!(
            lines("$A=a_$B\n$B=bee\nx $A\n$B=b2\ny $A"),
            ["x a_bee", "y a_b2"]
        );
        // keepalived's own example of a redefinition that is not a loop.
        assert_eq!(
            lines("$VS_NUM=0\n$VS=vs_$VS_NUM\nline $VS\n$VS_NUM=1\nline $VS"),
            ["line vs_0", "line vs_1"]
        );
        assert_eq!(lines("$B=bee\nx ${B}/y $B/z"), ["x bee/y $B/z"]);
        assert_eq!(
            lines("$N = 1\n"),
            ["$N = 1"],
            "a blank before = is not a definition"
        );
        assert_eq!(lines("x $UNDEFINED"), ["x $UNDEFINED"]);
    }

    #[test]
    fn multi_line_definitions_become_lines() {
        assert_eq!(
            lines("$M=m1 \\\n   m2 a\nmid $M\nend"),
            ["mid m1", "m2 a", "end"]
        );
        assert_eq!(
            lines("$VIPS=\\\n  10.0.0.3\\\n  10.0.0.4\nvirtual_ipaddress {\n$VIPS\n}"),
            ["virtual_ipaddress", "{", "10.0.0.3", "10.0.0.4", "}"]
        );
    }

    #[test]
    fn builtins() {
        assert_eq!(
            lines_for("router_id ${_INSTANCE}-x", "lb02"),
            ["router_id lb02-x"]
        );
        assert_eq!(lines("a \"${_HASH}\" b"), ["a \"#\" b"]);
        assert_eq!(
            lines("x $_BANG y"),
            ["x"],
            "a '!' it brings starts a comment"
        );
        assert_eq!(
            lines("a \"$_HASH\""),
            ["a \"$_HASH\""],
            "no name end: not a reference"
        );
        let r = lines("r ${_RANDOM 5 6}");
        assert!(r == ["r 5"] || r == ["r 6"], "{r:?}");
        let pwd = lines("p $_PWD");
        assert!(pwd[0].starts_with("p /"), "{pwd:?}");
    }

    #[test]
    fn generators() {
        assert_eq!(lines("~SEQ(i, 3) vip_$i"), ["vip_1", "vip_2", "vip_3"]);
        assert_eq!(lines("~SEQ(i,0) z$i"), ["z1", "z0"]);
        assert_eq!(lines("~SEQ(j, 10, -4, 1) $j"), ["10", "6", "2"]);
        assert_eq!(
            lines("~SEQx(k, 9, 12) 10.0.0.$k"),
            ["10.0.0.9", "10.0.0.a", "10.0.0.b", "10.0.0.c"]
        );
        assert_eq!(lines("~SEQ(i, 2) a\nafter_$i"), ["a", "a", "after_2"]);
        assert_eq!(lines("~LST(v, x, y) l_$v"), ["l_x", "l_y"]);
        assert_eq!(
            lines("~LST({p,q}, {1,2}, {3}, 5) [${p}|${q}]"),
            ["[1|2]", "[3|]", "[5|]"]
        );
        assert_eq!(
            lines("$F=2\n~SEQ(i, 1, $F) vrrp_instance VI_$i {\n}"),
            ["vrrp_instance VI_1", "{", "vrrp_instance VI_2", "{", "}"]
        );
    }

    #[test]
    fn conditionals() {
        assert_eq!(
            lines("@lb01 a\n@lb02 b\n@^lb02 c\n@lb01 $X=1\nx $X\n@lb01\n"),
            ["a", "c", "x 1"]
        );
    }

    #[test]
    fn one_condition_per_line() {
        // keepalived evaluates only the first: the second is then the keyword.
        assert_eq!(lines("@lb01 @^lb02 router_id a"), ["@^lb02 router_id a"]);
        assert_eq!(lines("@^lb02 @lb01 x"), ["@lb01 x"]);
        // A definition that expands to a condition is a new line, with its own.
        assert_eq!(lines("$IF=@lb01\n$IF x\n$NOT=@^lb01\n$NOT y"), ["x"]);
    }

    #[test]
    fn include_check_escalates_the_includes_that_follow() {
        let dir = std::env::temp_dir().join(format!("vrrpd-lex-include-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let run = |text: &str| {
            let mut d = Diagnostics::default();
            let mut lx = Lexer::new("lb01", &mut d);
            lx.read_str(text, &Arc::new(dir.join("main.conf")), 0);
            drop(lx);
            d.0.iter().map(|x| x.severity).collect::<Vec<_>>()
        };
        // Plain include: a missing file is a warning, an empty wildcard too.
        assert_eq!(run("include nope.conf"), [Severity::Warning]);
        assert_eq!(run("include nope/*.conf"), [Severity::Warning]);
        // includew: an empty wildcard is keepalived's NO_CONFIG.
        assert_eq!(run("includew nope/*.conf"), [Severity::NoConfig]);
        // include_check sets read + the named check for what follows, +/- add and remove.
        assert_eq!(
            run("include_check match\ninclude nope.conf"),
            [Severity::NoConfig]
        );
        assert_eq!(
            run("include_check match\ninclude nope/*.conf"),
            [Severity::Warning]
        );
        assert_eq!(
            run("include_check\ninclude nope/*.conf"),
            [Severity::NoConfig]
        );
        assert_eq!(
            run("include_check\ninclude_check -wildcard_match\ninclude nope/*.conf"),
            [Severity::Warning]
        );
        assert_eq!(
            run("include nope.conf\ninclude_check +match"),
            [Severity::Warning]
        );
        // Set inside an included file, it ends with that file.
        std::fs::write(dir.join("inner.conf"), "include_check\n").expect("write");
        assert_eq!(
            run("include inner.conf\ninclude nope.conf"),
            [Severity::Warning]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn braces_in_glob_patterns() {
        assert_eq!(
            expand_braces("/a/{b,c}/d{1,2}"),
            ["/a/b/d1", "/a/b/d2", "/a/c/d1", "/a/c/d2"]
        );
        assert_eq!(expand_braces("plain"), ["plain"]);
    }

    #[test]
    fn words_and_script_words() {
        let loc = Loc {
            file: Arc::new(PathBuf::from("t")),
            line: 1,
        };
        let w: Vec<String> = split_words(r#"script "/bin/check -x" a"b c"d"#, &loc)
            .expect("splits")
            .into_iter()
            .map(|t| t.text)
            .collect();
        assert_eq!(w, ["script", "/bin/check -x", "a", "b c", "d"]);
        assert!(split_words("script \"open", &loc).is_err());
        assert_eq!(
            script_words(r#"'/bin/echo' "a b" c\ d 'it''s' x\x41"#).expect("splits"),
            ["/bin/echo", "a b", "c d", "its", "xA"]
        );
    }

    #[test]
    fn a_definition_loop_is_an_error_not_a_hang() {
        let mut d = Diagnostics::default();
        let mut lx = Lexer::new("x", &mut d);
        lx.read_str(
            "$A=$B\n$B=$A\nuse $A",
            &Arc::new(PathBuf::from("t.conf")),
            0,
        );
        assert!(d.has_errors());
    }
}
