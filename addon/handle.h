// Tensor handles shared by the addon's translation units.
#pragma once
#include <napi.h>
#include <ATen/ATen.h>

namespace lx {
// JS holds an External<Holder>; dispose() resets the tensor, the finaliser frees the holder.
struct Holder {
  at::Tensor t;
  int64_t bytes = 0;
};
Napi::Value wrap(Napi::Env env, at::Tensor t);
at::Tensor& unwrap(const Napi::Value& v);
std::vector<at::Tensor> unwrapList(const Napi::Value& v);
std::vector<int64_t> intList(const Napi::Value& v);
// Runs fn, turning libtorch and std exceptions into JS errors (never an abort).
template <typename F>
Napi::Function fn(Napi::Env env, const char* name, F f) {
  return Napi::Function::New(env, [f](const Napi::CallbackInfo& info) -> Napi::Value {
    try {
      return f(info);
    } catch (const Napi::Error&) {
      throw;
    } catch (const c10::Error& e) {
      throw Napi::Error::New(info.Env(), e.what_without_backtrace());
    } catch (const std::exception& e) {
      throw Napi::Error::New(info.Env(), e.what());
    }
  }, name);
}
void initDist(Napi::Env env, Napi::Object exports);
}  // namespace lx
