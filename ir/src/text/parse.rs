//! The parser.

use std::collections::{BTreeMap, HashMap};

use super::attrs::{RawAttr, RawAttrs, op_from};
use crate::{
    DType, Element, Graph, IrError, Op, Shape, Tensor, TensorType, ValueId, dispatch_dtype,
};

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    /// Identifiers, numbers and keywords: any run of `[A-Za-z0-9_.+-]`.
    Word(String),
    /// `%12`
    Value(usize),
    /// `$3`
    Data(usize),
    Str(String),
    Punct(char),
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    line: usize,
    col: usize,
}

#[derive(Clone)]
struct Spanned {
    tok: Tok,
    line: usize,
    col: usize,
}

fn err(line: usize, col: usize, message: impl Into<String>) -> IrError {
    IrError::Parse {
        line,
        col,
        message: message.into(),
    }
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '+' | '-')
}

impl<'a> Lexer<'a> {
    fn bump(&mut self) -> Option<char> {
        let c = self.src[self.pos..].chars().next()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn tokens(mut self) -> Result<Vec<Spanned>, IrError> {
        let mut out = Vec::new();
        loop {
            while self.peek().is_some_and(|c| c.is_whitespace()) {
                self.bump();
            }
            if self.src[self.pos..].starts_with("//") {
                while self.peek().is_some_and(|c| c != '\n') {
                    self.bump();
                }
                continue;
            }
            let (line, col) = (self.line, self.col);
            let Some(c) = self.peek() else {
                return Ok(out);
            };
            let tok = match c {
                '"' => {
                    self.bump();
                    Tok::Str(self.string(line, col)?)
                }
                '%' | '$' => {
                    self.bump();
                    let start = self.pos;
                    while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                        self.bump();
                    }
                    let n: usize = self.src[start..self.pos]
                        .parse()
                        .map_err(|_| err(line, col, format!("expected digits after `{c}`")))?;
                    if c == '%' {
                        Tok::Value(n)
                    } else {
                        Tok::Data(n)
                    }
                }
                '{' | '}' | '(' | ')' | '[' | ']' | ',' | ':' | '=' => {
                    self.bump();
                    Tok::Punct(c)
                }
                c if is_word(c) => {
                    let start = self.pos;
                    while self.peek().is_some_and(is_word) {
                        self.bump();
                    }
                    Tok::Word(self.src[start..self.pos].to_string())
                }
                c => return Err(err(line, col, format!("unexpected character {c:?}"))),
            };
            out.push(Spanned { tok, line, col });
        }
    }

    fn string(&mut self, line: usize, col: usize) -> Result<String, IrError> {
        let mut s = String::new();
        loop {
            // Runs without quotes, escapes or newlines (all of a hex data entry) in one step.
            let rest = &self.src[self.pos..];
            let run = rest
                .bytes()
                .position(|c| matches!(c, b'"' | b'\\' | b'\n'))
                .unwrap_or(rest.len());
            if run > 0 {
                s.push_str(&rest[..run]);
                self.col += rest[..run].chars().count();
                self.pos += run;
            }
            match self.bump() {
                None => return Err(err(line, col, "unterminated string")),
                Some('"') => return Ok(s),
                Some('\\') => match self.bump() {
                    Some('"') => s.push('"'),
                    Some('\\') => s.push('\\'),
                    Some('n') => s.push('\n'),
                    Some('t') => s.push('\t'),
                    Some('u') => {
                        if self.bump() != Some('{') {
                            return Err(err(line, col, "expected `{` after \\u"));
                        }
                        let start = self.pos;
                        while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                            self.bump();
                        }
                        let code = u32::from_str_radix(&self.src[start..self.pos], 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or_else(|| err(line, col, "bad \\u{..} escape"))?;
                        if self.bump() != Some('}') {
                            return Err(err(line, col, "expected `}` after \\u{.."));
                        }
                        s.push(code);
                    }
                    _ => return Err(err(line, col, "unknown escape in string")),
                },
                Some(c) => s.push(c),
            }
        }
    }
}

struct Parser {
    toks: Vec<Spanned>,
    i: usize,
}

/// How a constant's data is given before the data section is read.
enum ConstData {
    Inline(Vec<String>),
    Ref(usize),
}

enum Stmt {
    Input {
        name: String,
        value: usize,
        ty: TensorType,
    },
    Node(NodeStmt),
    Output {
        name: String,
        value: usize,
        line: usize,
        col: usize,
    },
}

