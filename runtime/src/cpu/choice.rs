//! The ways a kernel can run on the CPU where there is more than one, and the built-in
//! heuristic that picks among them.
//!
//! Today the choice is a convolution's algorithm ([`ConvAlgo`]): im2col + GEMM, the
//! transposed product for few output positions, or the native direct kernel in one of its
//! forms. [`default_algo`] is the heuristic every compile uses (measured once by hand with
//! the kernels bench); [`candidates`] lists every algorithm that runs the kernel exactly
//! (each computes the same sums, in its own order), which the latency search
//! (`super::search`) times.
//!
//! Invariant: [`default_algo`] is always one of [`candidates`], and every candidate of a
//! kernel computes its output (to rounding) whatever the geometry; the choice depends on
//! the kernel alone, never on the thread count, unless a measured search chose it.

use tessera_ir::DType;
use tessera_kernels::Isa;
use tessera_kernels::direct::{self, Form, Geometry};
use tessera_lower::kir::Conv;

/// How a convolution kernel runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConvAlgo {
    /// Columns (im2col, natively or by the kernel's nest) times the weights, in tiles of
    /// output rows: any convolution.
    Im2colGemm,
    /// `colᵀ · Wᵀ`, output positions as GEMM rows and channels as panel columns: an
    /// ungrouped f32 convolution with constant weights whose columns are the input (1×1)
    /// or filled natively.
    Transposed,
    /// The native direct kernel in one of its forms: a 2-D f32 convolution with at most
    /// 16 input channels per group.
    Direct(Form),
}

impl ConvAlgo {
    /// The name in reports and in the measurement cache.
    pub fn name(self) -> &'static str {
        match self {
            ConvAlgo::Im2colGemm => "im2col-gemm",
            ConvAlgo::Transposed => "transposed",
            ConvAlgo::Direct(Form::Planes) => "direct-planes",
            ConvAlgo::Direct(Form::Blocked) => "direct-blocked",
            ConvAlgo::Direct(Form::Rows) => "direct-rows",
        }
    }
}

/// Output positions up to which the heuristic runs a convolution transposed: 16-column
/// panels over the positions (49 of a 7×7 plane fill 4 panels to 77%) would waste a
/// quarter of the multiply-adds, while over the channels they are nearly full.
pub(super) const TRANSPOSED_MAX_POSITIONS: usize = 64;

/// Input channels per group up to which a 2-D f32 convolution can run the native direct
/// kernel (its per-channel taps are one pass over the plane each), and up to which the
/// heuristic runs grouped ones there rather than one small im2col + GEMM per group.
pub(super) const DIRECT_MAX_GROUP_CHANNELS: usize = 16;

/// Input channels up to which the heuristic runs an ungrouped 2-D f32 convolution (an
/// RGB stem) on the native direct kernel: with so few channels im2col's K is a handful
/// of taps, and the copy it makes (taps × output pixels) costs more than the products (the
/// kernels bench: 3 → 16 channels at 224×224, stride 2, direct 48 GFLOP/s against ~28
/// through im2col).
const DIRECT_MAX_STEM_CHANNELS: usize = 4;

/// The direct kernel's geometry of `c` when it can run there: 2-D, f32, positive
/// strides, at most [`DIRECT_MAX_GROUP_CHANNELS`] input channels per group.
pub(super) fn direct_geometry(c: &Conv) -> Option<Geometry> {
    let two_d = c.in_spatial.len() == 2
        && c.strides.len() == 2
        && c.pads_begin.len() == 2
        && c.dilations.len() == 2
        && c.kernel.len() == 2
        && c.out_spatial.len() == 2;
    if c.dtype != DType::F32 || !two_d || c.group == 0 {
        return None;
    }
    let cg = c.channels / c.group;
    if cg == 0 || cg > DIRECT_MAX_GROUP_CHANNELS {
        return None;
    }
    let geom = Geometry {
        h: c.in_spatial[0],
        w: c.in_spatial[1],
        kh: c.kernel[0],
        kw: c.kernel[1],
        oh: c.out_spatial[0],
        ow: c.out_spatial[1],
        stride: (c.strides[0], c.strides[1]),
        dilation: (c.dilations[0], c.dilations[1]),
        pad: (c.pads_begin[0], c.pads_begin[1]),
        group_channels: cg,
        multiplier: c.out_channels / c.group,
    };
    (geom.stride.0 > 0 && geom.stride.1 > 0).then_some(geom)
}

/// Whether `c` can run [`ConvAlgo::Transposed`] given whether its weights are a constant
/// (they are packed once, at compile time).
fn transposable(c: &Conv, constant_weights: bool) -> bool {
    let columns = if c.col.is_none() {
        c.kernel.iter().all(|&k| k == 1)
    } else {
        super::Im2col::new(c).is_some()
    };
    c.dtype == DType::F32 && c.group == 1 && columns && constant_weights && c.out_channels > 0
}

/// The heuristic's algorithm for `c`: transposed on at most
/// [`TRANSPOSED_MAX_POSITIONS`] output positions and 16 output channels or more; the
/// direct kernel for grouped convolutions of few channels per group and for stems of at
/// most [`DIRECT_MAX_STEM_CHANNELS`] channels, in the form [`direct::form`] picks; im2col +
/// GEMM otherwise.
pub fn default_algo(isa: Isa, c: &Conv, constant_weights: bool) -> ConvAlgo {
    let p: usize = c.out_spatial.iter().product();
    if transposable(c, constant_weights) && p <= TRANSPOSED_MAX_POSITIONS && c.out_channels >= 16 {
        return ConvAlgo::Transposed;
    }
    let stem = c.group == 1 && c.channels <= DIRECT_MAX_STEM_CHANNELS;
    match direct_geometry(c) {
        Some(g) if c.group >= 2 || stem => ConvAlgo::Direct(direct::form(isa, &g)),
        _ => ConvAlgo::Im2colGemm,
    }
}

/// Every algorithm that runs `c` as itself, the default first.
pub fn candidates(isa: Isa, c: &Conv, constant_weights: bool) -> Vec<ConvAlgo> {
    let mut out = vec![default_algo(isa, c, constant_weights)];
    let mut push = |a: ConvAlgo| {
        if !out.contains(&a) {
            out.push(a);
        }
    };
    push(ConvAlgo::Im2colGemm);
    if transposable(c, constant_weights) {
        push(ConvAlgo::Transposed);
    }
    if let Some(g) = direct_geometry(c) {
        for f in direct::forms(isa, &g) {
            push(ConvAlgo::Direct(f));
        }
    }
    out
}
