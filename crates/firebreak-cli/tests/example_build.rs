//! `cargo run --release -p CRATE --example NAME` after `cargo build --release
//! -p firebreak-cli` reuses that build only if cargo resolves every shared
//! crate's features the same way for both, which holds while the crate's
//! dependencies and dev-dependencies together are the CLI's dependencies (see
//! the comments in their Cargo.toml). The README runs examples of
//! firebreak-train and firebreak-runner.

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
    let crates = format!("{}/..", env!("CARGO_MANIFEST_DIR"));
    let cli = lines(
        &format!("{crates}/firebreak-cli/Cargo.toml"),
        "dependencies",
    );
    for name in ["firebreak-train", "firebreak-runner"] {
        let manifest = format!("{crates}/{name}/Cargo.toml");
        let own = lines(&manifest, "dependencies");
        let dev = lines(&manifest, "dev-dependencies");
        let expected: BTreeSet<String> = cli
            .difference(&own)
            .filter(|line| !line.starts_with(&format!("{name}.")))
            .cloned()
            .collect();
        assert_eq!(
            dev, expected,
            "crates/{name}'s [dev-dependencies] must be the CLI's [dependencies] that its \
             own [dependencies] lack, written the same way"
        );
    }
}