/// A node as written: declared results, the op (or a constant's data), the inputs with
/// where each is written, and the node's name.
struct NodeStmt {
    results: Vec<(usize, TensorType)>,
    op: Option<Op>,
    constant: Option<ConstData>,
    inputs: Vec<(usize, usize, usize)>,
    name: String,
    line: usize,
    col: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|s| &s.tok)
    }

    fn here(&self) -> (usize, usize) {
        match self.toks.get(self.i).or(self.toks.last()) {
            Some(s) => (s.line, s.col),
            None => (1, 1),
        }
    }

    fn fail<T>(&self, message: impl Into<String>) -> Result<T, IrError> {
        let (l, c) = self.here();
        Err(err(l, c, message))
    }

    fn next(&mut self) -> Result<Tok, IrError> {
        match self.toks.get(self.i) {
            Some(s) => {
                self.i += 1;
                Ok(s.tok.clone())
            }
            None => self.fail("unexpected end of input"),
        }
    }

    fn punct(&mut self, c: char) -> Result<(), IrError> {
        match self.peek() {
            Some(Tok::Punct(p)) if *p == c => {
                self.i += 1;
                Ok(())
            }
            other => {
                let found = format!("{other:?}");
                self.fail(format!("expected `{c}`, found {found}"))
            }
        }
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(&Tok::Punct(c)) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn word(&mut self) -> Result<String, IrError> {
        match self.next()? {
            Tok::Word(w) => Ok(w),
            other => {
                self.i -= 1;
                self.fail(format!("expected a word, found {other:?}"))
            }
        }
    }

    fn keyword(&mut self, k: &str) -> Result<(), IrError> {
        let w = self.word()?;
        if w == k {
            Ok(())
        } else {
            self.i -= 1;
            self.fail(format!("expected `{k}`, found `{w}`"))
        }
    }

    fn string(&mut self) -> Result<String, IrError> {
        match self.next()? {
            Tok::Str(s) => Ok(s),
            other => {
                self.i -= 1;
                self.fail(format!("expected a quoted string, found {other:?}"))
            }
        }
    }

    fn value(&mut self) -> Result<usize, IrError> {
        match self.next()? {
            Tok::Value(v) => Ok(v),
            other => {
                self.i -= 1;
                self.fail(format!("expected a value like `%3`, found {other:?}"))
            }
        }
    }

    /// `[a, b, c]` of words.
    fn list(&mut self) -> Result<Vec<String>, IrError> {
        self.punct('[')?;
        let mut items = Vec::new();
        if self.eat(']') {
            return Ok(items);
        }
        loop {
            items.push(self.word()?);
            if self.eat(']') {
                return Ok(items);
            }
            self.punct(',')?;
        }
    }

    /// `f32[1,2,3]`
    fn ty(&mut self) -> Result<TensorType, IrError> {
        let d = self.word()?;
        let Ok(dtype) = d.parse::<DType>() else {
            self.i -= 1;
            return self.fail(format!("unknown dtype `{d}`"));
        };
        let dims = self.list()?;
        let mut out = Vec::with_capacity(dims.len());
        for s in dims {
            match s.parse::<usize>() {
                Ok(n) => out.push(n),
                Err(_) => {
                    return self.fail(format!("dimension `{s}` is not a non-negative integer"));
                }
            }
        }
        match Shape::new(out) {
            Ok(shape) => Ok(TensorType::new(dtype, shape)),
            Err(e) => self.fail(e.to_string()),
        }
    }

    fn stmt(&mut self) -> Result<Option<Stmt>, IrError> {
        let (line, col) = self.here();
        match self.peek() {
            Some(Tok::Punct('}')) => {
                self.i += 1;
                Ok(None)
            }
            Some(Tok::Word(w)) if w == "input" => {
                self.i += 1;
                let name = self.string()?;
                let value = self.value()?;
                self.punct(':')?;
                let ty = self.ty()?;
                Ok(Some(Stmt::Input { name, value, ty }))
            }
            Some(Tok::Word(w)) if w == "output" => {
                self.i += 1;
                let name = self.string()?;
                let value = self.value()?;
                Ok(Some(Stmt::Output {
                    name,
                    value,
                    line,
                    col,
                }))
            }
            Some(Tok::Value(_)) => self.node(line, col).map(Some),
            None => self.fail("unexpected end of input: the graph is missing its `}`"),
            _ => self.fail("expected `input`, `output`, a node or `}`"),
        }
    }

    fn node(&mut self, line: usize, col: usize) -> Result<Stmt, IrError> {
        let mut results = Vec::new();
        loop {
            let v = self.value()?;
            self.punct(':')?;
            results.push((v, self.ty()?));
            if !self.eat(',') {
                break;
            }
        }
        self.punct('=')?;
        let opname = self.word()?;
        let (mut op, mut constant, mut inputs) = (None, None, Vec::new());
        if opname == "constant" {
            constant = Some(match self.peek() {
                Some(Tok::Data(k)) => {
                    let k = *k;
                    self.i += 1;
                    ConstData::Ref(k)
                }
                _ => ConstData::Inline(self.list()?),
            });
        } else {
            self.punct('(')?;
            if !self.eat(')') {
                loop {
                    let (l, c) = self.here();
                    inputs.push((self.value()?, l, c));
                    if self.eat(')') {
                        break;
                    }
                    self.punct(',')?;
                }
            }
            let mut raw = RawAttrs {
                map: BTreeMap::new(),
            };
            if self.eat('{') {
                loop {
                    let key = self.word()?;
                    self.punct('=')?;
                    let val = if self.peek() == Some(&Tok::Punct('[')) {
                        RawAttr::List(self.list()?)
                    } else {
                        RawAttr::Scalar(self.word()?)
                    };
                    if raw.map.insert(key.clone(), val).is_some() {
                        return self.fail(format!("attribute `{key}` is given twice"));
                    }
                    if self.eat('}') {
                        break;
                    }
                    self.punct(',')?;
                }
            }
            op = Some(op_from(&opname, raw).map_err(|m| err(line, col, m))?);
        }
        let name = match self.peek() {
            Some(Tok::Str(_)) => self.string()?,
            _ => String::new(),
        };
        Ok(Stmt::Node(NodeStmt {
            results,
            op,
            constant,
            inputs,
            name,
            line,
            col,
        }))
    }

    /// The `$k = hex "..."` entries after the graph's closing `}`, up to the end.
    fn data_section(&mut self) -> Result<HashMap<usize, Vec<u8>>, IrError> {
        let mut data = HashMap::new();
        while self.peek().is_some() {
            let (line, col) = self.here();
            let k = match self.next()? {
                Tok::Data(k) => k,
                other => {
                    return self.fail(format!("expected a data entry like `$0`, found {other:?}"));
                }
            };
            self.punct('=')?;
            let kind = self.word()?;
            match kind.as_str() {
                "hex" => {
                    let s = self.string()?;
                    let bytes = parse_hex(&s)
                        .ok_or_else(|| err(line, col, format!("${k}: invalid hex data")))?;
                    if data.insert(k, bytes).is_some() {
                        return Err(err(line, col, format!("${k} is defined twice")));
                    }
                }
                "elided" => {
                    return Err(err(
                        line,
                        col,
                        format!(
                            "${k}: constant data was elided when printing; this text cannot be parsed back"
                        ),
                    ));
                }
                other => return Err(err(line, col, format!("unknown data kind `{other}`"))),
            }
        }
        Ok(data)
    }
}

