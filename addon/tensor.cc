// The thin binding: libtorch tensors, ops, autograd and optimizer kernels as N-API functions.
// Every function takes and returns tensor handles (External<Holder>); all logic lives in TypeScript.
#include <dlfcn.h>
#include <malloc.h>
#include <torch/torch.h>

#include <atomic>

#include "handle.h"
#ifdef LOCUS_CUDA
#include <ATen/cuda/CUDAGeneratorImpl.h>
#endif

namespace lx {

static std::atomic<int64_t> g_live{0};
// True while JS runs inside a tidy() scope. Tensors made then are freed deterministically when the scope
// ends, so their bytes are not reported to V8: reporting them made V8 start a full GC for every ~64 MB of
// activations (about 9 mark-compacts per benchmark step, +20% forward time). Tensors that leave the
// outermost scope or are kept are reported then (reportExternal), so the GC safety net still sees them.
static bool g_scoped = false;

static void report(Napi::Env env, Holder* h) {
  if (h->bytes == 0 && h->t.defined() && !h->t.is_cuda()) {
    h->bytes = h->t.numel() * static_cast<int64_t>(h->t.element_size());
    if (h->bytes) Napi::MemoryManagement::AdjustExternalMemory(env, h->bytes);
  }
}

Napi::Value wrap(Napi::Env env, at::Tensor t) {
  auto* h = new Holder{std::move(t), 0};
  if (!g_scoped) report(env, h);
  g_live++;
  // A basic (GC-time) finaliser: with NAPI_EXPERIMENTAL, Node runs it during garbage collection. Node 20's
  // default defers finalisers to a setImmediate, so a synchronous training loop that never yields kept
  // every handle's bookkeeping alive (~300 B per tensor op: +250 MB over 1,000 small steps).
  return Napi::External<Holder>::New(env, h, [](Napi::BasicEnv env, Holder* h) {
    if (h->t.defined()) g_live--;
    if (h->bytes) Napi::MemoryManagement::AdjustExternalMemory(env, -h->bytes);
    delete h;
  });
}

at::Tensor& unwrap(const Napi::Value& v) {
  if (!v.IsExternal()) throw std::invalid_argument("expected a tensor handle");
  auto* h = v.As<Napi::External<Holder>>().Data();
  if (!h->t.defined()) throw std::invalid_argument("tensor used after dispose()");
  return h->t;
}

std::vector<at::Tensor> unwrapList(const Napi::Value& v) {
  auto arr = v.As<Napi::Array>();
  std::vector<at::Tensor> out;
  out.reserve(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); i++) out.push_back(unwrap(arr.Get(i)));
  return out;
}

std::vector<int64_t> intList(const Napi::Value& v) {
  if (v.IsNumber()) return {v.As<Napi::Number>().Int64Value()};
  auto arr = v.As<Napi::Array>();
  std::vector<int64_t> out(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); i++) out[i] = arr.Get(i).As<Napi::Number>().Int64Value();
  return out;
}

static std::vector<double> doubleList(const Napi::Value& v) {
  auto arr = v.As<Napi::Array>();
  std::vector<double> out(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); i++) out[i] = arr.Get(i).As<Napi::Number>().DoubleValue();
  return out;
}

static at::ScalarType dtypeOf(const Napi::Value& v) {
  if (v.IsUndefined() || v.IsNull()) return at::kFloat;
  auto s = v.As<Napi::String>().Utf8Value();
  if (s == "float32") return at::kFloat;
  if (s == "float64") return at::kDouble;
  if (s == "int64") return at::kLong;
  if (s == "int32") return at::kInt;
  if (s == "uint8") return at::kByte;
  if (s == "bool") return at::kBool;
  if (s == "float16") return at::kHalf;
  if (s == "bfloat16") return at::kBFloat16;
  throw std::invalid_argument("unknown dtype '" + s + "' (allowed: float32, float64, int64, int32, uint8, bool, float16, bfloat16)");
}

static const char* dtypeName(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kLong: return "int64";
    case at::kInt: return "int32";
    case at::kByte: return "uint8";
    case at::kBool: return "bool";
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    default: return "other";
  }
}

static at::Device deviceOf(const Napi::Value& v) {
  if (v.IsUndefined() || v.IsNull()) return at::Device(at::kCPU);
  return at::Device(v.As<Napi::String>().Utf8Value());
}

static at::TensorOptions opts(const Napi::CallbackInfo& info, size_t dtypeArg) {
  return at::TensorOptions().dtype(dtypeOf(info[dtypeArg])).device(deviceOf(info[dtypeArg + 1]));
}

