// c10d bindings: a Gloo process group (or, in a CUDA build with NCCL, an NCCL one) over a TCP store, and
// the collectives data-parallel training needs.
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "handle.h"

namespace lx {

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
#ifdef USE_C10D_GLOO
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
#endif
#ifdef USE_C10D_NCCL
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;
#endif
};

static Group& group(const Napi::Value& v) { return *v.As<Napi::External<Group>>().Data(); }

// Runs f on the group's process group: Gloo and NCCL answer the same c10d calls.
template <typename F>
static void onGroup(const Napi::Value& v, F f) {
  auto& g = group(v);
#ifdef USE_C10D_NCCL
  if (g.nccl) return f(*g.nccl);
#endif
#ifdef USE_C10D_GLOO
  if (g.pg) return f(*g.pg);
#endif
  (void)g;
  throw std::runtime_error("the process group was destroyed");
}

void initDist(Napi::Env env, Napi::Object e) {
  using CI = const Napi::CallbackInfo&;
  // What this build was compiled with (binding.gyp): a CUDA libtorch, and the c10d backends.
  e.Set("buildFlags", fn(env, "buildFlags", [](CI info) -> Napi::Value {
    auto o = Napi::Object::New(info.Env());
#ifdef LOCUS_CUDA
    o.Set("cuda", true);
#else
    o.Set("cuda", false);
#endif
#ifdef USE_C10D_GLOO
    o.Set("gloo", true);
#else
    o.Set("gloo", false);
#endif
#ifdef USE_C10D_NCCL
    o.Set("nccl", true);
#else
    o.Set("nccl", false);
#endif
    return o;
  }));
  // (rank, worldSize, host, port, timeoutMs, backend = 'gloo' | 'nccl') → group handle; rank 0 hosts the store.
  e.Set("pgInit", fn(env, "pgInit", [](CI info) -> Napi::Value {
    std::string backend = info[5].IsString() ? info[5].As<Napi::String>().Utf8Value() : "gloo";
    if (backend != "gloo" && backend != "nccl")
      throw Napi::Error::New(info.Env(), "pgInit: unknown backend '" + backend + "' (gloo or nccl)");
#ifndef USE_C10D_NCCL
    if (backend == "nccl")
      throw Napi::Error::New(info.Env(),
                             "distributed backend 'nccl' is not in this build: the addon was built without NCCL "
                             "(it needs a CUDA libtorch with NCCL: LOCUS_LIBTORCH=/path/to/libtorch npm run build:addon; "
                             "locus info shows the build); use backend 'gloo'");
#endif
#ifndef USE_C10D_GLOO
    if (backend == "gloo")
      throw Napi::Error::New(info.Env(),
                             "distributed backend 'gloo' is not in this build: the libtorch it was built against has no "
                             "Gloo headers (include/gloo)");
#endif
    int rank = info[0].As<Napi::Number>().Int32Value();
    int world = info[1].As<Napi::Number>().Int32Value();
    std::string host = info[2].As<Napi::String>().Utf8Value();
    auto timeout = std::chrono::milliseconds(info[4].As<Napi::Number>().Int64Value());
    c10d::TCPStoreOptions so;
    so.port = (uint16_t)info[3].As<Napi::Number>().Uint32Value();
    so.isServer = rank == 0;
    so.numWorkers = world;
    so.waitWorkers = true;
    so.timeout = timeout;
    auto* g = new Group();
    g->store = c10::make_intrusive<c10d::TCPStore>(host, so);
#ifdef USE_C10D_NCCL
    if (backend == "nccl") {
      // One GPU per process: collectives run on the device of the tensors given (cuda:<local rank>).
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = timeout;
      g->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(g->store, rank, world, opts);
    }
#endif
#ifdef USE_C10D_GLOO
    if (backend == "gloo") {
      auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(host));
      opts->threads = 2;
      g->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(g->store, rank, world, opts);
    }
#endif
    return Napi::External<Group>::New(info.Env(), g, [](Napi::Env, Group* g) { delete g; });
  }));
  // In-place sum all-reduce of each tensor (waits for completion).
  e.Set("pgAllreduce", fn(env, "pgAllreduce", [](CI info) -> Napi::Value {
    auto ts = unwrapList(info[1]);
    c10d::AllreduceOptions o;
    std::string op = info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : "sum";
    o.reduceOp = op == "max" ? c10d::ReduceOp::MAX : op == "min" ? c10d::ReduceOp::MIN : c10d::ReduceOp::SUM;
    for (auto& t : ts) {
      std::vector<at::Tensor> one{t};
      onGroup(info[0], [&](auto& pg) { pg.allreduce(one, o)->wait(); });
    }
    return info.Env().Undefined();
  }));
  e.Set("pgBroadcast", fn(env, "pgBroadcast", [](CI info) -> Napi::Value {
    auto ts = unwrapList(info[1]);
    c10d::BroadcastOptions o;
    o.rootRank = info[2].IsNumber() ? info[2].As<Napi::Number>().Int64Value() : 0;
    for (auto& t : ts) {
      std::vector<at::Tensor> one{t};
      onGroup(info[0], [&](auto& pg) { pg.broadcast(one, o)->wait(); });
    }
    return info.Env().Undefined();
  }));
  e.Set("pgBarrier", fn(env, "pgBarrier", [](CI info) -> Napi::Value {
    onGroup(info[0], [&](auto& pg) { pg.barrier()->wait(); });
    return info.Env().Undefined();
  }));
  // Key-value store access (liveness bookkeeping when a collective fails).
  e.Set("storeSet", fn(env, "storeSet", [](CI info) -> Napi::Value {
    auto v = info[2].As<Napi::String>().Utf8Value();
    group(info[0]).store->set(info[1].As<Napi::String>().Utf8Value(), std::vector<uint8_t>(v.begin(), v.end()));
    return info.Env().Undefined();
  }));
  e.Set("storeCheck", fn(env, "storeCheck", [](CI info) -> Napi::Value {
    std::vector<std::string> keys;
    auto arr = info[1].As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); i++) keys.push_back(arr.Get(i).As<Napi::String>().Utf8Value());
    return Napi::Boolean::New(info.Env(), group(info[0]).store->check(keys));
  }));
  e.Set("pgDestroy", fn(env, "pgDestroy", [](CI info) -> Napi::Value {
    auto& g = group(info[0]);
#ifdef USE_C10D_NCCL
    g.nccl.reset();
#endif
#ifdef USE_C10D_GLOO
    g.pg.reset();
#endif
    g.store.reset();
    return info.Env().Undefined();
  }));
}

}  // namespace lx
