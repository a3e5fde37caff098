//! Replays the fuzz corpus and the crash regressions kept in `fuzz/` through every target, on
//! stable and without sanitizers, so that CI catches a regression of anything the fuzzer once
//! found. A target without a corpus fails the test: it never passes by replaying nothing.
//!
//! `seeds::generate` (ignored; run it with `cargo test -p portcullis-fuzz-targets --test corpus
//! -- --ignored generate`) writes the seed corpus from real, valid inputs signed with the
//! fixture's keys, and the certificate of `src/keys/client-cert.der`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod seeds;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use portcullis_fuzz_targets::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files of a directory, sorted; empty when it does not exist.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic without a message".into())
}

#[test]
fn every_target_replays_its_corpus_and_regressions_without_panicking() {
    assert!(
        portcullis_fuzz_targets::fixture::fixture().is_some(),
        "the fixture keys do not load: every target would return early"
    );
    let fuzz = fuzz_dir();
    let mut failures = Vec::new();
    let mut replayed = 0;
    for (name, target) in TARGETS {
        let corpus = files_in(&fuzz.join("corpus").join(name));
        if corpus.is_empty() {
            failures.push(format!(
                "{name}: fuzz/corpus/{name}/ is missing or empty (generate the seeds: README, Fuzzing)"
            ));
        }
        let regressions = files_in(&fuzz.join("regressions").join(name));
        for file in corpus.iter().chain(&regressions) {
            let data = std::fs::read(file).unwrap();
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| target(&data))) {
                failures.push(format!(
                    "{name}: {} panicked: {}",
                    file.strip_prefix(&fuzz).unwrap_or(file).display(),
                    panic_message(payload.as_ref())
                ));
            }
            replayed += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {replayed} inputs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The cargo-fuzz project runs exactly the targets of the crate: one `fuzz_targets/<name>.rs`
/// calling `portcullis_fuzz_targets::<name>` and one `[[bin]]` per target, nothing else.
#[test]
fn the_fuzz_project_has_one_binary_per_target() {
    let fuzz = fuzz_dir();
    let manifest = std::fs::read_to_string(fuzz.join("Cargo.toml")).unwrap();
    let mut files: Vec<String> = files_in(&fuzz.join("fuzz_targets"))
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut names: Vec<String> = TARGETS.iter().map(|(n, _)| (*n).to_owned()).collect();
    names.sort();
    assert_eq!(files, names, "fuzz/fuzz_targets/ and TARGETS differ");
    for name in &names {
        let source =
            std::fs::read_to_string(fuzz.join("fuzz_targets").join(format!("{name}.rs"))).unwrap();
        assert!(
            source.contains(&format!("portcullis_fuzz_targets::{name}(")),
            "fuzz_targets/{name}.rs does not call portcullis_fuzz_targets::{name}"
        );
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml has no [[bin]] {name}"
        );
    }
}

/// The seeds signed with the fixture's keys still verify, so the fuzzer starts behind the
/// signature checks; a seed that no longer does (new keys, a changed rule) must be regenerated.
#[test]
fn the_signed_seeds_are_accepted() {
    use portcullis_core::assertion::{AssertionPolicy, verify_client_assertion};
    use portcullis_fuzz_targets::fixture::{ISSUER, JwtInput, fixture, now};
    let f = fixture().unwrap();
    let dir = fuzz_dir().join("corpus/client_assertion");
    let mut accepted = 0;
    for file in files_in(&dir) {
        if !file.to_string_lossy().ends_with("-valid") && !file.to_string_lossy().ends_with("-sign")
        {
            continue;
        }
        let data = std::fs::read(&file).unwrap();
        let token = JwtInput::read(&data)
            .and_then(|i| i.token(|k| f.client_key(k)))
            .unwrap();
        verify_client_assertion(
            &token,
            &f.client_id,
            &f.client_jwks,
            &AssertionPolicy::fapi(ISSUER),
            now(),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        accepted += 1;
    }
    assert_eq!(accepted, 6, "one valid and one signing seed per key");
}
