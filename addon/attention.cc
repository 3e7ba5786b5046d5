// Multi-head attention in one N-API call: softmax(q·kᵀ·scale)·v with the heads merged back, [B,Nq,H·d].
// When the libtorch build has the fused at::scaled_dot_product_attention (2.x: flash / memory-efficient
// kernels; detected here at build time from its header) and the attention weights are not wanted, it is
// used; otherwise the explicit matmul–softmax–matmul path, which also returns the weights (report maps).
#include <ATen/ATen.h>

#include <cmath>

#include "args.h"

#if __has_include(<ATen/ops/scaled_dot_product_attention.h>)
#include <ATen/ops/scaled_dot_product_attention.h>
#define LOCUS_SDPA 1
#else
#define LOCUS_SDPA 0
#endif

namespace lx {

void defineAttention(Napi::Env env, Napi::Object e) {
  DEF("sdpaAvailable", { return Napi::Boolean::New(env, LOCUS_SDPA == 1); });
  // (q, k, v [B,H,N,d], scale, dropP, training, needWeights, forceExplicit) → [out [B,Nq,H·d], weights | null]
  DEF("attention", {
    auto& q = A(0);
    auto& k = A(1);
    auto& v = A(2);
    double scale = num(info[3], 1.0 / std::sqrt((double)q.size(-1)));
    double p = flag(info[5], false) ? num(info[4], 0) : 0;
    bool needWeights = flag(info[6], false), forceExplicit = flag(info[7], false);
    (void)forceExplicit;  // only read where the build has the fused kernel
    int64_t B = q.size(0), H = q.size(1), N = q.size(2), d = v.size(3);
    at::Tensor out, attn;
    bool fused = false;
#if LOCUS_SDPA
    // the fused kernel's default scale is 1/√d: use it only when that is the scale asked for
    fused = !needWeights && !forceExplicit && std::fabs(scale * std::sqrt((double)q.size(-1)) - 1) < 1e-9;
    if (fused) out = at::scaled_dot_product_attention(q, k, v, {}, p, false);
#endif
    if (!fused) {
      // matmul's backward needs q and k, not its output, so the scale can be applied in place
      attn = at::softmax(at::matmul(q, k.transpose(-2, -1)).mul_(scale), -1);
      out = at::matmul(p > 0 ? at::dropout(attn, p, true) : attn, v);
    }
    auto res = Napi::Array::New(env, 2);
    res.Set(0u, wrap(env, out.transpose(1, 2).reshape({B, N, H * d})));
    res.Set(1u, needWeights ? wrap(env, attn) : env.Null());
    return res;
  });
}

}  // namespace lx
