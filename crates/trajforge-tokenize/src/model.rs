//! A Hugging Face tokenizer folder (`tokenizer.json` + `tokenizer_config.json`) loaded as one
//! [`Model`]: the `tokenizers` tokenizer, the chat template, and a segment encoder that caches
//! what repeats across trajectories.
//!
//! Why the cache is exact: `tokenizers` first cuts the text at added tokens (`<|im_start|>`,
//! `<tool_call>`, …) and encodes the pieces between them independently. When every added token
//! is matched on raw text (`normalized: false`, no `lstrip`/`rstrip`/`single_word`), cutting the
//! text ourselves at the same places and encoding each piece alone gives the same ids, so a
//! piece seen before (the system prompt and tool block of every row, a file viewed by every
//! rollout of a task) is looked up instead of encoded. Tokenizers where this does not hold fall
//! back to encoding the whole text; tests compare both paths.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};
use tokenizers::Tokenizer;

use crate::TokenizeError;
use crate::template::ChatTemplate;

/// The Qwen2.5-Coder tokenizer bundled with trajforge (Apache-2.0, see its NOTICE.md).
const QWEN_TOKENIZER_ZST: &[u8] = include_bytes!("../assets/qwen2.5-coder/tokenizer.json.zst");
const QWEN_CONFIG: &str = include_str!("../assets/qwen2.5-coder/tokenizer_config.json");

/// Tokens of one text: ids and the byte offset in the text where each token starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub starts: Vec<u32>,
}

impl Encoded {
    fn extend_shifted(&mut self, other: &Encoded, shift: u32) {
        self.ids.extend_from_slice(&other.ids);
        self.starts.extend(other.starts.iter().map(|s| s + shift));
    }
}

/// Where added tokens cut the text, when that cut reproduces the tokenizer's own.
struct Splitter {
    matcher: AhoCorasick,
    ids: Vec<u32>,
}

/// A tokenizer with its chat template.
pub struct Model {
    tokenizer: Tokenizer,
    template: ChatTemplate,
    splitter: Option<Splitter>,
    /// Where it was loaded from (`bundled:qwen2.5-coder` for the default).
    pub source: String,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("source", &self.source)
            .finish()
    }
}

/// The bundled tokenizer's files as a Hugging Face tokenizer folder holds them
/// (`tokenizer.json`, `tokenizer_config.json`), for model folders that must carry them.
pub fn bundled_tokenizer_files() -> Result<Vec<(String, Vec<u8>)>, TokenizeError> {
    let json = zstd::decode_all(QWEN_TOKENIZER_ZST)
        .map_err(|e| TokenizeError::Internal(format!("bundled tokenizer: {e}")))?;
    Ok(vec![
        ("tokenizer.json".into(), json),
        (
            "tokenizer_config.json".into(),
            QWEN_CONFIG.as_bytes().to_vec(),
        ),
    ])
}

impl Model {
    /// The bundled Qwen2.5-Coder tokenizer and chat template.
    pub fn qwen2_5_coder() -> Result<Model, TokenizeError> {
        let json = zstd::decode_all(QWEN_TOKENIZER_ZST)
            .map_err(|e| TokenizeError::Internal(format!("bundled tokenizer: {e}")))?;
        let template = ChatTemplate::from_config_text(QWEN_CONFIG, "bundled tokenizer_config")?;
        Model::new(&json, template, "bundled:qwen2.5-coder".into())
    }

    /// A tokenizer folder: `tokenizer.json` (or `tokenizer.json.zst`) and the chat template of
    /// `tokenizer_config.json` (or `chat_template.jinja`).
    pub fn from_dir(dir: &Path) -> Result<Model, TokenizeError> {
        let plain = dir.join("tokenizer.json");
        let packed = dir.join("tokenizer.json.zst");
        let json = if plain.is_file() {
            read(&plain)?
        } else if packed.is_file() {
            zstd::decode_all(read(&packed)?.as_slice()).map_err(|e| config(&packed, e))?
        } else {
            return Err(TokenizeError::Config(format!(
                "{}: no tokenizer.json (a Hugging Face tokenizer folder is expected)",
                dir.display()
            )));
        };
        let template = ChatTemplate::from_dir(dir)?;
        Model::new(&json, template, dir.display().to_string())
    }