static bool isTensor(const Napi::Value& v) { return v.IsExternal(); }
// Whole numbers become integer scalars so that integer tensors keep their dtype (x + 1 on int64 stays int64).
static at::Scalar scalar(const Napi::Value& v) {
  if (v.IsBoolean()) return at::Scalar(v.As<Napi::Boolean>().Value());
  double d = v.As<Napi::Number>().DoubleValue();
  if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9007199254740992.0) return at::Scalar((int64_t)d);
  return at::Scalar(d);
}
static double num(const Napi::Value& v, double dflt) { return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : dflt; }
static int64_t i64(const Napi::Value& v, int64_t dflt) { return v.IsNumber() ? v.As<Napi::Number>().Int64Value() : dflt; }
static bool flag(const Napi::Value& v, bool dflt) { return v.IsBoolean() ? v.As<Napi::Boolean>().Value() : dflt; }
static c10::optional<at::Tensor> optT(const Napi::Value& v) {
  if (v.IsUndefined() || v.IsNull()) return c10::nullopt;
  return unwrap(v);
}
static std::string str(const Napi::Value& v, const char* dflt) { return v.IsString() ? v.As<Napi::String>().Utf8Value() : dflt; }
// The default random generator of the device named by info[arg] ('cpu' when absent).
static at::Generator defaultGenerator(const Napi::CallbackInfo& info, size_t arg) {
  at::Device d = info.Length() > arg && info[arg].IsString() ? deviceOf(info[arg]) : at::Device(at::kCPU);
  if (d.is_cpu()) return at::detail::getDefaultCPUGenerator();
#ifdef LOCUS_CUDA
  if (d.is_cuda()) return at::cuda::detail::getDefaultCUDAGenerator(d.has_index() ? d.index() : -1);
#endif
  throw std::runtime_error("no default random generator for device '" + d.str() + "' in this build");
}

// dims argument: undefined/null → all dims
static bool hasDims(const Napi::Value& v) { return !(v.IsUndefined() || v.IsNull()); }

static Napi::Value wrapPair(Napi::Env env, std::tuple<at::Tensor, at::Tensor> p) {
  auto arr = Napi::Array::New(env, 2);
  arr.Set(0u, wrap(env, std::get<0>(p)));
  arr.Set(1u, wrap(env, std::get<1>(p)));
  return arr;
}
static Napi::Value wrapList(Napi::Env env, const std::vector<at::Tensor>& ts) {
  auto arr = Napi::Array::New(env, ts.size());
  for (size_t i = 0; i < ts.size(); i++) arr.Set(i, wrap(env, ts[i]));
  return arr;
}

// Grad mode is thread-local in libtorch; all calls come from the JS thread, so one guard state is enough.
static bool g_grad_enabled = true;

