//! Format-blind byte mutations: flips, interesting values, truncation, insertion,
//! deletion, duplication and splicing. The structure-aware mutators fall back on these,
//! and use them on a re-encoded model so the decoder sees broken framing too.

use crate::rng::Rng;

/// Byte values that often sit on a boundary of a length, a tag or a varint.
const INTERESTING: &[u8] = &[
    0x00, 0x01, 0x7f, 0x80, 0xff, 0x08, 0x10, 0x12, 0x1a, 0x22, 0x3a,
];

/// Applies one random byte-level mutation to `data` (never grows it past `max_len`).
/// `other` is a second input to splice from.
pub fn mutate(data: &mut Vec<u8>, other: &[u8], max_len: usize, rng: &mut Rng) {
    match rng.below(9) {
        0 | 1 => {
            // Flip one bit.
            if !data.is_empty() {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
        }
        2 => {
            if !data.is_empty() {
                let i = rng.below(data.len());
                data[i] = *rng.pick(INTERESTING).unwrap_or(&0);
            }
        }
        3 => {
            if !data.is_empty() {
                let i = rng.below(data.len());
                data[i] = rng.next_u64() as u8;
            }
        }
        4 => {
            // Truncate.
            let keep = rng.below(data.len() + 1);
            data.truncate(keep);
        }
        5 => {
            // Delete a short run.
            if !data.is_empty() {
                let i = rng.below(data.len());
                let n = (1 + rng.below(16)).min(data.len() - i);
                data.drain(i..i + n);
            }
        }
        6 => {
            // Insert random bytes.
            let i = rng.below(data.len() + 1);
            let n = 1 + rng.below(8);
            let fill: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            data.splice(i..i, fill);
        }
        7 => {
            // Duplicate a run in place.
            if !data.is_empty() {
                let i = rng.below(data.len());
                let n = (1 + rng.below(64)).min(data.len() - i);
                let run = data[i..i + n].to_vec();
                let at = rng.below(data.len() + 1);
                data.splice(at..at, run);
            }
        }
        _ => {
            // Splice: our head, the other input's tail.
            if !other.is_empty() {
                let cut = rng.below(data.len() + 1);
                let from = rng.below(other.len());
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
        }
    }
    data.truncate(max_len);
}

#[cfg(test)]
mod tests {
    use super::mutate;
    use crate::rng::Rng;

    #[test]
    fn mutations_respect_the_length_cap() {
        let mut rng = Rng::new(1);
        let other = vec![7u8; 300];
        let mut data = vec![1u8; 100];
        for _ in 0..10_000 {
            mutate(&mut data, &other, 256, &mut rng);
            assert!(data.len() <= 256);
        }
    }
}