    /// `dir`, or the bundled default when none is given.
    pub fn load(dir: Option<&Path>) -> Result<Model, TokenizeError> {
        match dir {
            Some(d) => Model::from_dir(d),
            None => Model::qwen2_5_coder(),
        }
    }

    fn new(json: &[u8], template: ChatTemplate, source: String) -> Result<Model, TokenizeError> {
        let tokenizer = Tokenizer::from_bytes(json)
            .map_err(|e| TokenizeError::Config(format!("{source}: tokenizer.json: {e}")))?;
        let splitter = splitter(&tokenizer)?;
        Ok(Model {
            tokenizer,
            template,
            splitter,
            source,
        })
    }

    pub fn template(&self) -> &ChatTemplate {
        &self.template
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Whether repeated pieces can be cached (see the module docs).
    pub fn caches_segments(&self) -> bool {
        self.splitter.is_some()
    }

    /// Encodes `text` as `apply_chat_template` does (no special tokens added), whole.
    pub fn encode_whole(&self, text: &str) -> Result<Encoded, TokenizeError> {
        let enc = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| TokenizeError::Internal(format!("tokenizer: {e}")))?;
        Ok(Encoded {
            ids: enc.get_ids().to_vec(),
            starts: enc.get_offsets().iter().map(|o| o.0 as u32).collect(),
        })
    }

    /// Encodes `text`, piece by piece through `cache` when the tokenizer allows it.
    pub fn encode(&self, text: &str, cache: &mut SegmentCache) -> Result<Encoded, TokenizeError> {
        let Some(split) = &self.splitter else {
            return self.encode_whole(text);
        };
        let mut out = Encoded::default();
        let mut at = 0usize;
        for m in split.matcher.find_iter(text) {
            self.encode_piece(&text[at..m.start()], at, cache, &mut out)?;
            out.ids.push(split.ids[m.pattern().as_usize()]);
            out.starts.push(m.start() as u32);
            at = m.end();
        }
        self.encode_piece(&text[at..], at, cache, &mut out)?;
        Ok(out)
    }

    fn encode_piece(
        &self,
        piece: &str,
        at: usize,
        cache: &mut SegmentCache,
        out: &mut Encoded,
    ) -> Result<(), TokenizeError> {
        if piece.is_empty() {
            return Ok(());
        }
        if piece.len() < SegmentCache::MIN_BYTES {
            out.extend_shifted(&self.encode_whole(piece)?, at as u32);
            return Ok(());
        }
        let key = xxhash_rust::xxh3::xxh3_128(piece.as_bytes());
        if let Some(hit) = cache.get(key) {
            out.extend_shifted(&hit, at as u32);
            return Ok(());
        }
        let enc = Arc::new(self.encode_whole(piece)?);
        out.extend_shifted(&enc, at as u32);
        cache.put(key, piece.len(), enc);
        Ok(())
    }