static void defineOps(Napi::Env env, Napi::Object e) {
  using CI = const Napi::CallbackInfo&;
#define DEF(name, ...) e.Set(name, fn(env, name, [](CI info) -> Napi::Value { auto env = info.Env(); (void)env; __VA_ARGS__ }))
#define A(i) unwrap(info[i])

  // ---- memory, threads, seeds, info
  DEF("free", {
    auto* h = info[0].As<Napi::External<Holder>>().Data();
    if (h->t.defined()) {
      g_live--;
      // Until V8 collects the disposed handle's JS object, it is reported as 1/16 of its former size (+4 KiB).
      // Measured on the benchmark model: with nothing reported, V8 ran no GC for whole steps and glibc's heap
      // (one arena) fragmented without bound (free chunks 0.5 → 1 GB and +30 MB RSS per step, while the live
      // tensors stayed constant); one GC per step keeps it flat. This makes V8 collect about once per 1 GB of
      // disposed tensors (~0.7 full GCs per benchmark step, each a few ms), in proportion to the model's size.
      int64_t pending = (h->t.is_cuda() ? 0 : h->t.numel() * (int64_t)h->t.element_size()) / 16 + 4096;
      int64_t delta = pending - h->bytes;
      h->bytes = pending;
      if (delta) Napi::MemoryManagement::AdjustExternalMemory(env, delta);
      h->t.reset();
    }
    return env.Undefined();
  });
  DEF("setScoped", { g_scoped = flag(info[0], false); return env.Undefined(); });
  DEF("reportExternal", {
    if (info[0].IsExternal()) report(env, info[0].As<Napi::External<Holder>>().Data());
    return env.Undefined();
  });
  // Bytes of native memory V8 has been told about (diagnostics and tests).
  DEF("externalBytes", { return Napi::Number::New(env, (double)Napi::MemoryManagement::AdjustExternalMemory(env, 0)); });
  DEF("liveTensors", { return Napi::Number::New(env, (double)g_live.load()); });
  DEF("setNumThreads", { at::set_num_threads((int)i64(info[0], 1)); return env.Undefined(); });
  DEF("getNumThreads", { return Napi::Number::New(env, at::get_num_threads()); });
  DEF("manualSeed", { torch::manual_seed((uint64_t)i64(info[0], 0)); return env.Undefined(); });
  // The default generator's state: 'cpu' (default) or 'cuda:N' (stochastic depth and masks drawn on a GPU).
  DEF("getRngState", { return wrap(env, defaultGenerator(info, 0).get_state()); });
  DEF("setRngState", {
    auto gen = defaultGenerator(info, 1);
    gen.set_state(A(0));
    return env.Undefined();
  });
  DEF("cudaAvailable", { return Napi::Boolean::New(env, torch::cuda::is_available()); });
  DEF("cudaSynchronize", {
    if (torch::cuda::is_available()) torch::cuda::synchronize();
    return env.Undefined();
  });
  DEF("info", {
    auto o = Napi::Object::New(env);
    o.Set("torchVersion", TORCH_VERSION);
    o.Set("threads", at::get_num_threads());
    o.Set("cuda", torch::cuda::is_available());
    o.Set("cudaDevices", (double)torch::cuda::device_count());
    o.Set("parallel", at::get_parallel_info());
    o.Set("config", at::show_config());
    // Which library really serves BLAS (Debian's libblas.so.3 is an alternative that may be netlib).
    std::string blasPath = "unknown", blasConfig = "";
    if (void* sym = dlsym(RTLD_DEFAULT, "sgemm_")) {
      Dl_info di;
      if (dladdr(sym, &di) && di.dli_fname) blasPath = di.dli_fname;
    }
    using CfgFn = char* (*)();
    if (auto cfg = (CfgFn)dlsym(RTLD_DEFAULT, "openblas_get_config")) blasConfig = cfg();
    o.Set("blasLibrary", blasPath);
    o.Set("blasConfig", blasConfig);
    return o;
  });

  // ---- creation and read-back
  DEF("empty", { return wrap(env, at::empty(intList(info[0]), opts(info, 1))); });
  DEF("zeros", { return wrap(env, at::zeros(intList(info[0]), opts(info, 1))); });
  DEF("ones", { return wrap(env, at::ones(intList(info[0]), opts(info, 1))); });
  DEF("full", { return wrap(env, at::full(intList(info[0]), scalar(info[1]), opts(info, 2))); });
  DEF("arange", { return wrap(env, at::arange(scalar(info[0]), scalar(info[1]), scalar(info[2]), opts(info, 3))); });
  DEF("linspace", { return wrap(env, at::linspace(scalar(info[0]), scalar(info[1]), i64(info[2], 2), opts(info, 3))); });
  DEF("eye", { return wrap(env, at::eye(i64(info[0], 1), opts(info, 1))); });
  DEF("rand", { return wrap(env, at::rand(intList(info[0]), opts(info, 1))); });
  DEF("randn", { return wrap(env, at::randn(intList(info[0]), opts(info, 1))); });
  DEF("randint", { return wrap(env, at::randint(i64(info[0], 0), i64(info[1], 1), intList(info[2]), opts(info, 3))); });
  DEF("randperm", { return wrap(env, at::randperm(i64(info[0], 1), opts(info, 1))); });
  DEF("fromBuffer", {
    auto ta = info[0].As<Napi::TypedArray>();
    auto ab = ta.ArrayBuffer();
    auto* data = static_cast<uint8_t*>(ab.Data()) + ta.ByteOffset();
    auto o = at::TensorOptions().dtype(dtypeOf(info[2]));
    auto shape = intList(info[1]);
    int64_t n = 1;
    for (auto s : shape) n *= s;
    if ((size_t)(n * (int64_t)c10::elementSize(dtypeOf(info[2]))) != ta.ByteLength())
      throw std::invalid_argument("fromBuffer: buffer has " + std::to_string(ta.ByteLength()) + " bytes, shape needs " +
                                  std::to_string(n * c10::elementSize(dtypeOf(info[2]))));
    auto t = at::from_blob(data, shape, o).clone();
    if (!info[3].IsUndefined() && !info[3].IsNull()) t = t.to(deviceOf(info[3]));
    return wrap(env, t);
  });
  DEF("toBuffer", {
    auto t = A(0).detach().to(at::kCPU).contiguous();
    auto buf = Napi::ArrayBuffer::New(env, t.nbytes());
    if (t.nbytes()) std::memcpy(buf.Data(), t.data_ptr(), t.nbytes());
    return buf;
  });
  DEF("item", {
    auto t = A(0);
    if (t.scalar_type() == at::kBool) return Napi::Number::New(env, t.item<bool>() ? 1 : 0);
    return Napi::Number::New(env, t.item<double>());
  });
  DEF("shape", {
    auto s = A(0).sizes();
    auto arr = Napi::Array::New(env, s.size());
    for (size_t i = 0; i < s.size(); i++) arr.Set(i, Napi::Number::New(env, (double)s[i]));
    return arr;
  });
  DEF("dtype", { return Napi::String::New(env, dtypeName(A(0).scalar_type())); });
  DEF("device", { return Napi::String::New(env, A(0).device().str()); });
  DEF("to", {
    auto& t = A(0);
    at::Tensor r = t;
    if (!info[1].IsUndefined() && !info[1].IsNull()) r = r.to(dtypeOf(info[1]));
    if (!info[2].IsUndefined() && !info[2].IsNull()) r = r.to(deviceOf(info[2]));
    return wrap(env, r);
  });
  DEF("clone", { return wrap(env, A(0).clone()); });
  DEF("detach", { return wrap(env, A(0).detach()); });
  DEF("contiguous", { return wrap(env, A(0).contiguous()); });
  DEF("alias", { return wrap(env, A(0)); });  // a second handle on the same tensor
  // Swaps the tensor's data (dtype/device may change; autograd identity and handles stay), like `p.data = x` in
  // PyTorch; this is how Module.to(dtype) converts parameters in place.
  DEF("setData", {
    at::NoGradGuard ng;
    A(0).set_data(A(1));
    return env.Undefined();
  });

  // ---- autograd
  DEF("requiresGrad", { return Napi::Boolean::New(env, A(0).requires_grad()); });
  DEF("setRequiresGrad", { A(0).requires_grad_(flag(info[1], true)); return env.Undefined(); });
  DEF("grad", {
    auto g = A(0).grad();
    if (!g.defined()) return env.Null();
    return wrap(env, g);
  });
  DEF("setGrad", {
    auto& t = A(0);
    if (info[1].IsNull() || info[1].IsUndefined()) t.mutable_grad() = at::Tensor();
    else t.mutable_grad() = unwrap(info[1]);
    return env.Undefined();
  });
  DEF("zeroGrads", {
    for (auto& t : unwrapList(info[0])) t.mutable_grad() = at::Tensor();
    return env.Undefined();
  });
  DEF("backward", {
    auto& t = A(0);
    auto g = optT(info[1]);
    t.backward(g.has_value() ? *g : at::Tensor(), flag(info[2], false));
    return env.Undefined();
  });
  DEF("setGradEnabled", {
    g_grad_enabled = flag(info[0], true);
    at::GradMode::set_enabled(g_grad_enabled);
    return env.Undefined();
  });
  DEF("isGradEnabled", { return Napi::Boolean::New(env, at::GradMode::is_enabled()); });

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

  // ---- multi-tensor kernels (loops over parameter lists in C++, like torch's foreach paths)
  DEF("adamw", {  // (params, expAvg, expAvgSq, lr, beta1, beta2, eps, weightDecay, step)
    auto ps = unwrapList(info[0]), ms = unwrapList(info[1]), vs = unwrapList(info[2]);
    double lr = num(info[3], 1e-3), b1 = num(info[4], 0.9), b2 = num(info[5], 0.999), eps = num(info[6], 1e-8);
    double wd = num(info[7], 0), step = num(info[8], 1);
    double bc1 = 1 - std::pow(b1, step), bc2 = 1 - std::pow(b2, step);
    at::NoGradGuard ng;
    for (size_t i = 0; i < ps.size(); i++) {
      auto g = ps[i].grad();
      if (!g.defined()) continue;
      if (wd != 0) ps[i].mul_(1 - lr * wd);
      ms[i].mul_(b1).add_(g, 1 - b1);
      vs[i].mul_(b2).addcmul_(g, g, 1 - b2);
      auto denom = (vs[i].sqrt() / std::sqrt(bc2)).add_(eps);
      ps[i].addcdiv_(ms[i], denom, -lr / bc1);
    }
    return env.Undefined();
  });
  DEF("sgd", {  // (params, momentumBufs, lr, momentum, weightDecay, nesterov, lars trust coef or 0, larsEps)
    auto ps = unwrapList(info[0]), bufs = unwrapList(info[1]);
    double lr = num(info[2], 0.1), mom = num(info[3], 0), wd = num(info[4], 0), tc = num(info[6], 0), leps = num(info[7], 1e-8);
    bool nesterov = flag(info[5], false);
    at::NoGradGuard ng;
    for (size_t i = 0; i < ps.size(); i++) {
      auto g = ps[i].grad();
      if (!g.defined()) continue;
      auto d = g;
      if (wd != 0) d = d.add(ps[i], wd);
      if (tc > 0) {  // LARS: scale the step by trust · ‖w‖ / ‖g + wd·w‖ (torchlars semantics)
        double wn = ps[i].norm().item<double>(), dn = d.norm().item<double>();
        if (wn > 0 && dn > 0) d = d.mul(tc * wn / (dn + leps));
      }
      if (mom != 0) {
        bufs[i].mul_(mom).add_(d);
        d = nesterov ? d.add(bufs[i], mom) : bufs[i];
      }
      ps[i].add_(d, -lr);
    }
    return env.Undefined();
  });
  DEF("ema", {  // teacher ← m·teacher + (1−m)·student
    auto ts = unwrapList(info[0]), ss = unwrapList(info[1]);
    double m = num(info[2], 0.996);
    at::NoGradGuard ng;
    for (size_t i = 0; i < ts.size(); i++) ts[i].mul_(m).add_(ss[i].detach(), 1 - m);
    return env.Undefined();
  });
  DEF("gradNorms", {  // per-tensor L2 norms of the gradients (0 where none), as a Float64Array
    auto ps = unwrapList(info[0]);
    auto out = Napi::Float64Array::New(env, ps.size());
    at::NoGradGuard ng;
    std::vector<at::Tensor> norms;
    for (auto& p : ps) norms.push_back(p.grad().defined() ? p.grad().norm().to(at::kDouble) : at::zeros({}, p.options().dtype(at::kDouble)));
    auto all = at::stack(norms).to(at::kCPU);
    std::memcpy(out.Data(), all.data_ptr<double>(), ps.size() * sizeof(double));
    return out;
  });
  DEF("scaleGrads", {  // grad_i *= scale_i (Float64Array or number)
    auto ps = unwrapList(info[0]);
    at::NoGradGuard ng;
    if (info[1].IsNumber()) {
      double s = num(info[1], 1);
      for (auto& p : ps) if (p.grad().defined()) p.mutable_grad().mul_(s);
    } else {
      auto sc = info[1].As<Napi::Float64Array>();
      for (size_t i = 0; i < ps.size(); i++) if (ps[i].grad().defined() && sc[i] != 1.0) ps[i].mutable_grad().mul_(sc[i]);
    }
    return env.Undefined();
  });
  DEF("flattenGrads", {  // concatenated gradients (zeros where none) for bucketed all-reduce
    auto ps = unwrapList(info[0]);
    std::vector<at::Tensor> parts;
    for (auto& p : ps) parts.push_back(p.grad().defined() ? p.grad().reshape(-1) : at::zeros({p.numel()}, p.options()));
    return wrap(env, at::cat(parts));
  });
  DEF("unflattenGrads", {  // writes slices of a flat buffer back into each parameter's gradient
    auto ps = unwrapList(info[0]);
    auto& flat = A(1);
    int64_t off = 0;
    at::NoGradGuard ng;
    for (auto& p : ps) {
      auto slice = flat.narrow(0, off, p.numel()).view(p.sizes());
      if (p.grad().defined()) p.mutable_grad().copy_(slice);
      else p.mutable_grad() = slice.clone();
      off += p.numel();
    }
    return env.Undefined();
  });
#undef DEF
#undef A
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // glibc's per-thread arenas bloat RSS and slow libtorch steps (DESIGN.md); one arena is enough.
  mallopt(M_ARENA_MAX, 1);
  defineOps(env, exports);
  initDist(env, exports);
  return exports;
}

}  // namespace lx

static Napi::Object InitLocus(Napi::Env env, Napi::Object exports) { return lx::Init(env, exports); }
NODE_API_MODULE(locus, InitLocus)
