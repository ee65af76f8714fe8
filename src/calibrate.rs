//! Calibrating the cost model on this machine and predicting with it.
//!
//! [`calibrate`] compiles a sweep of synthetic graphs ([`sweep`]: pointwise chains,
//! reductions, pools, GEMMs, convolutions of every algorithm, attention, concatenations,
//! at sizes from a few KiB to tens of MiB), times every way of every kernel in isolation
//! ([`CpuModel::time_all_ways`]), describes each kernel by its family and work
//! ([`kernel_work`]) and fits a [`Calibration`]. [`Calibrated`] is the predictor the latency
//! search uses with `--search model` (and records next to measurements with `--search
//! measure`). [`kernel_samples`] with a calibration, [`errors`] and [`agreement`] measure
//! its error on the kernels of other models. The file form ([`save`], [`load`]) carries tessera's version; a file from
//! another version is refused with a message.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tessera_ir::{
    BinaryOp, ConvAttrs, DType, Graph, Op, PoolAttrs, PoolKind, ReduceOp, Shape, Tensor,
    TensorType, UnaryOp, ValueId,
};
use tessera_passes::cost::calibrated::{Calibration, Work, quantile};
use tessera_passes::cost::{TRANSCENDENTAL, node_flops, node_transcendentals};
use tessera_runtime::cpu::{CpuModel, Predictor, Way};
use tessera_runtime::measure::Protocol;

use crate::{CompileError, Options};

/// Elementwise operations one transcendental evaluation costs on the CPU (the FLOP table
/// counts [`TRANSCENDENTAL`]): the sweep's exp and tanh at 1 Mi elements take about 10–12
/// additions' time per element on AVX2, so 12.
pub const CPU_TRANSCENDENTAL: u64 = 12;

/// The family name and work of kernel `i` of `m` run the way `w`: `conv/<algo>` for
/// convolutions (`conv/<algo>/1x1` for those without columns), else the fusion group's kind (`pointwise`, `contraction`, ...), with
/// `/serial` when it runs on the calling thread alone; a pointwise kernel without
/// arithmetic (transposes, gathers, copies) is `movement`, one whose nests run as native
/// programs (those with transcendentals) `pointwise/native`. Work: the FLOP table summed over
/// the kernel's nodes (transcendentals at [`CPU_TRANSCENDENTAL`]), the bytes it reads and writes, and as tiles its output in 16 KiB
/// pieces (the runtime's tiles and tasks grow with it) plus, for a convolution, its
/// images × groups.
pub fn kernel_work(m: &CpuModel, i: usize, w: Way) -> Option<(String, Work)> {
    let k = m.kernels().nth(i)?;
    let g = m.graph();
    let grp = m.plan().groups.get(i)?;
    // A 1×1 convolution reads its input as the columns: no im2col copy, a family apart.
    let one_by_one = matches!(&k.body, tessera_lower::kir::Body::Conv(c) if c.col.is_none());
    let mut family = match w.conv {
        Some(a) if one_by_one => format!("conv/{}/1x1", a.name()),
        Some(a) => format!("conv/{}", a.name()),
        None => grp.kind().name().to_string(),
    };
    if family == "pointwise" {
        if k.nodes.iter().all(|&n| node_flops(g, n) == 0) {
            family = "movement".to_string();
        } else if m.runs_native_nests(i) {
            family = "pointwise/native".to_string();
        }
    }
    if w.serial {
        family.push_str("/serial");
    }
    let flops: u64 = k
        .nodes
        .iter()
        .map(|&n| {
            node_flops(g, n) + (CPU_TRANSCENDENTAL - TRANSCENDENTAL) * node_transcendentals(g, n)
        })
        .sum();
    let out_bytes: usize = grp.outputs.iter().map(|&v| g.ty(v).size_bytes()).sum();
    // A convolution also pays per image and group (a GEMM call and its columns each).
    let calls = match &k.body {
        tessera_lower::kir::Body::Conv(c) => c.batch * c.group,
        _ => 0,
    };
    Some((
        family,
        Work {
            flops: flops as f64,
            bytes: m.kernel_bytes(i) as f64,
            tiles: (out_bytes.div_ceil(16 << 10).max(1) + calls) as f64,
        },
    ))
}

