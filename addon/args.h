// Argument conversion shared by the addon's translation units (JS values → libtorch types), and the
// DEF/A macros each define*() function uses to register N-API functions.
#pragma once
#include <cmath>
#include <string>
#include "handle.h"

namespace lx {

inline std::vector<double> doubleList(const Napi::Value& v) {
  auto arr = v.As<Napi::Array>();
  std::vector<double> out(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); i++) out[i] = arr.Get(i).As<Napi::Number>().DoubleValue();
  return out;
}

inline at::ScalarType dtypeOf(const Napi::Value& v) {
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

inline const char* dtypeName(at::ScalarType t) {
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

inline at::Device deviceOf(const Napi::Value& v) {
  if (v.IsUndefined() || v.IsNull()) return at::Device(at::kCPU);
  return at::Device(v.As<Napi::String>().Utf8Value());
}

inline at::TensorOptions opts(const Napi::CallbackInfo& info, size_t dtypeArg) {
  return at::TensorOptions().dtype(dtypeOf(info[dtypeArg])).device(deviceOf(info[dtypeArg + 1]));
}

inline bool isTensor(const Napi::Value& v) { return v.IsExternal(); }
// Whole numbers become integer scalars so that integer tensors keep their dtype (x + 1 on int64 stays int64).
inline at::Scalar scalar(const Napi::Value& v) {
  if (v.IsBoolean()) return at::Scalar(v.As<Napi::Boolean>().Value());
  double d = v.As<Napi::Number>().DoubleValue();
  if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9007199254740992.0) return at::Scalar((int64_t)d);
  return at::Scalar(d);
}
inline double num(const Napi::Value& v, double dflt) { return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : dflt; }
inline int64_t i64(const Napi::Value& v, int64_t dflt) { return v.IsNumber() ? v.As<Napi::Number>().Int64Value() : dflt; }
inline bool flag(const Napi::Value& v, bool dflt) { return v.IsBoolean() ? v.As<Napi::Boolean>().Value() : dflt; }
inline c10::optional<at::Tensor> optT(const Napi::Value& v) {
  if (v.IsUndefined() || v.IsNull()) return c10::nullopt;
  return unwrap(v);
}
inline std::string str(const Napi::Value& v, const char* dflt) { return v.IsString() ? v.As<Napi::String>().Utf8Value() : dflt; }

// dims argument: undefined/null → all dims
inline bool hasDims(const Napi::Value& v) { return !(v.IsUndefined() || v.IsNull()); }

inline Napi::Value wrapPair(Napi::Env env, std::tuple<at::Tensor, at::Tensor> p) {
  auto arr = Napi::Array::New(env, 2);
  arr.Set(0u, wrap(env, std::get<0>(p)));
  arr.Set(1u, wrap(env, std::get<1>(p)));
  return arr;
}
inline Napi::Value wrapList(Napi::Env env, const std::vector<at::Tensor>& ts) {
  auto arr = Napi::Array::New(env, ts.size());
  for (size_t i = 0; i < ts.size(); i++) arr.Set(i, wrap(env, ts[i]));
  return arr;
}

using CI = const Napi::CallbackInfo&;
#define DEF(name, ...) e.Set(name, fn(env, name, [](CI info) -> Napi::Value { auto env = info.Env(); (void)env; __VA_ARGS__ }))
#define A(i) unwrap(info[i])

// Each translation unit registers its functions on the exports object.
void defineMathOps(Napi::Env env, Napi::Object e);   // ops.cc
void defineKernels(Napi::Env env, Napi::Object e);   // kernels.cc
void defineAmp(Napi::Env env, Napi::Object e);       // amp.cc
void defineAttention(Napi::Env env, Napi::Object e); // attention.cc
}  // namespace lx
