//! Ops whose output elements are input elements at index maps fixed by static attributes
//! (`Pad`, `Resize`, `Upsample`), translated into data movement and arithmetic the IR
//! already has: per axis, a `Slice` for cropping, a `Concat` with constant blocks for
//! constant padding, and `Gather`s at constant indices for edge, reflect and wrap padding
//! and for resampling. Resampling is separable (ONNX defines `Resize` one axis at a
//! time), so an axis resampled with `n` taps is `Σₖ wₖ · gather(x, iₖ)` with the taps'
//! indices `iₖ` and weights `wₖ` computed here in f64 and stored in the input's dtype.

use tessera_ir::{BinaryOp, Op, Shape, Tensor, ValueId};

use super::common::{R, Translator, axis, dims_of, reshape, shape};
use crate::context::Ctx;

pub(super) const OPS: &[(&str, Translator)] =
    &[("Pad", pad), ("Resize", resize), ("Upsample", upsample)];

/// A constant 1-D tensor.
fn vector<T: tessera_ir::Element>(cx: &mut Ctx, v: Vec<T>) -> R<ValueId> {
    let s = shape(cx, vec![v.len()])?;
    let t = Tensor::from_vec(s, v).map_err(|e| cx.err(e.to_string()))?;
    Ok(cx.constant(t))
}

/// `x` gathered along `axis` at the constant `indices` (each within the axis).
fn gather_at(cx: &mut Ctx, x: ValueId, axis: usize, indices: Vec<i64>) -> R<ValueId> {
    let dim = dims_of(cx, x)[axis];
    if indices.len() == dim && indices.iter().enumerate().all(|(i, &j)| i as i64 == j) {
        return Ok(x);
    }
    let i = vector(cx, indices)?;
    cx.emit1(Op::Gather { axis }, &[x, i])
}

/// The dims of `x` with `axis` set to `n`.
fn with_dim(cx: &Ctx, x: ValueId, axis: usize, n: usize) -> Vec<usize> {
    let mut d = dims_of(cx, x);
    d[axis] = n;
    d
}

/// How `Pad` fills the positions it adds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PadMode {
    Constant,
    Edge,
    Reflect,
    Wrap,
}

/// The value constant padding fills with.
enum Fill {
    Literal(f64),
    /// A scalar (or one-element) value of the data's dtype.
    Value(ValueId),
}

fn pad(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let d = dims_of(cx, x);
    let rank = d.len();
    let mode = match cx.attr_string("mode")?.as_deref().unwrap_or("constant") {
        "constant" => PadMode::Constant,
        "edge" => PadMode::Edge,
        "reflect" => PadMode::Reflect,
        "wrap" => PadMode::Wrap,
        other => return Err(cx.err(format!("unknown pad mode {other:?}"))),
    };
    let (pads, fill, raw_axes) = if cx.opset >= 11 {
        let pads = cx
            .ints_input(1)?
            .ok_or_else(|| cx.err("the pads input is missing"))?;
        let fill = match cx.opt_input(2) {
            Some(v) => {
                let t = cx.ty(v);
                if t.shape.numel() != 1 {
                    return Err(cx.err(format!(
                        "constant_value must be a single value, got shape {}",
                        t.shape
                    )));
                }
                if t.dtype != cx.ty(x).dtype {
                    return Err(cx.err(format!(
                        "constant_value is {}, the data {}",
                        t.dtype,
                        cx.ty(x).dtype
                    )));
                }
                Fill::Value(v)
            }
            None => Fill::Literal(0.0),
        };
        (pads, fill, cx.ints_input(3)?)
    } else {
        let pads = match cx.attr_ints("pads")? {
            Some(p) => p,
            None => cx
                .attr_ints("paddings")?
                .ok_or_else(|| cx.err("attribute \"pads\" is missing"))?,
        };
        let value = cx.attr_float("value")?.unwrap_or(0.0);
        (pads, Fill::Literal(value.into()), None)
    };
    let axes: Vec<usize> = match raw_axes {
        Some(a) => a
            .iter()
            .map(|&a| axis(cx, a, rank))
            .collect::<R<Vec<_>>>()?,
        None => (0..rank).collect(),
    };
    let n = axes.len();
    if pads.len() != 2 * n {
        return Err(cx.err(format!(
            "{} pads for {n} axes, expected {}",
            pads.len(),
            2 * n
        )));
    }
    if (1..n).any(|i| axes[..i].contains(&axes[i])) {
        return Err(cx.err(format!("axes {axes:?} repeat an axis")));
    }
    let mut y = x;
    for (i, &a) in axes.iter().enumerate() {
        y = pad_axis(cx, y, a, pads[i], pads[n + i], mode, &fill)?;
    }
    if y == x {
        y = cx.emit1(Op::Identity, &[x])?;
    }
    Ok(vec![y])
}