/// The calibrated cost model as the search's predictor.
pub struct Calibrated<'a>(pub &'a Calibration);

impl Predictor for Calibrated<'_> {
    fn predict(&self, model: &CpuModel, kernel: usize, way: Way) -> Option<f64> {
        let (family, work) = kernel_work(model, kernel, way)?;
        self.0.predict(&family, &work)
    }
}

/// One measured kernel way: the family, its work, measured and (when a calibration was
/// given) predicted seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelSample {
    pub graph: String,
    pub kernel: String,
    pub way: Way,
    pub family: String,
    pub work: Work,
    pub seconds: f64,
    pub predicted: Option<f64>,
}

/// Times every way of every kernel of `m` and describes each (see [`kernel_work`]).
pub fn kernel_samples(
    name: &str,
    m: &CpuModel,
    protocol: Protocol,
    cal: Option<&Calibration>,
) -> Vec<KernelSample> {
    let names: Vec<String> = m.kernels().map(|k| k.name.clone()).collect();
    let mut out = Vec::new();
    for (i, ways) in m.time_all_ways(protocol).into_iter().enumerate() {
        for (w, t) in ways {
            if let Some((family, work)) = kernel_work(m, i, w) {
                let predicted = cal.and_then(|c| c.predict(&family, &work));
                out.push(KernelSample {
                    graph: name.to_string(),
                    kernel: names[i].clone(),
                    way: w,
                    family,
                    work,
                    seconds: t.median,
                    predicted,
                });
            }
        }
    }
    out
}

/// What [`calibrate`] measured and fitted.
pub struct CalibrationRun {
    pub calibration: Calibration,
    pub samples: Vec<KernelSample>,
    /// Sweep graphs left out because the time limit was reached.
    pub skipped: usize,
    pub seconds: f64,
}

