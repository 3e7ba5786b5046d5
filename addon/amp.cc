// Automatic mixed precision: libtorch's autocast (at::autocast), switched on and off around a forward pass.
// While it is on, the ops in autocast's lower-precision list (linear, matmul, conv, bmm, ...) run in the
// given dtype (bfloat16 / float16) and the ones in its fp32 list in float32; weights stay float32 (the
// master copy) and their casts are cached until the outermost autocast region ends, as in torch.autocast.
// libtorch 1.13 has CPU autocast (bfloat16) and CUDA autocast (float16, bfloat16).
#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include "args.h"

namespace lx {

static bool isCudaName(const std::string& d) { return d.rfind("cuda", 0) == 0; }

// libtorch ≥ 2.4 has one autocast API per device type; 1.13 has separate cpu/gpu functions.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
static at::DeviceType devType(bool cuda) { return cuda ? at::kCUDA : at::kCPU; }
static bool acOn(bool cuda) { return at::autocast::is_autocast_enabled(devType(cuda)); }
static at::ScalarType acDtype(bool cuda) { return at::autocast::get_autocast_dtype(devType(cuda)); }
static void acSet(bool cuda, bool on, at::ScalarType dt) {
  at::autocast::set_autocast_enabled(devType(cuda), on);
  at::autocast::set_autocast_dtype(devType(cuda), dt);
}
#else
static bool acOn(bool cuda) { return cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled(); }
static at::ScalarType acDtype(bool cuda) {
  return cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
}
static void acSet(bool cuda, bool on, at::ScalarType dt) {
  if (cuda) {
    at::autocast::set_enabled(on);
    at::autocast::set_autocast_gpu_dtype(dt);
  } else {
    at::autocast::set_cpu_enabled(on);
    at::autocast::set_autocast_cpu_dtype(dt);
  }
}
#endif

void defineAmp(Napi::Env env, Napi::Object e) {
  // (device 'cpu'|'cuda[:N]', dtype) → [previous enabled, previous dtype] for autocastExit
  DEF("autocastEnter", {
    auto dev = str(info[0], "cpu");
    auto dt = dtypeOf(info[1]);
    if (dt != at::kBFloat16 && dt != at::kHalf)
      throw std::invalid_argument("autocast: dtype must be bfloat16 or float16");
    bool cuda = isCudaName(dev);
    if (!cuda && dev != "cpu") throw std::invalid_argument("autocast: device must be cpu or cuda, got '" + dev + "'");
    bool prevOn = acOn(cuda);
    auto prevDt = acDtype(cuda);
    acSet(cuda, true, dt);
    at::autocast::increment_nesting();
    auto out = Napi::Array::New(env, 2);
    out.Set(0u, Napi::Boolean::New(env, prevOn));
    out.Set(1u, Napi::String::New(env, dtypeName(prevDt)));
    return out;
  });
  // (device, previous enabled, previous dtype): restores the state autocastEnter returned
  DEF("autocastExit", {
    auto dev = str(info[0], "cpu");
    acSet(isCudaName(dev), flag(info[1], false), dtypeOf(info[2]));
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    return env.Undefined();
  });
  DEF("autocastEnabled", {
    auto dev = str(info[0], "cpu");
    return Napi::Boolean::New(env, acOn(isCudaName(dev)));
  });
}

}  // namespace lx
