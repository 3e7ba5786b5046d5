// The thin binding: libtorch tensor handles, memory, creation, read-back and autograd as N-API functions;
// the math is in ops.cc, the multi-tensor kernels in kernels.cc, autocast in amp.cc, fused attention in
// attention.cc, collectives in dist.cc. Every function takes and returns tensor handles (External<Holder>);
// all logic lives in TypeScript.
#include <dlfcn.h>
#include <malloc.h>
#include <torch/torch.h>

#include <atomic>

#include "args.h"
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

// The default random generator of the device named by info[arg] ('cpu' when absent).
static at::Generator defaultGenerator(const Napi::CallbackInfo& info, size_t arg) {
  at::Device d = info.Length() > arg && info[arg].IsString() ? deviceOf(info[arg]) : at::Device(at::kCPU);
  if (d.is_cpu()) return at::detail::getDefaultCPUGenerator();
#ifdef LOCUS_CUDA
  if (d.is_cuda()) return at::cuda::detail::getDefaultCUDAGenerator(d.has_index() ? d.index() : -1);
#endif
  throw std::runtime_error("no default random generator for device '" + d.str() + "' in this build");
}


// Grad mode is thread-local in libtorch; all calls come from the JS thread, so one guard state is enough.
static bool g_grad_enabled = true;

// Handles, memory, threads, seeds, build info, creation, read-back and autograd.
static void defineCore(Napi::Env env, Napi::Object e) {

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

#undef DEF
#undef A
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // glibc's per-thread arenas bloat RSS and slow libtorch steps (DESIGN.md); one arena is enough.
  mallopt(M_ARENA_MAX, 1);
  // Freed tensor memory stays in the heap for the next step instead of going back to the kernel: by
  // default glibc maps blocks above a dynamic threshold (≤ 32 MB) afresh and trims the heap top above
  // twice that, so every step re-faulted and re-zeroed its activation pages. Measured on the small
  // benchmark step (1 thread, 3 alternated pairs on a loaded machine, bench/RESULTS.md): CPU 0.94, 0.86,
  // 0.82 s/step vs 1.02, 0.87, 0.85 with glibc's defaults. LOCUS_MALLOC_DEFAULT=1 keeps the defaults.
  if (!getenv("LOCUS_MALLOC_DEFAULT")) {
    // fixed at the dynamic maximum: larger blocks (a ViT-S eval batch of 64 has 60-80 MB activations) are
    // still mapped and unmapped, which keeps no-grad peak RSS low (128 MB here: eval RSS 1,051 vs 817 MB)
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
    mallopt(M_TOP_PAD, 64 << 20);
  }
  defineCore(env, exports);
  defineMathOps(env, exports);
  defineKernels(env, exports);
  defineAmp(env, exports);
  defineAttention(env, exports);
  initDist(env, exports);
  return exports;
}

}  // namespace lx

static Napi::Object InitLocus(Napi::Env env, Napi::Object exports) { return lx::Init(env, exports); }
NODE_API_MODULE(locus, InitLocus)