//! What to differentiate: the loss, the parameters and the requested input gradients.

use std::fmt;
use std::str::FromStr;

/// A built-in scalar loss over one forward output `y`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// `Σ y`.
    Sum,
    /// `mean((y − target)²)`; adds a graph input `target` of `y`'s type.
    Mse,
    /// `mean(−log softmax(y)[label])` with classes on axis 1 (ONNX
    /// `SoftmaxCrossEntropyLoss`); adds an i64 graph input `labels` of `y`'s shape without
    /// axis 1.
    SoftmaxCrossEntropy,
}

impl Loss {
    pub fn name(self) -> &'static str {
        match self {
            Loss::Sum => "sum",
            Loss::Mse => "mse",
            Loss::SoftmaxCrossEntropy => "xent",
        }
    }
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Loss {
    type Err = String;
    fn from_str(s: &str) -> Result<Loss, String> {
        match s {
            "sum" => Ok(Loss::Sum),
            "mse" => Ok(Loss::Mse),
            "xent" | "softmax-xent" | "cross-entropy" => Ok(Loss::SoftmaxCrossEntropy),
            other => Err(format!(
                "unknown loss {other:?}; expected sum, mse or xent (softmax cross-entropy)"
            )),
        }
    }
}

/// Which values are trained.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParamSelection {
    /// Every float constant of rank ≥ 1 that the loss depends on (after ONNX import these
    /// are the initializers, plus any folded float tensors).
    FloatConstants,
    /// Constants (by node name) and graph inputs (by port name) matching any of these
    /// patterns; `*` matches any run of characters. A pattern that matches nothing is an
    /// error.
    Patterns(Vec<String>),
}

/// Everything [`crate::train::autodiff`] needs besides the forward graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrainSpec {
    pub loss: Loss,
    /// The forward output the loss reads, by name; `None` takes the first float output.
    pub output: Option<String>,
    pub params: ParamSelection,
    /// Values whose gradients are produced too (`input_grad:<name>` outputs): graph input
    /// names, or node names (meaning the node's first output, e.g. a pipeline stage
    /// boundary).
    pub input_grads: Vec<String>,
}

impl TrainSpec {
    /// `loss` over the first float output, parameters = float constants, no input
    /// gradients.
    pub fn new(loss: Loss) -> TrainSpec {
        TrainSpec {
            loss,
            output: None,
            params: ParamSelection::FloatConstants,
            input_grads: Vec::new(),
        }
    }
}

/// `*`-wildcard matching (no other metacharacters).
pub fn glob_match(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !s.starts_with(first) || s.len() < first.len() + last.len() || !s.ends_with(last) {
        return false;
    }
    let mut rest = &s[first.len()..s.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("w", "w"));
        assert!(!glob_match("w", "w1"));
        assert!(glob_match("*_weight_", "L_conv1_weight_"));
        assert!(glob_match("L_*conv*_weight_", "L_self_conv1_weight_"));
        assert!(!glob_match("L_*conv*_weight_", "L_self_bn1_weight_"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("ab*ba", "aba"));
    }

    #[test]
    fn loss_names_round_trip() {
        for l in [Loss::Sum, Loss::Mse, Loss::SoftmaxCrossEntropy] {
            assert_eq!(l.name().parse::<Loss>(), Ok(l));
        }
        assert!(
            "hinge"
                .parse::<Loss>()
                .unwrap_err()
                .contains("unknown loss")
        );
    }
}
