//! Tensors: a shape plus shared, typed element storage.
//!
//! Storage is reference counted, so cloning a tensor (and so cloning a graph that holds
//! constants) never copies its elements: an initializer is stored once however many nodes
//! or graphs use it.

use std::sync::Arc;

use half::{bf16, f16};

use crate::{DType, IrError, Shape, TensorType};

/// Typed element storage, one variant per [`DType`].
#[derive(Clone, Debug)]
pub enum TensorData {
    F32(Arc<Vec<f32>>),
    F64(Arc<Vec<f64>>),
    F16(Arc<Vec<f16>>),
    BF16(Arc<Vec<bf16>>),
    I8(Arc<Vec<i8>>),
    I16(Arc<Vec<i16>>),
    I32(Arc<Vec<i32>>),
    I64(Arc<Vec<i64>>),
    U8(Arc<Vec<u8>>),
    U16(Arc<Vec<u16>>),
    U32(Arc<Vec<u32>>),
    U64(Arc<Vec<u64>>),
    Bool(Arc<Vec<bool>>),
}

/// Calls `$body` with `$v` bound to the typed slice of any [`TensorData`].
#[macro_export]
macro_rules! with_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            $crate::TensorData::F32($v) => $body,
            $crate::TensorData::F64($v) => $body,
            $crate::TensorData::F16($v) => $body,
            $crate::TensorData::BF16($v) => $body,
            $crate::TensorData::I8($v) => $body,
            $crate::TensorData::I16($v) => $body,
            $crate::TensorData::I32($v) => $body,
            $crate::TensorData::I64($v) => $body,
            $crate::TensorData::U8($v) => $body,
            $crate::TensorData::U16($v) => $body,
            $crate::TensorData::U32($v) => $body,
            $crate::TensorData::U64($v) => $body,
            $crate::TensorData::Bool($v) => $body,
        }
    };
}

/// A Rust type that stores the elements of one [`DType`].
pub trait Element: Copy + Send + Sync + PartialEq + std::fmt::Debug + 'static {
    const DTYPE: DType;
    fn wrap(v: Vec<Self>) -> TensorData;
    fn slice(d: &TensorData) -> Option<&[Self]>;
    /// Exact for every value except `i64`/`u64` beyond 2^53.
    fn to_f64(self) -> f64;
    /// Rounds floats to nearest, truncates toward zero and saturates for integers
    /// (NaN becomes 0), nonzero is `true` for bool.
    fn from_f64(v: f64) -> Self;
    fn to_i64(self) -> i64;
    fn from_i64(v: i64) -> Self;
    fn write_le(self, out: &mut Vec<u8>);
    fn read_le(b: &[u8]) -> Self;
}

