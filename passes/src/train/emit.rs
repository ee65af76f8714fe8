//! A small builder over [`Graph::add_node`] for the nodes gradient rules emit.
//!
//! Every node it adds gets the same name (the rule's label, e.g. `grad:fc1`), so the
//! backward nodes of one forward node are easy to find in a printed graph. Any rejection
//! by type inference (which would be a rule bug) becomes a [`PassError::Node`] naming the
//! forward node whose rule was being applied.

use tessera_ir::{
    BinaryOp, DType, Graph, NodeRef, Op, ReduceOp, Shape, Tensor, TensorType, UnaryOp, ValueId,
};

use crate::PassError;

/// Appends nodes to a graph on behalf of one forward node's rule.
pub struct Emitter<'g> {
    pub g: &'g mut Graph,
    /// Name given to every node added.
    pub label: String,
    /// The forward node the nodes are for (errors name it).
    pub origin: NodeRef,
    pub pass: &'static str,
}

impl<'g> Emitter<'g> {
    pub fn new(g: &'g mut Graph, label: String, origin: NodeRef, pass: &'static str) -> Self {
        Emitter {
            g,
            label,
            origin,
            pass,
        }
    }

    /// An error about the forward node this emitter works for.
    pub fn error(&self, message: impl Into<String>) -> PassError {
        PassError::Node {
            pass: self.pass,
            node: self.origin.clone(),
            message: message.into(),
        }
    }

    pub fn ty(&self, v: ValueId) -> &TensorType {
        self.g.ty(v)
    }

    pub fn dims(&self, v: ValueId) -> Vec<usize> {
        self.g.ty(v).shape.dims().to_vec()
    }

    pub fn dtype(&self, v: ValueId) -> DType {
        self.g.ty(v).dtype
    }

    pub fn rank(&self, v: ValueId) -> usize {
        self.g.ty(v).shape.rank()
    }

    /// Adds a node and returns all its outputs.
    pub fn node(&mut self, op: Op, inputs: &[ValueId]) -> Result<Vec<ValueId>, PassError> {
        let what = op.name();
        self.g
            .add_node(op, inputs, self.label.clone())
            .map_err(|e| PassError::Node {
                pass: self.pass,
                node: self.origin.clone(),
                message: format!("gradient rule emitted an ill-typed {what}: {e}"),
            })
    }

    /// Adds a single-output node.
    pub fn op(&mut self, op: Op, inputs: &[ValueId]) -> Result<ValueId, PassError> {
        Ok(self.node(op, inputs)?[0])
    }

    pub fn constant(&mut self, t: Tensor) -> ValueId {
        self.g.add_constant(t, self.label.clone())
    }

    /// A scalar constant of `dtype`.
    pub fn scalar(&mut self, dtype: DType, v: f64) -> ValueId {
        self.constant(Tensor::full(dtype, Shape::scalar(), v))
    }

    /// `value` broadcast to `dims` (a scalar constant expanded, so the graph stores one
    /// element however large the tensor).
    pub fn full(&mut self, dtype: DType, dims: &[usize], value: f64) -> Result<ValueId, PassError> {
        let s = self.scalar(dtype, value);
        self.expand(s, dims)
    }

    pub fn unary(&mut self, u: UnaryOp, x: ValueId) -> Result<ValueId, PassError> {
        self.op(Op::Unary(u), &[x])
    }

    pub fn binary(&mut self, b: BinaryOp, x: ValueId, y: ValueId) -> Result<ValueId, PassError> {
        self.op(Op::Binary(b), &[x, y])
    }

    pub fn add(&mut self, x: ValueId, y: ValueId) -> Result<ValueId, PassError> {
        self.binary(BinaryOp::Add, x, y)
    }

    pub fn sub(&mut self, x: ValueId, y: ValueId) -> Result<ValueId, PassError> {
        self.binary(BinaryOp::Sub, x, y)
    }

    pub fn mul(&mut self, x: ValueId, y: ValueId) -> Result<ValueId, PassError> {
        self.binary(BinaryOp::Mul, x, y)
    }

