"""Reference embeddings for the embedder test: an independent NumPy implementation of
all-MiniLM-L6-v2 (BERT forward pass, mean pooling over the attention mask, L2 norm) in float64.

Regenerate (needs numpy, safetensors and tokenizers from PyPI):
    python3 tests/data/minilm/reference.py MODEL_DIR > tests/data/minilm/reference.json
where MODEL_DIR is `tessera models path minilm`.
"""
import json
import math
import sys

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

SENTENCES = [
    "The Eiffel Tower is located in Paris.",
    "Alan Shepard was born on Nov 18, 1923 and selected by NASA in 1959.",
    "A knowledge graph stores facts as subject, predicate and object.",
    "place of birth",
    "The location of a building or a geographic feature.",
    "Ünïcödé, emoji 😀 and 日本語 are tokenized too.",
    "short",
    "Aarhus Airport serves the city of Aarhus in Denmark, and its runway is 2,776 metres long.",
]

def layer_norm(x, w, b, eps=1e-12):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b

def gelu(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))

def main(model_dir):
    w = {k: v.astype(np.float64) for k, v in load_file(f"{model_dir}/model.safetensors").items()}
    w = {k[5:] if k.startswith("bert.") else k: v for k, v in w.items()}
    cfg = json.load(open(f"{model_dir}/config.json"))
    heads, layers = cfg["num_attention_heads"], cfg["num_hidden_layers"]
    tok = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
    tok.no_padding()
    tok.enable_truncation(256)
    out = []
    for s in SENTENCES:
        ids = tok.encode(s).ids
        n = len(ids)
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][:n]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        d = x.shape[1]
        hd = d // heads
        for i in range(layers):
            p = f"encoder.layer.{i}."
            lin = lambda t, name: t @ w[p + name + ".weight"].T + w[p + name + ".bias"]
            q = lin(x, "attention.self.query").reshape(n, heads, hd).transpose(1, 0, 2)
            k = lin(x, "attention.self.key").reshape(n, heads, hd).transpose(1, 0, 2)
            v = lin(x, "attention.self.value").reshape(n, heads, hd).transpose(1, 0, 2)
            a = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
            a = np.exp(a - a.max(-1, keepdims=True))
            a = a / a.sum(-1, keepdims=True)
            o = (a @ v).transpose(1, 0, 2).reshape(n, d)
            x = layer_norm(lin(o, "attention.output.dense") + x,
                           w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"])
            h = gelu(lin(x, "intermediate.dense"))
            x = layer_norm(lin(h, "output.dense") + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
        e = x.mean(0)
        e = e / np.linalg.norm(e)
        out.append({"sentence": s, "embedding": [round(float(v), 7) for v in e]})
    json.dump(out, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")

if __name__ == "__main__":
    main(sys.argv[1])
