//! Check: does the text state each candidate triple, with the meaning its relation's
//! definition gives, and which way round? Each candidate becomes the statement its relation's
//! definition makes of it ([`prompts::statement`]), asked as "Does the text state this?" with
//! Yes/No scored; between two entities the reverse is asked too. All questions of the batch go
//! to the model in one scored pass, and those about one chunk open with its text, so the model
//! computes that text once for all of them. Entry point: [`Pipeline::check`]; its output is a
//! [`Support`] per claim, turned into a [`Verdict`] by a threshold
//! ([`EdcOptions::support`](crate::pipeline::EdcOptions::support)).

use crate::pipeline::{Item, Pipeline, Stage, Stats};
use crate::prompts;
use crate::EdcError;
use tessera_llm::Prompt;

/// One candidate triple to check.
#[derive(Debug, Clone)]
pub struct Claim {
    /// Index of its item (chunk) in the batch.
    pub item: usize,
    /// Subject name.
    pub subject: String,
    /// Object (entity name or literal text).
    pub object: String,
    /// The relation's name.
    pub relation: String,
    /// The relation's definition.
    pub definition: String,
    /// Whether the reverse is a possible reading (both ends are entities).
    pub reversible: bool,
    /// The extraction round that found it (0: the first; refinement rounds after).
    pub round: usize,
}

/// The model's answers about a claim: the probability of Yes for each reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Support {
    /// The text states the triple as written.
    pub forward: f32,
    /// The text states it with subject and object swapped (0 when not asked).
    pub reverse: f32,
}

/// What becomes of a claim.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Kept as written.
    Keep,
    /// Kept with subject and object swapped.
    Reverse,
    /// Not stated by the text.
    Drop,
}

impl Support {
    /// Keep a reading whose probability reaches `threshold`; the forward one first.
    pub fn verdict(&self, threshold: f32) -> Verdict {
        if self.forward >= threshold && self.forward >= self.reverse {
            Verdict::Keep
        } else if self.reverse >= threshold && self.reverse > self.forward {
            Verdict::Reverse
        } else {
            Verdict::Drop
        }
    }
}

impl Pipeline<'_> {
    /// Check: the support of each claim, all of the batch in one scored pass.
    pub fn check(
        &self,
        items: &[Item],
        claims: &[Claim],
        stats: &mut [Stats],
    ) -> Result<Vec<Support>, EdcError> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let fixed = prompts::check_fixed();
        // Claims of one chunk next to each other: the scorer shares a start only between
        // neighbours.
        let mut order: Vec<usize> = (0..claims.len()).collect();
        order.sort_by_key(|&k| claims[k].item);
        // One question per reading: the triple as written and, between two entities, its
        // reverse.
        let mut asks: Vec<(usize, bool, Prompt)> = Vec::with_capacity(2 * claims.len());
        for &k in &order {
            let c = &claims[k];
            let body = &items[c.item].body;
            let forward = prompts::statement(&c.definition, &c.relation, &c.subject, &c.object);
            asks.push((
                k,
                false,
                self.model
                    .render(&fixed, &prompts::check_user(body, &forward))?,
            ));
            if c.reversible {
                let reverse = prompts::statement(&c.definition, &c.relation, &c.object, &c.subject);
                asks.push((
                    k,
                    true,
                    self.model
                        .render(&fixed, &prompts::check_user(body, &reverse))?,
                ));
            }
            stats[c.item].model_calls += if c.reversible { 2 } else { 1 };
        }
        for (k, _, p) in &asks {
            stats[claims[*k].item].add_scored(Stage::Check, self.model.prompt_size(p));
        }
        let requests: Vec<(&Prompt, &[&str])> = asks
            .iter()
            .map(|(_, _, p)| (p, prompts::CHECK_ANSWERS))
            .collect();
        let scores = self.model.score_batch(&requests)?;
        let mut out = vec![
            Support {
                forward: 0.0,
                reverse: 0.0
            };
            claims.len()
        ];
        for ((k, reverse, _), s) in asks.iter().zip(&scores) {
            let yes = probabilities(s).first().copied().unwrap_or(0.0);
            if *reverse {
                out[*k].reverse = yes;
            } else {
                out[*k].forward = yes;
            }
        }
        for (c, s) in claims.iter().zip(&out) {
            tracing::debug!(
                subject = %c.subject,
                relation = %c.relation,
                object = %c.object,
                round = c.round,
                forward = s.forward,
                reverse = s.reverse,
                "support"
            );
        }
        Ok(out)
    }
}

/// Log-probabilities of the options, renormalised among them.
fn probabilities(logp: &[f32]) -> Vec<f32> {
    let max = logp.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return vec![0.0; logp.len()];
    }
    let e: Vec<f32> = logp.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = e.iter().sum();
    e.iter().map(|x| x / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_follow_the_threshold_and_the_likelier_reading() {
        let s = |forward, reverse| Support { forward, reverse };
        assert_eq!(s(0.7, 0.2).verdict(0.5), Verdict::Keep);
        assert_eq!(s(0.2, 0.7).verdict(0.5), Verdict::Reverse);
        assert_eq!(s(0.4, 0.4).verdict(0.5), Verdict::Drop);
        assert_eq!(s(0.45, 0.1).verdict(0.5), Verdict::Drop);
        // A low threshold keeps the forward reading when it is at least as likely.
        assert_eq!(s(0.3, 0.3).verdict(0.2), Verdict::Keep);
    }

    #[test]
    fn option_probabilities_sum_to_one() {
        let p = probabilities(&[-1.0, -2.0, -3.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(p[0] > p[1] && p[1] > p[2]);
        assert_eq!(probabilities(&[f32::NEG_INFINITY; 2]), vec![0.0, 0.0]);
    }
}
