//! Shapes and tensor types.

use std::fmt;

use crate::{DType, IrError};

/// The most elements one tensor may hold (2^34 ≈ 17 G elements, 64 GiB of f32).
///
/// Shapes above it are rejected when a type is built, so an absurd or hostile model fails
/// with an error instead of an attempt to allocate terabytes.
pub const MAX_ELEMENTS: u64 = 1 << 34;

/// The most dimensions one tensor may have.
pub const MAX_RANK: usize = 16;

/// A static tensor shape.
///
/// Dimensions are read through [`Shape::dims`]; the representation is private so that
/// symbolic dimensions can be added later without touching every user.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape {
    dims: Vec<usize>,
}

impl Shape {
    /// A shape from its dimensions, checking rank and element count limits. The product
    /// of the nonzero dimensions is bounded, not just the element count, so that no
    /// product of some of the dimensions (a flattened prefix, a stride) can overflow,
    /// even in an empty shape such as `[2^40, 2^40, 0]`.
    pub fn new(dims: Vec<usize>) -> Result<Shape, IrError> {
        if dims.len() > MAX_RANK {
            return Err(IrError::ShapeTooLarge {
                dims: dims.iter().map(|&d| d as u64).collect(),
                why: format!("rank {} exceeds the limit of {MAX_RANK}", dims.len()),
            });
        }
        let mut n: u64 = 1;
        for &d in dims.iter().filter(|&&d| d != 0) {
            n = n.saturating_mul(d as u64);
        }
        if n > MAX_ELEMENTS {
            let why = if dims.contains(&0) {
                format!("its nonzero dimensions multiply to {n}, beyond the limit of 2^34")
            } else {
                format!("{n} elements exceed the limit of 2^34")
            };
            return Err(IrError::ShapeTooLarge {
                dims: dims.iter().map(|&d| d as u64).collect(),
                why,
            });
        }
        Ok(Shape { dims })
    }

    /// A shape from dimensions the caller knows to be within limits (tests, constants).
    ///
    /// # Panics
    /// If the limits of [`Shape::new`] are exceeded.
    pub fn from_dims(dims: &[usize]) -> Shape {
        Shape::new(dims.to_vec()).expect("invariant: caller passes a small shape")
    }

    /// The scalar shape `[]`.
    pub fn scalar() -> Shape {
        Shape { dims: Vec::new() }
    }

    /// The dimensions, outermost first.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.dims.len()
    }

    /// Number of elements (1 for a scalar). Never overflows: construction bounds it.
    pub fn numel(&self) -> usize {
        self.dims.iter().product()
    }

    /// Row-major strides in elements.
    pub fn strides(&self) -> Vec<usize> {
        let mut s = vec![1; self.dims.len()];
        for i in (0..self.dims.len().saturating_sub(1)).rev() {
            s[i] = s[i + 1] * self.dims[i + 1];
        }
        s
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.dims.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

/// The type of a value: element type and shape.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TensorType {
    pub dtype: DType,
    pub shape: Shape,
}

impl TensorType {
    pub fn new(dtype: DType, shape: Shape) -> TensorType {
        TensorType { dtype, shape }
    }

    /// Size of a tensor of this type in bytes.
    pub fn size_bytes(&self) -> usize {
        self.shape.numel() * self.dtype.size_bytes()
    }
}

impl fmt::Debug for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.dtype, self.shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strides_and_numel() {
        let s = Shape::from_dims(&[2, 3, 4]);
        assert_eq!(s.strides(), vec![12, 4, 1]);
        assert_eq!(s.numel(), 24);
        assert_eq!(Shape::scalar().numel(), 1);
        assert_eq!(Shape::from_dims(&[3, 0]).numel(), 0);
    }

    #[test]
    fn absurd_shapes_are_rejected() {
        let err = Shape::new(vec![1 << 20, 1 << 20]).unwrap_err();
        assert!(err.to_string().contains("exceed the limit"), "{err}");
        // Overflowing products saturate instead of wrapping to something small.
        assert!(Shape::new(vec![usize::MAX, usize::MAX, 2]).is_err());
        assert!(Shape::new(vec![1; 17]).is_err());
    }
}