macro_rules! int_element {
    ($t:ty, $variant:ident) => {
        impl Element for $t {
            const DTYPE: DType = DType::$variant;
            fn wrap(v: Vec<Self>) -> TensorData {
                TensorData::$variant(Arc::new(v))
            }
            fn slice(d: &TensorData) -> Option<&[Self]> {
                match d {
                    TensorData::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn to_i64(self) -> i64 {
                self as i64
            }
            fn from_i64(v: i64) -> Self {
                v as $t
            }
            fn write_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn read_le(b: &[u8]) -> Self {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(b);
                <$t>::from_le_bytes(a)
            }
        }
    };
}

int_element!(i8, I8);
int_element!(i16, I16);
int_element!(i32, I32);
int_element!(i64, I64);
int_element!(u8, U8);
int_element!(u16, U16);
int_element!(u32, U32);
int_element!(u64, U64);

macro_rules! float_element {
    ($t:ty, $variant:ident, $to:expr, $from:expr) => {
        impl Element for $t {
            const DTYPE: DType = DType::$variant;
            fn wrap(v: Vec<Self>) -> TensorData {
                TensorData::$variant(Arc::new(v))
            }
            fn slice(d: &TensorData) -> Option<&[Self]> {
                match d {
                    TensorData::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn to_f64(self) -> f64 {
                #[allow(clippy::redundant_closure_call)]
                ($to)(self)
            }
            fn from_f64(v: f64) -> Self {
                #[allow(clippy::redundant_closure_call)]
                ($from)(v)
            }
            fn to_i64(self) -> i64 {
                self.to_f64() as i64
            }
            fn from_i64(v: i64) -> Self {
                Self::from_f64(v as f64)
            }
            fn write_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn read_le(b: &[u8]) -> Self {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(b);
                <$t>::from_le_bytes(a)
            }
        }
    };
}

float_element!(f32, F32, |x: f32| x as f64, |v: f64| v as f32);
float_element!(f64, F64, |x: f64| x, |v: f64| v);
float_element!(f16, F16, |x: f16| x.to_f64(), f16::from_f64);
float_element!(bf16, BF16, |x: bf16| x.to_f64(), bf16::from_f64);

impl Element for bool {
    const DTYPE: DType = DType::Bool;
    fn wrap(v: Vec<Self>) -> TensorData {
        TensorData::Bool(Arc::new(v))
    }
    fn slice(d: &TensorData) -> Option<&[Self]> {
        match d {
            TensorData::Bool(v) => Some(v),
            _ => None,
        }
    }
    fn to_f64(self) -> f64 {
        if self { 1.0 } else { 0.0 }
    }
    fn from_f64(v: f64) -> Self {
        v != 0.0
    }
    fn to_i64(self) -> i64 {
        self as i64
    }
    fn from_i64(v: i64) -> Self {
        v != 0
    }
    fn write_le(self, out: &mut Vec<u8>) {
        out.push(self as u8);
    }
    fn read_le(b: &[u8]) -> Self {
        b[0] != 0
    }
}

/// Builds a [`TensorData`] of `dtype` by calling `$f::<T>()` for the element type `T`.
#[macro_export]
macro_rules! dispatch_dtype {
    ($dtype:expr, $f:ident ( $($arg:expr),* )) => {
        match $dtype {
            $crate::DType::F32 => $f::<f32>($($arg),*),
            $crate::DType::F64 => $f::<f64>($($arg),*),
            $crate::DType::F16 => $f::<$crate::half::f16>($($arg),*),
            $crate::DType::BF16 => $f::<$crate::half::bf16>($($arg),*),
            $crate::DType::I8 => $f::<i8>($($arg),*),
            $crate::DType::I16 => $f::<i16>($($arg),*),
            $crate::DType::I32 => $f::<i32>($($arg),*),
            $crate::DType::I64 => $f::<i64>($($arg),*),
            $crate::DType::U8 => $f::<u8>($($arg),*),
            $crate::DType::U16 => $f::<u16>($($arg),*),
            $crate::DType::U32 => $f::<u32>($($arg),*),
            $crate::DType::U64 => $f::<u64>($($arg),*),
            $crate::DType::Bool => $f::<bool>($($arg),*),
        }
    };
}

impl TensorData {
    pub fn dtype(&self) -> DType {
        match self {
            TensorData::F32(_) => DType::F32,
            TensorData::F64(_) => DType::F64,
            TensorData::F16(_) => DType::F16,
            TensorData::BF16(_) => DType::BF16,
            TensorData::I8(_) => DType::I8,
            TensorData::I16(_) => DType::I16,
            TensorData::I32(_) => DType::I32,
            TensorData::I64(_) => DType::I64,
            TensorData::U8(_) => DType::U8,
            TensorData::U16(_) => DType::U16,
            TensorData::U32(_) => DType::U32,
            TensorData::U64(_) => DType::U64,
            TensorData::Bool(_) => DType::Bool,
        }
    }

    pub fn len(&self) -> usize {
        with_data!(self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A tensor value: shape plus typed elements in row-major order.
#[derive(Clone, Debug)]
pub struct Tensor {
    shape: Shape,
    data: TensorData,
}

impl Tensor {
    /// A tensor from storage, checking that the element count matches the shape.
    pub fn new(shape: Shape, data: TensorData) -> Result<Tensor, IrError> {
        if data.len() != shape.numel() {
            return Err(IrError::DataLength {
                shape: shape.clone(),
                expected: shape.numel(),
                actual: data.len(),
            });
        }
        Ok(Tensor { shape, data })
    }

    /// A tensor from a vector of elements.
    pub fn from_vec<T: Element>(shape: Shape, v: Vec<T>) -> Result<Tensor, IrError> {
        Tensor::new(shape, T::wrap(v))
    }

    /// A rank-0 tensor.
    pub fn scalar<T: Element>(v: T) -> Tensor {
        Tensor {
            shape: Shape::scalar(),
            data: T::wrap(vec![v]),
        }
    }

    /// A tensor of `dtype` filled with `value` (converted as by [`Element::from_f64`]).
    pub fn full(dtype: DType, shape: Shape, value: f64) -> Tensor {
        fn go<T: Element>(n: usize, value: f64) -> TensorData {
            T::wrap(vec![T::from_f64(value); n])
        }
        let data = dispatch_dtype!(dtype, go(shape.numel(), value));
        Tensor { shape, data }
    }

    /// Decodes little-endian packed elements (ONNX `raw_data`, our hex text form).
    pub fn from_le_bytes(dtype: DType, shape: Shape, bytes: &[u8]) -> Result<Tensor, IrError> {
        let size = dtype.size_bytes();
        if bytes.len() != shape.numel() * size {
            return Err(IrError::DataLength {
                expected: shape.numel(),
                actual: bytes.len() / size,
                shape,
            });
        }
        fn go<T: Element>(bytes: &[u8], size: usize) -> TensorData {
            T::wrap(bytes.chunks_exact(size).map(T::read_le).collect())
        }
        let data = dispatch_dtype!(dtype, go(bytes, size));
        Ok(Tensor { shape, data })
    }

    /// The elements as little-endian packed bytes.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.numel() * self.dtype().size_bytes());
        with_data!(&self.data, v => for &x in v.iter() { x.write_le(&mut out) });
        out
    }

    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    pub fn ty(&self) -> TensorType {
        TensorType::new(self.dtype(), self.shape.clone())
    }

    pub fn numel(&self) -> usize {
        self.shape.numel()
    }

    pub fn data(&self) -> &TensorData {
        &self.data
    }

    /// The elements, if they are of type `T`.
    pub fn as_slice<T: Element>(&self) -> Option<&[T]> {
        T::slice(&self.data)
    }

    /// The elements converted to f64 (see [`Element::to_f64`]).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        with_data!(&self.data, v => v.iter().map(|x| x.to_f64()).collect())
    }

    /// The elements converted to i64 (floats truncate toward zero).
    pub fn to_i64_vec(&self) -> Vec<i64> {
        with_data!(&self.data, v => v.iter().map(|x| x.to_i64()).collect())
    }

    /// The same elements under another shape with the same element count.
    pub fn reshape(&self, shape: Shape) -> Result<Tensor, IrError> {
        Tensor::new(shape, self.data.clone())
    }

    /// Converts every element to `to` with ONNX `Cast` semantics: float→int truncates
    /// toward zero (saturating; NaN → 0), anything→bool is `x != 0`, int→int wraps.
    pub fn cast(&self, to: DType) -> Tensor {
        if to == self.dtype() {
            return self.clone();
        }
        fn go<T: Element>(src: &Tensor) -> TensorData {
            let from_int = src.dtype().is_int() || src.dtype() == DType::Bool;
            if from_int && (T::DTYPE.is_int() || T::DTYPE == DType::Bool) {
                with_data!(&src.data, v => T::wrap(v.iter().map(|x| T::from_i64(x.to_i64())).collect()))
            } else {
                with_data!(&src.data, v => T::wrap(v.iter().map(|x| T::from_f64(x.to_f64())).collect()))
            }
        }
        let data = dispatch_dtype!(to, go(self));
        Tensor {
            shape: self.shape.clone(),
            data,
        }
    }

    /// FNV-1a 64-bit hash of dtype, shape and element bytes: a stable content fingerprint.
    pub fn fingerprint(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |b: u8| {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        };
        for b in self.dtype().name().bytes() {
            eat(b);
        }
        for &d in self.shape.dims() {
            for b in (d as u64).to_le_bytes() {
                eat(b);
            }
        }
        for b in self.to_le_bytes() {
            eat(b);
        }
        h
    }

    /// True if both share the same storage allocation (no copy was made).
    pub fn shares_storage_with(&self, other: &Tensor) -> bool {
        fn ptr<T>(v: &Arc<Vec<T>>) -> *const u8 {
            Arc::as_ptr(v) as *const u8
        }
        let a = with_data!(&self.data, v => ptr(v));
        let b = with_data!(&other.data, v => ptr(v));
        a == b
    }
}

/// Bitwise equality: same dtype, shape and element bits (so NaN equals the same NaN).
impl PartialEq for Tensor {
    fn eq(&self, other: &Tensor) -> bool {
        self.shape == other.shape
            && self.dtype() == other.dtype()
            && self.to_le_bytes() == other.to_le_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn le_bytes_round_trip_every_dtype() {
        for d in DType::ALL {
            let t = Tensor::full(d, Shape::from_dims(&[2, 3]), 1.0);
            let b = t.to_le_bytes();
            assert_eq!(b.len(), 6 * d.size_bytes());
            let u = Tensor::from_le_bytes(d, t.shape().clone(), &b).unwrap();
            assert_eq!(t, u);
        }
    }

    #[test]
    fn wrong_length_is_an_error() {
        let e = Tensor::from_vec(Shape::from_dims(&[2, 2]), vec![1.0f32; 3]).unwrap_err();
        assert!(e.to_string().contains("expects 4 elements"), "{e}");
        assert!(Tensor::from_le_bytes(DType::F32, Shape::from_dims(&[2]), &[0u8; 7]).is_err());
    }

    #[test]
    fn cast_semantics() {
        let t =
            Tensor::from_vec(Shape::from_dims(&[4]), vec![-1.7f32, 2.9, f32::NAN, 0.0]).unwrap();
        assert_eq!(t.cast(DType::I64).to_i64_vec(), vec![-1, 2, 0, 0]);
        assert_eq!(
            t.cast(DType::Bool).as_slice::<bool>().unwrap(),
            &[true, true, true, false]
        );
    }

    #[test]
    fn clones_share_storage() {
        let t = Tensor::full(DType::F32, Shape::from_dims(&[1000]), 0.5);
        let u = t.clone();
        assert!(t.shares_storage_with(&u));
        assert!(!t.shares_storage_with(&t.cast(DType::F64)));
    }
}
