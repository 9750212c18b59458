//! Located, structured errors.
//!
//! A [`Diagnostic`] is plain data: message, the span it points at, the layer
//! path, and a hint. Rendering (colours, source excerpts) is the command
//! line's job; the compiler only collects.

use crate::source::Span;

/// A labelled span inside a diagnostic.
#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    pub span: Span,
    pub text: String,
}

/// One error found in a spec.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    /// A stable code naming the kind of error, `cnnc::<area>::<what>` (`cnnc::shape::in_channels`,
    /// `cnnc::name::unknown_layer`); shown in the rendered output, and what tests and tools match on.
    pub code: &'static str,
    /// A one-line summary of what is wrong.
    pub message: String,
    /// Where, with a short label; `None` only for errors about a whole file that has no text.
    pub primary: Option<Label>,
    /// Other places worth showing (the earlier definition of a duplicate, …).
    pub secondary: Vec<Label>,
    /// The full path of the layer (`layer3.2.conv2`) where the error was found.
    pub layer: Option<String>,
    /// What the user can do about it.
    pub help: Option<String>,
}

impl Diagnostic {
    /// A new error with its code and a message, and nothing else.
    pub fn error(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic { code, message: message.into(), primary: None, secondary: Vec::new(), layer: None, help: None }
    }

    /// Points the error at `span` with a label.
    pub fn at(mut self, span: Span, label: impl Into<String>) -> Diagnostic {
        self.primary = Some(Label { span, text: label.into() });
        self
    }

    /// Adds a secondary labelled span.
    pub fn also(mut self, span: Span, label: impl Into<String>) -> Diagnostic {
        self.secondary.push(Label { span, text: label.into() });
        self
    }

    /// Names the layer path the error belongs to (ignored when empty).
    pub fn in_layer(mut self, path: &str) -> Diagnostic {
        if !path.is_empty() && self.layer.is_none() {
            self.layer = Some(path.to_string());
        }
        self
    }

    /// Adds a hint.
    pub fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// The primary span, if any.
    pub fn span(&self) -> Option<Span> {
        self.primary.as_ref().map(|l| l.span)
    }
}

/// The closest candidate to `name` by edit distance, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, c)| *d <= (name.len().max(c.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edits between two names, a swap of neighbouring letters counting as one (`rleu` is one edit
/// from `relu`): the optimal string alignment distance.
fn edit_distance(a: &str, b: &str) -> usize {
    strsim::osa_distance(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(did_you_mean("conv2", ["conv", "linear"]), Some("conv"));
        assert_eq!(did_you_mean("lniear", ["conv", "linear"]), Some("linear"));
        assert_eq!(did_you_mean("softplus", ["conv", "linear"]), None);
        assert_eq!(did_you_mean("rleu", ["conv", "relu"]), Some("relu"), "a swapped pair is one edit");
        assert_eq!(did_you_mean("flase", ["true", "false"]), Some("false"));
    }
}
