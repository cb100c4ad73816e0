#include "bindings.h"
#include "csrc/error.h"
#include "csrc/philox.h"

namespace pcn::bindings {

// Exposed for tests (known-answer vectors) and for Python code that must draw the same numbers
// as the kernels.
void bind_random(py::module_& m) {
  m.def("philox4x32", [](uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
          const Philox4 r = philox4x32(c0, c1, c2, c3, k0, k1);
          return py::make_tuple(r.v[0], r.v[1], r.v[2], r.v[3]);
        }, py::arg("c0"), py::arg("c1"), py::arg("c2"), py::arg("c3"), py::arg("k0"), py::arg("k1"));
  m.def("philox_words", [](uint64_t seed, uint32_t stream, uint64_t start, int64_t count, uint32_t row) {
          PCN_REQUIRE(count >= 0, ValueError, "philox_words: count must be >= 0; got ", count);
          py::array_t<uint32_t> out(count);
          uint32_t* p = out.mutable_data();
          for (int64_t i = 0; i < count; ++i) p[i] = philox_row_word(seed, stream, row, start + i);
          return out;
        }, py::arg("seed"), py::arg("stream"), py::arg("start"), py::arg("count"), py::arg("row") = 0);
}

}  // namespace pcn::bindings