/// Pads (or, for negative pads, crops) `x` along `axis` by `begin` and `end`. Cropping
/// comes first, so edge, reflect and wrap padding read the cropped data.
fn pad_axis(
    cx: &mut Ctx,
    x: ValueId,
    axis: usize,
    begin: i64,
    end: i64,
    mode: PadMode,
    fill: &Fill,
) -> R<ValueId> {
    let dim = dims_of(cx, x)[axis] as i64;
    let (crop_b, crop_e) = ((-begin).max(0), (-end).max(0));
    if crop_b + crop_e > dim {
        return Err(cx.err(format!(
            "pads {begin} and {end} crop more than axis {axis}'s {dim} elements"
        )));
    }
    let mut x = x;
    if crop_b + crop_e > 0 {
        let op = Op::Slice {
            axes: vec![axis],
            starts: vec![crop_b],
            ends: vec![dim - crop_e],
            steps: vec![1],
        };
        x = cx.emit1(op, &[x])?;
    }
    let n = dim - crop_b - crop_e;
    let (b, e) = (begin.max(0), end.max(0));
    if b == 0 && e == 0 {
        return Ok(x);
    }
    if mode == PadMode::Constant {
        let mut parts = Vec::new();
        for (len, at_end) in [(b, false), (e, true)] {
            if len > 0 {
                let dims = with_dim(cx, x, axis, len as usize);
                let block = fill_block(cx, x, dims, fill)?;
                parts.push((at_end, block));
            }
        }
        let mut inputs: Vec<ValueId> = parts.iter().filter(|p| !p.0).map(|p| p.1).collect();
        inputs.push(x);
        inputs.extend(parts.iter().filter(|p| p.0).map(|p| p.1));
        return cx.emit1(Op::Concat { axis }, &inputs);
    }
    if n == 0 {
        return Err(cx.err(format!(
            "axis {axis} is empty: there is nothing to pad it with"
        )));
    }
    cx.check_built("the pad's gather indices", (b + n + e) as usize)?;
    let indices = (-b..n + e)
        .map(|j| match mode {
            PadMode::Edge => j.clamp(0, n - 1),
            PadMode::Wrap => j.rem_euclid(n),
            // numpy's "reflect": mirrored about the edge elements, periodic beyond.
            _ if n == 1 => 0,
            _ => {
                let m = j.rem_euclid(2 * (n - 1));
                if m < n { m } else { 2 * (n - 1) - m }
            }
        })
        .collect();
    gather_at(cx, x, axis, indices)
}

/// A block of `dims` filled with the pad value, in `x`'s dtype.
fn fill_block(cx: &mut Ctx, x: ValueId, dims: Vec<usize>, fill: &Fill) -> R<ValueId> {
    let s = shape(cx, dims)?;
    cx.check_built("the pad block", s.numel())?;
    match *fill {
        Fill::Literal(v) => Ok(cx.constant(Tensor::full(cx.ty(x).dtype, s, v))),
        Fill::Value(v) => {
            let ones = vec![1; s.rank()];
            let v = reshape(cx, v, ones)?;
            cx.emit1(Op::Expand { shape: s }, &[v])
        }
    }
}

