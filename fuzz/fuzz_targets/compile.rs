//! Feeds arbitrary bytes to the parser, expander and checker in both spellings, and renders
//! whatever diagnostics come out: nothing may panic or hang.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, text)) = data.split_first() else { return };
    // Imports resolve inside an empty folder, so fuzzed specs cannot reach real files.
    let path = if selector & 1 == 0 { Path::new("/nonexistent-fuzz-dir/spec.yaml") } else { Path::new("/nonexistent-fuzz-dir/spec.cnn") };
    let compilation = cnnc::compile_bytes(path, text.to_vec());
    if let Err(diags) = &compilation.result {
        let _ = cnnc::render::render_all(diags, &compilation.sources, false);
    }
});
