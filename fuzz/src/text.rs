//! Mutations of printed IR: whole lines (deleted, duplicated, swapped, spliced from
//! another seed), tokens (numbers, dtypes, value ids, op names, punctuation) and, at
//! the end, the UTF-8 bytes themselves.

use crate::rng::Rng;

/// Numbers that sizes, ids and attribute values are tried with.
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "16",
    "17",
    "4294967296",
    "17179869184",
    "17179869185",
    "1099511627776",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551616",
    "1e309",
    "-0",
    "nan",
    "inf",
    "-inf",
    "0.5",
    "1e-45",
];

const DTYPES: &[&str] = &[
    "f32", "f16", "bf16", "f64", "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "bool",
    "f8", "x",
];

const PUNCT: &[&str] = &[
    "[", "]", "{", "}", "(", ")", ",", "=", ":", "\"", "%", "$", "hex\"", "//", "\n", " ", "\\",
];

/// A lexical piece of printed IR, kept with its text so the mutated input is the pieces
/// joined again.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Word,
    Other,
}

fn pieces(line: &str) -> Vec<(Kind, &str)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut kind = None;
    for (i, c) in line.char_indices() {
        let k = if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '+') {
            Kind::Word
        } else {
            Kind::Other
        };
        if kind != Some(k) || k == Kind::Other {
            if let Some(prev) = kind
                && i > start
            {
                out.push((prev, &line[start..i]));
            }
            start = i;
            kind = Some(k);
        }
    }
    if let Some(k) = kind {
        out.push((k, &line[start..]));
    }
    out
}

/// The op names a set of texts uses (the word before each `(`), for op swaps.
pub fn op_names<'a>(texts: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut names = std::collections::BTreeSet::new();
    for t in texts {
        for line in t.lines() {
            let p = pieces(line);
            for w in p.windows(2) {
                if w[0].0 == Kind::Word && w[1].1 == "(" {
                    names.insert(w[0].1.to_string());
                }
            }
        }
    }
    names.into_iter().collect()
}

/// Applies `1..=4` mutations to `text`; `other` is a second seed to splice lines from.
pub fn mutate(text: &str, other: &str, ops: &[String], rng: &mut Rng) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let donor: Vec<&str> = other.lines().collect();
    for _ in 0..1 + rng.below(4) {
        if rng.one_in(4) {
            edit_lines(&mut lines, &donor, rng);
        } else if !lines.is_empty() {
            let i = rng.below(lines.len());
            lines[i] = edit_tokens(&lines[i], ops, rng);
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    if rng.one_in(8) {
        let mut bytes = out.into_bytes();
        crate::bytes::mutate(&mut bytes, other.as_bytes(), 1 << 20, rng);
        out = String::from_utf8_lossy(&bytes).into_owned();
    }
    out
}

fn edit_lines(lines: &mut Vec<String>, donor: &[&str], rng: &mut Rng) {
    let n = lines.len();
    if n == 0 {
        return;
    }
    match rng.below(5) {
        0 => {
            lines.remove(rng.below(n));
        }
        1 => {
            let l = lines[rng.below(n)].clone();
            lines.insert(rng.below(n + 1), l);
        }
        2 => lines.swap(rng.below(n), rng.below(n)),
        3 => {
            if let Some(l) = rng.pick(donor) {
                lines.insert(rng.below(n + 1), (*l).to_string());
            }
        }
        _ => lines.truncate(rng.below(n)),
    }
}

fn edit_tokens(line: &str, ops: &[String], rng: &mut Rng) -> String {
    let mut p: Vec<(Kind, String)> = pieces(line)
        .into_iter()
        .map(|(k, s)| (k, s.to_string()))
        .collect();
    if p.is_empty() {
        return line.to_string();
    }
    let i = rng.below(p.len());
    let (kind, tok) = p[i].clone();
    let pick = |rng: &mut Rng, xs: &[&str]| (*rng.pick(xs).unwrap_or(&"")).to_string();
    let new = match rng.below(6) {
        0 => String::new(),
        1 => pick(rng, PUNCT),
        2 => format!("{tok}{tok}"),
        _ if kind == Kind::Word => {
            let first = tok.chars().next().unwrap_or('x');
            if first.is_ascii_digit() || first == '-' {
                pick(rng, NUMBERS)
            } else if DTYPES.contains(&tok.as_str()) {
                pick(rng, DTYPES)
            } else if rng.one_in(2) {
                rng.pick(ops).cloned().unwrap_or_default()
            } else {
                pick(rng, NUMBERS)
            }
        }
        _ => pick(rng, PUNCT),
    };
    p[i].1 = new;
    p.into_iter().map(|(_, s)| s).collect()
}

#[cfg(test)]
mod tests {
    use super::{op_names, pieces};

    #[test]
    fn pieces_rejoin_to_the_line() {
        let line = r#"  %3: f32[1,8] = gemm(%0, %1, %2) {alpha=1, trans_b=true} "fc1""#;
        let joined: String = pieces(line).iter().map(|(_, s)| *s).collect();
        assert_eq!(joined, line);
        assert_eq!(op_names([line]), ["gemm"]);
    }
}
