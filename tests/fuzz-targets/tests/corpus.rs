//! Every file of every seed corpus (`fuzz/corpus/<target>/`), and every crash input kept as a
//! regression (`fuzz/regressions/<target>/`), through its target, on stable Rust.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

fn files(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz").join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

#[test]
fn every_corpus_file_goes_through_its_target() {
    for target in cloacina_fuzz_targets::TARGETS {
        let corpus = files("corpus", target);
        assert!(corpus.len() >= 3, "fuzz/corpus/{target}/ holds {} seed files", corpus.len());
        for file in corpus.iter().chain(files("regressions", target).iter()) {
            cloacina_fuzz_targets::run(target, &std::fs::read(file).unwrap());
        }
    }
}