fn parse_inline(ty: &TensorType, items: &[String]) -> Result<Tensor, String> {
    if items.len() != ty.shape.numel() {
        return Err(format!(
            "constant of type {ty} needs {} elements, got {}",
            ty.shape.numel(),
            items.len()
        ));
    }
    fn go<T: Element>(ty: &TensorType, items: &[String]) -> Result<Tensor, String> {
        let mut v = Vec::with_capacity(items.len());
        for s in items {
            let x = match T::DTYPE {
                DType::Bool => match s.as_str() {
                    "true" => T::from_i64(1),
                    "false" => T::from_i64(0),
                    _ => return Err(format!("`{s}` is not a bool")),
                },
                d if d.is_float() => {
                    // Parse in the value's own precision so shortest-form text round-trips.
                    let f: f32 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
                    if d == DType::F64 {
                        T::from_f64(s.parse().map_err(|_| format!("`{s}` is not a number"))?)
                    } else {
                        T::from_f64(f as f64)
                    }
                }
                DType::U64 => {
                    let u: u64 = s.parse().map_err(|_| format!("`{s}` is not a u64"))?;
                    T::read_le(&u.to_le_bytes())
                }
                _ => {
                    let n: i64 = s.parse().map_err(|_| format!("`{s}` is not an integer"))?;
                    T::from_i64(n)
                }
            };
            v.push(x);
        }
        Tensor::from_vec(ty.shape.clone(), v).map_err(|e| e.to_string())
    }
    dispatch_dtype!(ty.dtype, go(ty, items))
}

fn parse_hex(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = Vec::with_capacity(b.len() / 2);
    for pair in b.chunks_exact(2) {
        out.push(nib(pair[0])? << 4 | nib(pair[1])?);
    }
    Some(out)
}

/// Parses the canonical text form into a graph. Result types are re-inferred and must
/// match the declared ones; values must be defined before they are used.
pub fn parse(src: &str) -> Result<Graph, IrError> {
    let toks = Lexer {
        src,
        pos: 0,
        line: 1,
        col: 1,
    }
    .tokens()?;
    let mut p = Parser { toks, i: 0 };
    p.keyword("graph")?;
    let name = p.string()?;
    p.punct('{')?;
    let mut stmts = Vec::new();
    while let Some(s) = p.stmt()? {
        stmts.push(s);
    }
    let data = p.data_section()?;
    let mut b = Builder {
        g: Graph::new(name),
        ids: HashMap::new(),
        data,
        end: p.here(),
    };
    for s in stmts {
        b.stmt(s)?;
    }
    Ok(b.g)
}