/// How `Resize` maps an output coordinate to an input coordinate.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Coord {
    HalfPixel,
    HalfPixelSymmetric,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
    TfHalfPixelForNn,
    TfCropAndResize,
}

/// Which input element nearest-neighbour resampling picks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Nearest {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

#[derive(Clone, Copy, PartialEq)]
enum Interp {
    Nearest(Nearest),
    Linear,
    /// Cubic convolution with coefficient `a`.
    Cubic(f64),
}

/// The normalized attributes of one `Resize`.
struct Resample {
    interp: Interp,
    coord: Coord,
    antialias: bool,
    exclude_outside: bool,
    extrapolation: f64,
}

/// One axis's taps: for output position `y`, input indices `idx[y·n..][..n]` (within the
/// axis) with weights `w[y·n..][..n]`; `outside[y]` marks the positions that take the
/// extrapolation value (`tf_crop_and_resize` only).
struct Taps {
    n: usize,
    idx: Vec<i64>,
    w: Vec<f64>,
    outside: Vec<bool>,
}

/// The most taps an output position may read: antialiased downscaling widens the filter
/// by the inverse scale, and each tap is a gather in the imported graph.
const MAX_TAPS: f64 = 64.0;

impl Resample {
    /// How many taps `coeffs` returns at `scale`, without computing them.
    fn tap_count(&self, scale: f64) -> f64 {
        let s = scale.min(1.0);
        match self.interp {
            Interp::Nearest(_) => 2.0,
            Interp::Linear if self.antialias => -2.0 * (-1.0 / s).floor(),
            Interp::Linear => 2.0,
            Interp::Cubic(_) if self.antialias => -2.0 * (-2.0 / s).floor(),
            Interp::Cubic(_) => 4.0,
        }
    }

    /// The input coordinate of output position `y`: `scale` is the axis's scale factor,
    /// `out` its output length, `roi` its region of interest (start, end).
    fn source(&self, y: f64, scale: f64, input: usize, out: usize, roi: (f64, f64)) -> f64 {
        let len = input as f64;
        let out_width = scale * len;
        match self.coord {
            Coord::HalfPixel => (y + 0.5) / scale - 0.5,
            Coord::HalfPixelSymmetric => {
                let adjustment = out as f64 / out_width;
                let offset = len / 2.0 * (1.0 - adjustment);
                offset + (y + 0.5) / scale - 0.5
            }
            Coord::PytorchHalfPixel if out_width == 1.0 => -0.5,
            Coord::PytorchHalfPixel => (y + 0.5) / scale - 0.5,
            Coord::AlignCorners if out_width == 1.0 => 0.0,
            Coord::AlignCorners => y * (len - 1.0) / (out_width - 1.0),
            Coord::Asymmetric => y / scale,
            Coord::TfHalfPixelForNn => (y + 0.5) / scale,
            Coord::TfCropAndResize => {
                let x = if out_width == 1.0 {
                    (roi.1 - roi.0) * (len - 1.0) / 2.0
                } else {
                    y * (roi.1 - roi.0) * (len - 1.0) / (out_width - 1.0)
                };
                x + roi.0 * (len - 1.0)
            }
        }
    }