    pub fn div(&mut self, x: ValueId, y: ValueId) -> Result<ValueId, PassError> {
        self.binary(BinaryOp::Div, x, y)
    }

    pub fn neg(&mut self, x: ValueId) -> Result<ValueId, PassError> {
        self.unary(UnaryOp::Neg, x)
    }

    /// `x · c` for a scalar `c` (no node when `c == 1`).
    pub fn scale(&mut self, x: ValueId, c: f64) -> Result<ValueId, PassError> {
        if c == 1.0 {
            return Ok(x);
        }
        let s = self.scalar(self.dtype(x), c);
        self.mul(x, s)
    }

    /// `c - x` for a scalar `c`.
    pub fn rsub(&mut self, c: f64, x: ValueId) -> Result<ValueId, PassError> {
        let s = self.scalar(self.dtype(x), c);
        self.sub(s, x)
    }

    /// `x + c` for a scalar `c`.
    pub fn add_scalar(&mut self, x: ValueId, c: f64) -> Result<ValueId, PassError> {
        let s = self.scalar(self.dtype(x), c);
        self.add(x, s)
    }

    pub fn cast(&mut self, x: ValueId, to: DType) -> Result<ValueId, PassError> {
        if self.dtype(x) == to {
            return Ok(x);
        }
        self.op(Op::Cast { to }, &[x])
    }

    /// `cond ? x : 0`.
    pub fn mask(&mut self, cond: ValueId, x: ValueId) -> Result<ValueId, PassError> {
        let zero = self.scalar(self.dtype(x), 0.0);
        self.op(Op::Where, &[cond, x, zero])
    }

    pub fn reshape(&mut self, x: ValueId, dims: &[usize]) -> Result<ValueId, PassError> {
        if self.dims(x) == dims {
            return Ok(x);
        }
        let shape = Shape::new(dims.to_vec()).map_err(|e| self.error(e.to_string()))?;
        self.op(Op::Reshape { shape }, &[x])
    }

