#include "bindings.h"
#include "csrc/staging.h"

namespace pcn::bindings {

void bind_staging(py::module_& m) {
  py::class_<StagingSlot, std::shared_ptr<StagingSlot>>(m, "StagingSlot", R"doc(
Buffers for moving one batch to a device (csrc/staging.h): page-locked host memory to fill from
NumPy (host(i)), device tensors it is copied to asynchronously (upload()), and the events that
order the copy against the ops: acquire() before the ops that read the device buffers, release()
after them. Used by pyconvnet.loader; not needed elsewhere.
)doc")
      .def(py::init([](const std::vector<std::pair<std::vector<int64_t>, std::string>>& buffers,
                       const std::string& device) {
             std::vector<std::pair<Shape, DType>> specs;
             for (const auto& [shape, dtype] : buffers)
               specs.emplace_back(Shape(shape.begin(), shape.end()), dtype_from_name(dtype));
             const Device dev = Device::parse(device);
             py::gil_scoped_release release;  // pinned allocations can take milliseconds
             return std::make_shared<StagingSlot>(specs, dev);
           }),
           py::arg("buffers"), py::arg("device"))
      .def("host", [](py::object self, size_t i) {
             // A writable NumPy view of the host memory. Its base owns the memory itself, so a
             // view that outlives close() (a reader thread still writing) never writes into
             // memory given back to the pinned cache.
             StagingSlot& s = self.cast<StagingSlot&>();
             void* p = s.host(i);
             const Shape& shape = s.shape(i);
             auto* owner = new std::shared_ptr<void>(s.host_owner(i));
             py::capsule base(owner, [](void* o) { delete static_cast<std::shared_ptr<void>*>(o); });
             return py::array(py::dtype(dtype_name(s.dtype(i))),
                              std::vector<py::ssize_t>(shape.begin(), shape.end()), p, base);
           }, py::arg("i"),
           "Writable NumPy view of host buffer i (page-locked for a CUDA device); it keeps that memory alive.")
      .def("device_buffer", &StagingSlot::device_buffer, py::arg("i"))
      .def("upload", &StagingSlot::upload, py::call_guard<py::gil_scoped_release>())
      .def("acquire", &StagingSlot::acquire, py::call_guard<py::gil_scoped_release>())
      .def("wait_uploaded", &StagingSlot::wait_uploaded, py::call_guard<py::gil_scoped_release>())
      .def("release", &StagingSlot::release, py::call_guard<py::gil_scoped_release>())
      .def("clone", &StagingSlot::clone, py::arg("i"), py::call_guard<py::gil_scoped_release>())
      .def("close", &StagingSlot::close, py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("device", [](const StagingSlot& s) { return s.device().str(); })
      .def("__len__", &StagingSlot::count);
}

}  // namespace pcn::bindings