    /// Tap weights for a source coordinate at `ratio ∈ (0, 1]` past the tap left of it
    /// (the ONNX reference's `get_coeffs`); an even count.
    fn coeffs(&self, ratio: f64, scale: f64) -> Vec<f64> {
        let s = scale.min(1.0);
        match self.interp {
            Interp::Nearest(_) if ratio == 1.0 => vec![0.0, 1.0],
            Interp::Nearest(m) => {
                let up = match m {
                    Nearest::RoundPreferFloor => ratio > 0.5,
                    Nearest::RoundPreferCeil => ratio >= 0.5,
                    Nearest::Floor => false,
                    Nearest::Ceil => true,
                };
                if up { vec![0.0, 1.0] } else { vec![1.0, 0.0] }
            }
            Interp::Linear if self.antialias => {
                let start = (-1.0 / s).floor() as i64 + 1;
                let footprint = 2 - 2 * start;
                let c: Vec<f64> = (start..start + footprint)
                    .map(|i| (1.0 - ((i as f64 - ratio) * s).abs()).clamp(0.0, 1.0))
                    .collect();
                normalized(c)
            }
            Interp::Linear => vec![1.0 - ratio, ratio],
            Interp::Cubic(a) if self.antialias => {
                let kernel = |x: f64| {
                    let x = x.abs();
                    let (x2, x3) = (x * x, x * x * x);
                    if x <= 1.0 {
                        (a + 2.0) * x3 - (a + 3.0) * x2 + 1.0
                    } else if x < 2.0 {
                        a * x3 - 5.0 * a * x2 + 8.0 * a * x - 4.0 * a
                    } else {
                        0.0
                    }
                };
                let start = (-2.0 / s).floor() as i64 + 1;
                let c: Vec<f64> = (start..2 - start)
                    .map(|i| kernel(s * (i as f64 - ratio)))
                    .collect();
                normalized(c)
            }
            Interp::Cubic(a) => {
                let (r, q) = (ratio, 1.0 - ratio);
                vec![
                    ((a * (r + 1.0) - 5.0 * a) * (r + 1.0) + 8.0 * a) * (r + 1.0) - 4.0 * a,
                    ((a + 2.0) * r - (a + 3.0)) * r * r + 1.0,
                    ((a + 2.0) * q - (a + 3.0)) * q * q + 1.0,
                    ((a * (q + 1.0) - 5.0 * a) * (q + 1.0) + 8.0 * a) * (q + 1.0) - 4.0 * a,
                ]
            }
        }
    }

    /// The taps of an axis of length `input` resampled to `out` at `scale`.
    fn taps(&self, input: usize, out: usize, scale: f64, roi: (f64, f64)) -> Taps {
        let len = input as i64;
        let mut t = Taps {
            n: 0,
            idx: Vec::new(),
            w: Vec::new(),
            outside: Vec::new(),
        };
        for y in 0..out {
            let x = self.source(y as f64, scale, input, out, roi);
            t.outside
                .push(self.coord == Coord::TfCropAndResize && (x < 0.0 || x > (input - 1) as f64));
            // The tap left of x, strictly: an integer x is the right end of its window.
            let mut left = x.floor();
            if left == x {
                left -= 1.0;
            }
            let mut c = self.coeffs(x - left, scale);
            let n = c.len();
            t.n = n;
            let first = left as i64 + 1 - (n / 2) as i64;
            let idx: Vec<i64> = (0..n as i64).map(|k| first + k).collect();
            if self.exclude_outside {
                for (ck, &i) in c.iter_mut().zip(&idx) {
                    if i < 0 || i >= len {
                        *ck = 0.0;
                    }
                }
                c = normalized(c);
            }
            t.idx.extend(idx.iter().map(|&i| i.clamp(0, len - 1)));
            t.w.extend(c);
        }
        t
    }
}

/// `c` divided by its sum (unless that is 0).
fn normalized(c: Vec<f64>) -> Vec<f64> {
    let s: f64 = c.iter().sum();
    if s == 0.0 {
        c
    } else {
        c.into_iter().map(|v| v / s).collect()
    }
}