/// Compiles and times the [`sweep`] at `threads` threads (graphs reached after
/// `limit` are skipped), then fits the calibration.
pub fn calibrate(
    threads: usize,
    protocol: Protocol,
    limit: Duration,
) -> Result<CalibrationRun, CompileError> {
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut skipped = 0;
    let mut fp = String::new();
    for (name, g) in sweep() {
        if start.elapsed() >= limit {
            skipped += 1;
            continue;
        }
        let m = crate::compile(
            &g,
            Options {
                threads,
                ..Options::default()
            },
        )?;
        fp = tessera_runtime::cpu::fingerprint(m.cpu().isa(), m.threads());
        samples.extend(kernel_samples(&name, m.cpu(), protocol, None));
    }
    let rows: Vec<(String, Work, f64)> = samples
        .iter()
        .map(|s| (s.family.clone(), s.work, s.seconds))
        .collect();
    Ok(CalibrationRun {
        calibration: Calibration::fit(&fp, &rows),
        samples,
        skipped,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Relative errors |predicted − measured| / measured of the samples that have a
/// prediction, with their median and 90th percentile.
pub fn errors(samples: &[KernelSample]) -> (Vec<f64>, f64, f64) {
    let mut e: Vec<f64> = samples
        .iter()
        .filter_map(|s| s.predicted.map(|p| (p - s.seconds).abs() / s.seconds))
        .collect();
    let (m, p90) = (quantile(&mut e, 0.5), quantile(&mut e, 0.9));
    (e, m, p90)
}

/// The samples of the ways the kernels run as compiled (the heuristic's: the first way
/// of each kernel).
pub fn as_compiled(samples: &[KernelSample]) -> Vec<KernelSample> {
    let mut out: Vec<KernelSample> = Vec::new();
    for s in samples {
        let first = out
            .last()
            .is_none_or(|l| l.kernel != s.kernel || l.graph != s.graph);
        if first {
            out.push(s.clone());
        }
    }
    out
}

/// How often the model alone picks the way measurement picks, over the kernels of
/// `samples` with more than one way: `(same, kernels)`. Both picks follow the search's
/// rule (the fastest, if it beats the heuristic's way by the search's margin: `margin`
/// for measured times, `model_margin` for predicted ones).
pub fn agreement(
    samples: &[KernelSample],
    opts: tessera_runtime::cpu::SearchOptions,
) -> (usize, usize) {
    let mut same = 0;
    let mut kernels = 0;
    let mut i = 0;
    while i < samples.len() {
        let j = (i..samples.len())
            .find(|&j| {
                samples[j].kernel != samples[i].kernel || samples[j].graph != samples[i].graph
            })
            .unwrap_or(samples.len());
        let group = &samples[i..j];
        if group.len() > 1 {
            let pick = |t: &dyn Fn(&KernelSample) -> Option<f64>, margin: f64| -> Option<usize> {
                let d = t(&group[0])?;
                let (b, bt) = group
                    .iter()
                    .enumerate()
                    .filter_map(|(k, s)| t(s).map(|x| (k, x)))
                    .min_by(|x, y| x.1.total_cmp(&y.1))?;
                Some(if bt < d * (1.0 - margin) { b } else { 0 })
            };
            let measured = pick(&|s| Some(s.seconds), opts.margin);
            let model = pick(&|s| s.predicted, opts.model_margin);
            if model.is_some() {
                kernels += 1;
                same += usize::from(model == measured);
            }
        }
        i = j;
    }
    (same, kernels)
}

/// Format number of the calibration file.
const FORMAT: u32 = 1;

#[derive(serde::Serialize, serde::Deserialize)]
struct CalibrationFile {
    format: u32,
    tessera: String,
    calibration: Calibration,
}

/// The default calibration file: `calibration.json` beside the measurement cache.
pub fn default_path() -> Option<PathBuf> {
    tessera_runtime::cache::default_path().map(|p| p.with_file_name("calibration.json"))
}

/// Writes `c` to `path` (atomically: a temporary file, then a rename).
pub fn save(path: &Path, c: &Calibration) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(&CalibrationFile {
        format: FORMAT,
        tessera: env!("CARGO_PKG_VERSION").to_string(),
        calibration: c.clone(),
    })
    .map_err(std::io::Error::other)?;
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d)?;
    }
    let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Reads a calibration written by [`save`] of this version; the error says why not.
pub fn load(path: &Path) -> Result<Calibration, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the calibration {}: {e}", path.display()))?;
    let f: CalibrationFile = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a calibration file: {e}", path.display()))?;
    let version = env!("CARGO_PKG_VERSION");
    if f.format != FORMAT || f.tessera != version {
        return Err(format!(
            "{} was written by tessera {} (format {}); this is {version} (format {FORMAT}): run `tessera calibrate` again",
            path.display(),
            f.tessera,
            f.format
        ));
    }
    Ok(f.calibration)
}

fn ty(dims: &[usize]) -> TensorType {
    TensorType::new(DType::F32, Shape::from_dims(dims))
}

/// A deterministic pseudo-random tensor in [−0.5, 0.5).
fn weights(dims: &[usize], seed: u64) -> Tensor {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let n: usize = dims.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    Tensor::from_vec(Shape::from_dims(dims), v).expect("invariant: one value per element")
}

/// Adds `op(inputs)` to `g`; the sweep's graphs are well typed by construction.
fn node(g: &mut Graph, op: Op, inputs: &[ValueId], name: &str) -> ValueId {
    g.add_node1(op, inputs, name)
        .expect("invariant: the calibration sweep builds well-typed graphs")
}

