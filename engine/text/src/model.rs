//! The models as the pipeline uses them: [`TextModel`] (chat prompts, batched generation,
//! scored options) and [`TextEmbedder`], implemented by the inference core's `LanguageModel`
//! (or a `RemoteModel` behind OpenAI-compatible servers) and `Embedder`. Unit tests of the control flow implement them with scripted fakes.

use crate::EdcError;
use tessera_llm::{
    ChatMessage, Embedder, GenerateOptions, Generation, LanguageModel, Prompt, RemoteModel,
};

/// The language model as the pipeline uses it (implemented by [`LanguageModel`]; unit tests of
/// the control flow use a scripted fake).
pub trait TextModel: Send + Sync {
    /// Which model this is (file name), recorded in provenance.
    fn identity(&self) -> String;
    /// A chat prompt: `fixed` (cacheable) then one user turn.
    fn render(&self, fixed: &[ChatMessage], user: &str) -> Result<Prompt, EdcError>;
    /// Generates for several prompts at once.
    fn generate(
        &self,
        prompts: &[Prompt],
        opts: &GenerateOptions,
    ) -> Result<Vec<Generation>, EdcError>;
    /// Log-probabilities of single-token options after the prompt.
    fn score(&self, prompt: &Prompt, options: &[&str]) -> Result<Vec<f32>, EdcError>;
    /// Generates for several prompts at once, with options per prompt.
    fn generate_each(
        &self,
        requests: &[(Prompt, GenerateOptions)],
    ) -> Result<Vec<Generation>, EdcError> {
        let mut out = Vec::with_capacity(requests.len());
        for (p, o) in requests {
            out.extend(self.generate(std::slice::from_ref(p), o)?);
        }
        Ok(out)
    }
    /// [`score`](Self::score) for several prompts at once.
    fn score_batch(&self, requests: &[(&Prompt, &[&str])]) -> Result<Vec<Vec<f32>>, EdcError> {
        requests.iter().map(|(p, o)| self.score(p, o)).collect()
    }
    /// Tokens of a scored prompt and how many of them its cached prefix holds, for the token
    /// budget; `None` where the model does not say (a remote one).
    fn prompt_size(&self, _prompt: &Prompt) -> Option<(usize, usize)> {
        None
    }
    /// A chat prompt of `fixed`, one user turn and the further turns `rest` (its answer and
    /// a follow-up question), for a generation under a Lark grammar; `None` where the model
    /// takes neither (a chat server's API).
    fn render_turns(
        &self,
        _fixed: &[ChatMessage],
        _user: &str,
        _rest: &[ChatMessage],
    ) -> Result<Option<Prompt>, EdcError> {
        Ok(None)
    }
}

/// [`TextModel::generate_each`], checked to answer every request.
pub(crate) fn generate_all(
    model: &dyn TextModel,
    requests: &[(Prompt, GenerateOptions)],
) -> Result<Vec<Generation>, EdcError> {
    let gens = model.generate_each(requests)?;
    if gens.len() != requests.len() {
        return Err(EdcError::Outputs {
            asked: requests.len(),
            got: gens.len(),
        });
    }
    Ok(gens)
}

/// Sentence embeddings as the pipeline uses them (implemented by [`Embedder`]).
pub trait TextEmbedder: Send + Sync {
    /// Embeds texts (L2-normalised vectors).
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EdcError>;
}

const USER_MARK: &str = "\u{1}TESSERA-USER-TURN\u{1}";

impl TextModel for LanguageModel {
    fn identity(&self) -> String {
        self.name().to_owned()
    }

    fn render(&self, fixed: &[ChatMessage], user: &str) -> Result<Prompt, EdcError> {
        let mut messages = fixed.to_vec();
        messages.push(ChatMessage::user(USER_MARK));
        let full = self.chat(&messages)?;
        // The fixed part ends where the last user turn's content begins: after the template's
        // header for that turn (a special token and a newline), a natural token boundary.
        Ok(match full.find(USER_MARK) {
            // The user turn is data: control tokens spelled in a document stay text.
            Some(at) => Prompt {
                prefix: full[..at].to_owned(),
                text: full[at..].replacen(USER_MARK, user, 1),
                data: std::iter::once(0..user.len()).collect(),
            },
            None => Prompt::text(full.replace(USER_MARK, user)),
        })
    }