    /// Text of `ids` (special tokens kept).
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizeError> {
        self.tokenizer
            .decode(ids, false)
            .map_err(|e| TokenizeError::Internal(format!("decode: {e}")))
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TokenizeError> {
    std::fs::read(path).map_err(|e| config(path, e))
}

fn config(path: &Path, e: impl std::fmt::Display) -> TokenizeError {
    TokenizeError::Config(format!("{}: {e}", path.display()))
}

/// The added-token cut, or `None` when some added token is not matched on raw text.
fn splitter(tokenizer: &Tokenizer) -> Result<Option<Splitter>, TokenizeError> {
    let mut added: Vec<(u32, String)> = Vec::new();
    for (id, tok) in tokenizer.get_added_tokens_decoder() {
        if tok.normalized || tok.lstrip || tok.rstrip || tok.single_word {
            return Ok(None);
        }
        added.push((id, tok.content));
    }
    if added.is_empty() {
        return Ok(None);
    }
    added.sort();
    let matcher = AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostLongest)
        .build(added.iter().map(|(_, c)| c.as_str()))
        .map_err(|e| TokenizeError::Internal(format!("added-token matcher: {e}")))?;
    Ok(Some(Splitter {
        matcher,
        ids: added.into_iter().map(|(id, _)| id).collect(),
    }))
}

/// Encoded pieces by content hash, bounded in bytes of source text; cleared whole when full
/// (what repeats within a task's rollouts is seen again soon after).
#[derive(Debug)]
pub struct SegmentCache {
    map: HashMap<u128, Arc<Encoded>>,
    bytes: usize,
    budget: usize,
    pub hits: u64,
    pub misses: u64,
}

impl SegmentCache {
    /// Pieces shorter than this are encoded directly (hashing would cost about as much).
    const MIN_BYTES: usize = 64;

    /// A cache holding pieces up to `budget` bytes of text (0: no caching).
    pub fn new(budget: usize) -> SegmentCache {
        SegmentCache {
            map: HashMap::new(),
            bytes: 0,
            budget,
            hits: 0,
            misses: 0,
        }
    }

    fn get(&mut self, key: u128) -> Option<Arc<Encoded>> {
        let hit = self.map.get(&key).cloned();
        match hit {
            Some(_) => self.hits += 1,
            None => self.misses += 1,
        }
        hit
    }

    fn put(&mut self, key: u128, len: usize, enc: Arc<Encoded>) {
        if len > self.budget {
            return;
        }
        if self.bytes + len > self.budget {
            self.map.clear();
            self.bytes = 0;
        }
        self.bytes += len;
        self.map.insert(key, enc);
    }
}

impl Default for SegmentCache {
    /// 64 MiB of text.
    fn default() -> Self {
        SegmentCache::new(64 << 20)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Model {
        Model::qwen2_5_coder().expect("bundled tokenizer loads")
    }

    #[test]
    fn bundled_qwen_has_the_22_added_tokens_and_caches_segments() {
        let m = model();
        let added = m.tokenizer().get_added_tokens_decoder();
        assert_eq!(added.len(), 22);
        assert_eq!(m.tokenizer().token_to_id("<|im_start|>"), Some(151644));
        assert_eq!(m.tokenizer().token_to_id("<|file_sep|>"), Some(151664));
        assert!(m.caches_segments());
    }

    /// The cached piece-by-piece path gives the ids and offsets of a whole-text encode, on
    /// text full of added tokens, repeats, multi-byte characters and whitespace runs.
    #[test]
    fn segment_encoding_equals_whole_encoding() {
        let m = model();
        let body = "def f(x):\n    return x  # é, 日本語 🚀\n\n\t  \n".repeat(4);
        let texts = [
            format!("<|im_start|>system\n{body}<|im_end|>\n<|im_start|>user\n{body}<|im_end|>"),
            format!("{body}<tool_call>\n{{\"a\": 1}}\n</tool_call><|im_end|>\n<|im_start|>"),
            "<|im_start|><|im_end|><|im_start|>assistant\n".to_string(),
            format!("  {body}<|im_end|>   {body}"),
            String::new(),
        ];
        let mut cache = SegmentCache::default();
        for _round in 0..2 {
            for t in &texts {
                let fast = m.encode(t, &mut cache).expect("encodes");
                assert_eq!(fast, m.encode_whole(t).expect("encodes"), "{t:?}");
            }
        }
        assert!(cache.hits > 0, "repeated pieces are found in the cache");
    }

    #[test]
    fn a_folder_without_tokenizer_json_says_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = Model::from_dir(dir.path()).expect_err("empty folder");
        assert!(err.to_string().contains("no tokenizer.json"), "{err}");
    }
}
