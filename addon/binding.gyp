{
  "targets": [{
    "target_name": "locus",
    "sources": ["tensor.cc", "dist.cc"],
    "include_dirs": [
      "<!(node -p \"require('node-addon-api').include_dir\")",
      "/usr/include/torch/csrc/api/include"
    ],
    "defines": ["NAPI_EXPERIMENTAL", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED", "USE_C10D_GLOO"],
    "cflags!": ["-fno-exceptions", "-fno-rtti"],
    "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++14"],
    "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-O2", "-Wno-deprecated-declarations", "-Wno-unused-parameter"],
    "libraries": ["-ltorch", "-ltorch_cpu", "-lc10", "-ldl"]
  }]
}
