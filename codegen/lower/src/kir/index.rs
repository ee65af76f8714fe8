//! Index expressions: affine sums over loop variables, with floor division and modulo by
//! constants (so reshapes and transposes become indexing) and data-dependent atoms (a
//! gathered index).
//!
//! An [`Index`] is kept in a canonical form — terms sorted by atom, equal atoms merged,
//! zero coefficients dropped — and simplified on construction using the value range of
//! every atom: `(c·q + r) / c = q` and `(c·q + r) mod c = r` when `0 ≤ r < c`, and
//! `a·c·(x / c) + a·(x mod c) = a·x`. Two indices that denote the same function of the loop
//! variables usually compare equal, which is how the kernel builder recognizes in-place
//! updates and contiguous accesses.
//!
//! Division and modulo are only built over non-negative operands (see [`Index::div`]), so
//! backends may lower them as unsigned operations.

use super::ExprId;
use std::fmt;

/// A loop variable of a nest: one of the outer (parallel) loops or the inner loops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Var {
    Outer(u8),
    Inner(u8),
}

impl fmt::Display for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Var::Outer(i) => write!(f, "o{i}"),
            Var::Inner(i) => write!(f, "i{i}"),
        }
    }
}

/// A non-affine part of an index.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Atom {
    /// A loop variable and its extent.
    Var(Var, i64),
    /// Floor division of a non-negative index by a positive constant.
    Div(Box<Index>, i64),
    /// Remainder of a non-negative index by a positive constant.
    Mod(Box<Index>, i64),
    /// An integer computed in the kernel (an expression id), known to lie in `[0, bound)`.
    Value(ExprId, i64),
}

impl Atom {
    /// Inclusive value range.
    fn range(&self) -> (i64, i64) {
        match self {
            Atom::Var(_, n) | Atom::Value(_, n) => (0, (*n - 1).max(0)),
            Atom::Div(e, d) => {
                let (lo, hi) = e.range();
                (lo.div_euclid(*d), hi.div_euclid(*d))
            }
            Atom::Mod(e, d) => {
                let (lo, hi) = e.range();
                if lo >= 0 && hi < *d {
                    (lo, hi)
                } else {
                    (0, d - 1)
                }
            }
        }
    }

    fn mentions(&self, v: Var) -> bool {
        match self {
            Atom::Var(w, _) => *w == v,
            Atom::Div(e, _) | Atom::Mod(e, _) => e.mentions(v),
            Atom::Value(..) => false,
        }
    }
}

/// `constant + Σ coefficient · atom`, canonical.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Index {
    terms: Vec<(Atom, i64)>,
    constant: i64,
}

impl Index {
    pub fn constant(c: i64) -> Index {
        Index {
            terms: Vec::new(),
            constant: c,
        }
    }

    pub fn zero() -> Index {
        Index::constant(0)
    }

    /// A loop variable with its extent (a loop of one iteration, or none, is index 0).
    pub fn var(v: Var, extent: usize) -> Index {
        if extent <= 1 {
            return Index::zero();
        }
        Index::atom(Atom::Var(v, extent as i64))
    }

    /// An integer expression of the kernel known to lie in `[0, bound)`.
    pub fn value(expr: ExprId, bound: usize) -> Index {
        Index::atom(Atom::Value(expr, bound as i64))
    }

    fn atom(a: Atom) -> Index {
        Index {
            terms: vec![(a, 1)],
            constant: 0,
        }
    }

    pub fn terms(&self) -> &[(Atom, i64)] {
        &self.terms
    }

    pub fn constant_part(&self) -> i64 {
        self.constant
    }

    /// The constant value, if the index has no terms.
    pub fn as_constant(&self) -> Option<i64> {
        self.terms.is_empty().then_some(self.constant)
    }

    /// Inclusive range over all values of the atoms.
    pub fn range(&self) -> (i64, i64) {
        let (mut lo, mut hi) = (self.constant, self.constant);
        for (a, c) in &self.terms {
            let (alo, ahi) = a.range();
            if *c >= 0 {
                lo += c * alo;
                hi += c * ahi;
            } else {
                lo += c * ahi;
                hi += c * alo;
            }
        }
        (lo, hi)
    }

    /// True if `v` occurs anywhere in the index.
    pub fn mentions(&self, v: Var) -> bool {
        self.terms.iter().any(|(a, _)| a.mentions(v))
    }

    /// The coefficient of `v` when it occurs only as a plain term, `Some(0)` when it does
    /// not occur, `None` when it occurs inside a division, modulo or value.
    pub fn stride_of(&self, v: Var) -> Option<i64> {
        let mut stride = 0;
        for (a, c) in &self.terms {
            match a {
                Atom::Var(w, _) if *w == v => stride = *c,
                other if other.mentions(v) => return None,
                _ => {}
            }
        }
        Some(stride)
    }

