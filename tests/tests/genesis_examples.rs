//! The example genesis files shipped in genesis/ stay valid as the format evolves.

use cairn_ledger::genesis::Genesis;

#[test]
fn every_example_genesis_file_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../genesis");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            Genesis::load(&path).unwrap_or_else(|e| panic!("{e}"));
            checked += 1;
        }
    }
    assert!(
        checked >= 3,
        "expected the three example files, found {checked}"
    );
}
