// Multi-tensor kernels: loops over parameter lists in C++ (like torch's foreach paths), one N-API call
// per list: optimizers (AdamW, SGD/LARS), EMA, gradient norms/scaling/flattening, AMP unscaling.
#include <ATen/ATen.h>

#include <cstring>

#include "args.h"

namespace lx {

void defineKernels(Napi::Env env, Napi::Object e) {
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
  DEF("unscaleGrads", {  // (params, invScale): grad_i *= invScale; → true when any gradient has an inf or NaN
    auto ps = unwrapList(info[0]);
    double inv = num(info[1], 1);
    at::NoGradGuard ng;
    std::vector<at::Tensor> bad;
    for (auto& p : ps) {
      if (!p.grad().defined()) continue;
      auto& g = p.mutable_grad();
      if (inv != 1.0) g.mul_(inv);
      bad.push_back(at::isfinite(g).all().logical_not().to(at::kCPU));
    }
    bool found = !bad.empty() && at::stack(bad).any().item<bool>();
    return Napi::Boolean::New(env, found);
  });
}
}  // namespace lx
