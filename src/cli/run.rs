//! `tessera run`: execute a model, write and check its outputs.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use tessera::ir::Tensor;
use tessera::sample::{compare, default_range, splitmix64_uniform};

use super::common::{load, parse_pairs};
use crate::Bind;

fn summary(t: &Tensor) -> String {
    let mut s = t.ty().to_string();
    if t.numel() > 0 {
        let v = t.to_f64_vec();
        let (lo, hi) = v
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &x| {
                (l.min(x), h.max(x))
            });
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        s.push_str(&format!("  min {lo:.6}  mean {mean:.6}  max {hi:.6}"));
    }
    s
}

fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub fn run(
    model: &Path,
    backend: &str,
    inputs: &[String],
    seed: u64,
    output_dir: Option<&Path>,
    optimize: bool,
    bind: &Bind,
) -> Result<()> {
    let (mut g, sample) = load(model, bind)?;
    if optimize {
        let (out, reports) = tessera::optimize(&g, "default", None, None)
            .with_context(|| format!("optimizing {}", model.display()))?;
        eprint!("{}", super::compile::pass_table(&reports));
        g = out;
    }
    let mut given = parse_pairs(inputs)?;
    let from_sample = match &sample {
        Some(s) if given.is_empty() => Some(s.inputs()?),
        _ => None,
    };
    let mut args = Vec::new();
    for (i, p) in g.inputs().iter().enumerate() {
        let ty = g.ty(p.value);
        let t = if let Some(t) = given.remove(&p.name) {
            t
        } else if let Some(s) = &from_sample {
            s[i].clone()
        } else {
            let (lo, hi) = default_range(ty.dtype, 10.0);
            eprintln!(
                "input {:?}: random {} in [{lo}, {hi}) (seed {})",
                p.name,
                ty,
                seed + i as u64
            );
            splitmix64_uniform(ty.dtype, ty.shape.clone(), seed + i as u64, lo, hi)
        };
        args.push(t);
    }
    if let Some(name) = given.keys().next() {
        bail!("--input {name:?} is not a graph input");
    }
    let start = Instant::now();
    let outs = match backend {
        "cuda" => super::cuda::run(&g, &args)?,
        "eager" | "cpu" => super::cpu::run(&g, &args, backend == "eager")?,
        _ => tessera::reference::run(&g, &args)?,
    };
    eprintln!(
        "ran {} nodes on the {} in {:.3} s",
        g.num_nodes(),
        match backend {
            "cuda" => "CUDA backend",
            "eager" => "CPU backend, eager (compile included)",
            "cpu" => "CPU backend (compile included)",
            _ => "reference interpreter",
        },
        start.elapsed().as_secs_f64()
    );
    let expected = match &sample {
        Some(s) if from_sample.is_some() => Some(s.reference_outputs()?),
        _ => None,
    };
    if let Some(dir) = output_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    for (k, (p, t)) in g.outputs().iter().zip(&outs).enumerate() {
        println!("{}: {}", p.name, summary(t));
        if let Some(e) = expected.as_ref().and_then(|e| e.get(k)) {
            // GraphNet's float32 tolerance at level t = -5.
            match compare(t, e, 1e-5, 1.3e-6) {
                Some(c) => println!(
                    "  vs reference: max abs {:.3e}, max rel {:.3e}, {}",
                    c.max_abs,
                    c.max_rel,
                    if c.all_close {
                        "within atol 1e-5 / rtol 1.3e-6"
                    } else {
                        "OUTSIDE atol 1e-5 / rtol 1.3e-6"
                    }
                ),
                None => println!("  vs reference: type differs ({})", e.ty()),
            }
        }
        if let Some(dir) = output_dir {
            let path = dir.join(format!("{}.pb", file_safe(&p.name)));
            std::fs::write(&path, tessera::onnx::encode_tensor(t, &p.name))
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(())
}