    pub fn transpose(&mut self, x: ValueId, perm: &[usize]) -> Result<ValueId, PassError> {
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return Ok(x);
        }
        self.op(
            Op::Transpose {
                perm: perm.to_vec(),
            },
            &[x],
        )
    }

    /// Swaps the last two axes.
    pub fn transpose_last2(&mut self, x: ValueId) -> Result<ValueId, PassError> {
        let r = self.rank(x);
        let mut perm: Vec<usize> = (0..r).collect();
        perm.swap(r - 2, r - 1);
        self.transpose(x, &perm)
    }

    pub fn expand(&mut self, x: ValueId, dims: &[usize]) -> Result<ValueId, PassError> {
        if self.dims(x) == dims {
            return Ok(x);
        }
        let shape = Shape::new(dims.to_vec()).map_err(|e| self.error(e.to_string()))?;
        self.op(Op::Expand { shape }, &[x])
    }

    pub fn reduce(
        &mut self,
        op: ReduceOp,
        x: ValueId,
        axes: &[usize],
        keep_dims: bool,
    ) -> Result<ValueId, PassError> {
        if axes.is_empty() {
            return Ok(x);
        }
        self.op(
            Op::Reduce {
                op,
                axes: axes.to_vec(),
                keep_dims,
            },
            &[x],
        )
    }

    pub fn sum(&mut self, x: ValueId, axes: &[usize], keep: bool) -> Result<ValueId, PassError> {
        self.reduce(ReduceOp::Sum, x, axes, keep)
    }

    pub fn mean(&mut self, x: ValueId, axes: &[usize], keep: bool) -> Result<ValueId, PassError> {
        self.reduce(ReduceOp::Mean, x, axes, keep)
    }

    /// The gradient of a broadcast: sums `g` over the axes along which a value of shape
    /// `dims` was broadcast to `g`'s shape, then reshapes to `dims`.
    pub fn reduce_to(&mut self, g: ValueId, dims: &[usize]) -> Result<ValueId, PassError> {
        let gd = self.dims(g);
        if gd == dims {
            return Ok(g);
        }
        let lead = gd.len().saturating_sub(dims.len());
        let axes: Vec<usize> = (0..gd.len())
            .filter(|&i| i < lead || (dims[i - lead] == 1 && gd[i] != 1))
            .collect();
        let s = self.sum(g, &axes, true)?;
        self.reshape(s, dims)
    }

    /// A strided slice of one axis (`step` may be negative; bounds already normalized).
    pub fn slice(
        &mut self,
        x: ValueId,
        axis: usize,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<ValueId, PassError> {
        let dim = self.dims(x)[axis] as i64;
        if step == 1 && start == 0 && end == dim {
            return Ok(x);
        }
        self.op(
            Op::Slice {
                axes: vec![axis],
                starts: vec![start],
                ends: vec![end],
                steps: vec![step],
            },
            &[x],
        )
    }

    /// Reverses one axis.
    pub fn flip(&mut self, x: ValueId, axis: usize) -> Result<ValueId, PassError> {
        let dim = self.dims(x)[axis] as i64;
        if dim <= 1 {
            return Ok(x);
        }
        self.slice(x, axis, dim - 1, -1, -1)
    }

    pub fn concat(&mut self, xs: &[ValueId], axis: usize) -> Result<ValueId, PassError> {
        if xs.len() == 1 {
            return Ok(xs[0]);
        }
        self.op(Op::Concat { axis }, xs)
    }

    /// Pads one axis: `interior` copies of `value` between consecutive elements, then
    /// `before`/`after` at the ends. Negative `before`/`after` crop instead.
    pub fn pad(
        &mut self,
        x: ValueId,
        axis: usize,
        before: i64,
        after: i64,
        interior: usize,
        value: f64,
    ) -> Result<ValueId, PassError> {
        let dtype = self.dtype(x);
        let mut v = x;
        let d = self.dims(v);
        if interior > 0 && d[axis] > 1 {
            // [.., n, ..] -> [.., n, 1, ..] ++ fill [.., n, interior, ..] -> [.., n·(1+interior), ..]
            let mut un = d.clone();
            un.insert(axis + 1, 1);
            let u = self.reshape(v, &un)?;
            let mut fd = un.clone();
            fd[axis + 1] = interior;
            let fill = self.full(dtype, &fd, value)?;
            let c = self.concat(&[u, fill], axis + 1)?;
            let mut flat = d.clone();
            flat[axis] = d[axis] * (1 + interior);
            let r = self.reshape(c, &flat)?;
            let keep = ((d[axis] - 1) * (1 + interior) + 1) as i64;
            v = self.slice(r, axis, 0, keep, 1)?;
        }
        let len = self.dims(v)[axis] as i64;
        let start = (-before).max(0);
        let end = len - (-after).max(0);
        if start > 0 || end < len {
            v = self.slice(v, axis, start, end.max(start), 1)?;
        }
        let mut parts = Vec::new();
        let mut d = self.dims(v);
        if before > 0 {
            d[axis] = before as usize;
            parts.push(self.full(dtype, &d, value)?);
        }
        parts.push(v);
        if after > 0 {
            d[axis] = after as usize;
            parts.push(self.full(dtype, &d, value)?);
        }
        self.concat(&parts, axis)
    }

    /// `a @ b` with numpy matmul semantics.
    pub fn matmul(&mut self, a: ValueId, b: ValueId) -> Result<ValueId, PassError> {
        self.op(Op::MatMul, &[a, b])
    }

    /// `0, 1, …, n-1` as a constant of `dtype` reshaped to `dims` (which hold `n`
    /// elements).
    pub fn iota(&mut self, dtype: DType, n: usize, dims: &[usize]) -> Result<ValueId, PassError> {
        let shape = Shape::new(dims.to_vec()).map_err(|e| self.error(e.to_string()))?;
        let t = Tensor::from_vec(shape, (0..n as i64).collect::<Vec<i64>>())
            .map_err(|e| self.error(e.to_string()))?
            .cast(dtype);
        Ok(self.constant(t))
    }
}
