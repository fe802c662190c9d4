// Flash attention for every attnlab metric, fp32: tiled over keys with an online softmax, no
// (tq, tk) tensor stored; the backward recomputes the weights tile by tile from the per-row
// log-normaliser `lse` the forward saved.
//
// Compiled at run time by NVRTC (crates/model/src/gpu/source.rs), which prepends the metric's
// row of the metric table (crates/model/src/metric/table.rs) as macros:
//   HD, HDV            head width of q/k and of v
//   INPUT              0 q.k, 1 unit q.k, 2 squared distance, 3 distance power  (table::Input)
//   NORMALISE          0 softmax, 1 softmax without max (scores <= 1), 2 direct weights
//   SCORE(z), DSCORE(z, s), DSCORE_DHEAD(z), WEIGHT(z, s)   expressions over scale, eps, head
//
// Layouts (all contiguous, bh = batch * heads):
//   qk (bh, tq + tk, HD) = [q; k] per head, v (bh, tk, HDV), y (bh, tq, HDV), lse (bh, tq)
//   nkeys (tq) u32: row i sees keys 0..nkeys[i]; keep (tq, tk) u8 or null: and only where keep
//   param: the per-head parameter (h) or a one-element dummy; param_use 0 none, 1 temperature,
//   2 learned power, 3 learned scale (rows.rs ParamUse).

// Also prepended (source.rs, which launches with them): BQ query rows per forward / dq block
// (one thread each), BK keys per shared-memory tile and threads of a dk/dv block (one key each),
// BQB query rows per tile of the dk/dv kernel.
typedef unsigned long long u64;  // offsets (NVRTC has no <cstddef>)
#define NEG_INF __int_as_float(0xff800000)
#define POS_INF __int_as_float(0x7f800000)

struct Head {
    float scale;  // score scale
    float head;   // tau (cosine) or p / 2 (distance powers)
};

__device__ __forceinline__ Head head_consts(const float* param, int hd, int param_use, float fscale,
                                            float fpower) {
    Head c;
    c.scale = fscale;
    c.head = 0.5f * fpower;
    if (param_use == 1) c.head = param[hd];
    if (param_use == 2) c.head = 0.5f * param[hd];
    if (param_use == 3) c.scale = param[hd];
    return c;
}

// u = x^(p/2) and du/dx, as metric/distance.rs (P2, P1, PAny).
__device__ __forceinline__ float pw_u(float x, float hp) {
    return hp == 1.0f ? x : (hp == 0.5f ? sqrtf(x) : powf(x, hp));
}
__device__ __forceinline__ float pw_dudx(float x, float u, float hp) {
    return hp == 1.0f ? 1.0f : hp * u / x;
}

// The metric's input z from q.k and the squared norms; r is the unclamped squared distance and
// x = max(r, 0) + delta (distance inputs only).
struct In {
    float z, r, x;
};
__device__ __forceinline__ In input_z(float qk, float qn, float kn, float delta, float hp) {
    In o;
    o.z = qk;
    o.r = 0.0f;
    o.x = 0.0f;
#if INPUT == 2
    o.r = (qn + kn) - qk * 2.0f;
    o.z = fmaxf(o.r, 0.0f);
#elif INPUT == 3
    o.r = (qn + kn) - qk * 2.0f;
    o.x = fmaxf(o.r, 0.0f) + delta;
    o.z = pw_u(o.x, hp);
#endif
    return o;
}

__device__ __forceinline__ float score_of(float z, float scale, float eps, float head) {
    return SCORE(z);
}

// The unnormalised weight of a key relative to the running maximum m (softmax) or absolute.
__device__ __forceinline__ float weight_of(float z, float s, float scale, float eps, float head) {
    return WEIGHT(z, s);
}

__device__ __forceinline__ bool visible(int i, int j, unsigned n, const unsigned char* keep, int tk) {
    return (unsigned)j < n && (keep == nullptr || keep[(u64)i * tk + j]);
}

