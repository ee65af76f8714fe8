//! The kernel IR, file-driven: every graph in `tests/cases/kernels/` (canonical text IR) is
//! planned and its kernels are printed and snapshotted (`kernels__<case>.snap`, reviewed
//! like code); the compiled model, fused and eager, on one and two threads, must match
//! the reference interpreter on random inputs.

use std::path::{Path, PathBuf};

use tessera::ir::{DType, Tensor, text, verify};
use tessera::lower::build::build_kernels;
use tessera::lower::fusion::{Mode, plan};
use tessera::lower::kir::print_kernel;
use tessera::runtime::cpu::{CpuOptions, compile};
use tessera::sample::splitmix64_uniform;

fn cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/kernels");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("case directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "tir"))
        .collect();
    v.sort();
    v
}

fn close(a: &Tensor, b: &Tensor) -> bool {
    let (x, y) = (a.to_f64_vec(), b.to_f64_vec());
    a.ty() == b.ty()
        && x.iter()
            .zip(&y)
            .all(|(p, q)| (p - q).abs() <= 1e-5 * (1.0 + q.abs()) || p.is_nan() && q.is_nan())
}

#[test]
fn kernel_ir_cases() {
    let all = cases();
    assert!(
        all.len() >= 10,
        "expected the kernel cases, found {}",
        all.len()
    );
    for path in all {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("case")
            .to_string();
        let src = std::fs::read_to_string(&path).expect("readable");
        let g = text::parse(&src).unwrap_or_else(|e| panic!("{stem}: {e}"));
        verify(&g).unwrap_or_else(|e| panic!("{stem}: {e}"));
        let p = plan(&g, Mode::Fused).expect("plans");
        let kernels = build_kernels(&g, &p).expect("builds");
        let printed: String = kernels
            .iter()
            .map(print_kernel)
            .collect::<Vec<_>>()
            .join("\n");
        insta::assert_snapshot!(format!("kernels__{stem}"), printed);

        let inputs: Vec<Tensor> = g
            .inputs()
            .iter()
            .enumerate()
            .map(|(i, port)| {
                let ty = g.ty(port.value);
                let (lo, hi) = if ty.dtype == DType::I64 {
                    (0.0, 5.0)
                } else {
                    (-1.0, 1.0)
                };
                splitmix64_uniform(ty.dtype, ty.shape.clone(), 7 + i as u64, lo, hi)
            })
            .collect();
        let want = tessera::reference::run(&g, &inputs).expect("reference runs");
        for mode in [Mode::Fused, Mode::Eager] {
            for threads in [1, 2] {
                let m = compile(
                    &g,
                    &CpuOptions {
                        mode,
                        threads,
                        ..CpuOptions::default()
                    },
                )
                .expect("compiles");
                let got = m.run(&inputs).expect("runs");
                assert_eq!(got.len(), want.len(), "output counts differ");
                for (k, (a, b)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        close(a, b),
                        "{stem} {mode:?} threads {threads}: output {k} differs"
                    );
                }
            }
        }
    }
}
