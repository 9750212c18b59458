//! Reading spec files and following their imports.

use std::path::{Path, PathBuf};

use super::ast::SpecFile;
use super::{dsl, yaml};
use crate::diagnostic::Diagnostic;
use crate::source::{SourceMap, Span};

/// The largest spec file read, in bytes.
pub const MAX_FILE_BYTES: u64 = 8 << 20;
/// How deep an import chain may go.
pub const MAX_IMPORT_DEPTH: usize = 32;

/// Why the spec named on the command line could not be read at all.
#[derive(Debug)]
pub struct ReadError {
    pub path: PathBuf,
    pub message: String,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot read `{}`: {}", self.path.display(), self.message)
    }
}

/// The result of loading a spec and everything it imports.
#[derive(Debug)]
pub struct Loaded {
    /// The parsed files; the first is the root.
    pub files: Vec<SpecFile>,
    /// Errors found while parsing any of them.
    pub diagnostics: Vec<Diagnostic>,
}

/// Loads the spec at `path` and, transitively, its imports.
pub fn load(path: &Path, sources: &mut SourceMap) -> Result<Loaded, ReadError> {
    let text = read(path).map_err(|message| ReadError { path: path.to_path_buf(), message })?;
    Ok(load_text(&path.display().to_string(), path, text, sources))
}

/// Loads a spec given as bytes (`name` is shown in messages, `path` anchors relative imports).
pub fn load_text(name: &str, path: &Path, bytes: Vec<u8>, sources: &mut SourceMap) -> Loaded {
    let mut loader = Loader { sources, files: Vec::new(), diagnostics: Vec::new(), stack: Vec::new() };
    loader.file(name, path, bytes);
    Loaded { files: loader.files, diagnostics: loader.diagnostics }
}

/// Parses one file (its imports are not followed): what `cnnc fmt` needs.
pub fn parse_one(path: &Path, sources: &mut SourceMap) -> Result<Result<SpecFile, Vec<Diagnostic>>, ReadError> {
    let bytes = read(path).map_err(|message| ReadError { path: path.to_path_buf(), message })?;
    Ok(parse_bytes(&path.display().to_string(), path, bytes, sources))
}

/// Parses one file given as bytes, in the spelling its extension names.
pub fn parse_bytes(
    name: &str,
    path: &Path,
    bytes: Vec<u8>,
    sources: &mut SourceMap,
) -> Result<SpecFile, Vec<Diagnostic>> {
    let (text, problem) = decode(bytes);
    let id = sources.add(name, &canonical(path), text);
    if let Some(problem) = problem {
        let at = problem.1;
        return Err(vec![problem.0.at(Span::new(id, at, at + 1), "here")]);
    }
    let text = sources.file(id).text.clone();
    super::tokens::check(&text, id).map_err(|d| vec![d])?;
    match syntax_of(path) {
        Some(Syntax::Yaml) => yaml::parse(&text, id),
        Some(Syntax::Dsl) => dsl::parse(&text, id),
        None => Err(vec![Diagnostic::error("cnnc::file::extension", format!("`{name}` has an unknown extension"))
            .at(Span::new(id, 0, 0), "here")
            .help("spec files end in `.yaml`/`.yml` (YAML) or `.cnn` (the DSL)")]),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.is_dir() {
        return Err("it is a directory, not a spec file".into());
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!("it is {} bytes; specs are limited to {MAX_FILE_BYTES} bytes", meta.len()));
    }
    std::fs::read(path).map_err(|e| e.to_string())
}

struct Loader<'s> {
    sources: &'s mut SourceMap,
    files: Vec<SpecFile>,
    diagnostics: Vec<Diagnostic>,
    /// Canonical paths of the import chain being loaded, to detect cycles.
    stack: Vec<PathBuf>,
}

impl Loader<'_> {
    fn file(&mut self, name: &str, path: &Path, bytes: Vec<u8>) {
        let spec = match parse_bytes(name, path, bytes, self.sources) {
            Ok(spec) => spec,
            Err(diags) => {
                self.diagnostics.extend(diags);
                return;
            }
        };
        self.stack.push(canonical(path));
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let imports = spec.imports.clone();
        self.files.push(spec);
        for import in imports {
            self.import(&base, &import.path, import.span);
        }
        self.stack.pop();
    }

    fn import(&mut self, base: &Path, rel: &str, span: Span) {
        let path = base.join(rel);
        let key = canonical(&path);
        if let Some(pos) = self.stack.iter().position(|p| *p == key) {
            let chain: Vec<String> = self.stack[pos..].iter().chain([&key]).map(|p| file_name(p)).collect();
            self.diagnostics.push(
                Diagnostic::error("cnnc::import::cycle", format!("import cycle: {}", chain.join(" → ")))
                    .at(span, "this import closes the cycle")
                    .help("move the shared modules into a library that both files import"),
            );
            return;
        }
        if self.sources.find(&key).is_some() {
            return; // already loaded through another import
        }
        if self.stack.len() >= MAX_IMPORT_DEPTH {
            self.diagnostics.push(
                Diagnostic::error(
                    "cnnc::limit::import_depth",
                    format!("imports nest deeper than {MAX_IMPORT_DEPTH} files"),
                )
                .at(span, "too deep"),
            );
            return;
        }
        match read(&path) {
            Ok(bytes) => self.file(&path.display().to_string(), &path, bytes),
            Err(message) => self.diagnostics.push(
                Diagnostic::error("cnnc::import::unreadable", format!("cannot import `{rel}`: {message}"))
                    .at(span, "imported here")
                    .help(format!("the path is relative to the importing file's folder (`{}`)", base.display())),
            ),
        }
    }
}

/// The two spellings of the spec language.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Syntax {
    Yaml,
    Dsl,
}

/// The spelling a file's extension names.
pub fn syntax_of(path: &Path) -> Option<Syntax> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("yaml" | "yml") => Some(Syntax::Yaml),
        Some("cnn") => Some(Syntax::Dsl),
        _ => None,
    }
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// Decodes UTF-8, refusing binary files and reporting what is wrong and at which byte.
fn decode(bytes: Vec<u8>) -> (String, Option<(Diagnostic, usize)>) {
    if let Some(pos) = bytes.iter().position(|&b| b == 0) {
        let text = String::from_utf8_lossy(&bytes[..pos]).into_owned();
        let at = text.len();
        return (
            text,
            Some((
                Diagnostic::error(
                    "cnnc::file::binary",
                    format!("this looks like a binary file (a NUL byte at offset {pos}), not a spec"),
                )
                .help("spec files are UTF-8 text (YAML or the DSL)"),
                at,
            )),
        );
    }
    match String::from_utf8(bytes) {
        Ok(text) => (text, None),
        Err(e) => {
            let pos = e.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
            (
                text,
                Some((
                    Diagnostic::error(
                        "cnnc::file::encoding",
                        format!("the file is not valid UTF-8 (invalid byte at offset {pos})"),
                    )
                    .help("save the spec as UTF-8"),
                    pos,
                )),
            )
        }
    }
}
