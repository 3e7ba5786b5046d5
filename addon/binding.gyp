{
  # LOCUS_LIBTORCH=/path/to/libtorch (the libtorch zip, or site-packages/torch of a PyTorch wheel) builds
  # against that libtorch (rpath to its lib/), with CUDA (-DLOCUS_CUDA) when it has libtorch_cuda.so and
  # NCCL (-DUSE_C10D_NCCL) when it also has ProcessGroupNCCL and its headers (libtorch.sh says which).
  # Without it: Debian's libtorch-dev (CPU, c10d Gloo).
  "variables": {"libtorch%": "<!(echo \"$LOCUS_LIBTORCH\")"},
  "targets": [{
    "target_name": "locus",
    "sources": ["tensor.cc", "ops.cc", "kernels.cc", "amp.cc", "attention.cc", "dist.cc"],
    "include_dirs": [
      "<!(node -p \"require('node-addon-api').include_dir\")"
    ],
    "defines": ["NAPI_EXPERIMENTAL", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED", "USE_C10D_GLOO"],
    "cflags!": ["-fno-exceptions", "-fno-rtti"],
    "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++14"],
    "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-O2", "-Wno-deprecated-declarations", "-Wno-unused-parameter"],
    "conditions": [
      ["libtorch==''", {
        "include_dirs": ["/usr/include/torch/csrc/api/include"],
        "libraries": ["-ltorch", "-ltorch_cpu", "-lc10", "-ldl"]
      }, {
        "variables": {
          "torch_root": "<!(sh libtorch.sh root)",
          "torch_cuda": "<!(sh libtorch.sh cuda)",
          "torch_gloo": "<!(sh libtorch.sh gloo)",
          "torch_nccl": "<!(sh libtorch.sh nccl)",
          "torch_abi": "<!(sh libtorch.sh abi)"
        },
        "include_dirs": ["<(torch_root)/include", "<(torch_root)/include/torch/csrc/api/include"],
        # --no-as-needed: libtorch_cuda registers the CUDA backend when it loads; nothing references it directly.
        "libraries": ["-L<(torch_root)/lib", "-Wl,-rpath,<(torch_root)/lib", "-Wl,--no-as-needed",
                      "-ltorch", "-ltorch_cpu", "-lc10", "-ldl"],
        "conditions": [
          ["torch_cuda==1", {"defines": ["LOCUS_CUDA"], "libraries": ["-ltorch_cuda", "-lc10_cuda"]}],
          ["torch_gloo!=1", {"defines!": ["USE_C10D_GLOO"]}],
          ["torch_nccl==1", {"defines": ["USE_C10D_NCCL"], "include_dirs": ["<!@(sh libtorch.sh cuda_includes)"]}],
          ["torch_abi=='_GLIBCXX_USE_CXX11_ABI=0'",
           {"defines!": ["_GLIBCXX_USE_CXX11_ABI=1"], "defines": ["_GLIBCXX_USE_CXX11_ABI=0"]}]
        ]
      }]
    ]
  }]
}
