//! The CI slice of the fuzz campaign: a fixed, deterministic run over both targets (ONNX
//! importer and text-IR parser) that must end without a panic, a hang or a memory blowup.
//! Failing inputs are written to `target/fuzz-failures/` with the command that replays
//! them. The long campaign is `tessera-fuzz` (README, BENCHMARKS.md).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tessera_fuzz::alloc::CountingAlloc;
use tessera_fuzz::{Config, Corpus, Report, Target, campaign};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const SEED: u64 = 12;

fn corpus() -> Corpus {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    Corpus::load(&here.join("seeds/onnx"), &[&here.join("../tests/cases")]).expect("seeds")
}

/// Runs `execs` inputs of `target` and fails listing every failing input.
fn slice(corpus: &Corpus, target: Target, execs: u64) -> Report {
    let config = Config {
        // Debug builds are slower than the 1 s limit assumes; a real hang still trips it.
        hang_limit: Duration::from_secs(5),
        ..Config::new(target, SEED, execs)
    };
    let report = campaign::run(&config, corpus, &mut |_| {});
    if !report.failures.is_empty() {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
        std::fs::create_dir_all(&dir).expect("failure folder");
        let mut lines = Vec::new();
        for f in &report.failures {
            let path = dir.join(format!("{target:?}-{SEED}-{}", f.exec));
            std::fs::write(&path, &f.input).expect("failure file");
            lines.push(format!(
                "exec {} ({}): {:?}",
                f.exec,
                path.display(),
                f.kind
            ));
        }
        panic!(
            "{} failing input(s); replay one with `tessera-fuzz replay --target {} FILE`:\n{}",
            lines.len(),
            format!("{target:?}").to_lowercase(),
            lines.join("\n")
        );
    }
    assert_eq!(report.execs, execs);
    report
}

#[test]
fn ci_slice_onnx_and_text() {
    // An absurd allocation aborts the test binary instead of exhausting the CI machine.
    tessera_fuzz::alloc::set_limit(2 << 30, |_| {});
    let corpus = corpus();
    let onnx = slice(&corpus, Target::Onnx, 60_000);
    let text = slice(&corpus, Target::Text, 40_000);
    // The mutators must still reach the code past decoding and parsing.
    assert!(onnx.accepted > 3_000, "{onnx:?}");
    assert!(text.accepted > 1_000, "{text:?}");
    let peak = onnx.peak_bytes.max(text.peak_bytes);
    assert!(peak < 256 << 20, "an input allocated {peak} bytes");
}