fn resize(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let rank = cx.ty(x).shape.rank();
    let string = |cx: &Ctx, name: &str, default: &str| -> R<String> {
        Ok(cx.attr_string(name)?.unwrap_or_else(|| default.to_string()))
    };
    if cx.opset < 11 {
        // Opset 10: `Upsample`'s semantics under a new name.
        let scales = cx
            .const_input(1)?
            .ok_or_else(|| cx.err("the scales input is missing"))?
            .to_f64_vec();
        let mode = string(cx, "mode", "nearest")?;
        return legacy_resample(cx, x, &mode, &scales);
    }
    let coord = match string(cx, "coordinate_transformation_mode", "half_pixel")?.as_str() {
        "half_pixel" => Coord::HalfPixel,
        "half_pixel_symmetric" => Coord::HalfPixelSymmetric,
        "pytorch_half_pixel" => Coord::PytorchHalfPixel,
        "align_corners" => Coord::AlignCorners,
        "asymmetric" => Coord::Asymmetric,
        "tf_half_pixel_for_nn" => Coord::TfHalfPixelForNn,
        "tf_crop_and_resize" => Coord::TfCropAndResize,
        other => {
            return Err(cx.err(format!("unknown coordinate_transformation_mode {other:?}")));
        }
    };
    let interp = match string(cx, "mode", "nearest")?.as_str() {
        "nearest" => Interp::Nearest(
            match string(cx, "nearest_mode", "round_prefer_floor")?.as_str() {
                "round_prefer_floor" => Nearest::RoundPreferFloor,
                "round_prefer_ceil" => Nearest::RoundPreferCeil,
                "floor" => Nearest::Floor,
                "ceil" => Nearest::Ceil,
                other => return Err(cx.err(format!("unknown nearest_mode {other:?}"))),
            },
        ),
        "linear" => Interp::Linear,
        "cubic" => Interp::Cubic(cx.attr_float("cubic_coeff_a")?.unwrap_or(-0.75).into()),
        other => return Err(cx.err(format!("unknown mode {other:?}"))),
    };
    let antialias = cx.attr_int("antialias")?.unwrap_or(0) != 0;
    if antialias && matches!(interp, Interp::Nearest(_)) {
        return Err(cx.err("antialias is defined for linear and cubic modes only"));
    }
    let r = Resample {
        interp,
        coord,
        antialias,
        exclude_outside: cx.attr_int("exclude_outside")?.unwrap_or(0) != 0,
        extrapolation: cx.attr_float("extrapolation_value")?.unwrap_or(0.0).into(),
    };
    let axes: Vec<usize> = match cx.attr_ints("axes")? {
        Some(a) => {
            let axes = a
                .iter()
                .map(|&a| axis(cx, a, rank))
                .collect::<R<Vec<_>>>()?;
            if (1..axes.len()).any(|i| axes[..i].contains(&axes[i])) {
                return Err(cx.err(format!("axes {axes:?} repeat an axis")));
            }
            axes
        }
        None => (0..rank).collect(),
    };
    let nonempty = |t: Option<Tensor>| t.filter(|t| t.numel() > 0);
    let scales = nonempty(cx.const_input(2)?).map(|t| t.to_f64_vec());
    let sizes = nonempty(cx.const_input(3)?).map(|t| t.to_i64_vec());
    let roi = if coord == Coord::TfCropAndResize {
        nonempty(cx.const_input(1)?).map(|t| t.to_f64_vec())
    } else {
        None
    };
    let d = dims_of(cx, x);
    let k = axes.len();
    let (scale, out) = match (scales, sizes) {
        (Some(s), None) => {
            if s.len() != k {
                return Err(cx.err(format!("{} scales for {k} axes", s.len())));
            }
            if let Some(bad) = s.iter().find(|&&v| !(v > 0.0 && v.is_finite())) {
                return Err(cx.err(format!("scale {bad} must be finite and positive")));
            }
            let mut scale = vec![1.0; rank];
            let mut out = d.clone();
            for (i, &a) in axes.iter().enumerate() {
                scale[a] = s[i];
                out[a] = (s[i] * d[a] as f64) as usize;
            }
            (scale, out)
        }
        (None, Some(z)) => {
            if z.len() != k {
                return Err(cx.err(format!("{} sizes for {k} axes", z.len())));
            }
            if let Some(bad) = z.iter().find(|&&v| v < 0) {
                return Err(cx.err(format!("size {bad} is negative")));
            }
            let mut scale = vec![1.0; rank];
            let mut out = d.clone();
            for (i, &a) in axes.iter().enumerate() {
                scale[a] = z[i] as f64 / d[a] as f64;
                out[a] = z[i] as usize;
            }
            let policy = string(cx, "keep_aspect_ratio_policy", "stretch")?;
            let common = match policy.as_str() {
                "stretch" => None,
                "not_larger" => axes.iter().map(|&a| scale[a]).reduce(f64::min),
                "not_smaller" => axes.iter().map(|&a| scale[a]).reduce(f64::max),
                other => {
                    return Err(cx.err(format!("unknown keep_aspect_ratio_policy {other:?}")));
                }
            };
            if let Some(c) = common {
                for &a in &axes {
                    scale[a] = c;
                    out[a] = (c * d[a] as f64 + 0.5) as usize;
                }
            }
            (scale, out)
        }
        (Some(_), Some(_)) => return Err(cx.err("both scales and sizes are given")),
        (None, None) => return Err(cx.err("neither scales nor sizes is given")),
    };
    let rois: Vec<(f64, f64)> = match &roi {
        Some(v) if v.len() == 2 * k => (0..k).map(|i| (v[i], v[k + i])).collect(),
        Some(v) => return Err(cx.err(format!("roi has {} values for {k} axes", v.len()))),
        None if coord == Coord::TfCropAndResize => {
            return Err(cx.err("tf_crop_and_resize needs the roi input"));
        }
        None => vec![(0.0, 1.0); k],
    };
    shape(cx, out.clone())?;
    let mut y = x;
    // Innermost axis first: its gathers are the scattered ones, done on the smaller
    // tensor when upsampling; the outer axes then gather whole contiguous rows.
    for (i, &a) in axes.iter().enumerate().rev() {
        let roi = rois[i];
        let identity = (scale[a] - 1.0).abs() <= 1e-9 * scale[a].abs().max(1.0)
            && out[a] == d[a]
            && (roi.0.abs() <= 1e-9 && (roi.1 - 1.0).abs() <= 1e-9);
        if !identity {
            y = resample_axis(cx, y, a, &r, (out[a], scale[a], roi))?;
        }
    }
    if y == x {
        y = cx.emit1(Op::Identity, &[x])?;
    }
    Ok(vec![y])
}

