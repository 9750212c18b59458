//! Source files and byte spans into them.
//!
//! Every piece of the AST, every graph node and every diagnostic carries a
//! [`Span`], so an error found late in the pipeline still points at the spec
//! text that caused it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use cnnc_ir::span::{FileId, Span};

/// One loaded spec file.
#[derive(Debug)]
pub struct SourceFile {
    /// The name shown to the user (the path as given on the command line or in an import).
    pub name: String,
    /// The path the file was read from.
    pub path: PathBuf,
    /// The file's text.
    pub text: Arc<String>,
}

/// All files a compilation has read, addressed by [`FileId`].
#[derive(Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

/// A 1-based line and column.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct LineCol {
    pub line: usize,
    pub column: usize,
}

impl SourceMap {
    /// Adds a file and returns its id.
    pub fn add(&mut self, name: impl Into<String>, path: &Path, text: String) -> FileId {
        let id = FileId::new(self.files.len() as u32);
        self.files.push(SourceFile { name: name.into(), path: path.to_path_buf(), text: Arc::new(text) });
        id
    }

    /// The file behind `id`.
    pub fn file(&self, id: FileId) -> &SourceFile {
        &self.files[id.index()]
    }

    /// How many files there are (ids `0..len`).
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether no file was added.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The file already loaded from `path`, if any.
    pub fn find(&self, path: &Path) -> Option<FileId> {
        self.files.iter().position(|f| f.path == path).map(|i| FileId::new(i as u32))
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, file: FileId, offset: usize) -> LineCol {
        let text = &self.file(file).text;
        let offset = floor_char_boundary(text, offset.min(text.len()));
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        LineCol { line, column: text[line_start..offset].chars().count() + 1 }
    }

    /// `file:line:column` of the start of a span, as rustc prints it.
    pub fn location(&self, span: Span) -> String {
        let lc = self.line_col(span.file, span.start);
        format!("{}:{}:{}", self.file(span.file).name, lc.line, lc.column)
    }

    /// The text a span covers.
    pub fn snippet(&self, span: Span) -> &str {
        let text = &self.file(span.file).text;
        text.get(span.start..span.end).unwrap_or("")
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}
