// Tensor math as N-API functions: elementwise, matrix products, shape and indexing, reductions,
// neural-network functions and in-place updates. Each returns a new handle (in-place ones nothing).
#include <ATen/ATen.h>

#include "args.h"

namespace lx {

void defineMathOps(Napi::Env env, Napi::Object e) {
  // ---- elementwise: second operand may be a tensor or a number
#define BIN(name, op)                                                   \
  DEF(name, {                                                           \
    if (isTensor(info[1])) return wrap(env, at::op(A(0), A(1)));       \
    return wrap(env, at::op(A(0), scalar(info[1])));                   \
  })
  BIN("mul", mul);
  BIN("div", div);
  BIN("pow", pow);
  BIN("eq", eq);
  BIN("ne", ne);
  BIN("lt", lt);
  BIN("le", le);
  BIN("gt", gt);
  BIN("ge", ge);
  BIN("fmod", fmod);
  BIN("remainder", remainder);
  DEF("add", {
    auto alpha = info[2].IsNumber() ? scalar(info[2]) : at::Scalar((int64_t)1);
    if (isTensor(info[1])) return wrap(env, at::add(A(0), A(1), alpha));
    return wrap(env, at::add(A(0), scalar(info[1]), alpha));
  });
  DEF("sub", {
    auto alpha = info[2].IsNumber() ? scalar(info[2]) : at::Scalar((int64_t)1);
    if (isTensor(info[1])) return wrap(env, at::sub(A(0), A(1), alpha));
    return wrap(env, at::sub(A(0), scalar(info[1]), alpha));
  });
  DEF("rsub", { return wrap(env, at::rsub(A(0), scalar(info[1]))); });
  DEF("maximum", { return wrap(env, at::maximum(A(0), A(1))); });
  DEF("minimum", { return wrap(env, at::minimum(A(0), A(1))); });
  DEF("atan2", { return wrap(env, at::atan2(A(0), A(1))); });
  DEF("logicalAnd", { return wrap(env, at::logical_and(A(0), A(1))); });
  DEF("logicalOr", { return wrap(env, at::logical_or(A(0), A(1))); });
  DEF("clamp", {
    c10::optional<at::Scalar> lo, hi;
    if (info[1].IsNumber()) lo = scalar(info[1]);
    if (info[2].IsNumber()) hi = scalar(info[2]);
    return wrap(env, at::clamp(A(0), lo, hi));
  });
  DEF("where", {
    if (isTensor(info[1]) && isTensor(info[2])) return wrap(env, at::where(A(0), A(1), A(2)));
    if (isTensor(info[1])) return wrap(env, at::where(A(0), A(1), scalar(info[2])));
    if (isTensor(info[2])) return wrap(env, at::where(A(0), scalar(info[1]), A(2)));
    return wrap(env, at::where(A(0), scalar(info[1]), scalar(info[2])));
  });
  DEF("maskedFill", {
    if (isTensor(info[2])) return wrap(env, at::masked_fill(A(0), A(1), A(2)));
    return wrap(env, at::masked_fill(A(0), A(1), scalar(info[2])));
  });

#define UN(name, op) DEF(name, { return wrap(env, at::op(A(0))); })
  UN("neg", neg);
  UN("exp", exp);
  UN("log", log);
  UN("log1p", log1p);
  UN("sqrt", sqrt);
  UN("rsqrt", rsqrt);
  UN("abs", abs);
  UN("sign", sign);
  UN("sin", sin);
  UN("cos", cos);
  UN("tanh", tanh);
  UN("sigmoid", sigmoid);
  UN("relu", relu);
  UN("silu", silu);
  UN("erf", erf);
  UN("erfinv", erfinv);
  UN("floor", floor);
  UN("ceil", ceil);
  UN("round", round);
  UN("reciprocal", reciprocal);
  UN("square", square);
  UN("isnan", isnan);
  UN("isfinite", isfinite);
  UN("logicalNot", logical_not);
  DEF("gelu", { return wrap(env, at::gelu(A(0), str(info[1], "none"))); });

  // ---- matrix products
  DEF("matmul", { return wrap(env, at::matmul(A(0), A(1))); });
  DEF("mm", { return wrap(env, at::mm(A(0), A(1))); });
  DEF("bmm", { return wrap(env, at::bmm(A(0), A(1))); });
  DEF("addmm", { return wrap(env, at::addmm(A(0), A(1), A(2), num(info[3], 1), num(info[4], 1))); });
  DEF("baddbmm", { return wrap(env, at::baddbmm(A(0), A(1), A(2), num(info[3], 1), num(info[4], 1))); });
  DEF("linear", { return wrap(env, at::linear(A(0), A(1), optT(info[2]))); });
  DEF("einsum", { return wrap(env, at::einsum(info[0].As<Napi::String>().Utf8Value(), unwrapList(info[1]))); });
  DEF("conv2d", {
    return wrap(env, at::conv2d(A(0), A(1), optT(info[2]), intList(info[3]), intList(info[4]), intList(info[5]),
                                i64(info[6], 1)));
  });

  // ---- shape and indexing
  DEF("reshape", { return wrap(env, at::reshape(A(0), intList(info[1]))); });
  DEF("view", { return wrap(env, A(0).view(intList(info[1]))); });
  DEF("permute", { return wrap(env, A(0).permute(intList(info[1]))); });
  DEF("transpose", { return wrap(env, A(0).transpose(i64(info[1], 0), i64(info[2], 1))); });
  DEF("unsqueeze", { return wrap(env, A(0).unsqueeze(i64(info[1], 0))); });
  DEF("squeeze", {
    if (info[1].IsNumber()) return wrap(env, A(0).squeeze(i64(info[1], 0)));
    return wrap(env, A(0).squeeze());
  });
  DEF("flatten", { return wrap(env, A(0).flatten(i64(info[1], 0), i64(info[2], -1))); });
  DEF("expand", { return wrap(env, A(0).expand(intList(info[1]))); });
  DEF("repeat", { return wrap(env, A(0).repeat(intList(info[1]))); });
  DEF("repeatInterleave", { return wrap(env, A(0).repeat_interleave(i64(info[1], 1), i64(info[2], 0))); });
  DEF("narrow", { return wrap(env, A(0).narrow(i64(info[1], 0), i64(info[2], 0), i64(info[3], 1))); });
  DEF("slice", {
    c10::optional<int64_t> start, end;
    if (info[2].IsNumber()) start = i64(info[2], 0);
    if (info[3].IsNumber()) end = i64(info[3], 0);
    return wrap(env, at::slice(A(0), i64(info[1], 0), start, end, i64(info[4], 1)));
  });
  DEF("select", { return wrap(env, A(0).select(i64(info[1], 0), i64(info[2], 0))); });
  DEF("indexSelect", { return wrap(env, at::index_select(A(0), i64(info[1], 0), A(2))); });
  DEF("index", {  // advanced indexing: list of index tensors or null per leading dim
    auto arr = info[1].As<Napi::Array>();
    c10::List<c10::optional<at::Tensor>> idx;
    for (uint32_t i = 0; i < arr.Length(); i++) idx.push_back(optT(arr.Get(i)));
    return wrap(env, at::index(A(0), idx));
  });
  DEF("indexPut", {  // out-of-place: returns a copy with values put at the indices
    auto arr = info[1].As<Napi::Array>();
    c10::List<c10::optional<at::Tensor>> idx;
    for (uint32_t i = 0; i < arr.Length(); i++) idx.push_back(optT(arr.Get(i)));
    return wrap(env, at::index_put(A(0), idx, A(2), flag(info[3], false)));
  });
  DEF("gather", { return wrap(env, at::gather(A(0), i64(info[1], 0), A(2))); });
  DEF("scatter", {
    if (isTensor(info[3])) return wrap(env, at::scatter(A(0), i64(info[1], 0), A(2), A(3)));
    return wrap(env, at::scatter(A(0), i64(info[1], 0), A(2), scalar(info[3])));
  });
  DEF("scatterAdd", { return wrap(env, at::scatter_add(A(0), i64(info[1], 0), A(2), A(3))); });
  DEF("cat", { return wrap(env, at::cat(unwrapList(info[0]), i64(info[1], 0))); });
  DEF("stack", { return wrap(env, at::stack(unwrapList(info[0]), i64(info[1], 0))); });
  DEF("split", {
    if (info[1].IsNumber()) return wrapList(env, at::split(A(0), i64(info[1], 1), i64(info[2], 0)));
    return wrapList(env, at::split_with_sizes(A(0), intList(info[1]), i64(info[2], 0)));
  });
  DEF("chunk", { return wrapList(env, at::chunk(A(0), i64(info[1], 1), i64(info[2], 0))); });
  DEF("flip", { return wrap(env, at::flip(A(0), intList(info[1]))); });
  DEF("roll", { return wrap(env, at::roll(A(0), intList(info[1]), intList(info[2]))); });
  DEF("rot90", { return wrap(env, at::rot90(A(0), i64(info[1], 1), intList(info[2]))); });
  DEF("tril", { return wrap(env, at::tril(A(0), i64(info[1], 0))); });
  DEF("triu", { return wrap(env, at::triu(A(0), i64(info[1], 0))); });
  DEF("pad", { return wrap(env, at::constant_pad_nd(A(0), intList(info[1]), num(info[2], 0))); });
  DEF("oneHot", { return wrap(env, at::one_hot(A(0), i64(info[1], -1))); });
  DEF("nonzero", { return wrap(env, at::nonzero(A(0))); });

  // ---- reductions
#define RED(name, op)                                                                       \
  DEF(name, {                                                                               \
    if (hasDims(info[1])) return wrap(env, at::op(A(0), intList(info[1]), flag(info[2], false))); \
    return wrap(env, at::op(A(0)));                                                         \
  })
  RED("sum", sum);
  RED("mean", mean);
  DEF("amax", { return wrap(env, at::amax(A(0), intList(info[1]), flag(info[2], false))); });
  DEF("amin", { return wrap(env, at::amin(A(0), intList(info[1]), flag(info[2], false))); });
  DEF("maxAll", { return wrap(env, at::max(A(0))); });
  DEF("minAll", { return wrap(env, at::min(A(0))); });
  DEF("max", { return wrapPair(env, at::max(A(0), i64(info[1], 0), flag(info[2], false))); });
  DEF("min", { return wrapPair(env, at::min(A(0), i64(info[1], 0), flag(info[2], false))); });
  DEF("argmax", { return wrap(env, at::argmax(A(0), i64(info[1], 0), flag(info[2], false))); });
  DEF("argmin", { return wrap(env, at::argmin(A(0), i64(info[1], 0), flag(info[2], false))); });
  DEF("logsumexp", { return wrap(env, at::logsumexp(A(0), intList(info[1]), flag(info[2], false))); });
  DEF("norm", {
    auto p = at::Scalar(num(info[1], 2));
    if (hasDims(info[2])) return wrap(env, at::norm(A(0), p, intList(info[2]), flag(info[3], false)));
    return wrap(env, at::norm(A(0), p));
  });
  DEF("var", {
    if (hasDims(info[1])) return wrap(env, at::var(A(0), intList(info[1]), flag(info[2], true), flag(info[3], false)));
    return wrap(env, at::var(A(0), flag(info[2], true)));
  });
  DEF("std", {
    if (hasDims(info[1])) return wrap(env, at::std(A(0), intList(info[1]), flag(info[2], true), flag(info[3], false)));
    return wrap(env, at::std(A(0), flag(info[2], true)));
  });
  DEF("prod", { return wrap(env, at::prod(A(0))); });
  DEF("cumsum", { return wrap(env, at::cumsum(A(0), i64(info[1], 0))); });
  DEF("all", { return wrap(env, at::all(A(0))); });
  DEF("any", { return wrap(env, at::any(A(0))); });
  DEF("topk", {
    return wrapPair(env, at::topk(A(0), i64(info[1], 1), i64(info[2], -1), flag(info[3], true), flag(info[4], true)));
  });
  DEF("sort", { return wrapPair(env, at::sort(A(0), i64(info[1], -1), flag(info[2], false))); });

  // ---- neural-network functions
  DEF("softmax", { return wrap(env, at::softmax(A(0), i64(info[1], -1))); });
  DEF("logSoftmax", { return wrap(env, at::log_softmax(A(0), i64(info[1], -1))); });
  DEF("crossEntropy", {  // (logits, target, weight?, reduction, ignoreIndex, labelSmoothing); soft targets if float
    auto red = str(info[3], "mean");
    int64_t r = red == "none" ? at::Reduction::None : red == "sum" ? at::Reduction::Sum : at::Reduction::Mean;
    return wrap(env, at::cross_entropy_loss(A(0), A(1), optT(info[2]), r, i64(info[4], -100), num(info[5], 0.0)));
  });
  DEF("mseLoss", {
    auto red = str(info[2], "mean");
    int64_t r = red == "none" ? at::Reduction::None : red == "sum" ? at::Reduction::Sum : at::Reduction::Mean;
    return wrap(env, at::mse_loss(A(0), A(1), r));
  });
  DEF("layerNorm", {
    return wrap(env, at::layer_norm(A(0), intList(info[1]), optT(info[2]), optT(info[3]), num(info[4], 1e-5)));
  });
  DEF("batchNorm", {  // (x, weight?, bias?, runningMean?, runningVar?, training, momentum, eps)
    return wrap(env, at::batch_norm(A(0), optT(info[1]), optT(info[2]), optT(info[3]), optT(info[4]),
                                    flag(info[5], true), num(info[6], 0.1), num(info[7], 1e-5), false));
  });
  DEF("dropout", { return wrap(env, at::dropout(A(0), num(info[1], 0.5), flag(info[2], true))); });
  DEF("cosineSimilarity", { return wrap(env, at::cosine_similarity(A(0), A(1), i64(info[2], 1), num(info[3], 1e-8))); });
  DEF("interpolate", {  // (x NCHW, [h, w], mode, alignCorners)
    auto size = intList(info[1]);
    auto mode = str(info[2], "bilinear");
    bool ac = flag(info[3], false);
    if (mode == "bilinear") return wrap(env, at::upsample_bilinear2d(A(0), size, ac));
    if (mode == "bicubic") return wrap(env, at::upsample_bicubic2d(A(0), size, ac));
    if (mode == "nearest") return wrap(env, at::upsample_nearest2d(A(0), size));
    throw std::invalid_argument("interpolate: unknown mode '" + mode + "' (allowed: bilinear, bicubic, nearest)");
  });
  DEF("gridSample", {  // (x, grid, mode 0 bilinear/1 nearest, padding 0 zeros/1 border, alignCorners)
    return wrap(env, at::grid_sampler(A(0), A(1), i64(info[2], 0), i64(info[3], 0), flag(info[4], false)));
  });
  DEF("avgPool2d", { return wrap(env, at::avg_pool2d(A(0), intList(info[1]), intList(info[2]))); });
  DEF("maxPool2d", { return wrap(env, at::max_pool2d(A(0), intList(info[1]), intList(info[2]))); });
  DEF("adaptiveAvgPool2d", { return wrap(env, at::adaptive_avg_pool2d(A(0), intList(info[1]))); });

  // ---- in-place (optimizers, EMA, initialisation); they return nothing
#define INPLACE(name, ...) DEF(name, { __VA_ARGS__; return env.Undefined(); })
  INPLACE("copy_", A(0).copy_(A(1)));
  INPLACE("zero_", A(0).zero_());
  INPLACE("fill_", A(0).fill_(scalar(info[1])));
  INPLACE("add_", if (isTensor(info[1])) A(0).add_(A(1), num(info[2], 1)); else A(0).add_(scalar(info[1])));
  INPLACE("mul_", if (isTensor(info[1])) A(0).mul_(A(1)); else A(0).mul_(scalar(info[1])));
  INPLACE("div_", if (isTensor(info[1])) A(0).div_(A(1)); else A(0).div_(scalar(info[1])));
  INPLACE("clamp_", {
    c10::optional<at::Scalar> lo, hi;
    if (info[1].IsNumber()) lo = scalar(info[1]);
    if (info[2].IsNumber()) hi = scalar(info[2]);
    A(0).clamp_(lo, hi);
  });
  INPLACE("uniform_", A(0).uniform_(num(info[1], 0), num(info[2], 1)));
  INPLACE("normal_", A(0).normal_(num(info[1], 0), num(info[2], 1)));
  INPLACE("erfinv_", A(0).erfinv_());
  INPLACE("maskedFill_", A(0).masked_fill_(A(1), scalar(info[2])));

}
}  // namespace lx
