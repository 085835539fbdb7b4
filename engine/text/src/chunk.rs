//! Splitting texts longer than the model's context into overlapping chunks.
//!
//! Entry point: [`chunks`]. Chunks end at sentence boundaries where one lies in the last
//! quarter of the window; offsets are in characters (Unicode scalar values) of the whole text,
//! so provenance can point back into it.

/// One chunk of a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// First character (inclusive).
    pub start: usize,
    /// Last character (exclusive).
    pub end: usize,
    /// The chunk's text.
    pub text: String,
}

/// Splits `text` into chunks of at most `max_chars` characters, each starting `overlap`
/// characters before the previous one ended (a fact that straddles a boundary is seen whole
/// by one of them).
pub fn chunks(text: &str, max_chars: usize, overlap: usize) -> Vec<Chunk> {
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    let max_chars = max_chars.max(16);
    let overlap = overlap.min(max_chars / 2);
    if n <= max_chars {
        return vec![Chunk {
            start: 0,
            end: n,
            text: text.to_owned(),
        }];
    }
    let mut out = Vec::new();
    let mut start = 0;
    loop {
        let limit = (start + max_chars).min(n);
        let end = if limit == n {
            n
        } else {
            sentence_end(&chars, start + max_chars * 3 / 4, limit).unwrap_or(limit)
        };
        out.push(Chunk {
            start,
            end,
            text: chars[start..end].iter().collect(),
        });
        if end == n {
            return out;
        }
        let next = end.saturating_sub(overlap).max(start + 1);
        // Start the next chunk at a word boundary inside the overlap.
        start = (next..end)
            .find(|&i| i == 0 || chars[i - 1].is_whitespace())
            .unwrap_or(next);
    }
}

/// The last sentence end (after `.`, `!` or `?` and a space) in `from..to`.
fn sentence_end(chars: &[char], from: usize, to: usize) -> Option<usize> {
    (from..to)
        .rev()
        .find(|&i| i > 0 && chars[i].is_whitespace() && matches!(chars[i - 1], '.' | '!' | '?'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_texts_are_one_chunk() {
        let c = chunks("A short text.", 100, 20);
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].start, c[0].end), (0, 13));
    }

    #[test]
    fn long_texts_overlap_and_cover_everything() {
        let sentence = "Ærøskøbing is a town on the island of Ærø in Denmark. ";
        let text = sentence.repeat(40);
        let n = text.chars().count();
        let c = chunks(&text, 300, 60);
        assert!(c.len() > 5);
        assert_eq!(c[0].start, 0);
        assert_eq!(c.last().map(|c| c.end), Some(n));
        for w in c.windows(2) {
            assert!(w[1].start < w[0].end, "chunks overlap");
            assert!(w[1].start > w[0].start, "chunks advance");
        }
        for ch in &c {
            assert!(ch.end - ch.start <= 300);
            let expect: String = text
                .chars()
                .skip(ch.start)
                .take(ch.end - ch.start)
                .collect();
            assert_eq!(ch.text, expect, "offsets point into the text");
            assert!(
                ch.end == n || ch.text.ends_with('.'),
                "ends at a sentence: {:?}",
                ch.text
            );
        }
    }
}