/// `Upsample` (opsets 7 to 9), and `Resize` at opset 10: scales only, asymmetric
/// coordinates, nearest rounds down.
fn upsample(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let scales = if cx.opset >= 9 {
        cx.const_input(1)?
            .ok_or_else(|| cx.err("the scales input is missing"))?
            .to_f64_vec()
    } else {
        cx.attr_floats("scales")?
            .ok_or_else(|| cx.err("attribute \"scales\" is missing"))?
            .into_iter()
            .map(f64::from)
            .collect()
    };
    let mode = cx
        .attr_string("mode")?
        .unwrap_or_else(|| "nearest".to_string());
    legacy_resample(cx, x, &mode, &scales)
}

fn legacy_resample(cx: &mut Ctx, x: ValueId, mode: &str, scales: &[f64]) -> R<Vec<ValueId>> {
    let d = dims_of(cx, x);
    if scales.len() != d.len() {
        return Err(cx.err(format!("{} scales for rank {}", scales.len(), d.len())));
    }
    if let Some(bad) = scales.iter().find(|&&v| !(v >= 1.0 && v.is_finite())) {
        return Err(cx.err(format!("scale {bad} must be finite and at least 1")));
    }
    let interp = match mode {
        "nearest" => Interp::Nearest(Nearest::Floor),
        "linear" | "bilinear" => Interp::Linear,
        other => return Err(cx.err(format!("unknown mode {other:?}"))),
    };
    let r = Resample {
        interp,
        coord: Coord::Asymmetric,
        antialias: false,
        exclude_outside: false,
        extrapolation: 0.0,
    };
    let out: Vec<usize> = d
        .iter()
        .zip(scales)
        .map(|(&n, &s)| (s * n as f64) as usize)
        .collect();
    shape(cx, out.clone())?;
    let mut y = x;
    // Innermost axis first, as in `resize`.
    for (a, &s) in scales.iter().enumerate().rev() {
        if s != 1.0 && d[a] > 0 {
            y = resample_axis(cx, y, a, &r, (out[a], s, (0.0, 1.0)))?;
        }
    }
    if y == x {
        y = cx.emit1(Op::Identity, &[x])?;
    }
    Ok(vec![y])
}

