#[test] fn placeholder_builds() {}
