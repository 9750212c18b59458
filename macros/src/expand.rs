//! The macro's work, on `proc_macro2` tokens so it can be tested outside a compiler.

use std::path::Path;

use cnnc_compiler::{codegen, render, Diagnostic, Expanded, Model};
use proc_macro2::TokenStream;
use quote::quote;

/// The expansion for the spec at `spec` (relative to `manifest_dir`), or the error message.
pub fn expand(spec: &str, manifest_dir: &Path) -> Result<TokenStream, String> {
    let path = manifest_dir.join(spec);
    let compilation = cnnc_compiler::compile_path(&path)
        .map_err(|e| format!("cannot read the model spec: {e} (paths are relative to {})", manifest_dir.display()))?;
    // Name files as the user wrote them, relative to the crate, as `cnnc check` run there would.
    let prefix = format!("{}{}", manifest_dir.display(), std::path::MAIN_SEPARATOR);
    let graph = match compilation.result {
        Ok(Expanded::Model(graph)) => graph,
        Ok(Expanded::Library(_)) => {
            return Err(format!("`{spec}` is a library of modules, not a model (a spec with `model:` is needed)"))
        }
        Err(diags) => return Err(render::render_all(&diags, &compilation.sources, false).replace(&prefix, "")),
    };
    let render = |d: Diagnostic| render::render_all(&[d], &compilation.sources, false).replace(&prefix, "");
    let model = Model::new(graph).map_err(render)?;
    let code = codegen::generate(&model, &compilation.sources);
    let tokens: TokenStream = code.parse().map_err(|e| format!("cnnc generated code that does not lex: {e}"))?;
    let tracked = path.to_string_lossy().into_owned();
    Ok(quote! {
        #tokens
        // Cargo rebuilds the crate when the spec changes.
        const _: &str = include_str!(#tracked);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> &'static Path {
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
    }

    #[test]
    fn expands_to_the_generated_module_and_tracks_the_spec() {
        let tokens = expand("specs/lenet.yaml", root()).expect("lenet expands");
        let compilation = cnnc_compiler::compile_path(&root().join("specs/lenet.yaml")).unwrap();
        let Ok(Expanded::Model(graph)) = compilation.result else { panic!("lenet compiles") };
        let model = Model::new(graph).expect("a valid plan");
        let generated: TokenStream = codegen::generate(&model, &compilation.sources).parse().unwrap();
        let text = tokens.to_string();
        assert!(text.starts_with(&generated.to_string()), "the expansion starts with the generated module");
        assert!(text.ends_with(&format!("include_str ! ({:?}) ;", root().join("specs/lenet.yaml").to_string_lossy())));
    }

    #[test]
    fn errors_read_as_cnnc_check_prints_them() {
        // Unit tests run in this crate's folder, as `cnnc check tests/ui/...` would from there.
        let spec = "tests/ui/shape_mismatch.yaml";
        let message = expand(spec, Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap_err();
        let compilation = cnnc_compiler::compile_path(Path::new(spec)).unwrap();
        let Err(diags) = compilation.result else { panic!("the spec has a shape error") };
        assert_eq!(message, render::render_all(&diags, &compilation.sources, false));
        assert!(message.contains("tests/ui/shape_mismatch.yaml:5:27"), "{message}");
    }

    #[test]
    fn errors_carry_the_location() {
        let message = expand("tests/ui/shape_mismatch.yaml", Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap_err();
        assert!(message.contains("tests/ui/shape_mismatch.yaml:"), "{message}");
        let missing = expand("tests/ui/absent.yaml", Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap_err();
        assert!(missing.contains("absent.yaml"), "{missing}");
    }
}
