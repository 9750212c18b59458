//! A small YAML document tree with byte spans, built from saphyr-parser's events.
//!
//! Specs are data: anchors and aliases are refused (that also rules out alias
//! "billion laughs" bombs), nesting depth is bounded, and duplicate keys are errors.

use saphyr_parser::{Event, Parser, ScalarStyle};
use std::collections::HashMap;

use crate::diagnostic::Diagnostic;
use crate::source::{FileId, Span};

/// How deeply YAML collections may nest.
pub const MAX_DEPTH: usize = 64;

/// A YAML node with the span of its text.
#[derive(Clone, Debug)]
pub enum Node {
    /// A scalar; `offset` is the byte offset of its first content character (after any quote).
    Scalar {
        text: String,
        quoted: bool,
        offset: usize,
        span: Span,
    },
    /// `flow` is true for `[a, b]` style lists.
    Seq {
        items: Vec<Node>,
        flow: bool,
        span: Span,
    },
    Map {
        entries: Vec<(Node, Node)>,
        span: Span,
    },
}

impl Node {
    /// The node's span.
    pub fn span(&self) -> Span {
        match self {
            Node::Scalar { span, .. } | Node::Seq { span, .. } | Node::Map { span, .. } => *span,
        }
    }

    /// A short description for "expected X, found Y" messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Node::Scalar { .. } => "a scalar",
            Node::Seq { .. } => "a list",
            Node::Map { .. } => "a mapping",
        }
    }

    /// The scalar text, if this is a scalar.
    pub fn as_scalar(&self) -> Option<&str> {
        match self {
            Node::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }
}

/// Parses a YAML text into one document tree. An empty document is `None`.
pub fn parse(text: &str, file: FileId) -> Result<Option<Node>, Diagnostic> {
    let offsets = CharOffsets::new(text);
    let mut builder = Builder { file, text, stack: Vec::new(), root: None, documents: 0 };
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| {
            let at = offsets.byte(e.marker().index());
            let help = if e.info().contains("flow") {
                "inside a YAML `[...]` or `{...}`, the characters `[ ] { } ,` end a value: write the list one `- item` per line, or the whole expression as a `>-` block scalar"
            } else {
                "check the indentation and that every `[`, `{` and quote is closed"
            };
            Diagnostic::error("cnnc::yaml::syntax", format!("YAML syntax error: {}", e.info())).at(Span::new(file, at, at + 1), "here").help(help)
        })?;
        let start = offsets.byte(span.start.index());
        let end = offsets.byte(span.end.index());
        builder.event(event, Span::new(file, start, end))?;
    }
    Ok(builder.root)
}

struct Builder<'t> {
    file: FileId,
    text: &'t str,
    stack: Vec<Open>,
    root: Option<Node>,
    documents: usize,
}

enum Open {
    Seq(Vec<Node>, Span),
    /// Entries, the key waiting for its value, where the mapping starts, and the index of each
    /// scalar key's entry (so that a duplicate is found in constant time, not by a scan).
    Map(Vec<(Node, Node)>, Option<Node>, Span, HashMap<String, usize>),
}

impl Builder<'_> {
    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), Diagnostic> {
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(Diagnostic::error(
                        "cnnc::yaml::documents",
                        "a spec file holds one YAML document, found a second",
                    )
                    .at(span, "second document starts here")
                    .help("put each model in its own file"));
                }
            }
            Event::Alias(_) => {
                return Err(Diagnostic::error("cnnc::yaml::alias", "YAML aliases are not allowed in specs")
                    .at(span, "alias")
                    .help("use a module or a `let` binding to reuse a definition"));
            }
            Event::Scalar(text, style, anchor, _) => {
                self.refuse_anchor(anchor, span)?;
                let quoted = matches!(style, ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted);
                let offset = if quoted { span.start + 1 } else { span.start };
                let span = if quoted || matches!(style, ScalarStyle::Plain) {
                    Span::new(self.file, span.start, span.start.max(span.end))
                } else {
                    span
                };
                self.push(Node::Scalar { text: text.into_owned(), quoted, offset, span })?;
            }
            Event::SequenceStart(anchor, _) => {
                self.refuse_anchor(anchor, span)?;
                self.open(Open::Seq(Vec::new(), span))?;
            }
            Event::MappingStart(anchor, _) => {
                self.refuse_anchor(anchor, span)?;
                self.open(Open::Map(Vec::new(), None, span, HashMap::new()))?;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match self.stack.pop() {
                    Some(Open::Seq(items, start)) => {
                        let flow = self.text.get(start.start..).is_some_and(|t| t.starts_with('['));
                        Node::Seq { items, flow, span: start.to(span) }
                    }
                    Some(Open::Map(entries, _, start, _)) => Node::Map { entries, span: start.to(span) },
                    None => return Ok(()),
                };
                self.push(node)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn refuse_anchor(&self, anchor: usize, span: Span) -> Result<(), Diagnostic> {
        if anchor == 0 {
            return Ok(());
        }
        Err(Diagnostic::error("cnnc::yaml::anchor", "YAML anchors are not allowed in specs")
            .at(span, "anchored node")
            .help("use a module or a `let` binding to reuse a definition"))
    }

    fn open(&mut self, open: Open) -> Result<(), Diagnostic> {
        if self.stack.len() >= MAX_DEPTH {
            let span = match &open {
                Open::Seq(_, s) | Open::Map(_, _, s, _) => *s,
            };
            return Err(Diagnostic::error(
                "cnnc::limit::yaml_depth",
                format!("YAML nests deeper than {MAX_DEPTH} levels"),
            )
            .at(span, "too deep")
            .help("move deeply nested parts into modules"));
        }
        self.stack.push(open);
        Ok(())
    }

    fn push(&mut self, node: Node) -> Result<(), Diagnostic> {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Open::Seq(items, _)) => items.push(node),
            Some(Open::Map(entries, pending, _, keys)) => match pending.take() {
                None => {
                    if let Some(key) = node.as_scalar() {
                        if let Some(&first) = keys.get(key) {
                            let first: &(Node, Node) = &entries[first];
                            return Err(Diagnostic::error(
                                "cnnc::yaml::duplicate_key",
                                format!("duplicate key `{key}`"),
                            )
                            .at(node.span(), "repeated here")
                            .also(first.0.span(), "first defined here")
                            .help("each key may appear once in a mapping"));
                        }
                    }
                    *pending = Some(node);
                }
                Some(key) => {
                    if let Some(name) = key.as_scalar() {
                        keys.insert(name.to_string(), entries.len());
                    }
                    entries.push((key, node));
                }
            },
        }
        Ok(())
    }
}

/// Maps saphyr's character indices to byte offsets.
struct CharOffsets {
    bytes: Vec<usize>,
}

impl CharOffsets {
    fn new(text: &str) -> CharOffsets {
        let mut bytes: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
        bytes.push(text.len());
        CharOffsets { bytes }
    }

    fn byte(&self, char_index: usize) -> usize {
        self.bytes.get(char_index).copied().unwrap_or(*self.bytes.last().unwrap_or(&0))
    }
}