/// The calibration sweep: graphs of independent kernels per family, at the sizes and
/// shapes real exports run (CNN stages from 112×112 to 7×7, transformer widths 256–3072 at
/// 128 tokens, attention at 64–512 tokens).
pub fn sweep() -> Vec<(String, Graph)> {
    let mut out = Vec::new();
    let mut seed = 1u64;
    let mut next = || {
        seed += 1;
        seed
    };

    // Pointwise: cheap, broadcast and transcendental chains from 4 Ki to 4 Mi elements.
    // Pointwise: cheap, broadcast and transcendental chains and plain copies (transposes)
    // from 1 Ki to 8 Mi elements.
    let mut g = Graph::new("sweep_pointwise");
    for i in 0..14 {
        let n = 1usize << (10 + i);
        let x = g.add_input(format!("x{i}"), ty(&[n / 256, 256]));
        let b = g.add_constant(weights(&[256], next()), format!("b{i}"));
        let a = node(&mut g, Op::Binary(BinaryOp::Add), &[x, b], "add");
        let r = node(&mut g, Op::Unary(UnaryOp::Relu), &[a], "relu");
        g.add_output(format!("relu{i}"), r);
        if i % 2 == 0 {
            let e = node(&mut g, Op::Unary(UnaryOp::Tanh), &[x], "tanh");
            let m = node(&mut g, Op::Binary(BinaryOp::Mul), &[e, x], "mul");
            g.add_output(format!("tanh{i}"), m);
        } else {
            let e = node(&mut g, Op::Unary(UnaryOp::Exp), &[x], "exp");
            g.add_output(format!("exp{i}"), e);
        }
        let t = node(
            &mut g,
            Op::Transpose { perm: vec![1, 0] },
            &[x],
            "transpose",
        );
        g.add_output(format!("t{i}"), t);
        let y = g.add_input(format!("y{i}"), ty(&[n / 256, 256]));
        let m = node(&mut g, Op::Binary(BinaryOp::Mul), &[x, y], "mul");
        g.add_output(format!("m{i}"), m);
        // A NaN guard as exporters write it after a softmax: is_nan, where.
        let nan = node(&mut g, Op::Unary(UnaryOp::IsNaN), &[y], "is_nan");
        let zero = g.add_constant(
            Tensor::full(DType::F32, Shape::from_dims(&[1]), 0.0),
            "zero",
        );
        let w = node(&mut g, Op::Where, &[nan, zero, y], "where");
        g.add_output(format!("w{i}"), w);
        if i % 3 == 0 {
            let c = node(&mut g, Op::Cast { to: DType::F16 }, &[x], "cast");
            g.add_output(format!("c{i}"), c);
        }
    }
    out.push(("pointwise".to_string(), g));

    // Reductions: softmax and layer norm over rows, spatial means.
    let mut g = Graph::new("sweep_reduction");
    for (i, (r, c)) in [
        (64, 128),
        (512, 128),
        (128, 768),
        (1536, 128),
        (128, 3072),
        (4096, 64),
        (3136, 96),
        (128, 256),
        (16, 1000),
        (768, 512),
        (1024, 1024),
        (49, 768),
    ]
    .into_iter()
    .enumerate()
    {
        let x = g.add_input(format!("x{i}"), ty(&[r, c]));
        let s = node(&mut g, Op::Softmax { axis: 1 }, &[x], "softmax");
        g.add_output(format!("softmax{i}"), s);
        let scale = g.add_constant(weights(&[c], next()), format!("g{i}"));
        let bias = g.add_constant(weights(&[c], next()), format!("b{i}"));
        let l = node(
            &mut g,
            Op::LayerNorm {
                axis: 1,
                epsilon: 1e-5,
                stats: false,
            },
            &[x, scale, bias],
            "layer_norm",
        );
        g.add_output(format!("ln{i}"), l);
    }
    for (i, (c, h)) in [
        (16, 112),
        (96, 28),
        (576, 7),
        (960, 14),
        (72, 56),
        (240, 28),
    ]
    .into_iter()
    .enumerate()
    {
        let x = g.add_input(format!("s{i}"), ty(&[1, c, h, h]));
        let m = node(
            &mut g,
            Op::Reduce {
                op: ReduceOp::Mean,
                axes: vec![2, 3],
                keep_dims: true,
            },
            &[x],
            "reduce_mean",
        );
        g.add_output(format!("mean{i}"), m);
    }
    out.push(("reduction".to_string(), g));

    // Windows: 3×3 pools, strides 1 and 2.
    let mut g = Graph::new("sweep_window");
    for (i, (c, h, s)) in [
        (16, 112, 2),
        (64, 56, 2),
        (128, 28, 1),
        (256, 14, 2),
        (24, 56, 1),
        (64, 112, 2),
        (32, 28, 1),
        (512, 7, 1),
    ]
    .into_iter()
    .enumerate()
    {
        let x = g.add_input(format!("x{i}"), ty(&[1, c, h, h]));
        let attrs = PoolAttrs {
            kernel: vec![3, 3],
            strides: vec![s, s],
            pads: vec![1; 4],
            dilations: vec![1, 1],
            ceil_mode: false,
        };
        let kind = if i % 2 == 0 {
            PoolKind::Max { indices: false }
        } else {
            PoolKind::Average {
                count_include_pad: false,
            }
        };
        let p = node(&mut g, Op::Pool { kind, attrs }, &[x], "pool");
        g.add_output(format!("pool{i}"), p);
    }
    out.push(("window".to_string(), g));

    // GEMMs with constant B, from a classifier row to the widest BERT-class shapes.
    let mut g = Graph::new("sweep_contraction");
    for (i, (m, k, n)) in [
        (1, 768, 768),
        (16, 512, 512),
        (64, 64, 64),
        (128, 256, 1024),
        (128, 768, 768),
        (128, 768, 3072),
        (128, 3072, 768),
        (197, 384, 1152),
        (512, 64, 512),
        (3136, 96, 384),
        (128, 896, 128),
        (128, 896, 4864),
        (128, 2560, 2560),
        (784, 192, 768),
        (49, 768, 3072),
        (1, 1024, 1000),
        (8, 256, 256),
        (1500, 384, 384),
        (256, 128, 128),
        (32, 2048, 512),
    ]
    .into_iter()
    .enumerate()
    {
        let x = g.add_input(format!("x{i}"), ty(&[m, k]));
        let w = g.add_constant(weights(&[k, n], next()), format!("w{i}"));
        let y = node(&mut g, Op::MatMul, &[x, w], "matmul");
        g.add_output(format!("y{i}"), y);
    }
    out.push(("contraction".to_string(), g));

    // Convolutions: depthwise 3×3/5×5 at strides 1 and 2, 1×1 expansions and
    // projections (squeeze-and-excitation's on 1×1 planes too), dense 3×3 and an RGB
    // stem, grouped; each kernel is timed in every way.
    let mut g = Graph::new("sweep_conv");
    let convs: [(usize, usize, usize, usize, usize, usize); 42] = [
        // (in, out, size, kernel, stride, group)
        (32, 32, 112, 3, 1, 32),
        (96, 96, 56, 3, 2, 96),
        (120, 120, 28, 3, 1, 120),
        (480, 480, 14, 5, 1, 480),
        (672, 672, 14, 5, 2, 672),
        (960, 960, 7, 3, 1, 960),
        (24, 72, 56, 1, 1, 1),
        (40, 240, 28, 1, 1, 1),
        (240, 40, 28, 1, 1, 1),
        (80, 480, 14, 1, 1, 1),
        (480, 80, 14, 1, 1, 1),
        (96, 384, 56, 1, 1, 1),
        (16, 32, 112, 3, 2, 1),
        (128, 128, 14, 3, 1, 1),
        (48, 48, 56, 3, 1, 6),
        (104, 104, 28, 3, 1, 13),
        (16, 16, 112, 3, 1, 16),
        (48, 48, 112, 3, 2, 48),
        (72, 72, 56, 3, 1, 72),
        (144, 144, 56, 5, 2, 144),
        (240, 240, 28, 5, 1, 240),
        (288, 288, 14, 3, 1, 288),
        (576, 576, 7, 5, 1, 576),
        (3, 16, 224, 3, 2, 1),
        (16, 96, 112, 1, 1, 1),
        (24, 144, 56, 1, 1, 1),
        (144, 24, 56, 1, 1, 1),
        (48, 288, 28, 1, 1, 1),
        (96, 576, 14, 1, 1, 1),
        (576, 160, 7, 1, 1, 1),
        (160, 960, 7, 1, 1, 1),
        (32, 64, 56, 3, 1, 1),
        (64, 128, 28, 3, 1, 1),
        (96, 48, 28, 3, 1, 1),
        (64, 64, 56, 3, 1, 8),
        (128, 128, 28, 3, 2, 16),
        // Squeeze-and-excitation's two 1×1 convolutions on the pooled [1, C, 1, 1] (a few
        // µs each, where a fit without them puts a 1×1's fixed cost near 34 µs).
        (96, 24, 1, 1, 1, 1),
        (24, 96, 1, 1, 1, 1),
        (576, 144, 1, 1, 1, 1),
        (144, 576, 1, 1, 1, 1),
        (16, 8, 1, 1, 1, 1),
        (240, 64, 1, 1, 1, 1),
    ];
    for (i, (c, m, h, k, s, grp)) in convs.into_iter().enumerate() {
        let x = g.add_input(format!("x{i}"), ty(&[1, c, h, h]));
        let w = g.add_constant(weights(&[m, c / grp, k, k], next()), format!("w{i}"));
        let b = g.add_constant(weights(&[m], next()), format!("b{i}"));
        let y = node(
            &mut g,
            Op::Conv(ConvAttrs {
                strides: vec![s, s],
                pads: vec![k / 2; 4],
                dilations: vec![1, 1],
                group: grp,
            }),
            &[x, w, b],
            "conv",
        );
        let r = node(&mut g, Op::Unary(UnaryOp::Relu), &[y], "relu");
        g.add_output(format!("y{i}"), r);
    }
    out.push(("conv".to_string(), g));

    // Attention: 64 to 512 tokens, heads of 64.
    let mut g = Graph::new("sweep_attention");
    for (i, (h, s, d)) in [
        (4, 64, 64),
        (12, 128, 64),
        (8, 256, 64),
        (4, 512, 64),
        (2, 128, 32),
        (14, 128, 64),
        (32, 128, 80),
        (6, 1500, 64),
        (3, 49, 32),
    ]
    .into_iter()
    .enumerate()
    {
        let q = g.add_input(format!("q{i}"), ty(&[1, h, s, d]));
        let k = g.add_input(format!("k{i}"), ty(&[1, h, s, d]));
        let v = g.add_input(format!("v{i}"), ty(&[1, h, s, d]));
        let mut ins = vec![q, k, v];
        if i % 2 == 1 {
            ins.push(g.add_input(format!("mask{i}"), ty(&[1, 1, s, s])));
        }
        let a = node(&mut g, Op::Attention { scale: 0.125 }, &ins, "attention");
        g.add_output(format!("a{i}"), a);
    }
    out.push(("attention".to_string(), g));

    // Concatenations along channels.
    let mut g = Graph::new("sweep_concat");
    for (i, (c, h)) in [
        (16, 112),
        (64, 28),
        (256, 14),
        (512, 7),
        (8, 56),
        (32, 56),
        (128, 28),
        (1024, 7),
    ]
    .into_iter()
    .enumerate()
    {
        let a = g.add_input(format!("a{i}"), ty(&[1, c, h, h]));
        let b = g.add_input(format!("b{i}"), ty(&[1, c, h, h]));
        let y = node(&mut g, Op::Concat { axis: 1 }, &[a, b], "concat");
        g.add_output(format!("y{i}"), y);
    }
    out.push(("concat".to_string(), g));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sweep_graph_verifies_and_covers_its_family() {
        let graphs = sweep();
        assert_eq!(graphs.len(), 7);
        for (name, g) in &graphs {
            tessera_ir::verify(g).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(g.num_nodes() >= 4, "{name}");
        }
    }
}