/// Builds the graph from the parsed statements, in order, checking what the grammar
/// cannot: definitions, uses and declared types.
struct Builder {
    g: Graph,
    /// The graph value of each `%k` defined so far.
    ids: HashMap<usize, ValueId>,
    /// The data section.
    data: HashMap<usize, Vec<u8>>,
    /// The end of the text. Input statements record no place, so an input after a node
    /// is reported here (and an input redefining a value at line 0, column 0).
    end: (usize, usize),
}

impl Builder {
    fn define(&mut self, k: usize, v: ValueId, line: usize, col: usize) -> Result<(), IrError> {
        if self.ids.insert(k, v).is_some() {
            Err(err(line, col, format!("%{k} is defined twice")))
        } else {
            Ok(())
        }
    }

    fn stmt(&mut self, s: Stmt) -> Result<(), IrError> {
        match s {
            Stmt::Input { name, value, ty } => {
                if self.g.num_nodes() > 0 {
                    let (line, col) = self.end;
                    return Err(err(
                        line,
                        col,
                        format!("input {name:?} comes after a node; inputs come first"),
                    ));
                }
                let v = self.g.add_input(name, ty);
                self.define(value, v, 0, 0)
            }
            Stmt::Output {
                name,
                value,
                line,
                col,
            } => {
                let v = *self.ids.get(&value).ok_or_else(|| {
                    err(
                        line,
                        col,
                        format!("output {name:?} uses undefined %{value}"),
                    )
                })?;
                self.g.add_output(name, v);
                Ok(())
            }
            Stmt::Node(n) => self.node(n),
        }
    }

    fn node(&mut self, n: NodeStmt) -> Result<(), IrError> {
        let NodeStmt {
            results,
            op,
            constant,
            inputs,
            name,
            line,
            col,
        } = n;
        let op = match (op, constant) {
            (Some(op), _) => op,
            (None, Some(c)) => Op::Constant(self.constant(&results, c, line, col)?),
            (None, None) => return Err(err(line, col, "node without an op")),
        };
        let mut args = Vec::with_capacity(inputs.len());
        for (k, l, c) in inputs {
            args.push(
                *self
                    .ids
                    .get(&k)
                    .ok_or_else(|| err(l, c, format!("%{k} is used before it is defined")))?,
            );
        }
        let inferred = self.infer_declared(&op, &args, &results, line, col)?;
        let outs = self.g.push_node_unchecked(op, args, inferred, name);
        for ((k, _), v) in results.iter().zip(outs) {
            self.define(*k, v, line, col)?;
        }
        Ok(())
    }

    /// A constant's tensor, from inline items or the data section.
    fn constant(
        &self,
        results: &[(usize, TensorType)],
        c: ConstData,
        line: usize,
        col: usize,
    ) -> Result<Tensor, IrError> {
        let [(_, ty)] = results else {
            return Err(err(line, col, "a constant has exactly one result"));
        };
        match c {
            ConstData::Inline(items) => parse_inline(ty, &items).map_err(|m| err(line, col, m)),
            ConstData::Ref(k) => {
                let bytes = self
                    .data
                    .get(&k)
                    .ok_or_else(|| err(line, col, format!("${k} is not in the data section")))?;
                Tensor::from_le_bytes(ty.dtype, ty.shape.clone(), bytes)
                    .map_err(|e| err(line, col, format!("${k}: {e}")))
            }
        }
    }

    /// `op`'s output types for `args`, which must be the `results` the text declares.
    fn infer_declared(
        &self,
        op: &Op,
        args: &[ValueId],
        results: &[(usize, TensorType)],
        line: usize,
        col: usize,
    ) -> Result<Vec<TensorType>, IrError> {
        let types: Vec<&TensorType> = args.iter().map(|&v| self.g.ty(v)).collect();
        let inferred = op
            .infer(&types)
            .map_err(|m| err(line, col, format!("{}: {m}", op.name())))?;
        if inferred.len() != results.len() {
            return Err(err(
                line,
                col,
                format!(
                    "{} produces {} result(s), {} declared",
                    op.name(),
                    inferred.len(),
                    results.len()
                ),
            ));
        }
        for ((k, declared), actual) in results.iter().zip(&inferred) {
            if declared != actual {
                return Err(err(
                    line,
                    col,
                    format!(
                        "%{k} is declared {declared} but {} computes {actual}",
                        op.name()
                    ),
                ));
            }
        }
        Ok(inferred)
    }
}
