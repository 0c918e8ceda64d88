//! `cargo run --release -p firebreak-train --example fit` after `cargo build
//! --release -p firebreak-cli` reuses that build only if cargo resolves every
//! shared crate's features the same way for both, which holds while this
//! crate's dependencies and dev-dependencies together are the CLI's
//! dependencies (see the comment in Cargo.toml).

use std::collections::BTreeSet;

/// The dependency lines (`name.workspace = true`, `name = { … }`) of the
/// `[section]` tables of a manifest, as written.
fn lines(manifest: &str, section: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(manifest).expect("manifest");
    let mut inside = false;
    let mut found = BTreeSet::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == format!("[{section}]");
        } else if inside && !line.is_empty() && !line.starts_with('#') {
            found.insert(line.to_string());
        }
    }
    found
}

#[test]
fn the_examples_see_the_same_dependencies_as_the_cli() {
    let here = env!("CARGO_MANIFEST_DIR");
    let cli = lines(
        &format!("{here}/../firebreak-cli/Cargo.toml"),
        "dependencies",
    );
    let own = lines(&format!("{here}/Cargo.toml"), "dependencies");
    let dev = lines(&format!("{here}/Cargo.toml"), "dev-dependencies");
    let expected: BTreeSet<String> = cli.difference(&own).cloned().collect();
    assert_eq!(
        dev, expected,
        "crates/firebreak-train's [dev-dependencies] must be the CLI's [dependencies] \
         that its own [dependencies] lack, written the same way"
    );
    // This crate's own dependencies need no check: the CLI reaches them
    // through firebreak-runner, which depends on this crate.
}
