// Heads shared by the methods: DINO's projection head (also SelfPatch's, iBOT's) and a plain MLP projector.
import { empty, linear, normalize, type Tensor } from '../engine/index.js';
import { Linear, Module, ModuleList } from '../nn/index.js';

/** weight = g · v/‖v‖ per output row (torch weight_norm, dim 0); g fixed at 1 when `fixedNorm` (a cosine prototype layer). */
export class WeightNormLinear extends Module {
  readonly weightG: Tensor;
  readonly weightV: Tensor;
  constructor(inF: number, outF: number, fixedNorm: boolean) {
    super();
    // torch.nn.Linear's default init (kaiming-uniform, a=√5): U(−1/√in, 1/√in).
    const bound = 1 / Math.sqrt(inF);
    this.weightV = this.param('weight_v', empty([outF, inF]).uniform_(-bound, bound));
    const g = empty([outF, 1]).fill_(1);
    this.weightG = fixedNorm ? this.buffer('weight_g', g) : this.param('weight_g', g);
  }
  weight(): Tensor {
    return this.weightV.mul(this.weightG.div(this.weightV.norm(2, 1, true)));
  }
  forward(x: Tensor): Tensor {
    return linear(x, this.weight());
  }
}

export interface DinoHeadConfig {
  outDim: number; // K prototypes
  hiddenDim: number; // 2048 in DINO
  bottleneckDim: number; // 256 in DINO
  nlayers: number; // 3 in DINO
  normLastLayer: boolean;
}

/** DINOHead: MLP (GELU) → L2-normalise → weight-normalised linear to K prototypes. Names match DINO (mlp.0, mlp.2, …, last_layer). */
export class DinoHead extends Module {
  readonly layers: Linear[] = [];
  readonly lastLayer: WeightNormLinear;
  constructor(
    inDim: number,
    readonly cfg: DinoHeadConfig,
  ) {
    super();
    const mlp = this.child('mlp', new ModuleList<Linear>());
    const n = Math.max(cfg.nlayers, 1);
    const dims = n === 1 ? [inDim, cfg.bottleneckDim] : [inDim, ...Array(n - 1).fill(cfg.hiddenDim), cfg.bottleneckDim];
    // DINO's nn.Sequential puts GELUs at odd indices: Linear layers are mlp.0, mlp.2, mlp.4.
    for (let i = 0; i < dims.length - 1; i++) {
      while (mlp.length < 2 * i) mlp.push(new Module() as Linear);
      this.layers.push(mlp.push(new Linear(dims[i], dims[i + 1])));
    }
    this.lastLayer = this.child('last_layer', new WeightNormLinear(cfg.bottleneckDim, cfg.outDim, cfg.normLastLayer));
  }
  /** The L2-normalised bottleneck embedding (before the prototypes). */
  embed(x: Tensor): Tensor {
    let h = x;
    this.layers.forEach((l, i) => {
      h = l.forward(h);
      if (i < this.layers.length - 1) h = h.gelu();
    });
    return normalize(h, -1);
  }
  forward(x: Tensor): Tensor {
    return this.lastLayer.forward(this.embed(x));
  }
}

/** A plain MLP projector/predictor: Linear → (norm) → GELU … → Linear. */
export class MlpHead extends Module {
  readonly layers: ModuleList<Linear>;
  constructor(dims: number[]) {
    super();
    this.layers = this.child('layers', new ModuleList<Linear>());
    for (let i = 0; i < dims.length - 1; i++) this.layers.push(new Linear(dims[i], dims[i + 1]));
  }
  forward(x: Tensor): Tensor {
    let h = x;
    this.layers.items.forEach((l, i) => {
      h = l.forward(h);
      if (i < this.layers.length - 1) h = h.gelu();
    });
    return h;
  }
}
