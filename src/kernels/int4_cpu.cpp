// tines::int4_mm: y = x @ W.T for 4-bit weights in groups of 32, on AVX2 + FMA CPUs.
//
//   W[n, k] = d[n, g] * q[n, k] + m[n, g],  g = k / 32,  q in 0..15
//
// x: float32 or bfloat16 [M, K], computed in float32; y: [M, N] in x's dtype.
// q: uint8 [N, K / 2]; per group of 32, byte j holds q[j] in its low nibble and q[j + 16] in
// its high one (GGUF's Q4_0/Q4_1 order). dm: float32 [N, K / 32, 2] holding (d, m).
// The torch reference is `int4_mm_ref` in int4_cpu.py.
//
// x is rounded to 16 bits per group of 32 (xq = round(x / dx), dx = max|x| / 32767, so each
// value is off by at most dx / 2: about 1e-5 of the group's largest), then each group is
//   y[n] += d[n, g] * dx * sum_k q[n, k] * xq[k]  +  m[n, g] * dx * sum_k xq[k]
// with the inner sum exact in int32 (vpmaddwd on nibbles widened to int16). That is about 8
// instructions per group where unpacking to float takes about 20, and it matters: on a few
// rows the step is bound by this arithmetic, not by reading the weights. Each output row's
// nibbles are widened once for up to 8 activation rows; output rows are split over threads.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>
#include <immintrin.h>

#include <cmath>
#include <type_traits>

namespace {

constexpr int64_t kGroup = 32;
constexpr int64_t kMaxRows = 8;  // activation rows per pass (accumulators live in registers)

inline float horizontal_sum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Activations as int16 per group: xq [M, K], scale dx [M, G] and dx * sum(xq) [M, G].
struct QuantizedRows {
  at::Tensor xq, dx, xsum;
};

QuantizedRows quantize_rows(const at::Tensor& x) {
  const int64_t M = x.size(0), K = x.size(1), G = K / kGroup;
  QuantizedRows out{at::empty({M, K}, x.options().dtype(at::kShort)),
                    at::empty({M, G}, x.options()), at::empty({M, G}, x.options())};
  const float* xp = x.data_ptr<float>();
  int16_t* qp = out.xq.data_ptr<int16_t>();
  float* dxp = out.dx.data_ptr<float>();
  float* sp = out.xsum.data_ptr<float>();
  for (int64_t i = 0; i < M * G; ++i) {
    const float* v = xp + i * kGroup;
    float amax = 0.f;
    for (int j = 0; j < kGroup; ++j) amax = std::max(amax, std::abs(v[j]));
    const float inv = amax > 0.f ? 32767.f / amax : 0.f;
    int32_t sum = 0;
    for (int j = 0; j < kGroup; ++j) {
      const int32_t t = static_cast<int32_t>(std::nearbyint(v[j] * inv));
      qp[i * kGroup + j] = static_cast<int16_t>(t);
      sum += t;
    }
    dxp[i] = amax / 32767.f;
    sp[i] = dxp[i] * static_cast<float>(sum);
  }
  return out;
}

template <int M>
void output_rows(const int16_t* xq, const float* dx, const float* xsum, const uint8_t* q,
                 const float* dm, float* y, int64_t K, int64_t N, int64_t n_begin,
                 int64_t n_end) {
  constexpr int A = M == 1 ? 2 : 1;  // accumulators per row, so one row's FMAs overlap
  const int64_t groups = K / kGroup;
  const __m128i low_nibble = _mm_set1_epi8(0x0F);
  for (int64_t n = n_begin; n < n_end; ++n) {
    __m256 acc[M][A];
    float min_terms[M];
    for (int r = 0; r < M; ++r) {
      for (int a = 0; a < A; ++a) acc[r][a] = _mm256_setzero_ps();
      min_terms[r] = 0.f;
    }
    const uint8_t* qn = q + n * (K / 2);
    const float* dmn = dm + n * groups * 2;
    for (int64_t g = 0; g < groups; ++g) {
      const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qn + g * 16));
      const __m256i lo = _mm256_cvtepu8_epi16(_mm_and_si128(packed, low_nibble));
      const __m256i hi = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(packed, 4), low_nibble));
      const float d = dmn[2 * g], m = dmn[2 * g + 1];
      for (int r = 0; r < M; ++r) {
        const int16_t* xg = xq + r * K + g * kGroup;
        const __m256i dots = _mm256_add_epi32(
            _mm256_madd_epi16(lo, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xg))),
            _mm256_madd_epi16(hi, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xg + 16))));
        acc[r][g % A] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dots),
                                        _mm256_set1_ps(d * dx[r * groups + g]), acc[r][g % A]);
        min_terms[r] += m * xsum[r * groups + g];
      }
    }
    for (int r = 0; r < M; ++r) {
      __m256 s = acc[r][0];
      for (int a = 1; a < A; ++a) s = _mm256_add_ps(s, acc[r][a]);
      y[r * N + n] = horizontal_sum(s) + min_terms[r];
    }
  }
}

