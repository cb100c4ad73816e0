#include "bindings.h"
#include "csrc/cpu/isa.h"
#include "csrc/cpu/parallel.h"
#include "csrc/cpu/peak.h"
#include "csrc/cpu/streaming.h"
#include "csrc/error.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace pcn::bindings {

PYBIND11_MODULE(_C, m) {
  m.doc() = "pyconvnet engine: tensors, CPU and CUDA kernels (use the pyconvnet package)";

  // C++ exceptions -> Python exceptions. ValueError/TypeError are Python's own; device problems
  // are RuntimeError; CUDA failures and out-of-memory get subclasses of RuntimeError so callers
  // (the trainer) can tell them apart.
  static py::exception<CudaError> cuda_error(m, "CudaError", PyExc_RuntimeError);
  static py::exception<OutOfMemory> oom_error(m, "OutOfMemoryError", PyExc_RuntimeError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const ValueError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const DeviceError& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    } catch (const CudaError& e) {
      PyErr_SetString(cuda_error.ptr(), e.what());
    } catch (const OutOfMemory& e) {
      PyErr_SetString(oom_error.ptr(), e.what());
    }
  });

  bind_tensor(m);
  bind_staging(m);
  bind_transfer(m);
  bind_random(m);
  bind_versions(m);
  bind_conv2d(m);
  bind_linear(m);
  bind_relu(m);
  bind_add(m);
  bind_lrn(m);
  bind_max_pool2d(m);
  bind_dropout(m);
  bind_softmax_cross_entropy(m);
  bind_sgd_update(m);
  bind_augment(m);
  bind_tf32(m);
  bind_simulator(m);

  // The CPU kernels' instruction-set path (csrc/cpu/isa.h) and thread count.
  m.def("cpu_isa", &cpu::active_isa);
  m.def("cpu_isas", &cpu::supported_isas);
  m.def("set_cpu_isa", &cpu::set_isa, py::arg("name"));
  m.def(
      "measure_cpu_peak",
      [](double seconds) {
        cpu::FmaPeak peak;
        {
          py::gil_scoped_release release;
          peak = cpu::measure_fma_peak(seconds);
        }
        py::dict d;
        d["isa"] = peak.isa;
        d["flops"] = peak.flops_per_s;
        d["per_thread"] = peak.per_thread;
        d["flops_per_step"] = peak.flops_per_step;
        return d;
      },
      py::arg("seconds"));
  m.def("set_streaming_threshold", &cpu::set_streaming_threshold, py::arg("bytes"),
        "Pointwise ops that touch more than this many bytes write their outputs past the caches "
        "(non-temporal stores); 0 always. Returns the previous value (the last-level cache's "
        "size by default). For tests.");
  m.def("streaming_threshold", &cpu::streaming_threshold);
  m.def(
      "set_serial_thread",
      [](bool serial) {
        const bool before = cpu::serial_thread();
        cpu::serial_thread() = serial;
        return before;
      },
      py::arg("serial"),
      "Whether the calling thread's CPU kernels run on it alone, with no OpenMP team of their own "
      "(for a helper thread beside the one that trains); returns the previous setting.");
  m.def("cpu_threads", [] {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
  });
  // PYCONVNET_CPU_ISA forces a path: a value this CPU cannot run fails the import, naming it.
  const std::string forced = cpu::isa_from_environment();
  if (!forced.empty()) cpu::set_isa(forced);
}

}  // namespace pcn::bindings
