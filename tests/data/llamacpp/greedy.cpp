// Reference greedy decoding with llama.cpp, for tests/llama_agreement.rs.
// Reads prompts as lines of space-separated token ids on stdin; for each, decodes greedily
// for N steps and prints one JSON line: the generated ids and, per step, the top-2 ids and
// logits. Built and run by tests/data/llamacpp/regenerate.sh.
#include "llama.h"
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

static void quiet(enum ggml_log_level, const char *, void *) {}

int main(int argc, char ** argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.gguf STEPS < prompts\n", argv[0]);
        return 1;
    }
    const int steps = atoi(argv[2]);
    llama_log_set(quiet, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (!model) { fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }
    const llama_vocab * vocab = llama_model_get_vocab(model);
    const int n_vocab = llama_vocab_n_tokens(vocab);
    std::string line;
    while (std::getline(std::cin, line)) {
        std::vector<llama_token> prompt;
        std::istringstream in(line);
        int id;
        while (in >> id) prompt.push_back(id);
        if (prompt.empty()) continue;
        llama_context_params cp = llama_context_default_params();
        cp.n_ctx = prompt.size() + steps + 8;
        cp.n_batch = cp.n_ctx;
        cp.n_threads = 1;
        cp.n_threads_batch = 1;
        // An f32 KV cache and plain attention: the reference then differs from Tessera (which
        // keeps f32 keys and values) only by the matmul kernels.
        cp.type_k = GGML_TYPE_F32;
        cp.type_v = GGML_TYPE_F32;
        cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
        llama_context * ctx = llama_init_from_model(model, cp);
        std::vector<llama_token> out;
        std::ostringstream top;
        llama_batch batch = llama_batch_get_one(prompt.data(), prompt.size());
        llama_token next = 0;
        for (int s = 0; s < steps; s++) {
            if (llama_decode(ctx, batch) != 0) { fprintf(stderr, "decode failed\n"); return 1; }
            const float * logits = llama_get_logits_ith(ctx, -1);
            int a = 0, b = -1;
            for (int i = 1; i < n_vocab; i++) {
                if (logits[i] > logits[a]) { b = a; a = i; }
                else if (b < 0 || logits[i] > logits[b]) { b = i; }
            }
            if (s) top << ",";
            top << "[" << a << "," << logits[a] << "," << b << "," << logits[b] << "]";
            next = a;
            out.push_back(next);
            if (llama_vocab_is_eog(vocab, next)) break;
            batch = llama_batch_get_one(&out.back(), 1);
        }
        printf("{\"prompt\":[");
        for (size_t i = 0; i < prompt.size(); i++) printf(i ? ",%d" : "%d", prompt[i]);
        printf("],\"tokens\":[");
        for (size_t i = 0; i < out.size(); i++) printf(i ? ",%d" : "%d", out[i]);
        printf("],\"top\":[%s]}\n", top.str().c_str());
        fflush(stdout);
        llama_free(ctx);
    }
    llama_model_free(model);
    return 0;
}
