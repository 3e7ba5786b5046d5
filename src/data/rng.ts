// Small, fast, seeded PRNG shared by the data pipeline.
//
// Generator: xoshiro128** (32-bit state words, period 2^128 - 1), seeded through splitmix32 so
// that nearby seeds give unrelated streams. Use `deriveSeed(seed, epoch, index, stream)` to get an
// independent deterministic stream for any combination of integers: the result depends only on
// the numbers passed, never on call order or on the number of workers.

const SPLIT = 0x9e3779b9;

/** Finaliser of splitmix32/murmur3: a bijective avalanche mix of one 32-bit word. */
function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/**
 * Hash any number of integers into one 32-bit seed. Order matters: (1, 2) ≠ (2, 1).
 * Non-negative integers up to 2^53 are hashed exactly (high and low words); other numbers are
 * truncated toward zero first. Negative integers are allowed (hashed through their two's
 * complement low word and a sign-carrying high word).
 */
export function deriveSeed(...parts: number[]): number {
  let h = mix32(0x6a09e667 ^ parts.length);
  for (const p of parts) {
    const v = Math.trunc(p);
    const lo = v | 0;
    const hi = Math.floor(v / 4294967296) | 0;
    h = mix32((h + SPLIT) ^ lo);
    h = mix32((h + SPLIT) ^ hi);
  }
  return h;
}

/** Seeded PRNG. All methods advance the same stream; the sequence is fixed by the seed. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spare: number | null = null; // second Box-Muller deviate

  constructor(seed: number) {
    // splitmix32 expands the seed into 4 state words (never all zero: mix32 is a bijection and
    // the 4 inputs differ, so at most one word can be 0).
    let s = Math.trunc(seed) >>> 0;
    const next = (): number => {
      s = (s + SPLIT) >>> 0;
      return mix32(s);
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
  }

  /** Next raw 32-bit unsigned integer. */
  u32(): number {
    const r = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return r;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  uniform(): number {
    return this.u32() / 4294967296;
  }

  /** Uniform in [lo, hi). */
  range(lo: number, hi: number): number {
    return lo + (hi - lo) * this.uniform();
  }

  /** Uniform integer in [lo, hiExclusive). Requires hiExclusive > lo and a span below 2^32. */
  int(lo: number, hiExclusive: number): number {
    const span = hiExclusive - lo;
    if (!(span >= 1)) throw new Error(`Rng.int: empty range [${lo}, ${hiExclusive})`);
    return lo + Math.floor(this.uniform() * span);
  }

  /** Standard normal deviate (Box-Muller; pairs are cached). */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    const u = 1 - this.uniform(); // (0, 1]: log is finite
    const r = Math.sqrt(-2 * Math.log(u));
    const th = 2 * Math.PI * this.uniform();
    this.spare = r * Math.sin(th);
    return r * Math.cos(th);
  }

  /** True with probability p. */
  bool(p = 0.5): boolean {
    return this.uniform() < p;
  }

  /** A uniformly chosen element of a non-empty array. */
  choice<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('Rng.choice: empty array');
    return items[this.int(0, items.length)] as T;
  }

  /** Fisher-Yates shuffle in place; returns the array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(0, i + 1);
      const t = items[i] as T;
      items[i] = items[j] as T;
      items[j] = t;
    }
    return items;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
