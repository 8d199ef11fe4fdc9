//! Finds the line of a dotted key path in the original TOML text, so that errors found
//! after parsing (validation, type errors) still point at the line. Read-only.

use std::ops::Range;

use toml_edit::{ImDocument, Item, Table, Value};

/// A parsed view of the source that maps key paths to 1-based line numbers.
pub struct Locator {
    doc: Option<ImDocument<String>>,
}

#[derive(Clone, Copy)]
enum Node<'a> {
    Item(&'a Item),
    Table(&'a Table),
    Value(&'a Value),
}

impl Locator {
    pub fn new(text: &str) -> Self {
        Locator {
            doc: ImDocument::parse(text.to_string()).ok(),
        }
    }

    /// Line and column (1-based) of the deepest prefix of `path` that exists in the file.
    pub fn line_of(&self, path: &str) -> Option<(usize, usize)> {
        let doc = self.doc.as_ref()?;
        let mut node = Node::Table(doc.as_table());
        let mut best = None;
        for seg in path.split('.') {
            let Some((span, next)) = child(node, seg) else {
                break;
            };
            best = span.map(|s| s.start).or(best);
            node = next;
        }
        best.map(|offset| line_col(doc.raw(), offset))
    }
}

fn child<'a>(node: Node<'a>, seg: &str) -> Option<(Option<Range<usize>>, Node<'a>)> {
    let index = seg.parse::<usize>().ok();
    match node {
        Node::Table(t) | Node::Item(Item::Table(t)) => {
            t.get_key_value(seg).map(|(k, v)| (k.span(), Node::Item(v)))
        }
        Node::Item(Item::ArrayOfTables(a)) => a.get(index?).map(|t| (t.span(), Node::Table(t))),
        Node::Item(Item::Value(v)) | Node::Value(v) => match v {
            Value::InlineTable(t) => t.get_key_value(seg).map(|(k, v)| (k.span(), Node::Item(v))),
            Value::Array(a) => a.get(index?).map(|v| (v.span(), Node::Value(v))),
            _ => None,
        },
        Node::Item(Item::None) => None,
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}
