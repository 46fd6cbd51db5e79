//! BPE merges recovered from a sentencepiece vocabulary that stores none, exactly as transformers
//! does it (`generate_merges` in `tokenization_utils_base.py`, called by the GGUF conversion's
//! `get_merges`), which mirrors the `tokenizers` library's `SentencePieceExtractor`.

use std::collections::{HashMap, HashSet};

/// One candidate merge: the two halves of a token, the token's score and the halves' lengths.
struct Candidate<'a> {
    left: &'a str,
    right: &'a str,
    score: f64,
    left_chars: usize,
    right_chars: usize,
}

/// The merges a vocabulary implies, best first.
///
/// `tokens` is the vocabulary in file order (a token's id is its index; of repeated spellings the
/// last one wins, as in a Python dict) and `scores` the sort key of each token (the file's
/// scores, or for Gemma minus the position). For each distinct token, in order of first
/// appearance and with the score of its last appearance, every split into two halves that are
/// both in the vocabulary is a candidate, ordered by the halves' ids; all candidates are then
/// stably sorted by score, the left half's length, then the right half's length (characters,
/// i.e. Unicode scalar values), all descending -- Python's `sorted(..., reverse=True)`, which
/// keeps ties in their original order.
///
/// Scores must not be NaN (the caller checks): Python's order of NaN keys is not a total order.
pub(crate) fn derive_merges(tokens: &[String], scores: &[f64]) -> Vec<(String, String)> {
    let mut ids: HashMap<&str, usize> = HashMap::with_capacity(tokens.len());
    // Byte lengths of the vocabulary's tokens: a split whose halves have no such length cannot
    // be a merge, which keeps a long token from costing time quadratic in its length.
    let mut lengths: HashSet<usize> = HashSet::new();
    for (id, token) in tokens.iter().enumerate() {
        ids.insert(token.as_str(), id);
        lengths.insert(token.len());
    }
    // Dict order: first appearance; dict value: last appearance.
    let mut order: Vec<&str> = Vec::with_capacity(ids.len());
    let mut score_of: HashMap<&str, f64> = HashMap::with_capacity(ids.len());
    for (token, &score) in tokens.iter().zip(scores) {
        // -0.0 and 0.0 are one key to Python; make them one to `total_cmp` as well.
        if score_of.insert(token.as_str(), score + 0.0).is_none() {
            order.push(token.as_str());
        }
    }

    let mut candidates: Vec<Candidate<'_>> = Vec::new();
    let mut local: Vec<(usize, usize, Candidate<'_>)> = Vec::new();
    for token in order {
        let Some(&score) = score_of.get(token) else {
            continue;
        };
        local.clear();
        let total_chars = token.chars().count();
        for (left_chars, (at, _)) in token.char_indices().enumerate().skip(1) {
            if !lengths.contains(&at) || !lengths.contains(&(token.len() - at)) {
                continue;
            }
            let Some((left, right)) = token.split_at_checked(at) else {
                continue;
            };
            if let (Some(&l), Some(&r)) = (ids.get(left), ids.get(right)) {
                local.push((
                    l,
                    r,
                    Candidate {
                        left,
                        right,
                        score,
                        left_chars,
                        right_chars: total_chars - left_chars,
                    },
                ));
            }
        }
        local.sort_by_key(|&(l, r, _)| (l, r));
        candidates.extend(local.drain(..).map(|(_, _, c)| c));
    }

    candidates.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(b.left_chars.cmp(&a.left_chars))
            .then(b.right_chars.cmp(&a.right_chars))
    });
    candidates
        .into_iter()
        .map(|c| (c.left.to_owned(), c.right.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merges(tokens: &[&str], scores: &[f64]) -> Vec<(String, String)> {
        let tokens: Vec<String> = tokens.iter().map(|t| (*t).to_owned()).collect();
        derive_merges(&tokens, scores)
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn best_score_first_then_longer_left_then_longer_right() {
        // "abc" splits as a|bc and ab|c; "ab" as a|b; "bc" as b|c.
        let got = merges(
            &["a", "b", "c", "ab", "bc", "abc"],
            &[0.0, 0.0, 0.0, -1.0, -2.0, -3.0],
        );
        assert_eq!(
            got,
            pairs(&[("a", "b"), ("b", "c"), ("ab", "c"), ("a", "bc")])
        );
    }

    #[test]
    fn ties_keep_the_vocabulary_order() {
        // Equal scores and lengths: the order of the merged tokens' first appearance.
        let got = merges(&["x", "y", "z", "yz", "xy"], &[0.0, 0.0, 0.0, -1.0, -1.0]);
        assert_eq!(got, pairs(&[("y", "z"), ("x", "y")]));
    }

    #[test]
    fn splits_on_characters_not_bytes() {
        let got = merges(&["é", "▁", "▁é"], &[0.0, 0.0, -1.0]);
        assert_eq!(got, pairs(&[("▁", "é")]));
    }

    #[test]
    fn repeated_tokens_take_the_last_id_and_score_but_the_first_position() {
        // "ab" appears twice: scored -5 (the last), ordered where it first appeared.
        let got = merges(
            &["a", "b", "c", "ab", "bc", "ab"],
            &[0.0, 0.0, 0.0, -1.0, -5.0, -5.0],
        );
        assert_eq!(got, pairs(&[("a", "b"), ("b", "c")]));
    }
}
