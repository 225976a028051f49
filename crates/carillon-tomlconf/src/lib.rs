//! `carillon-tomlconf`: the common ground of Carillon's TOML files
//! (`dialplan.toml`, `trunks.toml`, …).
//!
//! Owns [`ConfigProblem`] (one problem, shown as `file:line: dotted.key:
//! message`), the tree of [`Node`]s with the line of every key and value,
//! and the [`Loader`] that walks it: typed getters that report a problem
//! instead of failing, and [`Loader::finish`] that reports unknown keys so
//! a typo never passes silently. A file is read with [`load`], which
//! collects every problem rather than stopping at the first and returns
//! them sorted by line. The schemas themselves live with their crates.
//!
//! The TOML is parsed with `toml_edit`, whose document keeps the byte span
//! of every key and value; spans are turned into 1-based lines once.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::fmt;
use std::ops::Range;
use std::time::Duration;
use toml_edit::{ImDocument, InlineTable, Item, Table, Value};

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// Dotted key, e.g. `trunk.dinstar.ports[2].contact`; empty for TOML
    /// syntax errors.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        } else {
            write!(
                f,
                "{}:{}: {}: {}",
                self.file, self.line, self.key, self.message
            )
        }
    }
}

impl std::error::Error for ConfigProblem {}

/// A value with the line it starts on.
#[derive(Debug)]
pub struct Node {
    pub line: usize,
    pub kind: Kind,
}

/// What a value is.
#[derive(Debug)]
pub enum Kind {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Datetime,
    Array(Vec<Node>),
    Table(Vec<Entry>),
}

impl Kind {
    /// "a string", "an integer", … for messages.
    pub fn describe(&self) -> &'static str {
        match self {
            Kind::Str(_) => "a string",
            Kind::Int(_) => "an integer",
            Kind::Float(_) => "a float",
            Kind::Bool(_) => "a boolean",
            Kind::Datetime => "a date-time",
            Kind::Array(_) => "an array",
            Kind::Table(_) => "a table",
        }
    }
}

/// One key of a table, in file order.
#[derive(Debug)]
pub struct Entry {
    pub key: String,
    pub value: Node,
}

/// `path.key`, or `key` at the root.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        let mut out = String::with_capacity(path.len() + 1 + key.len());
        out.push_str(path);
        out.push('.');
        out.push_str(key);
        out
    }
}

/// Parses `text` and hands its root table to `read`; returns what `read`
/// built if no problem was reported, else every problem sorted by line
/// (`file_name` only labels them).
pub fn load<T>(
    file_name: &str,
    text: &str,
    read: impl FnOnce(&mut Loader<'_>, &Node) -> Option<T>,
) -> Result<T, Vec<ConfigProblem>> {
    let mut loader = Loader::new(file_name);
    let root = match parse(text) {
        Ok(root) => root,
        Err(SyntaxError { line, message }) => {
            loader.report(line, "", message);
            return Err(loader.problems);
        }
    };
    let built = read(&mut loader, &root);
    match built {
        Some(value) if loader.problems.is_empty() => Ok(value),
        _ => {
            let mut problems = loader.problems;
            problems.sort_by(|a, b| a.line.cmp(&b.line).then_with(|| a.key.cmp(&b.key)));
            Err(problems)
        }
    }
}

/// A TOML syntax error: the line it was found on and what is wrong, on
/// one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub message: String,
}

/// Parses `text` into its tree of nodes (no schema applied), for readers
/// that look at a few keys of a file another loader owns (cross-file
/// checks).
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let lines = Lines::new(text);
    match ImDocument::parse(text) {
        Ok(document) => Ok(lines.table(document.as_table(), 1)),
        Err(error) => Err(SyntaxError {
            line: lines.line(error.span()).unwrap_or(1),
            message: one_line(error.message()),
        }),
    }
}

/// A message folded onto one line (TOML parser messages may span several).
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

impl Node {
    /// The value of `key` when this is a table that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            Kind::Table(entries) => entries.iter().find(|e| e.key == key).map(|e| &e.value),
            _ => None,
        }
    }

    /// The entries when this is a table (else none).
    pub fn entries(&self) -> &[Entry] {
        match &self.kind {
            Kind::Table(entries) => entries,
            _ => &[],
        }
    }

    /// The items when this is an array (else none).
    pub fn items(&self) -> &[Node] {
        match &self.kind {
            Kind::Array(items) => items,
            _ => &[],
        }
    }

    /// The text when this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Byte offset → 1-based line, and the document → node tree.
struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    fn new(text: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Lines { starts }
    }

    fn line(&self, span: Option<Range<usize>>) -> Option<usize> {
        span.map(|span| self.starts.partition_point(|&start| start <= span.start))
    }

    fn table(&self, table: &Table, fallback: usize) -> Node {
        let line = self.line(table.span()).unwrap_or(fallback);
        let entries = table
            .iter()
            .filter_map(|(key, item)| {
                let key_line = table
                    .get_key_value(key)
                    .and_then(|(k, _)| self.line(k.span()))
                    .unwrap_or(line);
                self.item(item, key_line).map(|value| Entry {
                    key: key.to_owned(),
                    value,
                })
            })
            .collect();
        Node {
            line,
            kind: Kind::Table(entries),
        }
    }

    fn inline_table(&self, table: &InlineTable, line: usize) -> Kind {
        Kind::Table(
            table
                .iter()
                .filter_map(|(key, _)| {
                    let (k, item) = table.get_key_value(key)?;
                    let key_line = self.line(k.span()).unwrap_or(line);
                    self.item(item, key_line).map(|value| Entry {
                        key: key.to_owned(),
                        value,
                    })
                })
                .collect(),
        )
    }

    fn item(&self, item: &Item, fallback: usize) -> Option<Node> {
        match item {
            Item::None => None,
            Item::Value(value) => Some(self.value(value, fallback)),
            Item::Table(table) => Some(self.table(table, fallback)),
            Item::ArrayOfTables(array) => {
                let line = self.line(array.span()).unwrap_or(fallback);
                Some(Node {
                    line,
                    kind: Kind::Array(array.iter().map(|t| self.table(t, line)).collect()),
                })
            }
        }
    }

    fn value(&self, value: &Value, fallback: usize) -> Node {
        let line = self.line(value.span()).unwrap_or(fallback);
        let kind = match value {
            Value::String(s) => Kind::Str(s.value().clone()),
            Value::Integer(i) => Kind::Int(*i.value()),
            Value::Float(f) => Kind::Float(*f.value()),
            Value::Boolean(b) => Kind::Bool(*b.value()),
            Value::Datetime(_) => Kind::Datetime,
            Value::Array(array) => Kind::Array(array.iter().map(|v| self.value(v, line)).collect()),
            Value::InlineTable(table) => self.inline_table(table, line),
        };
        Node { line, kind }
    }
}

/// A table being read: remembers which keys were used.
pub struct Fields<'n> {
    /// Dotted path of the table.
    pub path: String,
    /// Line of the table.
    pub line: usize,
    entries: &'n [Entry],
    used: Vec<bool>,
}

impl<'n> Fields<'n> {
    /// The value of `key` with its dotted path, marking the key used.
    pub fn get(&mut self, key: &str) -> Option<(String, &'n Node)> {
        let index = self.entries.iter().position(|e| e.key == key)?;
        if let Some(used) = self.used.get_mut(index) {
            *used = true;
        }
        self.entries
            .get(index)
            .map(|e| (join(&self.path, key), &e.value))
    }

    /// Whether the table has `key` (without marking it used).
    pub fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|e| e.key == key)
    }

    /// Every entry as (dotted path, key, value), marking all used.
    pub fn entries(&mut self) -> impl Iterator<Item = (String, &'n str, &'n Node)> + '_ {
        self.used.iter_mut().for_each(|u| *u = true);
        let path = self.path.clone();
        self.entries
            .iter()
            .map(move |e| (join(&path, &e.key), e.key.as_str(), &e.value))
    }
}

/// Walks a file's tree, collecting problems.
pub struct Loader<'a> {
    file: &'a str,
    problems: Vec<ConfigProblem>,
}

impl<'a> Loader<'a> {
    /// A loader labelling problems with `file`.
    pub fn new(file: &'a str) -> Self {
        Loader {
            file,
            problems: Vec::new(),
        }
    }

    /// Problems reported so far.
    pub fn problems(&self) -> &[ConfigProblem] {
        &self.problems
    }

