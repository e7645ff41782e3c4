//! Replays every committed fuzz input through its check on stable, in seconds: the seed
//! corpora (fuzz/corpus/<target>/) and the inputs of crashes found and fixed
//! (fuzz/regressions/<target>/). The same functions are the libFuzzer targets, so a crash
//! found by `make fuzz` stays a failing test here until it is fixed.
//!
//! Also checks that the seeds made from real encodings are still accepted by their decoders
//! (a seed that stopped decoding would leave the fuzzer outside the format), and writes them
//! to fuzz/corpus/ when asked: `CAIRN_WRITE_FUZZ_SEEDS=1 cargo test --release --workspace
//! --test fuzz_corpora` (what `make fuzz-seeds` runs).

use std::path::{Path, PathBuf};

use cairn_tests::fuzz::{TARGETS, check, seeds};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files (or the directories) in `dir`, sorted; none if it does not exist.
fn entries(dir: &Path, dirs: bool) -> Vec<PathBuf> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = read
        .map(|e| e.expect("a readable directory entry").path())
        .filter(|p| if dirs { p.is_dir() } else { p.is_file() })
        .collect();
    out.sort();
    out
}

#[test]
fn every_committed_corpus_and_regression_input_passes_its_check() {
    let mut replayed = 0;
    for kind in ["corpus", "regressions"] {
        let root = fuzz_dir().join(kind);
        for dir in entries(&root, true) {
            let target = dir.file_name().unwrap().to_string_lossy().into_owned();
            let check = check(&target)
                .unwrap_or_else(|| panic!("{}: no fuzz check named {target}", dir.display()));
            for file in entries(&dir, false) {
                let data = std::fs::read(&file).unwrap();
                check(&data);
                replayed += 1;
            }
        }
    }
    // Each target has its seeds committed at least.
    assert!(replayed >= TARGETS.len(), "only {replayed} inputs replayed");
}

#[test]
fn seeds_from_real_encodings_are_accepted_and_committed() {
    let write = std::env::var_os("CAIRN_WRITE_FUZZ_SEEDS").is_some();
    let seeds = seeds();
    for (target, _) in TARGETS {
        assert!(
            seeds.iter().any(|(t, _, _)| t == target),
            "no seed for {target}"
        );
    }
    for (target, name, data) in &seeds {
        let check = check(target).unwrap();
        assert!(
            check(data),
            "the seed {target}/{name} is refused by its decoder"
        );
        let path = fuzz_dir().join("corpus").join(target).join(name);
        if write {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, data).unwrap();
        } else {
            assert!(
                path.is_file(),
                "{} is missing: run `make fuzz-seeds`",
                path.display()
            );
        }
    }
}
