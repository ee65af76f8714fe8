//! The `tessera` binary: verbs, output files, and errors on bad input.

mod cli_support;
use cli_support::tessera;
use std::path::Path;
use std::process::Command;

#[test]
fn inspect_lists_ops_and_ports() {
    let (ok, out, _) = tessera(&["inspect", "samples/mlp_iris/model.onnx"]);
    assert!(ok);
    assert!(out.contains("L_x_") && out.contains("f32[2,4]"), "{out}");
    assert!(
        out.contains("gemm") && out.contains("constants: 43 elements (172 bytes)"),
        "{out}"
    );
}

#[test]
fn dump_prints_text_that_parses() {
    let (ok, out, _) = tessera(&["dump", "samples/mlp_iris/model.onnx"]);
    assert!(ok);
    let g = tessera::ir::text::parse(&out).unwrap();
    assert_eq!(g.outputs()[0].name, "linear_1");
}

#[test]
fn run_writes_tensor_files_that_match_the_reference() {
    let dir = std::env::temp_dir().join(format!("tessera-cli-{}", std::process::id()));
    let (ok, out, err) = tessera(&[
        "run",
        "samples/mlp_iris/model.onnx",
        "--input",
        "L_x_=samples/mlp_iris/inputs/0.pb",
        "--output-dir",
        dir.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.starts_with("linear_1: f32[2,3]"), "{out}");
    let (name, got) = tessera::onnx::read_tensor_file(&dir.join("linear_1.pb")).unwrap();
    assert_eq!(name, "linear_1");
    let (_, want) = tessera::onnx::read_tensor_file(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/samples/mlp_iris/outputs/0.pb"
    )))
    .unwrap();
    assert!(
        tessera::sample::compare(&got, &want, 1e-5, 1.3e-6)
            .unwrap()
            .all_close
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn run_on_a_sample_compiles_times_and_checks_against_both_references() {
    let (ok, out, err) = tessera(&["run", "samples/tiny_bert_cls", "--runs", "2"]);
    assert!(ok, "{err}");
    // Two outputs, each against the reference interpreter and the sample's outputs.
    assert_eq!(
        out.matches("vs reference interpreter: ").count(),
        2,
        "{out}"
    );
    assert_eq!(out.matches("vs sample outputs: ").count(), 2, "{out}");
    assert_eq!(
        out.matches("within atol 1e-5 / rtol 1.3e-6").count(),
        4,
        "{out}"
    );
    assert!(
        err.contains(" kernels in ") && err.contains("x over eager"),
        "{err}"
    );
}

#[test]
fn a_closed_stdout_ends_the_program_quietly() {
    use std::io::Read;
    use std::process::Stdio;
    for verb in ["dump", "inspect"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args([verb, "samples/resnet18_winputs/model.onnx"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary runs");
        // Read one byte, then close the pipe while the program is still writing.
        let mut stdout = child.stdout.take().expect("piped");
        let mut byte = [0u8; 1];
        stdout.read_exact(&mut byte).expect("some output");
        drop(stdout);
        let out = child.wait_with_output().expect("the binary ends");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{verb}: {:?} {err}", out.status);
        assert!(err.is_empty(), "{verb}: {err}");
    }
}

#[test]
fn errors_are_reported_not_panics() {
    let (ok, _, err) = tessera(&["inspect", "Cargo.toml"]);
    assert!(!ok);
    assert!(
        err.starts_with("error: importing Cargo.toml: not a valid ONNX model"),
        "{err}"
    );
    let (ok, _, err) = tessera(&["run", "samples/mlp_iris/model.onnx", "--input", "nope=x.pb"]);
    assert!(!ok);
    assert!(err.contains("cannot read x.pb"), "{err}");
    // The I/O cause is printed once, not once by our message and again by the chain.
    let (ok, _, err) = tessera(&["inspect", "no/such/model.onnx"]);
    assert!(!ok);
    assert_eq!(err.matches("os error").count(), 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}
