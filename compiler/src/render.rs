//! Rendering compiler diagnostics like rustc does: message, `file:line:column`, the source
//! excerpt with labels, the layer path and a hint.

use std::fmt;

use crate::diagnostic::Diagnostic as SpecDiagnostic;
use crate::source::{SourceMap, Span};
use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};

/// Width the renderer wraps at, fixed so output is the same on every terminal.
const WIDTH: usize = 100;

/// The longest source line shown in an excerpt, in bytes: a diagnostic on a longer line gives its
/// `file:line:column` without the excerpt (the renderer cannot place columns past 65,535, and a
/// megabyte line is no help to read).
const MAX_EXCERPT_LINE: usize = 1_000;

/// Renders one diagnostic; `color` selects ANSI colours.
pub fn render(diag: &SpecDiagnostic, sources: &SourceMap, color: bool) -> String {
    let report = Report::new(diag, sources);
    let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(WIDTH).with_links(false);
    let mut out = String::new();
    if handler.render_report(&mut out, &report).is_err() {
        out = format!("error[{}]: {}\n", diag.code, diag.message);
    }
    out
}

/// Renders all diagnostics of a compilation, followed by a count.
pub fn render_all(diags: &[SpecDiagnostic], sources: &SourceMap, color: bool) -> String {
    let mut out = String::new();
    for d in diags {
        out.push_str(&render(d, sources, color));
        out.push('\n');
    }
    let n = diags.len();
    out.push_str(&format!("error: {n} problem{} found\n", if n == 1 { "" } else { "s" }));
    out
}

/// A diagnostic prepared for miette: one source file and the labels that fall into it.
struct Report {
    code: &'static str,
    message: String,
    source: Option<NamedSource<String>>,
    labels: Vec<LabeledSpan>,
    help: Option<String>,
}

impl Report {
    fn new(diag: &SpecDiagnostic, sources: &SourceMap) -> Report {
        let message = match &diag.layer {
            Some(layer) => format!("{} (in layer `{layer}`)", diag.message),
            None => diag.message.clone(),
        };
        let mut help = diag.help.clone();
        let Some(primary) = &diag.primary else {
            return Report { code: diag.code, message, source: None, labels: Vec::new(), help };
        };
        let file = sources.file(primary.span.file);
        let spans = std::iter::once(primary.span).chain(diag.secondary.iter().map(|s| s.span));
        if spans.filter(|s| s.file == primary.span.file).any(|s| line_length(&file.text, s) > MAX_EXCERPT_LINE) {
            let at = format!("{}: {} (the line is too long to show)", sources.location(primary.span), primary.text);
            help = Some(match help {
                Some(h) => format!("{at}\n{h}"),
                None => at,
            });
            return Report { code: diag.code, message, source: None, labels: Vec::new(), help };
        }
        let source = NamedSource::new(file.name.clone(), file.text.as_str().to_owned());
        let mut labels =
            vec![LabeledSpan::new_primary_with_span(Some(primary.text.clone()), source_span(primary.span))];
        for extra in &diag.secondary {
            if extra.span.file == primary.span.file {
                labels.push(LabeledSpan::new_with_span(Some(extra.text.clone()), source_span(extra.span)));
            } else {
                let note = format!("{}: {}", sources.location(extra.span), extra.text);
                help = Some(match help {
                    Some(h) => format!("{h}\nnote: {note}"),
                    None => format!("note: {note}"),
                });
            }
        }
        Report { code: diag.code, message, source: Some(source), labels, help }
    }
}

/// The length in bytes of the longest line `span` touches in `text`.
fn line_length(text: &str, span: Span) -> usize {
    // Bytes, not chars: a span may end inside a character the reader replaced.
    let bytes = text.as_bytes();
    let (start, end) = (span.start.min(bytes.len()), span.end.min(bytes.len()));
    let first = bytes[..start].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let last = bytes[end..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |i| end + i);
    bytes[first..last].split(|&b| b == b'\n').map(<[u8]>::len).max().unwrap_or(0)
}

fn source_span(span: Span) -> SourceSpan {
    SourceSpan::new(span.start.into(), span.len())
}

impl fmt::Debug for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Report {}

impl miette::Diagnostic for Report {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            None
        } else {
            Some(Box::new(self.labels.iter().cloned()))
        }
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
}
