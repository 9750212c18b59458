// trybuild compiles this in $CARGO_TARGET_DIR/tests/trybuild/cnnc-macros, which is the manifest
// directory the macro resolves the path against; the spec sits beside this file.
cnnc_macros::model!("../../../../macros/tests/ui/shape_mismatch.yaml");

fn main() {}