    /// The index with the plain term in `v` removed.
    pub fn without(&self, v: Var) -> Index {
        Index {
            terms: self
                .terms
                .iter()
                .filter(|(a, _)| !matches!(a, Atom::Var(w, _) if *w == v))
                .cloned()
                .collect(),
            constant: self.constant,
        }
    }

    pub fn add(&self, o: &Index) -> Index {
        let mut terms = self.terms.clone();
        terms.extend(o.terms.iter().cloned());
        Index::normalize(terms, self.constant + o.constant)
    }

    pub fn add_const(&self, c: i64) -> Index {
        Index {
            terms: self.terms.clone(),
            constant: self.constant + c,
        }
    }

    pub fn scale(&self, k: i64) -> Index {
        if k == 0 {
            return Index::zero();
        }
        Index {
            terms: self.terms.iter().map(|(a, c)| (a.clone(), c * k)).collect(),
            constant: self.constant * k,
        }
    }

    /// `Σ idx[i] · strides[i]`.
    pub fn dot(idx: &[Index], strides: &[i64]) -> Index {
        let mut terms = Vec::new();
        let mut constant = 0;
        for (i, &s) in idx.iter().zip(strides) {
            if s == 0 {
                continue;
            }
            constant += i.constant * s;
            terms.extend(i.terms.iter().map(|(a, c)| (a.clone(), c * s)));
        }
        Index::normalize(terms, constant)
    }

    fn normalize(mut terms: Vec<(Atom, i64)>, constant: i64) -> Index {
        terms.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(Atom, i64)> = Vec::with_capacity(terms.len());
        for (a, c) in terms {
            match out.last_mut() {
                Some((la, lc)) if *la == a => *lc += c,
                _ => out.push((a, c)),
            }
        }
        out.retain(|(_, c)| *c != 0);
        let mut idx = Index {
            terms: out,
            constant,
        };
        idx.recombine();
        idx
    }