at::Tensor int4_mm(const at::Tensor& x_in, const at::Tensor& q, const at::Tensor& dm) {
  TORCH_CHECK(x_in.dim() == 2 && (x_in.scalar_type() == at::kFloat ||
                                   x_in.scalar_type() == at::kBFloat16),
              "x: float32 or bfloat16 [M, K]");
  const at::Tensor x = x_in.to(at::kFloat).contiguous();
  const int64_t M = x.size(0), K = x.size(1), N = q.size(0), G = K / kGroup;
  TORCH_CHECK(K % kGroup == 0, "K must be a multiple of 32, got ", K);
  TORCH_CHECK(q.scalar_type() == at::kByte && q.is_contiguous() && q.dim() == 2 &&
                  q.size(1) == K / 2, "q: contiguous uint8 [N, K / 2]");
  TORCH_CHECK(dm.scalar_type() == at::kFloat && dm.is_contiguous() && dm.dim() == 3 &&
                  dm.size(0) == N && dm.size(1) == G && dm.size(2) == 2,
              "dm: contiguous float32 [N, K / 32, 2]");
  const QuantizedRows xr = quantize_rows(x);
  at::Tensor y = at::empty({M, N}, x.options());
  for (int64_t r0 = 0; r0 < M; r0 += kMaxRows) {
    const int16_t* xq = xr.xq.data_ptr<int16_t>() + r0 * K;
    const float* dx = xr.dx.data_ptr<float>() + r0 * G;
    const float* xsum = xr.xsum.data_ptr<float>() + r0 * G;
    float* yp = y.data_ptr<float>() + r0 * N;
    auto pass = [&](auto rows) {
      constexpr int R = decltype(rows)::value;
      at::parallel_for(0, N, 64, [&](int64_t begin, int64_t end) {
        output_rows<R>(xq, dx, xsum, q.data_ptr<uint8_t>(), dm.data_ptr<float>(), yp, K, N,
                       begin, end);
      });
    };
    switch (std::min(kMaxRows, M - r0)) {
      case 1: pass(std::integral_constant<int, 1>{}); break;
      case 2: pass(std::integral_constant<int, 2>{}); break;
      case 3: pass(std::integral_constant<int, 3>{}); break;
      case 4: pass(std::integral_constant<int, 4>{}); break;
      case 5: pass(std::integral_constant<int, 5>{}); break;
      case 6: pass(std::integral_constant<int, 6>{}); break;
      case 7: pass(std::integral_constant<int, 7>{}); break;
      default: pass(std::integral_constant<int, 8>{}); break;
    }
  }
  return y.to(x_in.scalar_type());  // rounded here: a compiled graph cannot skip it
}

at::Tensor int4_mm_meta(const at::Tensor& x, const at::Tensor& q, const at::Tensor& dm) {
  return at::empty_symint({x.sym_size(0), q.sym_size(0)}, x.options());  // sizes may be symbolic
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(tines, m) { m.def("int4_mm(Tensor x, Tensor q, Tensor dm) -> Tensor"); }
TORCH_LIBRARY_IMPL(tines, CPU, m) { m.impl("int4_mm", int4_mm); }
TORCH_LIBRARY_IMPL(tines, Meta, m) { m.impl("int4_mm", int4_mm_meta); }
