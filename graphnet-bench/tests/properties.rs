//! Property tests: the closed form equals the per-sample geometric mean for arbitrary result
//! sets, scores stay within their bounds, and shards partition any name list.

use std::collections::BTreeMap;

use proptest::prelude::*;
use tessera_graphnet_bench::{
    Interpretation, NoisyPolicy, ScoreConfig, ScoredSample, Shard, Status, passing_from, score,
};

fn arb_sample() -> impl Strategy<Value = ScoredSample> {
    (0usize..Status::ALL.len(), 0.05f64..20.0, -11i32..=6).prop_map(|(si, s, first)| {
        let status = Status::ALL[si];
        let bits = if status.has_outputs() {
            passing_from(first)
        } else {
            BTreeMap::new()
        };
        ScoredSample::new("x", status, Some(s), &bits).expect("valid sample")
    })
}

fn rel(a: f64, b: f64) -> f64 {
    if a == b {
        0.0
    } else {
        (a - b).abs() / a.abs().max(b.abs())
    }
}

proptest! {
    #[test]
    fn closed_form_matches_per_sample_mean(
        samples in prop::collection::vec(arb_sample(), 1..40),
        p in 0.0f64..1.0,
        b in 0.01f64..0.9,
        extended in any::<bool>(),
        fail_noisy in any::<bool>(),
    ) {
        let config = ScoreConfig {
            p,
            b,
            interpretation: if extended {
                Interpretation::MismatchExtended
            } else {
                Interpretation::Default
            },
            noisy: if fail_noisy { NoisyPolicy::Fail } else { NoisyPolicy::Keep },
        };
        let r = score("x", &samples, &config).expect("score");
        prop_assert_eq!(r.levels.len(), if extended { 16 } else { 15 });
        for l in &r.levels {
            prop_assert!(rel(l.s, l.s_components.closed_form(p)) < 1e-9, "S at {}", l.t);
            prop_assert!(rel(l.es, l.es_components.closed_form(p)) < 1e-9, "ES at {}", l.t);
            prop_assert!((0.0..=1.0).contains(&l.es_components.lambda));
            prop_assert!((0.0..=1.0).contains(&l.es_components.eta));
            if l.t <= 0 {
                prop_assert_eq!(l.s, l.es);
            } else {
                // ES only ever replaces b by 1 relative to the frozen t = 1 outcomes.
                let es1 = r.level(1).map_or(f64::NAN, |x| x.es);
                prop_assert!(l.es >= es1 * (1.0 - 1e-12));
            }
        }
    }

    #[test]
    fn shards_partition_any_list(
        names in prop::collection::vec("[a-z]{0,6}", 0..60),
        n in 1usize..7,
    ) {
        let mut union: Vec<String> = (0..n)
            .flat_map(|i| Shard::new(i, n).expect("shard").select(&names))
            .collect();
        union.sort();
        let mut expected = names.clone();
        expected.sort();
        expected.dedup();
        prop_assert_eq!(union, expected);
    }
}