    fn generate(
        &self,
        prompts: &[Prompt],
        opts: &GenerateOptions,
    ) -> Result<Vec<Generation>, EdcError> {
        Ok(self.generate_batch(prompts, opts)?)
    }

    fn score(&self, prompt: &Prompt, options: &[&str]) -> Result<Vec<f32>, EdcError> {
        Ok(LanguageModel::score(self, prompt, options)?)
    }

    fn generate_each(
        &self,
        requests: &[(Prompt, GenerateOptions)],
    ) -> Result<Vec<Generation>, EdcError> {
        Ok(LanguageModel::generate_each(self, requests)?)
    }

    fn score_batch(&self, requests: &[(&Prompt, &[&str])]) -> Result<Vec<Vec<f32>>, EdcError> {
        Ok(LanguageModel::score_batch(self, requests)?)
    }

    fn prompt_size(&self, prompt: &Prompt) -> Option<(usize, usize)> {
        LanguageModel::prompt_size(self, prompt).ok()
    }

    fn render_turns(
        &self,
        fixed: &[ChatMessage],
        user: &str,
        rest: &[ChatMessage],
    ) -> Result<Option<Prompt>, EdcError> {
        // The whole conversation rendered once: the fixed part ends where the user turn's
        // content begins (as in `render`), and the further turns follow it as the template
        // writes them. Their contents are data too (the model's answer quotes the text; the
        // follow-up names the text's words).
        let mut messages = fixed.to_vec();
        messages.push(ChatMessage::user(USER_MARK));
        messages.extend_from_slice(rest);
        let full = self.chat(&messages)?;
        let Some(at) = full.find(USER_MARK) else {
            return Ok(None);
        };
        let after = &full[at + USER_MARK.len()..];
        let mut text = String::with_capacity(user.len() + after.len());
        text.push_str(user);
        let mut data: Vec<std::ops::Range<usize>> = std::iter::once(0..user.len()).collect();
        let mut from = 0;
        for m in rest {
            let Some(k) = after[from..].find(m.content.as_str()) else {
                return Ok(None);
            };
            let start = user.len() + from + k;
            data.push(start..start + m.content.len());
            from += k + m.content.len();
        }
        text.push_str(after);
        Ok(Some(Prompt {
            prefix: full[..at].to_owned(),
            text,
            data,
        }))
    }
}

/// A model behind OpenAI-compatible servers: the servers apply the chat template, and a batch
/// is spread over their slots.
impl TextModel for RemoteModel {
    fn identity(&self) -> String {
        // A server often names its model by the path it loaded; provenance keeps the file name.
        let name = self.name();
        name.rsplit(['/', '\\']).next().unwrap_or(name).to_owned()
    }

    fn render(&self, fixed: &[ChatMessage], user: &str) -> Result<Prompt, EdcError> {
        Ok(self.prompt(fixed, user))
    }

    fn generate(
        &self,
        prompts: &[Prompt],
        opts: &GenerateOptions,
    ) -> Result<Vec<Generation>, EdcError> {
        let requests: Vec<(Prompt, GenerateOptions)> =
            prompts.iter().map(|p| (p.clone(), opts.clone())).collect();
        Ok(RemoteModel::generate_each(self, &requests)?)
    }

    fn score(&self, prompt: &Prompt, options: &[&str]) -> Result<Vec<f32>, EdcError> {
        Ok(RemoteModel::score_batch(self, &[(prompt, options)])?
            .pop()
            .unwrap_or_default())
    }

    fn generate_each(
        &self,
        requests: &[(Prompt, GenerateOptions)],
    ) -> Result<Vec<Generation>, EdcError> {
        Ok(RemoteModel::generate_each(self, requests)?)
    }

    fn score_batch(&self, requests: &[(&Prompt, &[&str])]) -> Result<Vec<Vec<f32>>, EdcError> {
        Ok(RemoteModel::score_batch(self, requests)?)
    }
}

impl TextEmbedder for Embedder {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EdcError> {
        Ok(Embedder::embed(self, texts)?)
    }
}
