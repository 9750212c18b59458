//! Spec errors become compile errors at the `model!` call, with the spec's location and the text
//! `cnnc check` prints.

#[test]
fn slow_broken_specs_fail_to_compile() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