    /// `k·d·(x / d) + k·(x mod d) → k·x`, and its nested form
    /// `k·d·(x / (a·d)) + k·((x / a) mod d) → k·(x / a)`, repeatedly.
    fn recombine(&mut self) {
        loop {
            let mut found = None;
            'search: for (i, (a, ca)) in self.terms.iter().enumerate() {
                let Atom::Div(x, dd) = a else { continue };
                for (j, (b, cb)) in self.terms.iter().enumerate() {
                    let Atom::Mod(y, e) = b else { continue };
                    if *ca != cb * e {
                        continue;
                    }
                    if e == dd && x == y {
                        found = Some((i, j, (**x).clone(), *cb));
                        break 'search;
                    }
                    // y = x / a (a lone division) and dd = a·e.
                    if let [(Atom::Div(x2, a2), 1)] = y.terms.as_slice()
                        && y.constant == 0
                        && x2 == x
                        && a2 * e == *dd
                    {
                        found = Some((i, j, Index::atom(Atom::Div(x2.clone(), *a2)), *cb));
                        break 'search;
                    }
                }
            }
            let Some((i, j, x, k)) = found else { return };
            let mut terms: Vec<(Atom, i64)> = self
                .terms
                .iter()
                .enumerate()
                .filter(|(t, _)| *t != i && *t != j)
                .map(|(_, t)| t.clone())
                .collect();
            terms.extend(x.terms.iter().map(|(a, c)| (a.clone(), c * k)));
            let constant = self.constant + x.constant * k;
            *self = Index::normalize(terms, constant);
        }
    }

    /// Splits off the part whose coefficients are multiples of `d`: `self = d·q + r`, with
    /// `r`'s constant in `[0, d)`.
    fn split(&self, d: i64) -> (Index, Index) {
        let mut q = Vec::new();
        let mut r = Vec::new();
        for (a, c) in &self.terms {
            if c % d == 0 {
                q.push((a.clone(), c / d));
            } else {
                r.push((a.clone(), *c));
            }
        }
        (
            Index::normalize(q, self.constant.div_euclid(d)),
            Index::normalize(r, self.constant.rem_euclid(d)),
        )
    }

    fn gcd_all(&self, d: i64) -> i64 {
        fn gcd(a: i64, b: i64) -> i64 {
            if b == 0 { a.abs() } else { gcd(b, a % b) }
        }
        let mut g = gcd(d, self.constant);
        for (_, c) in &self.terms {
            g = gcd(g, *c);
        }
        g.max(1)
    }

    /// Writes `self = a·y + z` with `1 < a < d`, `a | d` and `0 <= z < a`, trying the
    /// factors `gcd(d, c)` of the coefficients `c`, largest first.
    fn factor_within(&self, d: i64) -> Option<(i64, Index, Index)> {
        fn gcd(a: i64, b: i64) -> i64 {
            if b == 0 { a.abs() } else { gcd(b, a % b) }
        }
        let mut cands: Vec<i64> = self
            .terms
            .iter()
            .map(|(_, c)| gcd(d, *c))
            .filter(|&a| a > 1 && a < d)
            .collect();
        cands.sort_unstable_by(|a, b| b.cmp(a));
        cands.dedup();
        for a in cands {
            let (y, z) = self.split(a);
            let (lo, hi) = z.range();
            if lo >= 0 && hi < a && y.range().0 >= 0 {
                return Some((a, y, z));
            }
        }
        None
    }

    /// Floor division by a positive constant. The index must be non-negative. (A divisor
    /// of 0 only arises from empty tensors, whose indices are never evaluated: 0.)
    pub fn div(&self, d: i64) -> Index {
        if d <= 0 {
            return Index::zero();
        }
        if d == 1 {
            return self.clone();
        }
        if let Some(c) = self.as_constant() {
            return Index::constant(c.div_euclid(d));
        }
        let (q, r) = self.split(d);
        let (rlo, rhi) = r.range();
        let (q, r) = if rlo >= 0 {
            (q, r)
        } else {
            (Index::zero(), self.clone())
        };
        let (rlo, rhi) = if rlo >= 0 { (rlo, rhi) } else { r.range() };
        if rlo >= 0 && rhi < d {
            return q;
        }
        // Divide out a common factor.
        let g = r.gcd_all(d);
        let (r, d) = if g > 1 {
            (
                Index {
                    terms: r.terms.iter().map(|(a, c)| (a.clone(), c / g)).collect(),
                    constant: r.constant / g,
                },
                d / g,
            )
        } else {
            (r, d)
        };
        if d == 1 {
            return q.add(&r);
        }
        // x = a·y + z with 0 <= z < a and a | d: x / d = y / (d / a).
        if let Some((a, y, _)) = r.factor_within(d) {
            return q.add(&y.div(d / a));
        }
        // (x / a) / b = x / (a·b)
        let inner = match r.terms.as_slice() {
            [(Atom::Div(x, a), 1)] if r.constant == 0 => Index::atom(Atom::Div(x.clone(), a * d)),
            _ => Index::atom(Atom::Div(Box::new(r), d)),
        };
        q.add(&inner)
    }

    /// Remainder by a positive constant. The index must be non-negative. (A divisor of 0
    /// only arises from empty tensors: 0.)
    pub fn rem(&self, d: i64) -> Index {
        if d <= 0 {
            return Index::zero();
        }
        if d == 1 {
            return Index::zero();
        }
        if let Some(c) = self.as_constant() {
            return Index::constant(c.rem_euclid(d));
        }
        let (_, r) = self.split(d);
        let r = if r.range().0 >= 0 { r } else { self.clone() };
        let (rlo, rhi) = r.range();
        if rlo >= 0 && rhi < d {
            return r;
        }
        let g = r.gcd_all(d);
        if g > 1 {
            let rr = Index {
                terms: r.terms.iter().map(|(a, c)| (a.clone(), c / g)).collect(),
                constant: r.constant / g,
            };
            return rr.rem(d / g).scale(g);
        }
        // x = a·y + z with 0 <= z < a and a | d: x mod d = a·(y mod (d / a)) + z.
        if let Some((a, y, z)) = r.factor_within(d) {
            return y.rem(d / a).scale(a).add(&z);
        }
        // (x mod (a·d)) mod d = x mod d
        if let [(Atom::Mod(x, a), 1)] = r.terms.as_slice()
            && r.constant == 0
            && a % d == 0
        {
            return x.rem(d);
        }
        Index::atom(Atom::Mod(Box::new(r), d))
    }

    /// True if the index contains a division, modulo or value atom.
    pub fn is_affine(&self) -> bool {
        self.terms.iter().all(|(a, _)| matches!(a, Atom::Var(..)))
    }

    /// Replaces every occurrence of variable `v` by `by`.
    pub fn substitute(&self, v: Var, by: &Index) -> Index {
        let mut out = Index::constant(self.constant);
        for (a, c) in &self.terms {
            let t = match a {
                Atom::Var(w, _) if *w == v => by.clone(),
                Atom::Div(e, d) => e.substitute(v, by).div(*d),
                Atom::Mod(e, d) => e.substitute(v, by).rem(*d),
                other => Index::atom(other.clone()),
            };
            out = out.add(&t.scale(*c));
        }
        out
    }

    /// Evaluates the index with the given variable values (for runtime offsets of
    /// library kernels); value atoms are not allowed.
    pub fn eval(&self, var: &dyn Fn(Var) -> i64) -> i64 {
        let mut s = self.constant;
        for (a, c) in &self.terms {
            let v = match a {
                Atom::Var(w, _) => var(*w),
                Atom::Div(e, d) => e.eval(var).div_euclid(*d),
                Atom::Mod(e, d) => e.eval(var).rem_euclid(*d),
                Atom::Value(..) => 0,
            };
            s += c * v;
        }
        s
    }
}