extern "C" __global__ void flash_fwd(const float* __restrict__ qk, const float* __restrict__ v,
                                     const float* __restrict__ param,
                                     const unsigned* __restrict__ nkeys,
                                     const unsigned char* __restrict__ keep, float* __restrict__ y,
                                     float* __restrict__ lse, int h, int tq, int tk, int param_use,
                                     float fscale, float eps, float delta, float fpower) {
    __shared__ float ks[BK][HD];
    __shared__ float vs[BK][HDV];
    __shared__ float kns[BK];
    __shared__ float ss[BK][BQ];
    __shared__ unsigned kmax;
    const int bh = blockIdx.y, tid = threadIdx.x;
    const int i = blockIdx.x * BQ + tid;
    const bool row_ok = i < tq;
    const float* Q = qk + (u64)bh * (tq + tk) * HD;
    const float* K = Q + (u64)tq * HD;
    const float* V = v + (u64)bh * tk * HDV;
    const Head c = head_consts(param, bh % h, param_use, fscale, fpower);
    const float scale = c.scale, head = c.head;

    float q[HD];
    float qn = 0.0f;
#pragma unroll
    for (int e = 0; e < HD; ++e) {
        q[e] = row_ok ? Q[(u64)i * HD + e] : 0.0f;
        qn += q[e] * q[e];
    }
    const unsigned n = row_ok ? nkeys[i] : 0u;
    if (tid == 0) kmax = 0u;
    __syncthreads();
    if (row_ok) atomicMax(&kmax, n);
    __syncthreads();
    const int kend = (int)kmax;

    float m = NORMALISE == 0 ? NEG_INF : 0.0f;
    float l = 0.0f;
    float acc[HDV];
#pragma unroll
    for (int e = 0; e < HDV; ++e) acc[e] = 0.0f;

    for (int j0 = 0; j0 < kend; j0 += BK) {
        const int nb = min(BK, kend - j0);
        for (int x = tid; x < nb * HD; x += BQ) ks[x / HD][x % HD] = K[(u64)j0 * HD + x];
        for (int x = tid; x < nb * HDV; x += BQ) vs[x / HDV][x % HDV] = V[(u64)j0 * HDV + x];
        __syncthreads();
#if INPUT >= 2
        for (int jj = tid; jj < nb; jj += BQ) {
            float a = 0.0f;
#pragma unroll
            for (int e = 0; e < HD; ++e) a += ks[jj][e] * ks[jj][e];
            kns[jj] = a;
        }
        __syncthreads();
#endif
        float tmax = NEG_INF;
        for (int jj = 0; jj < nb; ++jj) {
            float e = NORMALISE == 2 ? 0.0f : NEG_INF;
            if (row_ok && visible(i, j0 + jj, n, keep, tk)) {
                float dot = 0.0f;
#pragma unroll
                for (int x = 0; x < HD; ++x) dot += q[x] * ks[jj][x];
                const In in = input_z(dot, qn, kns[jj], delta, head);
                const float s = score_of(in.z, scale, eps, head);
                e = NORMALISE == 2 ? weight_of(in.z, s, scale, eps, head) : s;
                tmax = fmaxf(tmax, e);
            }
            ss[jj][tid] = e;
        }
#if NORMALISE == 0
        const float m_new = fmaxf(m, tmax);
        const float corr = m == NEG_INF ? 0.0f : expf(m - m_new);
        l *= corr;
#pragma unroll
        for (int e = 0; e < HDV; ++e) acc[e] *= corr;
        m = m_new;
#endif
        for (int jj = 0; jj < nb; ++jj) {
            const float e = ss[jj][tid];
            const float p = NORMALISE == 2 ? e : (e == NEG_INF ? 0.0f : expf(e - m));
            l += p;
#pragma unroll
            for (int x = 0; x < HDV; ++x) acc[x] += p * vs[jj][x];
        }
        __syncthreads();
    }
    if (row_ok) {
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
        float* Y = y + ((u64)bh * tq + i) * HDV;
#pragma unroll
        for (int e = 0; e < HDV; ++e) Y[e] = acc[e] * inv;
        lse[(u64)bh * tq + i] = l > 0.0f ? m + logf(l) : POS_INF;
    }
}

// The weight of key j for row i from the saved lse, and the gradient of the loss with respect
// to q.k (G) and to the head parameter (gp), given gs = w (dw - D).
struct Grad {
    float w, g_qk, g_head;
};
__device__ __forceinline__ float recompute_w(const In& in, float L, float scale, float eps, float head) {
    const float s = score_of(in.z, scale, eps, head);
#if NORMALISE == 2
    return weight_of(in.z, s, scale, eps, head) * expf(-L);
#else
    return expf(s - L);
#endif
}
__device__ __forceinline__ Grad grads_of(const In& in, float w, float dw, float D, int param_use,
                                         float scale, float eps, float head) {
    Grad o;
    o.w = w;
    const float gs = w * (dw - D);
    const float z = in.z;
    const float s = score_of(z, scale, eps, head);
    const float gz = gs * (DSCORE(z, s));
    o.g_head = 0.0f;
#if INPUT <= 1
    o.g_qk = gz;
    if (param_use == 1 || param_use == 3) o.g_head = gs * (DSCORE_DHEAD(z));
#elif INPUT == 2
    o.g_qk = in.r >= 0.0f ? -2.0f * gz : 0.0f;
    if (param_use == 3) o.g_head = gs * (DSCORE_DHEAD(z));
#else
    o.g_qk = in.r >= 0.0f ? -2.0f * gz * pw_dudx(in.x, z, head) : 0.0f;
    if (param_use == 2) o.g_head = gz * z * 0.5f * logf(in.x);
    if (param_use == 3) o.g_head = gs * (DSCORE_DHEAD(z));
#endif
    return o;
}

