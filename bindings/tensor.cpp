#include <cstring>

#include "bindings.h"
#include "csrc/allocator.h"
#include "csrc/device.h"
#include "csrc/tensor.h"

namespace pcn::bindings {

namespace {

DType dtype_of_array(const py::array& a, const char* who) {
  const py::dtype dt = a.dtype();
  if (dt.is(py::dtype::of<float>())) return DType::Float32;
  if (dt.is(py::dtype::of<uint8_t>())) return DType::UInt8;
  if (dt.is(py::dtype::of<int32_t>())) return DType::Int32;
  throw TypeError(str(who, ": array dtype must be float32, uint8 or int32; got ",
                      std::string(py::str(dt)),
                      " (convert first, e.g. a.astype(np.float32))"));
}

Shape shape_of(const py::array& a) {
  Shape s;
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s.push_back(a.shape(i));
  return s;
}

// Accepts a tuple/list of ints or a single int.
Shape to_shape(const py::object& obj, const char* who) {
  Shape s;
  if (py::isinstance<py::int_>(obj)) {
    s.push_back(obj.cast<int64_t>());
    return s;
  }
  if (!py::isinstance<py::sequence>(obj) || py::isinstance<py::str>(obj))
    throw TypeError(str(who, ": shape must be an int or a sequence of ints; got ",
                        std::string(py::str(py::type::of(obj).attr("__name__")))));
  for (const py::handle& h : obj.cast<py::sequence>()) {
    if (!py::isinstance<py::int_>(h))
      throw TypeError(str(who, ": shape must hold ints; got ", std::string(py::repr(obj))));
    s.push_back(h.cast<int64_t>());
  }
  return s;
}

py::array to_numpy(const Tensor& t) {
  std::vector<py::ssize_t> shape(t.shape().begin(), t.shape().end());
  py::array out;
  switch (t.dtype()) {
    case DType::Float32: out = py::array_t<float>(shape); break;
    case DType::UInt8: out = py::array_t<uint8_t>(shape); break;
    case DType::Int32: out = py::array_t<int32_t>(shape); break;
  }
  void* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    t.copy_to_host(dst);
  }
  return out;
}

}  // namespace

Tensor tensor_from_numpy(const py::array& a, const std::string& device) {
  const DType dt = dtype_of_array(a, "pyconvnet.tensor");
  PCN_REQUIRE(a.flags() & py::array::c_style, ValueError,
              "pyconvnet.tensor: array must be C-contiguous; got strides ",
              shape_str(Shape(a.strides(), a.strides() + a.ndim())), " for shape ",
              shape_str(shape_of(a)), " (use np.ascontiguousarray)");
  const Device dev = Device::parse(device);
  const void* src = a.data();
  Shape shape = shape_of(a);
  py::gil_scoped_release release;
  return Tensor::from_host(src, shape, dt, dev);
}

void bind_tensor(py::module_& m) {
  py::class_<Tensor>(m, "Tensor", R"doc(
A contiguous float32/uint8/int32 array on the CPU or a CUDA device.

Create one with pyconvnet.tensor(ndarray, device=...), pyconvnet.zeros or pyconvnet.empty.
t.numpy() copies it back to a new NumPy array; t.to(device) copies it to another device.
)doc")
      .def_property_readonly("shape", [](const Tensor& t) {
        py::tuple s(t.dim());
        for (int64_t i = 0; i < t.dim(); ++i) s[i] = t.shape()[i];
        return s;
      })
      .def_property_readonly("dtype", [](const Tensor& t) { return py::dtype(dtype_name(t.dtype())); })
      .def_property_readonly("device", [](const Tensor& t) { return t.device().str(); })
      .def_property_readonly("ndim", &Tensor::dim)
      .def_property_readonly("size", &Tensor::numel, "number of elements")
      .def_property_readonly("nbytes", &Tensor::nbytes)
      .def_property_readonly("data_ptr", [](const Tensor& t) { return reinterpret_cast<uintptr_t>(t.raw()); },
                             "the address of the first element (device memory for a CUDA tensor)")
      .def("numpy", &to_numpy, "Copy to a new NumPy array (waits for pending device work).")
      .def("__array__", [](const Tensor& t, py::object dtype, py::object copy) {
             py::array a = to_numpy(t);
             return dtype.is_none() ? a : a.attr("astype")(dtype).cast<py::array>();
           },
           py::arg("dtype") = py::none(), py::arg("copy") = py::none())
      .def("to", [](const Tensor& t, const std::string& device) {
             const Device d = Device::parse(device);
             py::gil_scoped_release release;
             return t.to(d);
           },
           py::arg("device"), "A copy on `device` (\"cpu\", \"cuda\", \"cuda:N\"); self if already there.")
      .def("reshape", [](const Tensor& t, const py::args& args) {
             py::object s = args.size() == 1 ? py::object(args[0]) : py::object(args);
             return t.reshape(to_shape(s, "Tensor.reshape"));
           }, "A view of the same memory with another shape of the same size.")
      .def("__len__", [](const Tensor& t) {
             PCN_REQUIRE(t.dim() > 0, TypeError, "len() of a 0-d tensor");
             return t.shape()[0];
           })
      .def("__repr__", &Tensor::repr);

  m.def("tensor_from_numpy", &tensor_from_numpy, py::arg("array"), py::arg("device") = "cpu");
  m.def("empty", [](const py::object& shape, const std::string& dtype, const std::string& device) {
          return Tensor::empty(to_shape(shape, "pyconvnet.empty"), dtype_from_name(dtype),
                               Device::parse(device));
        }, py::arg("shape"), py::arg("dtype") = "float32", py::arg("device") = "cpu");
  m.def("zeros", [](const py::object& shape, const std::string& dtype, const std::string& device) {
          return Tensor::zeros(to_shape(shape, "pyconvnet.zeros"), dtype_from_name(dtype),
                               Device::parse(device));
        }, py::arg("shape"), py::arg("dtype") = "float32", py::arg("device") = "cpu");

  m.def("built_with_cuda", &built_with_cuda);
  m.def("cuda_device_count", &cuda_device_count);
  m.def("cuda_unavailable_reason", &cuda_unavailable_reason);
  m.def("cuda_device_name", &cuda_device_name, py::arg("index") = 0);
  m.def("cuda_synchronize", &cuda_synchronize, py::arg("index") = 0,
        py::call_guard<py::gil_scoped_release>());
  m.def("cuda_current_stream", &cuda_current_stream, py::arg("index"));
  m.def("cuda_memory_stats", [](int index) {
          MemoryStats s = memory_stats(index);
          py::dict d;
          d["allocated"] = s.allocated;
          d["reserved"] = s.reserved;
          d["driver_allocs"] = s.driver_allocs;
          d["peak_allocated"] = s.peak_allocated;
          return d;
        }, py::arg("index") = 0);
  m.def("cuda_empty_cache", &empty_cache, py::arg("index") = 0);
  m.def("cpu_cached_bytes", &host_cached_bytes);
  m.def("cpu_empty_cache", &empty_host_cache);
}

}  // namespace pcn::bindings