impl fmt::Display for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (a, c) in &self.terms {
            let atom = match a {
                Atom::Var(v, _) => v.to_string(),
                Atom::Div(e, d) => format!("({e})/{d}"),
                Atom::Mod(e, d) => format!("({e})%{d}"),
                Atom::Value(x, _) => format!("{x}"),
            };
            let (sign, mag) = if *c < 0 { ("-", -c) } else { ("+", *c) };
            if first {
                if *c < 0 {
                    f.write_str("-")?;
                }
            } else {
                write!(f, " {sign} ")?;
            }
            if mag == 1 {
                f.write_str(&atom)?;
            } else {
                write!(f, "{mag}*{atom}")?;
            }
            first = false;
        }
        if first {
            write!(f, "{}", self.constant)
        } else if self.constant > 0 {
            write!(f, " + {}", self.constant)
        } else if self.constant < 0 {
            write!(f, " - {}", -self.constant)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(i: u8, n: usize) -> Index {
        Index::var(Var::Outer(i), n)
    }

    #[test]
    fn reshape_round_trip_cancels() {
        // flat = 12 o0 + 4 o1 + o2 over [2,3,4], reshaped to [6,4]: row, col, re-flattened.
        let flat = v(0, 2).scale(12).add(&v(1, 3).scale(4)).add(&v(2, 4));
        let row = flat.div(4);
        let col = flat.rem(4);
        assert_eq!(row.to_string(), "3*o0 + o1");
        assert_eq!(col.to_string(), "o2");
        assert_eq!(Index::dot(&[row, col], &[4, 1]), flat);
    }

    #[test]
    fn collapsed_loop_recombines() {
        // A [5, 7] space collapsed to u in [0, 35): the row-major offset is u again.
        let u = v(0, 35);
        let (a, b) = (u.div(7), u.rem(7));
        assert_eq!(a.to_string(), "(o0)/7");
        assert_eq!(Index::dot(&[a.clone(), b], &[7, 1]), u);
        // Broadcast along the second dim keeps the division.
        assert_eq!(Index::dot(&[a], &[1]).to_string(), "(o0)/7");
    }

    #[test]
    fn nested_division_and_gcd() {
        let x = v(0, 1000);
        assert_eq!(x.div(4).div(5), x.div(20));
        assert_eq!(x.scale(6).rem(4).to_string(), "2*(3*o0)%2");
        assert_eq!(x.rem(12).rem(4), x.rem(4));
    }

    #[test]
    fn partial_factoring() {
        // [2,45,40] flattened over rows o0 in [0,90) and columns i0 in [0,40).
        let flat = v(0, 90).scale(40).add(&Index::var(Var::Inner(0), 40));
        assert_eq!(flat.div(1800).to_string(), "(o0)/45");
        assert_eq!(flat.rem(1800).to_string(), "i0 + 40*(o0)%45");
        let back = Index::dot(
            &[flat.div(1800), flat.div(40).rem(45), flat.rem(40)],
            &[1800, 40, 1],
        );
        assert_eq!(back, flat);
    }

    #[test]
    fn nested_unflatten_recombines() {
        // o0 over [4, 4, 8] (rows of a [.., 4, 4, 8, 16] tensor), re-flattened.
        let o = v(0, 128);
        let idx = [o.div(32), o.div(8).rem(4), o.rem(8)];
        assert_eq!(Index::dot(&idx, &[512, 128, 16]), o.scale(16));
    }

    #[test]
    fn negative_coefficients_are_not_split() {
        // 20 - 2 i over i in [0, 10): never negative, but 20 - 2i splits into a negative
        // remainder for d = 4, so the division stays whole.
        let e = v(0, 10).scale(-2).add_const(20);
        let d = e.div(4);
        assert_eq!(d.range(), (0, 5));
        for i in 0..10 {
            assert_eq!(d.eval(&|_| i), (20 - 2 * i) / 4);
        }
    }

    #[test]
    fn substitution_and_stride() {
        let i = Index::var(Var::Inner(0), 8);
        let e = v(0, 4).scale(32).add(&i);
        assert_eq!(e.stride_of(Var::Inner(0)), Some(1));
        let split = v(0, 4).scale(8).add(&Index::var(Var::Inner(1), 8));
        let s = e.substitute(Var::Inner(0), &split.rem(8));
        assert_eq!(s.to_string(), "32*o0 + i1");
    }
}