// dq (into g_qk rows 0..tq of each head), D = dy . y (saved for flash_bwd_dkv) and per-block
// partial sums of the head parameter's gradient, gp (bh, gridDim.x).
extern "C" __global__ void flash_bwd_dq(const float* __restrict__ qk, const float* __restrict__ v,
                                        const float* __restrict__ param,
                                        const unsigned* __restrict__ nkeys,
                                        const unsigned char* __restrict__ keep,
                                        const float* __restrict__ y, const float* __restrict__ lse,
                                        const float* __restrict__ dy, float* __restrict__ g_qk,
                                        float* __restrict__ dsum, float* __restrict__ gp, int h,
                                        int tq, int tk, int param_use, float fscale, float eps,
                                        float delta, float fpower) {
    __shared__ float ks[BK][HD];
    __shared__ float vs[BK][HDV];
    __shared__ float kns[BK];
    __shared__ float red[BQ];
    __shared__ unsigned kmax;
    const int bh = blockIdx.y, tid = threadIdx.x;
    const int i = blockIdx.x * BQ + tid;
    const bool row_ok = i < tq;
    const float* Q = qk + (u64)bh * (tq + tk) * HD;
    const float* K = Q + (u64)tq * HD;
    const float* V = v + (u64)bh * tk * HDV;
    const Head c = head_consts(param, bh % h, param_use, fscale, fpower);
    const float scale = c.scale, head = c.head;

    float q[HD], g[HDV], dq[HD];
    float qn = 0.0f, D = 0.0f;
#pragma unroll
    for (int e = 0; e < HD; ++e) {
        q[e] = row_ok ? Q[(u64)i * HD + e] : 0.0f;
        qn += q[e] * q[e];
        dq[e] = 0.0f;
    }
#pragma unroll
    for (int e = 0; e < HDV; ++e) {
        const size_t at = ((u64)bh * tq + i) * HDV + e;
        g[e] = row_ok ? dy[at] : 0.0f;
        D += row_ok ? g[e] * y[at] : 0.0f;
    }
    const float L = row_ok ? lse[(u64)bh * tq + i] : POS_INF;
    if (row_ok) dsum[(u64)bh * tq + i] = D;
    const unsigned n = row_ok ? nkeys[i] : 0u;
    if (tid == 0) kmax = 0u;
    __syncthreads();
    if (row_ok) atomicMax(&kmax, n);
    __syncthreads();
    const int kend = (int)kmax;
    float gsum = 0.0f, ghead = 0.0f;

    for (int j0 = 0; j0 < kend; j0 += BK) {
        const int nb = min(BK, kend - j0);
        for (int x = tid; x < nb * HD; x += BQ) ks[x / HD][x % HD] = K[(u64)j0 * HD + x];
        for (int x = tid; x < nb * HDV; x += BQ) vs[x / HDV][x % HDV] = V[(u64)j0 * HDV + x];
        __syncthreads();
#if INPUT >= 2
        for (int jj = tid; jj < nb; jj += BQ) {
            float a = 0.0f;
#pragma unroll
            for (int e = 0; e < HD; ++e) a += ks[jj][e] * ks[jj][e];
            kns[jj] = a;
        }
        __syncthreads();
#endif
        for (int jj = 0; jj < nb; ++jj) {
            if (!(row_ok && visible(i, j0 + jj, n, keep, tk))) continue;
            float dot = 0.0f, dw = 0.0f;
#pragma unroll
            for (int x = 0; x < HD; ++x) dot += q[x] * ks[jj][x];
#pragma unroll
            for (int x = 0; x < HDV; ++x) dw += g[x] * vs[jj][x];
            const In in = input_z(dot, qn, kns[jj], delta, head);
            const float w = recompute_w(in, L, scale, eps, head);
            const Grad gr = grads_of(in, w, dw, D, param_use, scale, eps, head);
#pragma unroll
            for (int x = 0; x < HD; ++x) dq[x] += gr.g_qk * ks[jj][x];
            gsum += gr.g_qk;
            ghead += gr.g_head;
        }
        __syncthreads();
    }
    if (row_ok) {
        float* out = g_qk + ((u64)bh * (tq + tk) + i) * HD;
#pragma unroll
        for (int e = 0; e < HD; ++e) out[e] = INPUT >= 2 ? dq[e] - gsum * q[e] : dq[e];
    }
    red[tid] = ghead;
    __syncthreads();
    for (int s = BQ / 2; s > 0; s >>= 1) {
        if (tid < s) red[tid] += red[tid + s];
        __syncthreads();
    }
    if (tid == 0) gp[(u64)bh * gridDim.x + blockIdx.x] = red[0];
}