    /// Records a problem.
    pub fn report(&mut self, line: usize, key: &str, message: impl Into<String>) {
        self.problems.push(ConfigProblem {
            file: self.file.to_owned(),
            line,
            key: key.to_owned(),
            message: message.into(),
        });
    }

    /// Records "expected WHAT, found …".
    pub fn expected(&mut self, path: &str, node: &Node, what: &str) {
        self.report(
            node.line,
            path,
            format!("expected {what}, found {}", node.kind.describe()),
        );
    }

    /// Starts reading a table (a problem if `node` is not one).
    pub fn fields<'n>(&mut self, path: &str, node: &'n Node) -> Option<Fields<'n>> {
        match &node.kind {
            Kind::Table(entries) => Some(Fields {
                path: path.to_owned(),
                line: node.line,
                entries,
                used: vec![false; entries.len()],
            }),
            _ => {
                self.expected(path, node, "a table");
                None
            }
        }
    }

    /// Reports every key of `fields` not read, naming the `known` ones.
    pub fn finish(&mut self, fields: Fields<'_>, known: &[&str], owner: &str) {
        for (entry, used) in fields.entries.iter().zip(&fields.used) {
            if !used {
                let expected = if known.is_empty() {
                    "no keys expected".to_owned()
                } else {
                    format!("expected one of: {}", known.join(", "))
                };
                self.report(
                    entry.value.line,
                    &join(&fields.path, &entry.key),
                    format!("unknown key '{}' for {owner} ({expected})", entry.key),
                );
            }
        }
    }

    /// `key` of `fields`, or the problem "OWNER needs 'KEY'".
    pub fn required<'n>(
        &mut self,
        fields: &mut Fields<'n>,
        key: &str,
        owner: &str,
    ) -> Option<(String, &'n Node)> {
        let found = fields.get(key);
        if found.is_none() {
            self.report(
                fields.line,
                &join(&fields.path, key),
                format!("{owner} needs '{key}'"),
            );
        }
        found
    }

    pub fn string<'n>(&mut self, path: &str, node: &'n Node) -> Option<&'n str> {
        let s = node.as_str();
        if s.is_none() {
            self.expected(path, node, "a string");
        }
        s
    }

    /// A string with more than blanks in it.
    pub fn nonempty(&mut self, path: &str, node: &Node) -> Option<String> {
        let s = self.string(path, node)?;
        if s.trim().is_empty() {
            self.report(node.line, path, "must not be empty");
            return None;
        }
        Some(s.to_owned())
    }

    /// An integer in `low..=high`.
    pub fn integer(&mut self, path: &str, node: &Node, low: i64, high: i64) -> Option<i64> {
        match &node.kind {
            Kind::Int(i) if (low..=high).contains(i) => Some(*i),
            Kind::Int(i) => {
                self.report(
                    node.line,
                    path,
                    format!("{i} is out of range {low}..={high}"),
                );
                None
            }
            _ => {
                self.expected(path, node, "an integer");
                None
            }
        }
    }

    pub fn boolean(&mut self, path: &str, node: &Node) -> Option<bool> {
        match &node.kind {
            Kind::Bool(b) => Some(*b),
            _ => {
                self.expected(path, node, "true or false");
                None
            }
        }
    }

    /// A number of seconds (integer or float) above 0 (or 0 itself when
    /// `allow_zero`) and at most `max`.
    pub fn seconds(
        &mut self,
        path: &str,
        node: &Node,
        allow_zero: bool,
        max: f64,
    ) -> Option<Duration> {
        #[allow(clippy::cast_precision_loss)]
        let value = match &node.kind {
            Kind::Int(i) => *i as f64,
            Kind::Float(f) => *f,
            _ => {
                self.expected(path, node, "a number of seconds");
                return None;
            }
        };
        let low_ok = if allow_zero {
            value >= 0.0
        } else {
            value > 0.0
        };
        if !(low_ok && value <= max) {
            let low = if allow_zero { "0" } else { "more than 0" };
            self.report(
                node.line,
                path,
                format!("{value} seconds is out of range ({low} to {max})"),
            );
            return None;
        }
        Some(Duration::from_secs_f64(value))
    }

    /// An array of strings, each with its path and line.
    pub fn strings<'n>(&mut self, path: &str, node: &'n Node) -> Vec<(String, usize, &'n str)> {
        let Kind::Array(items) = &node.kind else {
            self.expected(path, node, "an array of strings");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{i}]");
            if let Some(s) = self.string(&item_path, item) {
                out.push((item_path, item.line, s));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_port(text: &str) -> Result<i64, Vec<ConfigProblem>> {
        load("x.toml", text, |lo, root| {
            let mut f = lo.fields("", root)?;
            let port = lo
                .required(&mut f, "port", "the file")
                .and_then(|(path, node)| lo.integer(&path, node, 1, 65535));
            lo.finish(f, &["port"], "the file");
            port
        })
    }

    #[test]
    fn a_valid_file_gives_its_value() {
        assert_eq!(read_port("port = 5060\n"), Ok(5060));
    }

    #[test]
    fn every_problem_is_reported_with_file_line_and_key_sorted_by_line() {
        let problems = read_port("\ncolour = 1\nport = 0\n").unwrap_err();
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "x.toml:2: colour: unknown key 'colour' for the file (expected one of: port)",
                "x.toml:3: port: 0 is out of range 1..=65535",
            ]
        );
    }

    #[test]
    fn a_missing_key_and_a_wrong_type_are_problems_not_panics() {
        let missing = read_port("other = true\n").unwrap_err();
        assert!(missing.iter().any(|p| p.message == "the file needs 'port'"));
        let wrong = read_port("port = \"5060\"\n").unwrap_err();
        assert_eq!(wrong[0].message, "expected an integer, found a string");
    }

    #[test]
    fn a_syntax_error_names_its_line_with_no_key() {
        let problems = read_port("port = 1\nport = = 2\n").unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, 2);
        assert!(problems[0].key.is_empty());
    }

    #[test]
    fn parse_gives_the_tree_with_lines_or_a_one_line_syntax_error() {
        let root = parse("[t.a]\nk = \"v\"\nlist = [\"x\",\n  \"y\"]\n").unwrap();
        let a = root.get("t").and_then(|t| t.get("a")).unwrap();
        assert_eq!(a.get("k").and_then(Node::as_str), Some("v"));
        let lines: Vec<usize> = a
            .get("list")
            .unwrap()
            .items()
            .iter()
            .map(|n| n.line)
            .collect();
        assert_eq!(lines, [3, 4]);
        assert!(root.get("missing").is_none() && a.get("k").unwrap().entries().is_empty());
        let error = parse("ok = 1\nbad = \"unterminated\n").unwrap_err();
        assert_eq!(error.line, 2);
        assert!(
            !error.message.is_empty() && !error.message.contains('\n'),
            "{error:?}"
        );
    }

    #[test]
    fn lines_of_nested_and_inline_values_are_their_own() {
        let text = "[a]\nb = [\n  { c = 1 },\n  { c = \"x\" },\n]\n";
        let problems = load("y.toml", text, |lo, root| {
            let mut f = lo.fields("", root)?;
            let (path, a) = f.get("a")?;
            let mut fa = lo.fields(&path, a)?;
            let (path, b) = fa.get("b")?;
            let Kind::Array(items) = &b.kind else {
                return None;
            };
            for (i, item) in items.iter().enumerate() {
                let p = format!("{path}[{i}]");
                let mut fi = lo.fields(&p, item)?;
                if let Some((cp, c)) = fi.get("c") {
                    lo.integer(&cp, c, 0, 9);
                }
            }
            Some(())
        })
        .unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(
            problems[0].to_string(),
            "y.toml:4: a.b[1].c: expected an integer, found a string"
        );
    }

    #[test]
    fn seconds_take_integers_and_floats_within_bounds() {
        let got = load("z.toml", "t = 1.5\nu = 0\nv = 0\n", |lo, root| {
            let mut f = lo.fields("", root)?;
            let (p, t) = f.get("t")?;
            let t = lo.seconds(&p, t, false, 10.0);
            let (p, u) = f.get("u")?;
            let u = lo.seconds(&p, u, true, 10.0);
            let (p, v) = f.get("v")?;
            let v = lo.seconds(&p, v, false, 10.0);
            Some((t, u, v))
        });
        let problems = got.unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "v");
    }
}
