//! "Did you mean …?" suggestions for misspelt names.
//!
//! Every message that rejects a name (a fact, an enum value, a programme id, a command-line
//! option) should offer the closest valid name when there is one. [`nearest`] finds it;
//! [`DidYouMean`] renders it.

use std::fmt;

/// The optimal-string-alignment distance between `a` and `b`, counted in characters: the
/// number of insertions, deletions, substitutions and transpositions of two adjacent characters
/// needed to turn one into the other (no substring is edited twice). Case-sensitive; callers
/// lowercase first when they want otherwise.
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    osa(&a, &b)
}

fn osa(a: &[char], b: &[char]) -> usize {
    // Three rolling rows: two rows back (for transpositions), previous and current.
    let width = b.len() + 1;
    let mut two_back: Vec<usize> = vec![0; width];
    let mut prev: Vec<usize> = (0..width).collect();
    let mut cur: Vec<usize> = vec![0; width];
    let mut prev_a: Option<char> = None;
    for (i, &ca) in a.iter().enumerate() {
        let mut left = i + 1;
        let mut prev_b: Option<char> = None;
        for (j, ((&cb, slot), (&diag, &up))) in b
            .iter()
            .zip(cur.iter_mut().skip(1))
            .zip(prev.iter().zip(prev.iter().skip(1)))
            .enumerate()
        {
            let cost = usize::from(ca != cb);
            let mut d = (diag + cost).min(up + 1).min(left + 1);
            if prev_a == Some(cb)
                && prev_b == Some(ca)
                && let Some(&t) = two_back.get(j.wrapping_sub(1))
            {
                d = d.min(t + 1);
            }
            *slot = d;
            left = d;
            prev_b = Some(cb);
        }
        if let Some(first) = cur.first_mut() {
            *first = i + 1;
        }
        std::mem::swap(&mut two_back, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
        prev_a = Some(ca);
    }
    prev.last().copied().unwrap_or(0)
}

/// The candidate closest to `input`, ignoring case, if it is close enough to be a plausible
/// misspelling: at most `max(2, len / 3)` edits away (where `len` is the length of `input` in
/// characters), and not a complete rewrite (fewer edits than the longer of the two has
/// characters). On a tie, the first candidate wins.
///
/// ```
/// use refuge_core::suggest::nearest;
/// assert_eq!(nearest("nationalty", ["nationality", "sex"]), Some("nationality"));
/// assert_eq!(nearest("xyz", ["nationality", "sex"]), None);
/// ```
pub fn nearest<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let needle: Vec<char> = input.to_lowercase().chars().collect();
    let limit = (needle.len() / 3).max(2);
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        let hay: Vec<char> = candidate.to_lowercase().chars().collect();
        // The length difference is a lower bound on the distance: skip hopeless candidates.
        if needle.len().abs_diff(hay.len()) > limit {
            continue;
        }
        let d = osa(&needle, &hay);
        if d > limit || d >= needle.len().max(hay.len()) {
            continue;
        }
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// Renders an optional suggestion as ` (did you mean "x"?)`, or as nothing.
///
/// ```
/// use refuge_core::suggest::DidYouMean;
/// assert_eq!(format!("unknown{}", DidYouMean(Some("sex"))), "unknown (did you mean \"sex\"?)");
/// assert_eq!(format!("unknown{}", DidYouMean(None)), "unknown");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DidYouMean<'a>(pub Option<&'a str>);

impl fmt::Display for DidYouMean<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(s) => write!(f, " (did you mean {s:?}?)"),
            None => Ok(()),
        }
    }
}

/// The longest input (in characters) echoed back in an error message; longer inputs are cut.
pub(crate) const CLIP_CHARS: usize = 40;

/// `s`, cut to [`CLIP_CHARS`] characters with a trailing `…` when longer, so that error
/// messages stay readable whatever the input.
pub(crate) fn clip(s: &str) -> String {
    match s.char_indices().nth(CLIP_CHARS) {
        Some((at, _)) => {
            let mut out = s.get(..at).unwrap_or_default().to_owned();
            out.push('…');
            out
        }
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("", ""), 0);
        assert_eq!(distance("abc", ""), 3);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("flaw", "lawn"), 2);
        assert_eq!(distance("male", "male"), 0);
        assert_eq!(
            distance("mael", "male"),
            1,
            "adjacent transposition counts once"
        );
        assert_eq!(
            distance("ca", "abc"),
            3,
            "optimal string alignment, not full Damerau"
        );
        assert_eq!(
            distance("Male", "male"),
            1,
            "distance itself is case-sensitive"
        );
        assert_eq!(
            distance("паспорт", "паспотр"),
            1,
            "counts characters, not bytes"
        );
    }

    #[test]
    fn nearest_picks_closest_within_limit() {
        let names = ["female", "male", "other"];
        assert_eq!(nearest("mal", names), Some("male"));
        assert_eq!(nearest("femal", names), Some("female"));
        assert_eq!(nearest("MALE", names), Some("male"), "case-insensitive");
        assert_eq!(
            nearest("male", names),
            Some("male"),
            "exact match is nearest"
        );
        assert_eq!(nearest("othre", names), Some("other"));
        assert_eq!(nearest("xyzzy", names), None);
        assert_eq!(nearest("", names), None);
        assert_eq!(
            nearest("x", ["ab", "no"]),
            None,
            "a complete rewrite is no suggestion"
        );
    }

    #[test]
    fn limit_grows_with_length() {
        // 13 to 15 characters: limit 4 or 5.
        let c = ["international_law"];
        assert_eq!(nearest("internationl_lw", c), Some("international_law"));
        assert_eq!(nearest("intrnatonl_lw", c), Some("international_law"));
        assert_eq!(nearest("inter_law", c), None);
        // Short input: limit 2.
        assert_eq!(nearest("sx", ["sex"]), Some("sex"));
        assert_eq!(nearest("s", ["sex"]), Some("sex"));
        assert_eq!(nearest("q", ["sex"]), None);
    }

    #[test]
    fn tie_goes_to_first() {
        assert_eq!(nearest("cat", ["bat", "hat"]), Some("bat"));
        assert_eq!(nearest("cat", ["hat", "bat"]), Some("hat"));
        assert_eq!(
            nearest("cat", ["bats", "hat"]),
            Some("hat"),
            "strictly closer wins"
        );
    }

    #[test]
    fn empty_candidates() {
        assert_eq!(nearest("x", std::iter::empty()), None);
    }

    #[test]
    fn did_you_mean_renders() {
        assert_eq!(DidYouMean(Some("a")).to_string(), " (did you mean \"a\"?)");
        assert_eq!(DidYouMean(None).to_string(), "");
    }

    #[test]
    fn clip_cuts_long_input() {
        assert_eq!(clip("short"), "short");
        let long = "я".repeat(100);
        let clipped = clip(&long);
        assert_eq!(clipped.chars().count(), CLIP_CHARS + 1);
        assert!(clipped.ends_with('…'));
        assert_eq!(clip(&"a".repeat(CLIP_CHARS)), "a".repeat(CLIP_CHARS));
    }
}