// dk (into g_qk rows tq.. of each head) and dv, one thread per key, query rows in tiles.
extern "C" __global__ void flash_bwd_dkv(const float* __restrict__ qk, const float* __restrict__ v,
                                         const float* __restrict__ param,
                                         const unsigned* __restrict__ nkeys,
                                         const unsigned char* __restrict__ keep,
                                         const float* __restrict__ lse,
                                         const float* __restrict__ dsum,
                                         const float* __restrict__ dy, float* __restrict__ g_qk,
                                         float* __restrict__ g_v, int h, int tq, int tk,
                                         int param_use, float fscale, float eps, float delta,
                                         float fpower) {
    __shared__ float qs[BQB][HD];
    __shared__ float gs_[BQB][HDV];
    __shared__ float Ls[BQB], Ds[BQB], qns[BQB];
    __shared__ unsigned ns[BQB];
    const int bh = blockIdx.y, tid = threadIdx.x;
    const int j = blockIdx.x * BK + tid;  // blockDim.x == BK
    const bool key_ok = j < tk;
    const int jb0 = blockIdx.x * BK;
    const float* Q = qk + (u64)bh * (tq + tk) * HD;
    const float* K = Q + (u64)tq * HD;
    const float* V = v + (u64)bh * tk * HDV;
    const float* DY = dy + (u64)bh * tq * HDV;
    const Head c = head_consts(param, bh % h, param_use, fscale, fpower);
    const float scale = c.scale, head = c.head;

    float k[HD], vv[HDV], dk[HD], dv[HDV];
    float kn = 0.0f;
#pragma unroll
    for (int e = 0; e < HD; ++e) {
        k[e] = key_ok ? K[(u64)j * HD + e] : 0.0f;
        kn += k[e] * k[e];
        dk[e] = 0.0f;
    }
#pragma unroll
    for (int e = 0; e < HDV; ++e) {
        vv[e] = key_ok ? V[(u64)j * HDV + e] : 0.0f;
        dv[e] = 0.0f;
    }
    float gcol = 0.0f;

    for (int i0 = 0; i0 < tq; i0 += BQB) {
        const int nr = min(BQB, tq - i0);
        for (int r = tid; r < nr; r += BK) ns[r] = nkeys[i0 + r];
        __syncthreads();
        // Skip query tiles none of whose rows sees any key of this block.
        const bool any = tid < nr && ns[tid] > (unsigned)jb0;
        if (!__syncthreads_or(any)) continue;
        for (int x = tid; x < nr * HD; x += BK) qs[x / HD][x % HD] = Q[(u64)i0 * HD + x];
        for (int x = tid; x < nr * HDV; x += BK) gs_[x / HDV][x % HDV] = DY[(u64)i0 * HDV + x];
        for (int r = tid; r < nr; r += BK) {
            Ls[r] = lse[(u64)bh * tq + i0 + r];
            Ds[r] = dsum[(u64)bh * tq + i0 + r];
        }
        __syncthreads();
#if INPUT >= 2
        for (int r = tid; r < nr; r += BK) {
            float a = 0.0f;
#pragma unroll
            for (int e = 0; e < HD; ++e) a += qs[r][e] * qs[r][e];
            qns[r] = a;
        }
        __syncthreads();
#endif
        for (int r = 0; r < nr; ++r) {
            if (!(key_ok && visible(i0 + r, j, ns[r], keep, tk))) continue;
            float dot = 0.0f, dw = 0.0f;
#pragma unroll
            for (int x = 0; x < HD; ++x) dot += qs[r][x] * k[x];
#pragma unroll
            for (int x = 0; x < HDV; ++x) dw += gs_[r][x] * vv[x];
            const In in = input_z(dot, qns[r], kn, delta, head);
            const float w = recompute_w(in, Ls[r], scale, eps, head);
            const Grad gr = grads_of(in, w, dw, Ds[r], param_use, scale, eps, head);
#pragma unroll
            for (int x = 0; x < HDV; ++x) dv[x] += w * gs_[r][x];
#pragma unroll
            for (int x = 0; x < HD; ++x) dk[x] += gr.g_qk * qs[r][x];
            gcol += gr.g_qk;
        }
        __syncthreads();
    }
    if (key_ok) {
        float* out = g_qk + ((u64)bh * (tq + tk) + tq + j) * HD;
#pragma unroll
        for (int e = 0; e < HD; ++e) out[e] = INPUT >= 2 ? dk[e] - gcol * k[e] : dk[e];
        float* ov = g_v + ((u64)bh * tk + j) * HDV;
#pragma unroll
        for (int e = 0; e < HDV; ++e) ov[e] = dv[e];
    }
}
