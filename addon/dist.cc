// c10d bindings: a Gloo process group over a TCP store, and the collectives data-parallel training needs.
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "handle.h"

namespace lx {

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
};

static Group& group(const Napi::Value& v) { return *v.As<Napi::External<Group>>().Data(); }

void initDist(Napi::Env env, Napi::Object e) {
  using CI = const Napi::CallbackInfo&;
  // (rank, worldSize, host, port, timeoutMs) → group handle; rank 0 hosts the store.
  e.Set("pgInit", fn(env, "pgInit", [](CI info) -> Napi::Value {
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
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(host));
    opts->threads = 2;
    g->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(g->store, rank, world, opts);
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
      group(info[0]).pg->allreduce(one, o)->wait();
    }
    return info.Env().Undefined();
  }));
  e.Set("pgBroadcast", fn(env, "pgBroadcast", [](CI info) -> Napi::Value {
    auto ts = unwrapList(info[1]);
    c10d::BroadcastOptions o;
    o.rootRank = info[2].IsNumber() ? info[2].As<Napi::Number>().Int64Value() : 0;
    for (auto& t : ts) {
      std::vector<at::Tensor> one{t};
      group(info[0]).pg->broadcast(one, o)->wait();
    }
    return info.Env().Undefined();
  }));
  e.Set("pgBarrier", fn(env, "pgBarrier", [](CI info) -> Napi::Value {
    group(info[0]).pg->barrier()->wait();
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
    g.pg.reset();
    g.store.reset();
    return info.Env().Undefined();
  }));
}

}  // namespace lx