/// `x` resampled along `axis` to `out` positions: `Σₖ wₖ · gather(x, iₖ)`, or a plain
/// gather where every output position takes one input element whole.
fn resample_axis(
    cx: &mut Ctx,
    x: ValueId,
    axis: usize,
    r: &Resample,
    (out, scale, roi): (usize, f64, (f64, f64)),
) -> R<ValueId> {
    let input = dims_of(cx, x)[axis];
    if input == 0 {
        return Err(cx.err(format!("axis {axis} is empty and cannot be resized")));
    }
    let n = r.tap_count(scale);
    if n > MAX_TAPS {
        return Err(cx.err(format!(
            "resampling axis {axis} at scale {scale} reads {n} input elements per output; at most {MAX_TAPS} are supported"
        )));
    }
    cx.check_built("the resampling taps", out.saturating_mul(n.ceil() as usize))?;
    let taps = r.taps(input, out, scale, roi);
    let extrapolation = r.extrapolation;
    let dtype = cx.ty(x).dtype;
    let n = taps.n;
    let pick: Option<Vec<i64>> = (0..out)
        .map(|y| {
            let w = &taps.w[y * n..(y + 1) * n];
            let one = w.iter().position(|&v| v == 1.0)?;
            w.iter()
                .enumerate()
                .all(|(k, &v)| k == one || v == 0.0)
                .then(|| taps.idx[y * n + one])
        })
        .collect();
    let mut y = match pick {
        Some(idx) => gather_at(cx, x, axis, idx)?,
        None if !dtype.is_float() => {
            return Err(cx.err(format!(
                "interpolating {dtype} data is not supported (only nearest mode picks whole elements)"
            )));
        }
        None => {
            let rank = cx.ty(x).shape.rank();
            let mut bshape = vec![1; rank];
            bshape[axis] = out;
            let mut acc: Option<ValueId> = None;
            for k in 0..n {
                let idx = (0..out).map(|y| taps.idx[y * n + k]).collect();
                let g = gather_at(cx, x, axis, idx)?;
                let w: Vec<f64> = (0..out).map(|y| taps.w[y * n + k]).collect();
                let s = shape(cx, bshape.clone())?;
                let wt = Tensor::from_vec(s, w)
                    .map_err(|e| cx.err(e.to_string()))?
                    .cast(dtype);
                let wv = cx.constant(wt);
                let term = cx.emit1(Op::Binary(BinaryOp::Mul), &[g, wv])?;
                acc = Some(match acc {
                    None => term,
                    Some(a) => cx.emit1(Op::Binary(BinaryOp::Add), &[a, term])?,
                });
            }
            acc.ok_or_else(|| cx.err("resampling with no taps"))?
        }
    };
    if taps.outside.iter().any(|&o| o) {
        let rank = cx.ty(y).shape.rank();
        let mut mshape = vec![1; rank];
        mshape[axis] = out;
        let s = shape(cx, mshape)?;
        let mask = Tensor::from_vec(s, taps.outside.clone()).map_err(|e| cx.err(e.to_string()))?;
        let m = cx.constant(mask);
        let e = cx.constant(Tensor::full(dtype, Shape::scalar(), extrapolation));
        y = cx.emit1(Op::Where, &[m, e, y])?;
    }
    Ok(y)
}
