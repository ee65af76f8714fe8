//! Functions JIT code calls for what is not worth inlining: f16 conversions, f64 and rare
//! f32 transcendental functions, integer powers. f32 versions of rare functions compute in
//! f64 and round once, like the reference interpreter.

use cranelift_codegen::ir::Type;
use cranelift_codegen::ir::types::{F32, F64, I32, I64};
use half::{bf16, f16};

extern "C" fn f16_to_f32(bits: u32) -> f32 {
    f16::from_bits(bits as u16).to_f32()
}

extern "C" fn f32_to_f16(x: f32) -> u32 {
    f16::from_f32(x).to_bits() as u32
}

extern "C" fn f32_to_bf16(x: f32) -> u32 {
    bf16::from_f32(x).to_bits() as u32
}

extern "C" fn round_f16(x: f32) -> f32 {
    f16::from_f32(x).to_f32()
}

extern "C" fn round_bf16(x: f32) -> f32 {
    bf16::from_f32(x).to_f32()
}

fn softplus(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

extern "C" fn exp_f64(x: f64) -> f64 {
    x.exp()
}
extern "C" fn log_f64(x: f64) -> f64 {
    x.ln()
}
extern "C" fn tanh_f64(x: f64) -> f64 {
    x.tanh()
}
extern "C" fn erf_f64(x: f64) -> f64 {
    libm::erf(x)
}
extern "C" fn sigmoid_f64(x: f64) -> f64 {
    sigmoid(x)
}
extern "C" fn softplus_f64(x: f64) -> f64 {
    softplus(x)
}
extern "C" fn sin_f64(x: f64) -> f64 {
    x.sin()
}
extern "C" fn cos_f64(x: f64) -> f64 {
    x.cos()
}
extern "C" fn pow_f64(x: f64, y: f64) -> f64 {
    x.powf(y)
}
extern "C" fn softplus_f32(x: f32) -> f32 {
    softplus(x as f64) as f32
}
extern "C" fn sin_f32(x: f32) -> f32 {
    (x as f64).sin() as f32
}
extern "C" fn cos_f32(x: f32) -> f32 {
    (x as f64).cos() as f32
}
extern "C" fn pow_f32(x: f32, y: f32) -> f32 {
    (x as f64).powf(y as f64) as f32
}
extern "C" fn pow_i64(x: i64, y: i64) -> i64 {
    (x as f64).powf(y as f64) as i64
}

/// A helper: symbol name, address, parameter and return types.
pub(crate) struct Helper {
    pub name: &'static str,
    pub ptr: *const u8,
    pub params: &'static [Type],
    pub ret: Type,
}

/// Every helper, by name.
pub(crate) fn all() -> Vec<Helper> {
    macro_rules! h {
        ($name:literal, $f:expr, [$($p:expr),*], $r:expr) => {
            Helper { name: $name, ptr: $f as *const u8, params: &[$($p),*], ret: $r }
        };
    }
    vec![
        h!(
            "tessera_f16_to_f32",
            f16_to_f32 as extern "C" fn(u32) -> f32,
            [I32],
            F32
        ),
        h!(
            "tessera_f32_to_f16",
            f32_to_f16 as extern "C" fn(f32) -> u32,
            [F32],
            I32
        ),
        h!(
            "tessera_f32_to_bf16",
            f32_to_bf16 as extern "C" fn(f32) -> u32,
            [F32],
            I32
        ),
        h!(
            "tessera_round_f16",
            round_f16 as extern "C" fn(f32) -> f32,
            [F32],
            F32
        ),
        h!(
            "tessera_round_bf16",
            round_bf16 as extern "C" fn(f32) -> f32,
            [F32],
            F32
        ),
        h!(
            "tessera_exp_f64",
            exp_f64 as extern "C" fn(f64) -> f64,
            [F64],
            F64
        ),
        h!(
            "tessera_log_f64",
            log_f64 as extern "C" fn(f64) -> f64,
            [F64],
            F64
        ),
        h!(
            "tessera_tanh_f64",
            tanh_f64 as extern "C" fn(f64) -> f64,
            [F64],
            F64
        ),
        h!(
            "tessera_erf_f64",
            erf_f64 as extern "C" fn(f64) -> f64,
            [F64],
            F64
        ),
        h!(
            "tessera_sigmoid_f64",
            sigmoid_f64 as extern "C" fn(f64) -> f64,
            [F64],
            F64
        ),
        h!(
            "tessera_softplus_f64",
            softplus_f64 as extern "C" fn(f64) -> f64,
            [F64],
            F64
        ),
        h!(
            "tessera_sin_f64",
            sin_f64 as extern "C" fn(f64) -> f64,
            [F64],
            F64
        ),
        h!(
            "tessera_cos_f64",
            cos_f64 as extern "C" fn(f64) -> f64,
            [F64],
            F64
        ),
        h!(
            "tessera_pow_f64",
            pow_f64 as extern "C" fn(f64, f64) -> f64,
            [F64, F64],
            F64
        ),
        h!(
            "tessera_softplus_f32",
            softplus_f32 as extern "C" fn(f32) -> f32,
            [F32],
            F32
        ),
        h!(
            "tessera_sin_f32",
            sin_f32 as extern "C" fn(f32) -> f32,
            [F32],
            F32
        ),
        h!(
            "tessera_cos_f32",
            cos_f32 as extern "C" fn(f32) -> f32,
            [F32],
            F32
        ),
        h!(
            "tessera_pow_f32",
            pow_f32 as extern "C" fn(f32, f32) -> f32,
            [F32, F32],
            F32
        ),
        h!(
            "tessera_pow_i64",
            pow_i64 as extern "C" fn(i64, i64) -> i64,
            [I64, I64],
            I64
        ),
    ]
}
