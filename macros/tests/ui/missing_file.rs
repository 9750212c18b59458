cnnc_macros::model!("specs/no_such_model.yaml");

fn main() {}
